"""Scans in the background: the one way to start one, and the django-q2 task functions.

`start_scan` is how the pages, the admin and the commands start a background scan:
it claims the root at once (a running Scan row, so a second start is refused by
the database whatever process tries, see library/scanning.py) and hands the claimed
scan to the workers, where `run_started_scan` takes it over and runs it. Until then
the scan waits, claimed by nobody, however long the tagging queue before it; it is
not reaped, and workers that start hand it over again (`dispatch_waiting_scans`,
on tagging.signals.workers_started): the Scan table is the truth, as the Job table
is for jobs. The schedule runs `scan_library`. Each task is safe to run twice: a
scan of a root that is being scanned is refused, a scan that no longer waits is not
run.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django_q.tasks import async_task

from library import live, scanning
from library.models import LibraryRoot, Scan

log = logging.getLogger(__name__)


def _budget() -> float:
    # Stop well before django-q2's timeout kills the worker; the next run carries on.
    return max(60.0, settings.NOMARR_JOB_TIMEOUT * 0.8)


def scan_library(full: bool = False) -> dict[str, str]:
    """Scan every enabled root, one after another (the schedule runs this)."""
    deadline = time.monotonic() + _budget()
    outcome = {}
    for root in scanning.scannable_roots():
        left = deadline - time.monotonic()
        if left <= 0:
            outcome[root.path] = "not started: out of time"
            continue
        outcome[root.path] = _scan(root, full, "schedule", left)
    return outcome


def start_scan(root: LibraryRoot, full: bool = False, trigger: str = "web") -> Scan:
    """Claim root for a scan and hand it to the workers; returns the claimed Scan.

    Raises ScanRefused when the root is disabled or a scan of it is running. Call
    it outside a transaction: a worker must see the claim once it sees the task."""
    if not root.enabled:
        raise scanning.ScanRefused(f"{root} is disabled: enable it in the settings to scan it")
    scan = scanning.claim_scan(root, full=full, trigger=trigger, waiting=True)
    _dispatch(scan)
    return scan


def _dispatch(scan: Scan) -> None:
    kind = "full scan" if scan.full else "scan"
    async_task(
        "library.tasks.run_started_scan",
        scan.pk,
        task_name=f"{kind} #{scan.pk} of {scan.root}",
        group="scan",
    )


def dispatch_waiting_scans(**kwargs) -> int:
    """Hand every scan that waits for a worker to the workers again (they just
    started: the messages the old ones had taken are lost). The Scan table is the
    truth; a second message for a scan finds it taken and does nothing."""
    waiting = Scan.objects.filter(status=Scan.Status.RUNNING, worker="").select_related("root")
    count = 0
    for scan in waiting:
        _dispatch(scan)
        count += 1
    return count


def run_started_scan(scan_id: int) -> str:
    """Run a scan that start_scan claimed (a worker takes it over first)."""
    scan = scanning.take_over(scan_id)
    if scan is None:
        return f"scan #{scan_id} is no longer running; nothing done"
    scan = scanning.run_scan(scan, time_budget=_budget(), on_progress=live.announce)
    return f"scan #{scan.pk} {scan.status}"


def _scan(root: LibraryRoot, full: bool, trigger: str, budget: float) -> str:
    try:
        scan = scanning.scan_root(
            root, full=full, trigger=trigger, time_budget=budget, on_progress=live.announce
        )
    except scanning.ScanRefused as exc:
        log.info("%s", exc)
        return f"refused: {exc}"
    return f"scan #{scan.pk} {scan.status}"
