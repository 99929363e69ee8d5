"""The job queue: queueing files, claiming and running jobs, and keeping the queue healthy.

The Job table is the queue and the truth; django-q2 only carries "run job N"
messages to the workers. A message for a job that is no longer pending does
nothing, so duplicate or late messages are harmless, and any pending job can be
dispatched again after a crash, a pause or a reset: `recover` sends every pending
job again whenever a worker cluster starts (tagging/watchdog.py), because the
messages a dead cluster had taken are lost with it or locked until the broker's
retry time.

A job gets NOMARR_MAX_ATTEMPTS attempts. An attempt that ends without a result
(django-q2's timeout, the worker killed or crashed) puts the job back with the
reason on it, until the last one, which leaves the job failed with the reason
("timed out after 900 s, 3 attempts"). A job interrupted by Nomarr itself
stopping its workers gets its attempt back.

Tagging knows nothing of the library: a job that tagged a file sends
`tagging.signals.file_tagged`, and the library refreshes its rows. Whether a
claim's worker is dead is nomarr_site/workers.py's rule, shared with the scans;
how a renamed file's job follows it is `follow_rename`, shared by the Lidarr
webhook and the scanner.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.exceptions import TimeoutException
from django_q.models import OrmQ
from django_q.signals import pre_enqueue
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from nomarr_site.workers import claim_is_dead, process_gone, worker_id
from tagging import boundary, catalog, live, pipeline, writers
from tagging.models import Job, WorkerState
from tagging.signals import file_tagged

log = logging.getLogger(__name__)
Status = Job.Status


class JobConflict(Exception):
    """The operation does not fit the job's state (for example removing a running job)."""


# --- queueing -------------------------------------------------------------------


def queue_file(path: Path, force: bool = False) -> tuple[Job, bool]:
    """A job for path's real path: the live one if it already has one, else a new
    pending job. Returns (job, created).

    A path outside the library is refused: boundary.OutsideLibrary (or
    boundary.Unresolvable for a symlink loop), and no job."""
    key = str(boundary.inside_library(path))
    existing = Job.objects.filter(path=key, status__in=Job.ACTIVE).first()
    if existing:
        if force and not existing.force and existing.status == Status.PENDING:
            # A forced request (Lidarr's Retag) must not be lost in a plain pending job.
            Job.objects.filter(pk=existing.pk, status=Status.PENDING).update(force=True)
            existing.force = True
        return existing, False
    try:
        with transaction.atomic():
            job = Job.objects.create(path=key, force=force)
    except IntegrityError:
        # Another request queued the same path between our look and our insert.
        return Job.objects.get(path=key, status__in=Job.ACTIVE), False
    transaction.on_commit(lambda: dispatch([job.pk]))
    return job, True


def queue_paths(paths: list[Path], force: bool = False) -> list[Job]:
    """Jobs for every file named and every audio file under every folder named.

    Each file is checked on its own (`boundary.library_files`): what is outside the
    library, a symlink out of it included, is left out and logged. A caller that
    shows the refusals asks `boundary.library_files` and queues its `files`."""
    found = boundary.library_files(paths)
    for refused in found.refused:
        log.warning("not queued: %s", refused.detail)
    return [job for job, _ in queue_files(found.files, force, checked=True)]


# Files looked up and inserted per query in queue_files: well under every database's
# limit on the parameters of one statement.
QUEUE_CHUNK = 500


def queue_files(
    paths: list[Path], force: bool = False, *, checked: bool = False
) -> list[tuple[Job, bool]]:
    """queue_file for many files at once: (job, created) for each path, in order.

    One look-up and one insert per chunk of QUEUE_CHUNK files instead of two queries
    and a broker message per file, and one `dispatch` of every new job, so a request
    that names thousands of files (a Lidarr webhook, a first scan) answers in seconds.
    A file named twice gets the same job twice (created once).

    Every path is checked as queue_file checks it, all before anything is queued: a
    path outside the library raises boundary.OutsideLibrary (boundary.Unresolvable
    for a symlink loop) and queues nothing. With `checked`, the caller has just had
    each path from tagging.boundary (`inside_library`, `library_files`, the API's
    `library_path`): they are real paths inside the library and are not resolved a
    second time. A folder swapped for a symlink out of the library since that check
    cannot slip through either: every job checks its file again before it runs, and
    is refused then ("refused: path is outside the library roots")."""
    if checked:
        keys = [str(path) for path in paths]
    else:
        roots = boundary.library_roots()
        keys = [str(boundary.inside_library(path, roots)) for path in paths]
    found: dict[str, tuple[Job, bool]] = {}
    unique = list(dict.fromkeys(keys))
    if len(unique) <= QUEUE_CHUNK and "orm" in settings.Q_CLUSTER:
        # The ORM broker's messages live in this database: the jobs and their run
        # messages commit together, one write transaction (the web server's requests
        # wait on SQLite's write lock less). On SQLite the requests of a process that
        # queue at the same time share that transaction (_queue_together).
        if _takes_turns():
            found = _queue_together(unique, force)
        else:
            _queue_in_one_transaction(unique, force, found)
    else:
        new_ids: list[int] = []
        for start in range(0, len(unique), QUEUE_CHUNK):
            new_ids += _queue_chunk(unique[start : start + QUEUE_CHUNK], force, found)
        transaction.on_commit(lambda: dispatch(new_ids))
    answers, given = [], set()
    for key in keys:
        job, created = found[key]
        answers.append((job, created and key not in given))
        given.add(key)
    return answers


#: One queueing transaction at a time on SQLite (see _writer_turn): within a process,
#: and among processes by a lock on a file next to the database.
_SQLITE_WRITER = threading.Lock()
_turn_files: dict[tuple[int, str], int] = {}  # by process too: a forked child opens its own


@contextmanager
def _writer_turn() -> Iterator[None]:
    """On SQLite, wait for this request's turn to write before asking for the database's
    write lock. SQLite's own waiting is no queue: a writer that finds the lock taken
    sleeps (25 to 100 ms at a time once it failed a few times) and may lose it again to
    one that just came, so with every web process's request lanes asking at once, some
    requests waited seconds, and a process whose writer slept stood still. Here the
    lanes of a process take turns (a lock), and the processes take turns by a lock on
    a file next to the database (flock: a waiter is woken as soon as it is free).
    Inside a caller's transaction it would come too late (the database's lock is
    taken when that transaction begins): nothing then."""
    if not _takes_turns():
        yield
        return
    connection = transaction.get_connection()
    with _SQLITE_WRITER:
        name = str(connection.settings_dict["NAME"])
        fd = _turn_files.get((os.getpid(), name))
        if fd is None:
            try:
                fd = os.open(f"{name}-turn", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                fd = -1  # a read-only folder: the process's own turns only
            _turn_files[(os.getpid(), name)] = fd
        if fd < 0:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _queue_in_one_transaction(
    unique: list[str], force: bool, found: dict[str, tuple[Job, bool]]
) -> None:
    """Jobs for unique (real paths, no repeats) and their run messages in one
    transaction, into found, without savepoints inside it (two round trips each).
    Should another request queue one of these paths between our look and our insert,
    the whole transaction rolls back and is done again with a savepoint around the
    insert, which handles that race."""
    try:
        with transaction.atomic():
            dispatch(_queue_chunk(unique, force, found, savepoint=False))
    except IntegrityError:
        found.clear()
        with transaction.atomic():
            dispatch(_queue_chunk(unique, force, found))


def _takes_turns() -> bool:
    """Whether queueing here waits for its turn to write (_writer_turn): SQLite, a
    database file, and not inside a caller's transaction."""
    connection = transaction.get_connection()
    return (
        connection.vendor == "sqlite"
        and not connection.in_atomic_block
        and not connection.is_in_memory_db()
    )


@dataclass(eq=False)
class _Queueing:
    """One request's files, waiting to be queued in a shared transaction."""

    keys: list[str]
    force: bool
    done: bool = False
    found: dict[str, tuple[Job, bool]] | None = None
    error: BaseException | None = None


_together = threading.Condition()
_waiting: list[_Queueing] = []
_writing = False  # a thread of this process is writing a batch


def _queue_together(unique: list[str], force: bool) -> dict[str, tuple[Job, bool]]:
    """queue_files' transaction on SQLite, shared by the requests of this process that
    queue at the same time (group commit): the first to find nobody writing takes
    every request waiting then, its own included, and writes them all in one
    transaction in its turn (_writer_turn); the others wait and get their jobs.

    SQLite writes one transaction at a time, so the turn was what limited a busy
    server: each request held it for its own BEGIN, look-up, inserts and COMMIT, and
    for every wait for its process's GIL in between (200 clients on two web processes:
    lanes waited two thirds of their time for it, the cores a third idle). A batch pays
    one turn and one commit for all. Should the shared transaction fail (another
    process queued one of the paths meanwhile, or anything else), each request is
    written again on its own, in the same turn, so an error is its own request's."""
    global _writing
    mine = _Queueing(unique, force)
    with _together:
        _waiting.append(mine)
        while not mine.done and _writing:
            _together.wait()
        if mine.done:
            batch: list[_Queueing] = []
        else:
            _writing = True
            batch = _waiting[:]
            _waiting.clear()
    if batch:
        try:
            _write_batch(batch)
        except BaseException as exc:  # no turn, no connection: what was not written fails so
            for queueing in batch:
                if queueing.found is None and queueing.error is None:
                    queueing.error = exc
        finally:
            with _together:
                for queueing in batch:
                    queueing.done = True
                _writing = False
                _together.notify_all()
    if mine.error is not None:
        raise mine.error
    assert mine.found is not None
    return mine.found


def _write_batch(batch: list[_Queueing]) -> None:
    """Each queueing's jobs, into its `found`; any failure, into its `error`.

    The whole batch is one look-up, one insert of jobs and one of run messages: the
    turn is held only for those (a statement for each request's look-up and insert,
    and a message at a time, kept the turn busy nine tenths of the time at 250 req/s,
    so any pause of its holder stalled both web processes)."""
    with _writer_turn():
        try:
            with transaction.atomic():
                written, new_ids = _queue_requests(
                    [(queueing.keys, queueing.force) for queueing in batch], savepoint=False
                )
                dispatch(new_ids)
            for queueing, found in zip(batch, written, strict=True):  # committed
                queueing.found = found
            return
        except Exception:
            log.debug("a shared queueing transaction failed; each request on its own")
        for queueing in batch:
            try:
                found = {}
                _queue_in_one_transaction(queueing.keys, queueing.force, found)
                queueing.found = found
            except Exception as exc:
                queueing.error = exc


def _queue_chunk(
    chunk: list[str], force: bool, found: dict[str, tuple[Job, bool]], *, savepoint: bool = True
) -> list[int]:
    """Jobs for a chunk of real paths (one look-up, one insert), into found; the new
    jobs' ids (see _queue_requests)."""
    (mine,), new_ids = _queue_requests([(chunk, force)], savepoint=savepoint)
    found.update(mine)
    return new_ids


def _queue_requests(
    requests: list[tuple[list[str], bool]], *, savepoint: bool = True
) -> tuple[list[dict[str, tuple[Job, bool]]], list[int]]:
    """Jobs for several requests' real paths (each: its paths, no repeats, and force)
    with one look-up and one insert for all: each request's {path: (job, created)}
    and the new jobs' ids. A path two requests name is created by the first and found
    by the second; a forced request makes a plain pending job forced (it must not be
    lost in it). Without `savepoint` (inside the caller's transaction) a path queued
    by another request meanwhile raises IntegrityError, for the caller to start over;
    with it, such paths get the job that is there now."""
    paths = list(dict.fromkeys(key for keys, _ in requests for key in keys))
    jobs: dict[str, Job] = {}
    for start in range(0, len(paths), QUEUE_CHUNK):
        jobs.update(Job.objects.live_by_path(paths[start : start + QUEUE_CHUNK]))
    fresh: list[Job] = []
    forced: list[int] = []  # plain pending jobs already in the table that a forced request names
    answers: list[dict[str, tuple[Job, bool]]] = []
    for keys, force in requests:
        found: dict[str, tuple[Job, bool]] = {}
        for key in keys:
            job = jobs.get(key)
            if job is None:
                job = jobs[key] = Job(path=key, force=force)
                fresh.append(job)
                found[key] = (job, True)
                continue
            if force and job.status == Status.PENDING and not job.force:
                job.force = True
                if job.pk is not None:
                    forced.append(job.pk)
            found[key] = (job, False)
        answers.append(found)
    if forced:
        Job.objects.filter(pk__in=forced, status=Status.PENDING).update(force=True)
    if not fresh:
        return answers, []
    if not savepoint:
        Job.objects.bulk_create(fresh)
        return answers, [job.pk for job in fresh]
    try:
        with transaction.atomic():
            Job.objects.bulk_create(fresh)
    except IntegrityError:
        # Another request queued some of these between our look and our insert.
        for job in fresh:
            job.pk, job._state.adding = None, True  # rolled back, whatever was assigned
        for (_, force), found in zip(requests, answers, strict=True):
            for key, (job, _) in found.items():
                if job.pk is None:
                    found[key] = queue_file(Path(key), force)
        return answers, []
    return answers, [job.pk for job in fresh]


@dataclass(frozen=True)
class RenameResult:
    """What following a rename did: `outcome` is one of

    * "moved": the pending job now names the new path (`job` is it);
    * "merged": the new path had its own live job, so the old path's pending job
      was removed (`job` is the new path's job, None if it finished meanwhile;
      `removed` is the id of the job that was removed);
    * "running": the old path's job already started; it finishes on the old path
      and the new path needs tagging again (`job` is the running one);
    * "no_pending_job": no live job names any of the old paths (`job` is None).
    """

    outcome: str
    job: Job | None = None
    removed: int | None = None


def follow_rename(old_paths: Iterable[str | os.PathLike], new: str | os.PathLike) -> RenameResult:
    """Point the live job of a file that was renamed (from any of old_paths) at new.

    The one rule for renames, used by the Lidarr webhook and by the scanner's move
    detection. old_paths are the spellings the old file may have been queued under
    (as given, resolved); new is the file's real path now."""
    target = os.fspath(new)
    candidates = {os.fspath(path) for path in old_paths}
    live_job = next(iter(Job.objects.live_by_path(candidates).values()), None)
    if live_job is None:
        return RenameResult("no_pending_job")
    pending = Job.objects.filter(pk=live_job.pk, status=Status.PENDING)
    try:
        with transaction.atomic():
            moved = pending.update(path=target)
    except IntegrityError:
        # The new path has its own live job already: the old one would only fail.
        pending.delete()
        existing = Job.objects.filter(path=target, status__in=Job.ACTIVE).first()
        return RenameResult("merged", existing, removed=live_job.pk)
    if not moved:
        live_job.status = Status.RUNNING
        return RenameResult("running", live_job)
    live_job.path, live_job.status = target, Status.PENDING
    return RenameResult("moved", live_job)


# More run messages than this are not sent by the caller but by a worker: a message
# costs a millisecond or more, and a request must answer in seconds whatever it queued.
DISPATCH_INLINE = 100


def dispatch(job_ids: list[int]) -> None:
    """Send a run message for each job to the workers.

    Up to DISPATCH_INLINE messages are sent at once; more are handed to a worker in
    one message (tagging.tasks.send_run_messages) that sends them, so a request that
    queued 20,000 files does not wait for 20,000 messages."""
    if len(job_ids) > DISPATCH_INLINE:
        async_task(
            "tagging.tasks.send_run_messages",
            list(job_ids),
            task_name=f"send {len(job_ids)} run messages",
            group="dispatch",
        )
    else:
        send_run_messages(job_ids)


# Messages sent per transaction by send_run_messages: one commit for many with the ORM
# broker, and short enough that other writers of a SQLite database hardly wait.
MESSAGES_PER_COMMIT = 500


def send_run_messages(job_ids: list[int]) -> None:
    """Send a run message for each job now (dispatch decides who sends them).

    With the ORM broker a chunk's messages are one insert, in one transaction (no
    savepoint inside a caller's transaction, queue_files: its jobs and these messages
    commit, or roll back, together); with Redis, a push each."""
    if not job_ids:
        return
    broker = get_broker()
    for start in range(0, len(job_ids), MESSAGES_PER_COMMIT):
        packages = [_run_message(job_id) for job_id in job_ids[start : start + MESSAGES_PER_COMMIT]]
        if isinstance(broker, ORM):
            now = timezone.now()
            with transaction.atomic(savepoint=False):
                OrmQ.objects.using(Conf.ORM).bulk_create(
                    OrmQ(key=broker.list_key or Conf.CLUSTER_NAME, payload=package, lock=now)
                    for package in packages
                )
        else:
            for package in packages:
                broker.enqueue(package)


def _run_message(job_id: int) -> str:
    """Job job_id's run message, the package django-q2's async_task would build for
    run_job(job_id) (named "tag job N", in the "tag" group), signed the same way, so a
    worker reads it as any other task; built here so that many can go in one insert."""
    task: dict[str, object] = {
        "id": uuid.uuid4().hex,
        "name": f"tag job {job_id}",
        "func": "tagging.tasks.run_job",
        "args": (job_id,),
        "group": "tag",
    }
    if Conf.CACHED:
        task["cached"] = Conf.CACHED
    if Conf.ACK_FAILURES:
        task["ack_failure"] = Conf.ACK_FAILURES
    task["kwargs"] = {}
    task["started"] = timezone.now()
    pre_enqueue.send(sender="django_q", task=task)
    return str(SignedPackage.dumps(task))


def dispatch_pending() -> int:
    """Send every pending job to the workers again; how many were sent."""
    ids = list(Job.objects.filter(status=Status.PENDING).values_list("pk", flat=True))
    dispatch(ids)
    return len(ids)


def recover() -> tuple[int, int]:
    """What a starting worker cluster does first: put back the jobs that dead
    workers left running, then send every pending job again (the messages the old
    cluster had taken died with it, or wait for the broker's retry time). Returns
    (jobs put back, jobs sent)."""
    reset = _reset_stuck(send=False)
    return reset, dispatch_pending()


#: The queue counts as stalled when jobs wait, nothing runs, and no job started or
#: finished for this many seconds.
STALLED_AFTER = 300


def dispatch_stalled() -> int:
    """Send the pending jobs again if the queue is stalled; how many were sent.

    For a message lost without its cluster starting again (a cluster on another host
    that died for good): the schedule calls this every few minutes, and a live
    cluster then takes the jobs. A queue that moves is left alone."""
    if WorkerState.get().paused or Job.objects.filter(status=Status.RUNNING).exists():
        return 0
    cutoff = timezone.now() - timedelta(seconds=STALLED_AFTER)
    waiting = Job.objects.filter(status=Status.PENDING, created_at__lt=cutoff)
    recent = Job.objects.filter(started_at__gte=cutoff) | Job.objects.filter(
        finished_at__gte=cutoff
    )
    if not waiting.exists() or recent.exists():
        return 0
    sent = dispatch_pending()
    log.warning("the queue was stalled: sent %d pending jobs again", sent)
    return sent


# --- running --------------------------------------------------------------------


def claim(job_id: int) -> bool:
    """Take a pending job for this worker; False if another took it, or it is gone."""
    changed = Job.objects.filter(pk=job_id, status=Status.PENDING).update(
        status=Status.RUNNING,
        started_at=timezone.now(),
        finished_at=None,
        attempts=F("attempts") + 1,
        worker=worker_id(),
        error="",
        progress=None,
    )
    return changed == 1


def run(job_id: int) -> str:
    """Claim and run one job; the job's row says how it went. Safe to call twice.

    A tagged file is announced with the `file_tagged` signal (the library refreshes
    its rows) before the job is marked done."""
    if WorkerState.get().paused:
        return "paused"
    if not claim(job_id):
        return "not pending"
    try:
        return _run_claimed(job_id)
    except TimeoutException:
        # django-q2's timeout is a SystemExit: record the attempt, then let django-q2
        # recycle the worker.
        end_attempt(job_id, worker_id(), f"timed out after {settings.NOMARR_JOB_TIMEOUT} s")
        raise


def next_to_run(job_id: int) -> Path | None:
    """The file of the job this worker most likely runs after job_id, for its decoding
    to start while job_id's models run (pipeline.tag_file's `upcoming`): the oldest
    other pending job, as run messages are sent, and taken, in the order the jobs were
    queued. Only in a cluster of one worker (the default): with more, the oldest is
    as likely another worker's next. None when nothing waits or the queue is paused,
    and for a path that is no longer inside the library (nothing outside is read)."""
    if settings.Q_CLUSTER.get("workers", 1) != 1 or WorkerState.get().paused:
        return None
    upcoming = (
        Job.objects.filter(status=Status.PENDING)
        .exclude(pk=job_id)
        .order_by("pk")
        .values_list("path", flat=True)
        .first()
    )
    if upcoming is None:
        return None
    try:
        return boundary.inside_library(upcoming)
    except (boundary.OutsideLibrary, boundary.Unresolvable):
        return None


def _run_claimed(job_id: int) -> str:
    job = Job.objects.get(pk=job_id)
    live.announce(job_id)

    def progress(model: str, done: int, total: int) -> None:
        Job.objects.filter(pk=job_id, status=Status.RUNNING).update(
            progress={"model": model, "done": done, "total": total}
        )
        live.announce(job_id)

    try:
        catalog.current_catalog()  # the models of the current set, reloaded after a refresh
        # Checked again: a folder may have become a symlink out since it was queued.
        path = boundary.inside_library(job.path)
        result = pipeline.tag_file(
            path, force=job.force, progress=progress, upcoming=next_to_run(job_id)
        )
        outcome = {
            "status": result.status,
            "reason": result.error if result.status == "skipped" else "",
            "scores": [s.as_dict() for s in result.scores],
            "tags": result.tags,
        }
        status = Status.ERROR if result.status == "error" else Status.DONE
        error = result.error if status == Status.ERROR else ""
    except (boundary.OutsideLibrary, boundary.Unresolvable) as exc:
        outcome, status, error = None, Status.ERROR, f"refused: {exc}"
    except Exception as exc:
        log.exception("job %s failed", job_id)
        outcome, status, error = None, Status.ERROR, f"internal error: {exc}"
    if outcome and outcome["status"] == "tagged":
        # With the result: the library stores its embeddings with the file's rows.
        # Receivers log their failures, never raise.
        file_tagged.send(sender=Job, path=job.path, result=result)
    Job.objects.filter(pk=job_id, status=Status.RUNNING, worker=worker_id()).update(
        status=status, finished_at=timezone.now(), result=outcome, error=error
    )
    live.announce(job_id)
    return status


# --- worker control -------------------------------------------------------------


def set_paused(paused: bool) -> None:
    """Pause: running jobs finish, no new ones start. Resume sends the waiting ones again."""
    WorkerState.get()
    WorkerState.objects.filter(pk=1).update(paused=paused, updated_at=timezone.now())
    if not paused:
        dispatch_pending()


def refresh_models() -> int:
    """Make every worker reload its models before its next job."""
    WorkerState.get()
    WorkerState.objects.filter(pk=1).update(models_generation=F("models_generation") + 1)
    catalog.current_catalog()  # this process reads the models folder again at once
    return WorkerState.get().models_generation


# --- queue maintenance ------------------------------------------------------------


def remove(job_id: int) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise Job.DoesNotExist(f"no job {job_id}")
    deleted, _ = Job.objects.filter(pk=job_id).exclude(status=Status.RUNNING).delete()
    if not deleted:
        raise JobConflict(f"job {job_id} is running; wait for it to finish")


def flush(statuses: list[str]) -> int:
    """Delete every job in the given statuses; running jobs cannot be flushed."""
    if Status.RUNNING in statuses:
        raise JobConflict("running jobs cannot be flushed")
    deleted, _ = Job.objects.filter(status__in=statuses).delete()
    return deleted


# A century: every job is younger, and a cutoff much further back falls before the
# calendar's first year (1e8 hours overflowed).
MAX_CLEANUP_HOURS = 100 * 366 * 24


def cleanup(hours: float) -> int:
    """Delete finished jobs older than hours (0 to MAX_CLEANUP_HOURS; ValueError if not)."""
    if not 0 <= hours <= MAX_CLEANUP_HOURS:
        raise ValueError(f"hours must be between 0 and {MAX_CLEANUP_HOURS} (a century)")
    cutoff = timezone.now() - timedelta(hours=hours)
    deleted, _ = Job.objects.filter(status__in=Job.FINISHED, finished_at__lt=cutoff).delete()
    return deleted


def reset_stuck(interrupted: bool = False) -> int:
    """Put back running jobs whose worker died or that ran past the job timeout.

    A worker on this host is checked by its pid; on other hosts only the timeout can
    tell. Each such attempt counts (`end_attempt`), unless `interrupted`: Nomarr
    itself just killed the workers (a stop past its grace, a restart), and a job
    whose worker is gone gets its attempt back. The file itself needs no repair:
    writes are atomic, and a stale temp file from the dead writer is removed here."""
    return _reset_stuck(send=True, interrupted=interrupted)


def _reset_stuck(send: bool, interrupted: bool = False) -> int:
    timeout = settings.NOMARR_JOB_TIMEOUT
    count = 0
    for job in Job.objects.filter(status=Status.RUNNING):
        if not claim_is_dead(job.worker, job.started_at, timeout):
            continue
        writers.remove_stale_temps(Path(job.path))
        if interrupted and process_gone(job.worker):
            reason = None
        elif job.started_at and job.started_at < timezone.now() - timedelta(seconds=timeout):
            reason = f"timed out after {timeout} s"
        else:
            reason = "the worker died (killed or crashed)"
        count += end_attempt(job.pk, job.worker, reason, send=send) is not None
    if count:
        log.warning("reset %d stuck jobs", count)
    return count


def end_attempt(job_id: int, worker: str, reason: str | None, send: bool = True) -> str | None:
    """End the running attempt of `worker` at a job without a result.

    With a reason the attempt counts: the job goes back to the queue with the reason
    on it, or, after its last attempt, fails with it ("timed out after 900 s, 3
    attempts"). Without one (Nomarr stopped the worker) the attempt is given back
    and the job goes back as it was. Returns the job's new status, or None if that
    attempt was no longer running."""
    running = Job.objects.filter(pk=job_id, status=Status.RUNNING, worker=worker)
    job = running.first()
    if job is None:
        return None
    if reason is not None and job.attempts >= settings.NOMARR_MAX_ATTEMPTS:
        ended = running.update(
            status=Status.ERROR,
            finished_at=timezone.now(),
            progress=None,
            error=f"{reason}, {job.attempts} attempt{'s' if job.attempts != 1 else ''}",
        )
        status = Status.ERROR
    else:
        ended = running.update(
            status=Status.PENDING,
            worker="",
            started_at=None,
            finished_at=None,
            result=None,
            progress=None,
            attempts=F("attempts") - (1 if reason is None else 0),
            error="" if reason is None else f"attempt {job.attempts}: {reason}; queued again",
        )
        status = Status.PENDING
    if not ended:
        return None
    if status == Status.PENDING and send:
        transaction.on_commit(lambda: dispatch([job_id]))
    live.announce(job_id)
    return status


def requeue(job_ids: list[int], from_status: str) -> int:
    """Put jobs that are in from_status back to pending, with their attempts afresh
    (a person asked), and send them to the workers.

    A job whose path was queued again meanwhile is left as it is: that job will do."""
    reset = []
    for job_id in job_ids:
        try:
            with transaction.atomic():
                if Job.objects.filter(pk=job_id, status=from_status).update(
                    status=Status.PENDING,
                    error="",
                    worker="",
                    attempts=0,
                    started_at=None,
                    finished_at=None,
                    result=None,
                    progress=None,
                ):
                    reset.append(job_id)
        except IntegrityError:
            continue
    transaction.on_commit(lambda: dispatch(reset))
    return len(reset)


def reset_errors() -> int:
    """Queue failed jobs again, each with its attempts afresh."""
    ids = list(Job.objects.filter(status=Status.ERROR).values_list("pk", flat=True))
    return requeue(ids, Status.ERROR)


def wait_for(job_ids: list[int], timeout: float, interval: float = 0.1) -> list[Job]:
    """The jobs, once all finished or timeout seconds passed, whichever comes first."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = list(Job.objects.filter(pk__in=job_ids))
        if all(job.status in Job.FINISHED for job in jobs) or time.monotonic() >= deadline:
            return jobs
        time.sleep(interval)
