"""Who holds a claim, and whether that holder is gone.

A job or a scan is claimed by writing the claiming process's `worker_id()`
(`host:pid`) on its row. A claim is dead when its process is known to be gone
(same host, and the pid no longer runs, or is a zombie) or when it has shown no
sign of life for longer than the caller's timeout (the only test that works for a
process on another host). The job reaper (tagging/jobs.py `reset_stuck`) and the
scan reaper (library/scanning.py) both ask here, so the rule is written once.

`descendants` and `kill_tree` are how a supervisor (tagging/watchdog.py) finds and
ends every process of a worker cluster, the ones whose parent died included.

This module imports nothing of Django or of the apps.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "claim_is_dead",
    "descendants",
    "kill_tree",
    "pid_alive",
    "process_gone",
    "worker_id",
]


def worker_id() -> str:
    """This process, as written on the rows it claims: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs here; a killed one not yet reaped (a
    zombie) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def process_gone(worker: str) -> bool:
    """Whether the claimant `host:pid` is a process of this host that no longer runs.

    A claimant on another host (or an empty or malformed one) is never known gone:
    only a timeout can tell for it."""
    host, _, pid = worker.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def claim_is_dead(worker: str, started_at: datetime | None, timeout: float) -> bool:
    """Whether a claim should be taken back: its process is gone, or its last sign
    of life (`started_at`: when it was claimed, or its last heartbeat) is more than
    `timeout` seconds old."""
    if process_gone(worker):
        return True
    if started_at is None:
        return False
    return started_at < datetime.now(UTC) - timedelta(seconds=timeout)


def _parents() -> dict[int, int]:
    """Every process of this host (that /proc shows) and its parent's pid."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        table[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return table


def descendants(pid: int) -> list[int]:
    """The processes below pid: its children, theirs, and so on."""
    parents = _parents()
    found: list[int] = []
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
    return found


def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(roots: Iterable[int]) -> None:
    """Kill the processes roots and every process below them (SIGKILL).

    Each is stopped first (SIGSTOP), so none can start another process meanwhile,
    and none escapes by its parent dying first: the ones found are killed together."""
    stopped: set[int] = set()
    frontier = {pid for pid in roots if pid > 0 and pid != os.getpid()}
    while frontier:
        for pid in frontier:
            _send(pid, signal.SIGSTOP)
        stopped |= frontier
        frontier = {child for child, parent in _parents().items() if parent in stopped}
        frontier -= stopped
    for pid in stopped:
        _send(pid, signal.SIGKILL)
