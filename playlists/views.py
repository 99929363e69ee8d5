"""The playlists page (rule builder, templates, preview, write/export/push) and the
Navidrome configuration page. Login required (nomarr_site/roles.py); forms carry Django's
CSRF token."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from playlists import files, navidrome, service
from playlists.fields import FieldCatalog, library_keys
from playlists.forms import PlaylistForm, initial_from_rules
from playlists.presets import PresetError
from playlists.rules import RuleError


def _context(catalog: FieldCatalog, form: PlaylistForm, **extra) -> dict:
    try:
        folder, folder_error = files.playlist_dir(), ""
    except files.PlaylistFileError as exc:
        folder, folder_error = None, str(exc)
    return {
        "form": form,
        "presets": service.preset_statuses(catalog),
        "fields": [catalog.get(name) for name in catalog.names()],
        "actions": service.ACTIONS,
        "playlist_dir": folder,
        "playlist_dir_error": folder_error,
        **extra,
    }


@require_http_methods(["GET", "POST"])
def index(request):
    catalog = FieldCatalog.current()
    if request.method == "POST":
        form = PlaylistForm(request.POST, catalog=catalog)
        action = request.POST.get("action", "preview")
        outcome = None
        if action in service.ACTIONS and form.is_valid():
            outcome = service.run(action, form.rules, catalog)
        elif action not in service.ACTIONS:
            form.add_error(None, f"unknown action {action!r}")
        return render(request, "playlists/index.html", _context(catalog, form, outcome=outcome))

    slug = request.GET.get("preset")
    if not slug:
        return render(
            request, "playlists/index.html", _context(catalog, PlaylistForm(catalog=catalog))
        )
    params = {
        key.removeprefix("param-"): value
        for key, value in request.GET.items()
        if key.startswith("param-")
    }
    outcome, problems = None, []
    try:
        outcome = service.preset_preview(slug, params, catalog)
    except PresetError as exc:
        problems = [str(exc)]
    except RuleError as exc:
        problems = exc.errors
    initial = initial_from_rules(outcome.rules) if outcome else None
    form = PlaylistForm(catalog=catalog, initial=initial)
    context = _context(catalog, form, outcome=outcome, problems=problems, chosen=slug)
    return render(request, "playlists/index.html", context)


@require_GET
def navidrome_config(request):
    keys = library_keys()
    text = navidrome.config_toml(keys)
    if request.GET.get("download"):
        response = HttpResponse(text, content_type="application/toml; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="nomarr-navidrome.toml"'
        return response
    context = {"config": text, "fields": len(keys), "lines": text.count("\n")}
    return render(request, "playlists/navidrome_config.html", context)
