"""Live scan progress for the scans page (ws/scans/, see nomarr_site/consumers.py).

The Scan rows are the truth: a scan saves its counters about once a second (see
library/scanning.py) and then `announce`s it (the scan's on_progress callback).
The page and the socket render the region from `scans_state()`, so a page
opened mid-scan shows the current state at once.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from library.models import LibraryFile, Scan
from nomarr_site import consumers

GROUP = "nomarr.scans"
HISTORY = 20
#: Problems listed per scan in the history (the Scan row keeps up to 200).
PROBLEMS_SHOWN = 10


def announce(*_args) -> None:
    """Tell the web servers that a scan changed (its row is already saved).

    Fits Scan's on_progress callback: `scan_root(root, on_progress=announce)`."""
    consumers.announce(GROUP)


def scans_state() -> dict:
    """The running scans with their counters, and the last HISTORY scans."""
    history = list(Scan.objects.select_related("root").order_by("-pk")[:HISTORY])
    running = [scan for scan in history if scan.status == Scan.Status.RUNNING]
    older = Scan.objects.filter(status=Scan.Status.RUNNING).exclude(pk__in=[s.pk for s in running])
    running += list(older.select_related("root"))
    # A scan's total is unknown until its walk ends: the root's files at the last
    # scan are the estimate.
    known = dict(
        LibraryFile.objects.filter(root__in={scan.root_id for scan in running})
        .values_list("root")
        .annotate(n=Count("id"))
    )
    now = timezone.now()
    for scan in running:
        scan.expected = known.get(scan.root_id, 0)
        scan.percent = min(100, round(100 * scan.seen / scan.expected)) if scan.expected else None
        scan.elapsed = _duration((now - scan.started_at).total_seconds())
    for scan in history:
        scan.problems_shown = scan.problems[:PROBLEMS_SHOWN]
        scan.problems_more = max(0, len(scan.problems) - PROBLEMS_SHOWN)
        scan.took = _duration(scan.seconds)
    return {"running": sorted(running, key=lambda s: s.pk), "history": history}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return "under 1 s"
    return str(timedelta(seconds=round(seconds))).removeprefix("0:")


def signature() -> tuple:
    """Changes whenever the live region would change; cheap enough to poll."""
    fields = ("pk", "status", "cancel_requested", "message", *Scan.COUNTERS)
    return tuple(Scan.objects.order_by("-pk").values_list(*fields)[:HISTORY]) + tuple(
        Scan.objects.filter(status=Scan.Status.RUNNING).values_list("pk", *Scan.COUNTERS)
    )
