"""Who may do what: the roles, decided once in `ACCESS`, and enforced here for every URL.

The roles, from least to most:

* `Role.ANYONE`: the login page, the health check, the API's schema and docs.
* `Role.USER`, any person logged in: browse the library, the queue, the jobs and the
  models; tag files (Tag now, Re-tag); make, write and push playlists.
* `Role.STAFF` (`User.is_staff`, and any API key): control the queue (pause, resume,
  flush, reset, retry, remove), reload the models, start and cancel scans, change the
  library roots, manage API keys and settings.

`ACCESS` gives every URL name of the URLconf its `Access`: the role needed to look
(GET, HEAD, OPTIONS) and the role needed to act (any other method). A name missing
from it needs staff for both (it fails closed); the URLconf sweep test
(nomarr_site/tests/test_url_sweep.py) keeps the table complete.

It is enforced in one place, in two forms that read the same table:

* `RoleMiddleware`, for the pages: the anonymous are sent to the login page, a person
  without the role gets 403, and the view does not run.
* `HasRole`, the permission of every API view (nomarr_site.api.NomarrView), because an
  API key is only known once DRF has authenticated the request: the anonymous get
  401, a person without the role 403.

Templates get `staff` (whether the person viewing has the staff role) from `context`,
so that staff-only buttons are shown to staff only. Django's admin (/admin/) checks
staff itself, as Django does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from rest_framework.permissions import BasePermission
from rest_framework_api_key.models import APIKey

__all__ = [
    "ACCESS",
    "API_NAMESPACES",
    "Access",
    "HasRole",
    "Role",
    "RoleMiddleware",
    "context",
    "is_staff",
    "required",
    "role_of",
]


class Role(enum.IntEnum):
    """Who someone is; a higher role may do all that a lower one may."""

    ANYONE = 0
    USER = 1
    STAFF = 2


@dataclass(frozen=True)
class Access:
    """The role needed to look at a URL (GET, HEAD, OPTIONS) and to act on it."""

    look: Role
    act: Role


PUBLIC = Access(Role.ANYONE, Role.ANYONE)
USERS = Access(Role.USER, Role.USER)
STAFF_ACTS = Access(Role.USER, Role.STAFF)  # every person sees it, staff act on it
STAFF_ONLY = Access(Role.STAFF, Role.STAFF)

#: Every URL name -> who may look and who may act.
ACCESS: dict[str, Access] = {
    # tagging
    "dashboard": USERS,
    "tag-now": USERS,
    "job": USERS,
    "queue": USERS,
    "queue-action": STAFF_ONLY,  # pause, resume, reset, retry, flush, remove
    "models": STAFF_ACTS,  # reload the models
    # library
    "library:index": USERS,
    "library:file": USERS,
    "library:file-tags": USERS,
    "library:file-retag": USERS,
    "library:scans": USERS,
    "library:scan-action": STAFF_ONLY,  # scan, full scan, cancel
    "library:analytics": USERS,
    "library:calibration": USERS,
    "library:calibration-action": STAFF_ONLY,  # measure, calibrate, retier
    "library:retier-progress": USERS,
    # playlists
    "playlists:index": USERS,
    "playlists:navidrome_config": USERS,
    # sonic similarity (a write or a push acts as the playlists page does)
    "sonic:similar": USERS,
    "sonic:mix": USERS,
    "sonic:path": USERS,
    "sonic:map": USERS,
    "sonic:map-points": USERS,
    "sonic:duplicates": USERS,
    # teach a tag: every person sees; staff act (teaching writes tags into every file)
    "teach:index": STAFF_ACTS,  # make a tag
    "teach:tag": STAFF_ACTS,  # forget a tag
    "teach:examples": STAFF_ACTS,
    "teach:train": STAFF_ACTS,
    "teach:apply": STAFF_ACTS,
    "teach:head": STAFF_ACTS,
    "teach:mark": STAFF_ACTS,  # mark a file yes or no
    "teach:genres": STAFF_ACTS,  # write the genre suggestions
    # accounts and settings
    "login": PUBLIC,
    "logout": PUBLIC,
    "account-settings": USERS,  # staff see the keys; the page says who may change what
    "account-root": STAFF_ONLY,
    "account-root-add": STAFF_ONLY,
    "account-root-state": STAFF_ONLY,  # enable, disable, remove
    "account-keys": STAFF_ONLY,
    # the site
    "health": PUBLIC,
    "metrics": PUBLIC,  # asks for an API key or a staff login itself (nomarr_site/metrics.py)
    # the API (/api/v1/)
    "api:tag": USERS,
    "api:list": USERS,
    "api:status": USERS,
    "api:info": USERS,
    "api:lidarr": USERS,
    "api:queue-remove": STAFF_ONLY,
    "api:queue-flush": STAFF_ONLY,
    "api:queue-cleanup": STAFF_ONLY,
    "api:queue-reset": STAFF_ONLY,
    "api:worker-pause": STAFF_ONLY,
    "api:worker-resume": STAFF_ONLY,
    "api:models-refresh": STAFF_ONLY,
    "sonic-api:similar": USERS,
    "sonic-api:mix": USERS,
    "sonic-api:path": USERS,
    "api:schema": PUBLIC,
    "api:docs": PUBLIC,
    "api:redoc": PUBLIC,
}

#: The API's URL namespaces: their views check with `HasRole`, after DRF's authentication.
API_NAMESPACES = frozenset({"api", "sonic-api"})
#: URL namespaces whose views check for themselves: the API's and Django's admin.
SELF_CHECKING = API_NAMESPACES | {"admin"}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def required(view_name: str, method: str) -> Role:
    """The role needed to call the URL named view_name with method (staff if unknown)."""
    access = ACCESS.get(view_name, STAFF_ONLY)
    return access.look if method.upper() in SAFE_METHODS else access.act


def role_of(user, auth=None) -> Role:
    """The role of a user (None or anonymous: ANYONE); an API key (DRF's `auth`) is staff."""
    if isinstance(auth, APIKey):
        return Role.STAFF
    if user is None or not user.is_authenticated:
        return Role.ANYONE
    return Role.STAFF if user.is_staff else Role.USER


def is_staff(user, auth=None) -> bool:
    """Whether the user (or the API key) has the staff role."""
    return role_of(user, auth) >= Role.STAFF


def _refusal(needed: Role) -> str:
    if needed >= Role.STAFF:
        return "only staff may do this (queue control, models, scans, roots, keys, settings)"
    return "log in first"


class RoleMiddleware:
    """Enforce `ACCESS` for every page before its view runs (after authentication)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        match = request.resolver_match
        if match is None or SELF_CHECKING.intersection(match.namespaces):
            return None
        needed = required(match.view_name, request.method or "GET")
        have = role_of(getattr(request, "user", None))
        if have >= needed:
            return None
        if have == Role.ANYONE:
            return redirect_to_login(request.get_full_path())
        raise PermissionDenied(_refusal(needed))


class HasRole(BasePermission):
    """`ACCESS` for the API: the role of the user or API key DRF authenticated."""

    message = _refusal(Role.STAFF)

    def has_permission(self, request, view) -> bool:
        match = request.resolver_match
        needed = required(match.view_name if match else "", request.method)
        if role_of(request.user, request.auth) >= needed:
            return True
        self.message = (
            "admin endpoints need an API key or a staff login"
            if needed >= Role.STAFF
            else _refusal(needed)
        )
        return False


def context(request: HttpRequest) -> dict:
    """Template context: `staff`, whether the person viewing has the staff role."""
    return {"staff": is_staff(getattr(request, "user", None))}
