"""API keys for machine clients (Lidarr, scripts): create, rotate and revoke.

The one home of these rules; `manage.py create_api_key`, `rotate_api_key`,
`revoke_api_key` and the Settings page call them and only word the outcome.
Keys are stored hashed by djangorestframework-api-key: the key itself exists
only in the `NewKey` returned here, to be shown once. Revoking is an update of
the rows, never a delete, and cannot be undone; a revoked key gets 401 from the
next request (accounts/auth.py checks it).

A request that cannot be done (an empty or too long name, no such key) raises
`KeyRefused`, whose message is written for the person who asked; nothing is
changed then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import QuerySet
from rest_framework_api_key.models import AbstractAPIKey, APIKey

NAME_MAX = APIKey._meta.get_field("name").max_length


class KeyRefused(Exception):
    """A key could not be created, rotated or revoked; the message says why."""


@dataclass(frozen=True)
class NewKey:
    """A key just made: its row, the key itself (shown once, never stored) and the
    prefixes of the keys it replaces (rotation)."""

    api_key: AbstractAPIKey
    key: str
    replaces: list[str] = field(default_factory=list)


def clean_name(name: str) -> str:
    """The name a key is stored under, stripped; KeyRefused if empty or too long."""
    name = name.strip()
    if not name:
        raise KeyRefused("the key needs a name (for example: lidarr)")
    if NAME_MAX is not None and len(name) > NAME_MAX:
        raise KeyRefused(f"the name is longer than {NAME_MAX} characters")
    return name


def listed() -> QuerySet[APIKey]:
    """Every key as the Settings page lists it: usable ones first, by name, newest first."""
    return APIKey.objects.order_by("revoked", "name", "-created")


def usable_keys(name_or_prefix: str) -> QuerySet[APIKey]:
    """The unrevoked, unexpired keys with this name, or else the one with this prefix."""
    wanted = name_or_prefix.strip()
    if not wanted:
        raise KeyRefused("give a key's name or its prefix")
    keys = APIKey.objects.get_usable_keys()
    for found in (keys.filter(name=wanted), keys.filter(prefix=wanted)):
        if found.exists():
            return found
    raise KeyRefused(f"no usable API key named {wanted!r} or with that prefix")


def create(name: str) -> NewKey:
    """A new key named name; refused while a usable key has that name already (rotating
    or revoking by name would otherwise act on both)."""
    name = clean_name(name)
    with transaction.atomic():
        if APIKey.objects.get_usable_keys().filter(name=name).exists():
            raise KeyRefused(
                f"a usable API key named {name!r} exists already: rotate it "
                f"(manage.py rotate_api_key {name}) or choose another name"
            )
        api_key, key = APIKey.objects.create_key(name=name)
    return NewKey(api_key, key)


def rotate(name_or_prefix: str) -> NewKey:
    """Revoke the usable keys with this name (or the key with this prefix) and make one
    new key with the same name, in one transaction."""
    with transaction.atomic():
        keys = usable_keys(name_or_prefix)
        name = keys[0].name
        replaced = _revoke(keys)
        api_key, key = APIKey.objects.create_key(name=name)
    return NewKey(api_key, key, replaced)


def revoke(name_or_prefix: str) -> list[str]:
    """Revoke the usable keys with this name, or the key with this prefix; their prefixes."""
    return _revoke(usable_keys(name_or_prefix))


def revoke_prefix(prefix: str) -> str:
    """Revoke the one unrevoked key with exactly this prefix (the Settings page's button,
    which names a listed key, expired or not); the prefix."""
    if not APIKey.objects.filter(prefix=prefix, revoked=False).update(revoked=True):
        raise KeyRefused(f"no usable API key with the prefix {prefix!r}")
    return prefix


def _revoke(keys: QuerySet[APIKey]) -> list[str]:
    prefixes = sorted(keys.values_list("prefix", flat=True))
    # An update, not save(): one statement, and the keys stop working at once.
    APIKey.objects.filter(prefix__in=prefixes).update(revoked=True)
    return prefixes
