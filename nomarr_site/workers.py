"""Who holds a claim, and whether that holder is gone.

A job or a scan is claimed by writing the claiming process's `worker_id()` on its
row: `host:stamp:pid`, where the stamp names the process unambiguously: the
machine's boot (8 hex digits of /proc/sys/kernel/random/boot_id) and the process's
start time (field 22 of /proc/<pid>/stat, clock ticks since boot), e.g.
`nomarr:ec7b9474.81234:42`. A pid alone is not enough: after a container restart the
host name is the same and an unrelated process can have the dead worker's pid, so
its claim would look alive for ever. Claims written before the stamp (`host:pid`)
are still read, by their pid alone; where /proc is missing, `worker_id()` writes one.

A claim is dead when its process is known to be gone (same host, and the pid no
longer runs, is a zombie, or now belongs to another process: another start time or
another boot) or when it has shown no sign of life for longer than the caller's
timeout (the only test that works for a process on another host: hosts that share
a database need distinct host names, as Docker's containers have by default). The
job reaper (tagging/jobs.py `reset_stuck`) and the scan reaper
(library/scanning.py) both ask here, so the rule is written once.

`descendants` and `kill_tree` are how a supervisor (tagging/watchdog.py) finds and
ends every process of a worker cluster, the ones whose parent died included.

This module imports nothing of Django or of the apps.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "claim_is_dead",
    "claim_pid",
    "descendants",
    "kill_tree",
    "pid_alive",
    "process_gone",
    "stamp",
    "worker_id",
]


_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

#: (pid, claim) of this process, once worked out; a forked child has another pid.
_me: tuple[int, str] | None = None


def _boot() -> str:
    """This boot of the machine: the first 8 hex digits of the kernel's boot id
    ("" where it cannot be read)."""
    try:
        return _BOOT_ID.read_text().strip().replace("-", "")[:8]
    except OSError:
        return ""


def stamp(pid: int) -> str | None:
    """What tells the process pid from any other that had or will have its pid:
    `boot.start` (the boot, and its start time in clock ticks since boot, field 22
    of /proc/<pid>/stat); None if it cannot be read (no such process, no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command's closing parenthesis start at field 3 (the state).
    fields = stat.rpartition(")")[2].split()
    return f"{_boot()}.{fields[19]}" if len(fields) > 19 else None


def worker_id() -> str:
    """This process, as written on the rows it claims: `host:stamp:pid` (`host:pid`
    where the stamp cannot be read)."""
    global _me
    pid = os.getpid()
    if _me is None or _me[0] != pid:
        mine = stamp(pid)
        host = socket.gethostname()
        _me = (pid, f"{host}:{mine}:{pid}" if mine else f"{host}:{pid}")
    return _me[1]


def _parse(worker: str) -> tuple[str, str | None, int] | None:
    """(host, stamp or None for an old `host:pid` claim, pid); None if malformed."""
    host, _, pid = worker.rpartition(":")
    if not host or not pid.isdigit():
        return None
    name, colon, mark = host.rpartition(":")
    return (name, mark, int(pid)) if colon else (host, None, int(pid))


def claim_pid(worker: str) -> int | None:
    """The pid of a claim made on this host (None for another host, or a malformed claim)."""
    parsed = _parse(worker)
    return parsed[2] if parsed is not None and parsed[0] == socket.gethostname() else None


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
    """Whether the claimant (a `worker_id()`) is a process of this host that no longer
    runs: its pid runs no more, or runs another process (another start time, or
    another boot: a container or machine restarted, and the pid was given again).

    An old `host:pid` claim is judged by its pid alone. A claimant on another host
    (or an empty or malformed one) is never known gone: only a timeout can tell."""
    parsed = _parse(worker)
    if parsed is None or parsed[0] != socket.gethostname():
        return False
    _, claimed, pid = parsed
    if not pid_alive(pid):
        return True
    now = stamp(pid)
    return claimed is not None and now is not None and now != claimed


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


#: Seconds kill_tree waits at most for the killed processes to be gone.
KILL_WAIT = 10.0


def kill_tree(roots: Iterable[int]) -> None:
    """Kill the processes roots and every process below them (SIGKILL), and return
    once they are gone (dead or zombies; at most KILL_WAIT seconds).

    Each is stopped first (SIGSTOP), so none can start another process meanwhile,
    and none escapes by its parent dying first: the ones found are killed together.
    The wait matters: a killed process dies when the kernel next runs it, and until
    then its claims still look alive (a loaded machine takes a while)."""
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
    deadline = time.monotonic() + KILL_WAIT
    while any(pid_alive(pid) for pid in stopped) and time.monotonic() < deadline:
        time.sleep(0.01)
