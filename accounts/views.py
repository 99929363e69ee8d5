"""The settings and keys page: library roots, what the environment sets, and API keys.

Everyone logged in sees the page; changing roots and managing API keys is for staff
(others get 403: nomarr_site/roles.py). A new key is shown once, in the response to
the request that made it (never cached); afterwards only its prefix is ever shown.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts import keys
from library.models import LibraryRoot
from library.roots import sync_settings_roots
from nomarr_site import roles


class RootForm(forms.ModelForm):
    class Meta:
        model = LibraryRoot
        fields = ["auto_tag", "ignore_patterns"]
        widgets = {"ignore_patterns": forms.Textarea(attrs={"rows": 5, "cols": 40})}


def settings_context(request: HttpRequest, **extra) -> dict:
    sync_settings_roots()  # roots named in the environment get their rows
    forms_by_root = extra.pop("forms_by_root", {})
    roots = list(LibraryRoot.objects.order_by("name"))
    for root in roots:
        root.form = forms_by_root.get(root.pk) or RootForm(instance=root, prefix=f"root{root.pk}")
    staff = roles.is_staff(request.user)
    return {
        "roots": roots,
        "staff": staff,
        "namespace": settings.NOMARR_NAMESPACE,
        "path_map": settings.NOMARR_PATH_MAP,
        "env_roots": settings.NOMARR_LIBRARY_ROOTS,
        "login_attempts": getattr(settings, "AXES_FAILURE_LIMIT", None),
        "login_cooloff": getattr(settings, "AXES_COOLOFF_TIME", None),
        "keys": list(keys.listed()) if staff else [],
        **extra,
    }


def settings_page(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/settings.html", settings_context(request))


@require_POST
def root_update(request: HttpRequest, root_id: int) -> HttpResponse:
    """Save a root's auto-tag switch and ignore patterns."""
    root = get_object_or_404(LibraryRoot, pk=root_id)
    form = RootForm(request.POST, instance=root, prefix=f"root{root.pk}")
    if not form.is_valid():
        context = settings_context(request, forms_by_root={root.pk: form})
        return render(request, "accounts/settings.html", context, status=400)
    form.save()
    messages.success(request, f"{root} saved")
    return redirect("account-settings")


def _show_new_key(request: HttpRequest, new: keys.NewKey, note: str) -> HttpResponse:
    context = settings_context(request, new_key=new.key, new_key_obj=new.api_key, new_key_note=note)
    response = render(request, "accounts/settings.html", context)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def key_action(request: HttpRequest) -> HttpResponse:
    """Create, rotate or revoke an API key (staff only)."""
    action = request.POST.get("action", "")
    try:
        if action == "create":
            return _show_new_key(request, keys.create(request.POST.get("name", "")), "created")
        if action == "rotate":
            new = keys.rotate(request.POST.get("name", ""))
            return _show_new_key(request, new, f"replaces {', '.join(new.replaces)}")
        if action == "revoke":
            prefix = keys.revoke_prefix(request.POST.get("prefix", ""))
            messages.success(request, f"Key {prefix} revoked: it stops working at once")
            return redirect("account-settings")
    except keys.KeyRefused as exc:
        messages.error(request, str(exc))
        return redirect("account-settings")
    messages.error(request, "Unknown action")
    return redirect("account-settings")
