"""django-q2 task functions for the library (safe to run twice: a second scan of a root
that is being scanned is refused)."""

from __future__ import annotations

import logging
import time

from django.conf import settings

from library import scanning
from library.models import LibraryRoot

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


def scan_one(root_id: int, full: bool = False, trigger: str = "admin") -> str:
    """Scan one root (the admin's or the web page's "scan now")."""
    root = LibraryRoot.objects.filter(pk=root_id).first()
    if root is None:
        return "no such root"
    return _scan(root, full, trigger, _budget())


def _scan(root: LibraryRoot, full: bool, trigger: str, budget: float) -> str:
    from library.consumers import announce

    try:
        scan = scanning.scan_root(
            root, full=full, trigger=trigger, time_budget=budget, on_progress=announce
        )
    except scanning.ScanRefused as exc:
        log.info("%s", exc)
        return f"refused: {exc}"
    return f"scan #{scan.pk} {scan.status}"
