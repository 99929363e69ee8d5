"""Library pages: browse and search the files, one file's scores, scans, analytics.

Who may see and use each page is nomarr_site/roles.py's table (scans are for staff)."""

from __future__ import annotations

from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Max, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from library import analytics, calibration, live, retier, scanning, tasks
from library.models import LibraryFile, LibraryRoot, RetierRun, Scan
from library.roots import sync_settings_roots
from nomarr_site import confirm
from tagging import jobs, keys, tagfiles
from tagging.boundary import OutsideLibrary, resolve_in_library, within
from tagging.models import WorkerState

PER_PAGE = 50
TIER_CHOICES = [
    ("", "any"),
    ("Tier of the label", [(tier, f"tier {tier}") for tier in keys.TIERS]),
    (
        "In the mood set",
        [
            (name, f"{keys.MOOD_SET_PREFIX}{name} ({', '.join(tiers)})")
            for name, tiers in keys.MOOD_SETS.items()
        ],
    ),
]


# --- browse and search -------------------------------------------------------------


class BrowseForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Artist, album or title")
    mood = forms.ChoiceField(required=False, label="Mood")
    tier = forms.ChoiceField(required=False, choices=TIER_CHOICES, label="Tier")
    root = forms.IntegerField(required=False, widget=forms.HiddenInput)
    folder = forms.CharField(required=False, max_length=4096, widget=forms.HiddenInput)

    def __init__(self, *args, words: dict[str, list], **kwargs):
        super().__init__(*args, **kwargs)
        self.words = words
        self.fields["mood"].choices = [("", "any"), *((w, w) for w in words)]

    def clean(self):
        data = super().clean()
        if data.get("mood") and not data.get("tier"):
            data["tier"] = "regular"
        if data.get("tier") and not data.get("mood"):
            self.add_error("mood", "Pick the mood the tier is for.")
        return data

    @property
    def searching(self) -> bool:
        return bool(self.is_valid() and (self.cleaned_data["q"] or self.cleaned_data["mood"]))


def folder_listing(root: LibraryRoot, folder: str) -> list[dict]:
    """The folders directly inside folder, each with its number of files (all depths)."""
    inside = folder.rstrip("/") + "/"
    children: dict[str, int] = {}
    rows = (
        LibraryFile.objects.filter(root=root, folder__startswith=inside)
        .values_list("folder")
        .annotate(n=Count("id"))
    )
    for path, n in rows:
        if path.startswith(inside):  # LIKE is case-blind on SQLite: check exactly
            name = path[len(inside) :].split("/", 1)[0]
            children[name] = children.get(name, 0) + n
    return [{"name": n, "path": inside + n, "files": c} for n, c in sorted(children.items())]


def breadcrumbs(root: LibraryRoot, folder: str) -> list[dict]:
    crumbs = [{"name": root.name, "path": root.path}]
    relative = folder[len(root.path) :].strip("/")
    path = root.path.rstrip("/")
    for part in relative.split("/") if relative else []:
        path = f"{path}/{part}"
        crumbs.append({"name": part, "path": path})
    return crumbs


def _length(seconds: float | None) -> str:
    if not seconds:
        return ""
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


def _page(request: HttpRequest, files: QuerySet):
    page = Paginator(files, PER_PAGE).get_page(request.GET.get("page"))
    moods = analytics.moods_by_file([f.pk for f in page])
    for f in page:
        f.moods = moods.get(f.pk, [])
        f.length = _length(f.duration)
        f.name = Path(f.path).name
        f.where = _shown_folder(f)
    return page


def _shown_folder(f: LibraryFile) -> str:
    """The file's folder inside its root, so that identical titles can be told apart."""
    inside = f.folder[len(f.root.path) :].strip("/") if within(f.folder, f.root.path) else ""
    return f"{f.root.name}/{inside}" if inside else f.root.name


def roots_overview() -> list[LibraryRoot]:
    """Every root (those named in NOMARR_LIBRARY_ROOTS get their rows first) with its
    number of files and its last scan."""
    sync_settings_roots()
    roots = list(
        LibraryRoot.objects.annotate(file_count=Count("files", distinct=True)).order_by("name")
    )
    last = {}
    for scan in Scan.objects.filter(root__in=roots).order_by("root_id", "-pk"):
        last.setdefault(scan.root_id, scan)
    for root in roots:
        root.last_scan = last.get(root.pk)
    return roots


def index(request: HttpRequest) -> HttpResponse:
    """Roots, folders and files; search and mood filter (htmx swaps #results)."""
    words = analytics.mood_words()
    form = BrowseForm(request.GET, words=words)
    data = form.cleaned_data if form.is_valid() else {}
    roots = roots_overview()
    root = next((r for r in roots if r.pk == data.get("root")), None)
    if root is None and len(roots) == 1 and not form.searching:
        root = roots[0]
    context = {"form": form, "roots": roots, "root": root, "folders": [], "crumbs": []}
    files = LibraryFile.objects.select_related("root")
    if form.searching:
        tier_keys = [label.tier_key for label in words.get(data["mood"], [])]
        files = files.search(data["q"], data["mood"], data["tier"], tier_keys)
        context["page"] = _page(request, files.order_by("artist", "album", "track_number", "path"))
    elif root is not None:
        folder = data.get("folder") or root.path
        if not within(folder, root.path):
            folder = root.path
        context.update(
            folder=folder,
            folders=folder_listing(root, folder),
            crumbs=breadcrumbs(root, folder),
            page=_page(request, files.filter(root=root, folder=folder).order_by("path")),
        )
    if request.htmx and request.htmx.target == "results":
        # htmx swaps only successful responses: a form error comes as a 200 region.
        return render(request, "library/_results.html", context)
    return render(request, "library/index.html", context, status=200 if form.is_valid() else 400)


# --- one file ----------------------------------------------------------------------


def file_context(f: LibraryFile, **extra) -> dict:
    return {
        "file": f,
        "length": _length(f.duration),
        "groups": analytics.score_groups(f),
        "mood_sets": analytics.mood_sets(f),
        **extra,
    }


def raw_tags(f: LibraryFile) -> dict:
    """Nomarr's tags and the MOOD tag as they are in the file now."""
    try:
        tags = tagfiles.read_tags(Path(f.path), keys.namespace())
        moods = tagfiles.read_moods(Path(f.path))
    except tagfiles.TagWriteError as exc:
        return {"raw_error": str(exc)}
    return {"raw_tags": dict(sorted(tags.items())), "raw_moods": moods, "raw_shown": True}


def file_detail(request: HttpRequest, file_id: int) -> HttpResponse:
    f = get_object_or_404(LibraryFile.objects.select_related("root"), pk=file_id)
    return render(request, "library/file.html", file_context(f))


def file_tags(request: HttpRequest, file_id: int) -> HttpResponse:
    """The tags read from the file now: the #raw-tags region for htmx, else the file page."""
    f = get_object_or_404(LibraryFile.objects.select_related("root"), pk=file_id)
    if request.htmx:
        return render(request, "library/_raw_tags.html", {"file": f, **raw_tags(f)})
    return render(request, "library/file.html", file_context(f, **raw_tags(f)))


@require_POST
def file_retag(request: HttpRequest, file_id: int) -> HttpResponse:
    """Queue the file for tagging, even if it is tagged by the current models."""
    f = get_object_or_404(LibraryFile, pk=file_id)
    try:
        job, _ = jobs.queue_file(resolve_in_library(f.path), force=True)
    except (OutsideLibrary, OSError) as exc:
        messages.error(request, f"Cannot tag {f.path}: {exc or 'the file is gone'}")
        return redirect("library:file", file_id=f.pk)
    return redirect("job", job_id=job.pk)


# --- scans -------------------------------------------------------------------------


def scans(request: HttpRequest) -> HttpResponse:
    roots = roots_overview()
    context = {"roots": roots, "workers": WorkerState.objects.workers_alive(), **live.scans_state()}
    return render(request, "library/scans.html", context)


@require_POST
def scan_action(request: HttpRequest, root_id: int) -> HttpResponse:
    """Start a scan or a full scan of a root in the background, or cancel its scan."""
    root = get_object_or_404(LibraryRoot, pk=root_id)
    action = request.POST.get("action", "")
    if action in ("scan", "full"):
        try:
            tasks.start_scan(root, full=action == "full", trigger="web")
        except scanning.ScanRefused as exc:
            messages.error(request, str(exc))
        else:
            what = "Full scan" if action == "full" else "Scan"
            idle = not WorkerState.objects.workers_alive()
            note = " (no worker is running: it starts with one)" if idle else ""
            messages.success(request, f"{what} of {root} handed to the workers{note}")
    elif action == "cancel":
        if not confirm.confirmed(request):
            question = f"Stop the running scan of {root}? What it has read so far is kept."
            return confirm.ask(request, question, "Yes, cancel the scan", reverse("library:scans"))
        n = scanning.cancel_scans(root)
        live.announce()
        messages.info(request, f"{root}: scan asked to stop" if n else f"{root}: no scan running")
    else:
        messages.error(request, "Unknown action")
    return redirect("library:scans")


# --- analytics -----------------------------------------------------------------------


def heat_rows(labels: list[str], matrix: list[list], top: float, signed: bool) -> list[dict]:
    """Rows of heatmap cells: blue for positive values, red for negative, by size."""
    rows = []
    for label, values in zip(labels, matrix, strict=True):
        cells = []
        for value in values:
            share = 0.0 if value is None or not top else min(1.0, abs(value) / top)
            colour = "192 57 43" if signed and value is not None and value < 0 else "47 111 223"
            text = "" if value is None else (f"{value:+.2f}" if signed else str(value))
            cells.append(
                {
                    "text": text,
                    "style": f"background: rgb({colour} / {share:.2f});"
                    + (" color: #fff;" if share > 0.55 else ""),
                }
            )
        rows.append({"label": label, "cells": cells})
    return rows


def analytics_page(request: HttpRequest) -> HttpResponse:
    report = analytics.report()
    pairs, corr = report["co_occurrence"], report["correlation"]
    report["co_rows"] = heat_rows(pairs["words"], pairs["matrix"], pairs["max"], signed=False)
    report["corr_rows"] = heat_rows(corr["labels"], corr["matrix"], 1.0, signed=True)
    report["last_scan"] = Scan.objects.aggregate(at=Max("finished_at"))["at"]
    charts = {k: report[k] for k in ("frequencies", "tiers", "by_genre", "by_year")}
    return render(request, "library/analytics.html", {**report, "charts": charts})


# --- calibration and retier ------------------------------------------------------------


def retier_context() -> dict:
    """The last retier run, for the #retier region (polled while a run is running)."""
    run = RetierRun.objects.first()
    running = run is not None and run.status == RetierRun.Status.RUNNING
    return {"run": run, "running": running, "workers": WorkerState.objects.workers_alive()}


def calibration_page(request: HttpRequest) -> HttpResponse:
    """Each label's score distribution in the library, its drift since the calibration
    in use, and the retier button (staff)."""
    measured, in_use = calibration.latest_measure(), calibration.current()
    context = {
        "measured": measured,
        "in_use": in_use,
        "mode": settings.NOMARR_TIER_SCORES,
        **calibration.drift(measured, in_use),
        **retier_context(),
    }
    return render(request, "library/calibration.html", context)


def retier_progress(request: HttpRequest) -> HttpResponse:
    """The #retier region alone (htmx polls it while a run is running)."""
    return render(request, "library/_retier.html", retier_context())


@require_POST
def calibration_action(request: HttpRequest) -> HttpResponse:
    """Measure the library now, calibrate on it, or start (or restart) a retier."""
    action = request.POST.get("action", "")
    if action == "measure":
        row = calibration.measure()
        messages.success(request, f"Measured {row.files} files")
    elif action == "calibrate":
        try:
            row = calibration.calibrate()
        except calibration.CalibrationError as exc:
            messages.error(request, str(exc))
        else:
            then = (
                "a retier applies it to the files tagged already"
                if settings.NOMARR_TIER_SCORES == "calibrated"
                else "it is used once NOMARR_TIER_SCORES=calibrated"
            )
            messages.success(request, f"Calibration #{row.pk} saved from {row.files} files: {then}")
    elif action in ("retier", "restart"):
        try:
            run = retier.start_in_background(trigger="web", restart=action == "restart")
        except retier.RetierRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Retier #{run.pk} handed to the workers")
    else:
        messages.error(request, "Unknown action")
    return redirect("library:calibration")
