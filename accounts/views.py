"""The settings and keys page: library roots, what the environment sets, and API keys.

Everyone logged in sees the page; changing roots and managing API keys is for staff
(others get 403). A new key is shown once, in the response to the request that made
it (never cached); afterwards only its prefix is ever shown.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from rest_framework_api_key.models import APIKey

from accounts.management.commands.create_api_key import check_name
from accounts.management.commands.revoke_api_key import revoke, usable_keys
from library.models import LibraryRoot
from library.roots import sync_settings_roots


class RootForm(forms.ModelForm):
    class Meta:
        model = LibraryRoot
        fields = ["auto_tag", "ignore_patterns"]
        widgets = {"ignore_patterns": forms.Textarea(attrs={"rows": 5, "cols": 40})}


def _require_staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("only staff may change settings and API keys")


def settings_context(request: HttpRequest, **extra) -> dict:
    sync_settings_roots()  # roots named in the environment get their rows
    forms_by_root = extra.pop("forms_by_root", {})
    roots = list(LibraryRoot.objects.order_by("name"))
    for root in roots:
        root.form = forms_by_root.get(root.pk) or RootForm(instance=root, prefix=f"root{root.pk}")
    staff = request.user.is_staff
    return {
        "roots": roots,
        "staff": staff,
        "namespace": settings.NOMARR_NAMESPACE,
        "path_map": settings.NOMARR_PATH_MAP,
        "env_roots": settings.NOMARR_LIBRARY_ROOTS,
        "login_attempts": getattr(settings, "AXES_FAILURE_LIMIT", None),
        "login_cooloff": getattr(settings, "AXES_COOLOFF_TIME", None),
        "keys": list(APIKey.objects.order_by("revoked", "name", "-created")) if staff else [],
        **extra,
    }


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/settings.html", settings_context(request))


@login_required
@require_POST
def root_update(request: HttpRequest, root_id: int) -> HttpResponse:
    """Save a root's auto-tag switch and ignore patterns."""
    _require_staff(request)
    root = get_object_or_404(LibraryRoot, pk=root_id)
    form = RootForm(request.POST, instance=root, prefix=f"root{root.pk}")
    if not form.is_valid():
        context = settings_context(request, forms_by_root={root.pk: form})
        return render(request, "accounts/settings.html", context, status=400)
    form.save()
    messages.success(request, f"{root} saved")
    return redirect("account-settings")


def _show_new_key(request: HttpRequest, api_key: APIKey, key: str, note: str) -> HttpResponse:
    context = settings_context(request, new_key=key, new_key_obj=api_key, new_key_note=note)
    response = render(request, "accounts/settings.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def key_action(request: HttpRequest) -> HttpResponse:
    """Create, rotate or revoke an API key (staff only)."""
    _require_staff(request)
    action = request.POST.get("action", "")
    try:
        if action == "create":
            api_key, key = APIKey.objects.create_key(name=check_name(request.POST.get("name", "")))
            return _show_new_key(request, api_key, key, "created")
        if action == "rotate":
            with transaction.atomic():
                old = usable_keys(request.POST.get("name", ""))
                name = old.first().name
                revoked = revoke(old)
                api_key, key = APIKey.objects.create_key(name=name)
            return _show_new_key(request, api_key, key, f"replaces {', '.join(sorted(revoked))}")
        if action == "revoke":
            prefix = request.POST.get("prefix", "")
            n = APIKey.objects.filter(prefix=prefix, revoked=False).update(revoked=True)
            if not n:
                raise CommandError(f"no usable API key with the prefix {prefix!r}")
            messages.success(request, f"Key {prefix} revoked: it stops working at once")
            return redirect("account-settings")
    except CommandError as exc:
        messages.error(request, str(exc))
        return redirect("account-settings")
    messages.error(request, "Unknown action")
    return redirect("account-settings")
