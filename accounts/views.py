"""The settings and keys page: library roots, what the environment sets, and API keys.

Everyone logged in sees the page; adding, changing, disabling and removing roots and
managing API keys is for staff (others get 403: nomarr_site/roles.py). The rule for
which folder may be a root, and for the roots NOMARR_LIBRARY_ROOTS names, is
library/roots.py's. A new key is shown once, in the response to the request that made
it (never cached); afterwards only its prefix is ever shown.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import keys
from accounts.forms import AddRootForm, RootForm
from library import roots as library_roots
from library.models import LibraryRoot
from nomarr_site import confirm, roles


def settings_context(request: HttpRequest, **extra) -> dict:
    library_roots.sync_settings_roots()  # the table follows NOMARR_LIBRARY_ROOTS
    forms_by_root = extra.pop("forms_by_root", {})
    roots = list(LibraryRoot.objects.order_by("name"))
    for root in roots:
        root.form = forms_by_root.get(root.pk) or RootForm(instance=root, prefix=f"root{root.pk}")
        root.named_by_settings = library_roots.named_by_settings(root)
        root.removed_from_settings = library_roots.removed_from_settings(root)
    staff = roles.is_staff(request.user)
    added = request.GET.get("added", "")
    return {
        "roots": roots,
        "add_form": extra.pop("add_form", None) or AddRootForm(),
        "added": next((r for r in roots if str(r.pk) == added), None),
        "missing_roots": library_roots.missing_settings_roots(),
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


@require_POST
def root_add(request: HttpRequest) -> HttpResponse:
    """Add a folder as a library root, then offer to scan it."""
    form = AddRootForm(request.POST)
    if form.is_valid():
        try:
            root = library_roots.add_root(form.cleaned_data["path"], form.cleaned_data["auto_tag"])
        except library_roots.RootRefused as exc:
            form.add_error("path", str(exc))
        else:
            messages.success(request, f"{root.path} added as a library root")
            return redirect(f"{reverse('account-settings')}?added={root.pk}#added-root")
    context = settings_context(request, add_form=form)
    return render(request, "accounts/settings.html", context, status=400)


ROOT_STATES = {
    "enable": "enabled: it is part of the library again",
    "disable": "disabled: it is out of the library, and not scanned, until enabled",
}


@require_POST
def root_state(request: HttpRequest, root_id: int) -> HttpResponse:
    """Enable, disable or remove a root (removing asks first: nomarr_site/confirm.py)."""
    root = get_object_or_404(LibraryRoot, pk=root_id)
    action = request.POST.get("action", "")
    try:
        if action in ROOT_STATES:
            library_roots.set_enabled(root, action == "enable")
            messages.success(request, f"{root} {ROOT_STATES[action]}")
        elif action == "remove":
            if not confirm.confirmed(request):
                question = (
                    f"Remove the library root {root.path}? Nomarr forgets its files and "
                    "scans; the files and their tags stay as they are."
                )
                return confirm.ask(request, question, "Yes, remove it", reverse("account-settings"))
            files = library_roots.remove_root(root)
            messages.success(request, f"{root.path} removed ({files} files forgotten)")
        else:
            messages.error(request, "Unknown action")
    except library_roots.RootRefused as exc:
        messages.error(request, str(exc))
    return redirect("account-settings")


def _show_new_key(request: HttpRequest, new: keys.NewKey, note: str) -> HttpResponse:
    context = settings_context(request, new_key=new.key, new_key_obj=new.api_key, new_key_note=note)
    response = render(request, "accounts/settings.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _ask_about_key(request: HttpRequest, action: str) -> HttpResponse:
    if action == "rotate":
        name = request.POST.get("name", "")
        question = f"Revoke every key named {name} and make a new one? The old ones stop at once."
        return confirm.ask(request, question, "Yes, rotate", reverse("account-settings"))
    question = f"Revoke the key {request.POST.get('prefix', '')}? It stops working at once."
    return confirm.ask(request, question, "Yes, revoke it", reverse("account-settings"))


@require_POST
def key_action(request: HttpRequest) -> HttpResponse:
    """Create, rotate or revoke an API key (staff only)."""
    action = request.POST.get("action", "")
    try:
        if action == "create":
            return _show_new_key(request, keys.create(request.POST.get("name", "")), "created")
        if action in ("rotate", "revoke") and not confirm.confirmed(request):
            return _ask_about_key(request, action)
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
