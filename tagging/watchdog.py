"""The workers: django-q2's cluster, watched, and started afresh when it stalls.

Why a watchdog
--------------
django-q2's worker processes take their tasks from one in-process queue, and a
worker waiting for a task holds that queue's read lock. A worker killed while it
waits (kill -9, the OOM killer) takes the lock with it: django-q2 starts a
replacement, the replacement waits for the lock forever, and the cluster never
takes a task again while it still looks alive (its status says "Idle", the jobs
stay pending, nothing is stuck "running" for `reset_stuck` to find). The monitor
waits on the result queue the same way, and the pusher writes into the task queue.
Nothing inside the cluster can tell, so the watchdog, in the process that starts
the cluster (`manage.py workers`, which `serve` runs), watches from outside.

How it watches
--------------
Every worker process notes on a `Board` (one small file per pid, in a folder of
its own) whether it is running a task (busy), waiting for one (idle), or leaving
by itself (gone: recycled after a timeout or its task count, or stopped). The file
outlives its process, so the watchdog reads what a dead worker was doing:

* busy: it died running a task, holding no lock. django-q2 replaces it, and the
  replacement puts the job back (`jobs.reset_stuck` when it starts);
* idle (or unknown): it may have died holding the queue's lock. The cluster is
  restarted: running tasks get the stop grace (NOMARR_STOP_GRACE), then every
  process of the cluster is killed, its children (ffmpeg) included;
* gone: nothing to do.

The sentinel, the monitor or the pusher dying restarts the cluster too. Every
process of the cluster also notes `gone` when it leaves by itself (multiprocessing's
exit, which a signal skips), so the watchdog tells a kill from a crash of its own.

How soon it restarts
--------------------
A kill from outside (kill -9 of a wedged worker, the OOM killer: an idle worker
that died without leaving, the sentinel ended by a signal, a helper that died
without leaving) is restarted at once, however often: someone or something ended a
healthy cluster, and waiting only keeps the queue stalled longer. A cluster that
fails to start (a broker or database not reachable yet) or whose processes end by
themselves within QUICK_RESTART seconds of its start is retried after a pause that
doubles each time (1, 2, 4 ... up to QUICK_RESTART seconds), since each start sends
every pending job again; a cluster that ran longer starts the back-off afresh.

Every start of a cluster first sends every pending job again (`jobs.recover`) and
sends `tagging.signals.workers_started` (the library hands its waiting scans over
again): the messages the old cluster had taken died with it (Redis) or stay locked
until the broker's retry time (the ORM broker: NOMARR_JOB_TIMEOUT + 60 s). The Job
table is the truth; a message for a job that is no longer pending does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing.util
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from django import db
from django.conf import settings

from nomarr_site.workers import descendants, kill_tree, pid_alive
from tagging import jobs
from tagging.signals import workers_started

__all__ = ["BUSY", "GONE", "IDLE", "Board", "connect", "supervise"]

log = logging.getLogger(__name__)

IDLE, BUSY, GONE = "idle", "busy", "gone"

#: Seconds between two looks at the cluster's processes.
CHECK_EVERY = 0.2
#: A cluster that fails by itself within this many seconds of its start is started
#: again only after a pause (doubling, up to this long); a killed one at once.
QUICK_RESTART = 60.0


class Stall(NamedTuple):
    """Why a cluster must be started afresh."""

    reason: str
    #: Ended by a signal from outside (kill, the OOM killer): restarted at once.
    killed: bool


def next_pause(pause: float, stall: Stall, ran: float) -> tuple[float, float]:
    """(the back-off after this stall, the seconds to wait before the next start),
    from the back-off so far and how long the stalled cluster ran."""
    if ran >= QUICK_RESTART:
        pause = 0.0  # it ran well: a failure now starts the back-off afresh
    elif not stall.killed:
        pause = min(QUICK_RESTART, pause * 2 or 1.0)
    return pause, 0.0 if stall.killed else pause


class Board:
    """What each worker process of one cluster is doing: a file per pid in folder,
    holding IDLE, BUSY or GONE, written by the worker, read by the watchdog."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def mark(self, state: str, pid: int | None = None) -> None:
        (self.folder / str(pid or os.getpid())).write_text(state)

    def workers(self) -> dict[int, str]:
        """Every worker noted since the last clear, and its last state ("" if it was
        killed while writing it)."""
        found = {}
        for entry in self.folder.iterdir():
            try:
                found[int(entry.name)] = entry.read_text()
            except (OSError, ValueError):
                continue
        return found

    def forget(self, pid: int) -> None:
        (self.folder / str(pid)).unlink(missing_ok=True)

    def clear(self) -> None:
        for pid in self.workers():
            self.forget(pid)


#: The board of the cluster this process belongs to: set by `supervise` before the
#: cluster's processes are forked from it, so they inherit it. None in a cluster
#: started some other way (`manage.py qcluster`): its workers note nothing.
_board: Board | None = None


# --- in the worker processes (django-q2's signals) --------------------------------


def connect() -> None:
    """Connect the worker-side receivers (tagging's AppConfig.ready() calls this)."""
    from django_q.signals import (  # type: ignore[import-untyped]
        post_execute_in_worker,
        post_spawn,
        pre_execute,
    )

    post_spawn.connect(_worker_started, dispatch_uid="nomarr-worker-started")
    pre_execute.connect(_task_started, dispatch_uid="nomarr-task-started")
    post_execute_in_worker.connect(_task_ended, dispatch_uid="nomarr-task-ended")


def _note_exit(board: Board) -> None:
    """In every process forked for the cluster (the sentinel, the monitor, the pusher,
    the workers; multiprocessing runs this after each fork): note GONE when it ends by
    itself (multiprocessing's exit). A process killed by a signal notes nothing."""
    multiprocessing.util.Finalize(None, board.mark, args=(GONE, os.getpid()), exitpriority=10)


def _worker_started(sender: object, **kwargs: Any) -> None:
    """A worker process just started (at launch, or replacing one that died, even by
    kill -9): note it, and put back the jobs that dead workers left running."""
    if _board is not None:
        _board.mark(IDLE)
    try:
        jobs.reset_stuck()
    except Exception:  # a worker must start even if the database hiccups
        log.exception("could not reset stuck jobs")


def _task_started(sender: object, **kwargs: Any) -> None:
    if _board is not None:
        _board.mark(BUSY)


def _task_ended(sender: object, **kwargs: Any) -> None:
    if _board is not None:
        _board.mark(IDLE)


# --- in the supervising process ---------------------------------------------------


class _Cluster:
    """One django-q2 cluster started from this process, and its helper processes."""

    def __init__(self, board: Board) -> None:
        from django_q.cluster import Cluster  # type: ignore[import-untyped]

        self.board = board
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.q = Cluster()
        for sig, handler in handlers.items():  # django-q2 installs its own: keep ours
            signal.signal(sig, handler)
        self.helpers: dict[str, int] = {}

    def start(self) -> None:
        # Its processes are forked from this one: they must not share its connections.
        db.connections.close_all()
        self.q.start()

    @property
    def sentinel(self) -> Any:  # a multiprocessing.Process
        return self.q.sentinel

    def note_helpers(self) -> None:
        """The monitor's and the pusher's pids, once the cluster has published them."""
        if not self.helpers:
            stat = self.q.stat
            if getattr(stat, "monitor", 0) and getattr(stat, "pusher", 0):
                self.helpers = {"monitor": stat.monitor, "pusher": stat.pusher}

    def pids(self) -> list[int]:
        return [self.sentinel.pid, *self.helpers.values(), *self.board.workers()]

    def workers(self) -> dict[int, str]:
        """The worker processes on the board and their states (the sentinel and the
        helpers note their exits there too)."""
        others = {self.sentinel.pid, *self.helpers.values()}
        return {pid: state for pid, state in self.board.workers().items() if pid not in others}


def lower_priority(niceness: int) -> int:
    """Make this process (and the cluster's processes, forked from it: their threads
    and ffmpeg too) run at least at `niceness`; the niceness it now has. Lowering is
    always allowed (in a container as well); one already lower is left so."""
    now = os.nice(0)
    if now < niceness:
        now = os.nice(niceness - now)
        log.info("the workers run at nice %d (NOMARR_WORKER_NICE)", now)
    if niceness > 0 and os.getsid(0) == os.getpid():
        # Linux's autogroups give each session one share of the CPU, and a process's
        # nice weighs only against its own session's: `serve` starts the workers and
        # each web process in a session of their own, so the workers' session must be
        # niced too, or they would still take as much CPU as a web process. (A workers
        # command started inside a shell's session leaves that session as it is.)
        try:
            with open("/proc/self/autogroup", "w") as group:
                group.write(str(now))  # never higher than the process's own
        except OSError:
            pass  # no autogroups in this kernel
    return now


def supervise(stopping: Callable[[], bool], say: Callable[[str], None]) -> None:
    """Run a django-q2 cluster until stopping() is true; start it afresh whenever it
    stalls (see the module's docstring). say() reports restarts and slow stops."""
    global _board
    _become_subreaper()
    lower_priority(settings.NOMARR_WORKER_NICE)
    board = _board = Board(Path(tempfile.mkdtemp(prefix="nomarr-workers-")))
    multiprocessing.util.register_after_fork(board, _note_exit)
    pause = 0.0
    try:
        while not stopping():
            started = time.monotonic()
            cluster: _Cluster | None
            stall: Stall | None
            try:
                running = _start(board)
            except Exception as exc:  # a broker or database not reachable (yet)
                if not pause:  # the first of a series, in full
                    log.exception("the workers failed to start")
                db.connections.close_all()  # a broken connection is opened afresh
                cluster, stall = None, Stall(f"they failed to start ({exc})", killed=False)
            else:
                cluster, stall = running, _watch(running, stopping)
                if stall is None:
                    _stop(running, say, wait_for_all=True)
                    return
            pause, wait = next_pause(pause, stall, time.monotonic() - started)
            when = f" in {wait:g} s" if wait else ""
            say(f"restarting the workers{when}: {stall.reason}")
            log.error("restarting the workers%s: %s", when, stall.reason)
            if cluster is not None:
                _stop(cluster, say, wait_for_all=False)
            deadline = time.monotonic() + wait
            while not stopping() and time.monotonic() < deadline:
                time.sleep(CHECK_EVERY)
    finally:
        shutil.rmtree(board.folder, ignore_errors=True)
        _board = None


def _start(board: Board) -> _Cluster:
    board.clear()
    reset, sent = jobs.recover()
    if reset or sent:
        log.info("workers starting: %d stuck jobs put back, %d pending jobs sent", reset, sent)
    workers_started.send(sender=_Cluster)
    cluster = _Cluster(board)
    try:
        cluster.start()
    except BaseException:  # its sentinel died before the cluster ran: end what it started
        kill_tree(pid for pid in cluster.pids() if _ours(pid))
        raise
    return cluster


def _watch(cluster: _Cluster, stopping: Callable[[], bool]) -> Stall | None:
    """Why the cluster must be started afresh, or None once stopping() is true."""
    while not stopping():
        sentinel = cluster.sentinel
        if not sentinel.is_alive():
            code = sentinel.exitcode
            if code is not None and code < 0:
                name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
                return Stall(f"its sentinel process ({sentinel.pid}) was killed ({name})", True)
            return Stall(f"its sentinel process ({sentinel.pid}) ended (status {code})", False)
        cluster.note_helpers()
        for name, pid in cluster.helpers.items():
            if not pid_alive(pid):
                if cluster.board.workers().get(pid) == GONE:
                    return Stall(f"its {name} process ({pid}) ended by itself", False)
                return Stall(f"its {name} process ({pid}) died", True)
        for pid, state in cluster.workers().items():
            if pid_alive(pid):
                continue
            cluster.board.forget(pid)
            if state == BUSY:
                log.warning("worker %s died running a task; django-q2 replaces it", pid)
            elif state != GONE:
                return Stall(
                    f"worker {pid} died waiting for a task, and the task queue's lock with it",
                    killed=True,
                )
        time.sleep(CHECK_EVERY)
    return None


def _stop(cluster: _Cluster, say: Callable[[str], None], wait_for_all: bool) -> None:
    """Stop the cluster within NOMARR_STOP_GRACE seconds, whatever its state.

    wait_for_all: django-q2's own stop (running tasks finish, then every process
    leaves). Otherwise (a stalled cluster cannot stop by itself) only the running
    tasks are waited for. What still runs after the grace is killed with all it
    started, and the jobs of killed workers go back to the queue with their attempt
    given back."""
    grace = settings.NOMARR_STOP_GRACE
    deadline = time.monotonic() + grace
    if wait_for_all:
        cluster.q.stop_event.set()
        cluster.sentinel.join(timeout=grace)
    else:
        while time.monotonic() < deadline and any(
            state == BUSY and pid_alive(pid) for pid, state in cluster.workers().items()
        ):
            time.sleep(CHECK_EVERY)
    busy = [p for p, state in cluster.workers().items() if state == BUSY and pid_alive(p)]
    if busy:
        say(f"workers still busy after {grace:g} s: stopped; their jobs go back to the queue")
    # The cluster's processes, and any it orphaned (a killed sentinel's pusher and
    # monitor are this process's children now: see _become_subreaper).
    everyone = {*cluster.pids(), *descendants(os.getpid())}
    kill_tree(pid for pid in everyone if _ours(pid))
    cluster.sentinel.join()
    _reap_orphans()
    jobs.reset_stuck(interrupted=True)


#: prctl(2)'s option that makes a process the reaper of its descendants' orphans.
PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Make the cluster's orphans this process's children, not init's.

    A sentinel killed from outside leaves its pusher and monitor running, reparented
    to init, out of reach of the restart. An orphaned pusher goes on taking the queue's
    messages into a queue no worker reads: every job queued after it waits for the
    broker's retry time (hours). As the subreaper, this process finds them among its
    descendants and ends them with the cluster (Linux only; elsewhere nothing changes)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        log.debug("cannot become the subreaper of the workers' orphans")


def _reap_orphans() -> None:
    """Collect the exit status of orphans that ended (they would stay zombies)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _ours(pid: int) -> bool:
    """Whether pid runs and is a process of this cluster (forked from this process,
    so with its command line), not another that took a dead one's pid."""
    try:
        return pid_alive(pid) and (
            Path(f"/proc/{pid}/cmdline").read_bytes()
            == Path(f"/proc/{os.getpid()}/cmdline").read_bytes()
        )
    except OSError:
        return False
