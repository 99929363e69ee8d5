"""The job queue: queueing files, claiming and running jobs, and keeping the queue healthy.

The Job table is the queue and the truth; django-q2 only carries "run job N"
messages to the workers. A message for a job that is no longer pending does
nothing, so duplicate or late messages are harmless, and any pending job can be
dispatched again after a crash, a pause or a reset.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone

from tagging.models import Job, WorkerState

log = logging.getLogger(__name__)
Status = Job.Status


class JobConflict(Exception):
    """The operation does not fit the job's state (for example removing a running job)."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- queueing -------------------------------------------------------------------


def queue_file(path: Path, force: bool = False) -> tuple[Job, bool]:
    """A job for path: the live one if it already has one, else a new pending job.

    Returns (job, created)."""
    key = str(path)
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
    """Jobs for every file named and every audio file under every folder named."""
    from tagging.pipeline import audio_files

    return [queue_file(path, force)[0] for path in audio_files(paths)]


def dispatch(job_ids: list[int]) -> None:
    """Send a run message for each job to the workers."""
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    if not job_ids:
        return
    broker = get_broker()
    # One transaction: one commit for all messages with the ORM broker, and django-q2
    # does not close this connection before each message (it does in autocommit).
    with transaction.atomic():
        for job_id in job_ids:
            async_task(
                "tagging.tasks.run_job",
                job_id,
                task_name=f"tag job {job_id}",
                group="tag",
                broker=broker,
            )


def dispatch_pending() -> int:
    ids = list(Job.objects.filter(status=Status.PENDING).values_list("pk", flat=True))
    dispatch(ids)
    return len(ids)


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
    """Claim and run one job; the job's row says how it went. Safe to call twice."""
    from tagging import live, pipeline
    from tagging.catalog import refresh_catalog

    state = WorkerState.get()
    if state.paused:
        return "paused"
    if not claim(job_id):
        return "not pending"
    if state.models_generation != _loaded_generation.get("value"):
        refresh_catalog()
        _loaded_generation["value"] = state.models_generation
    job = Job.objects.get(pk=job_id)
    live.announce(job_id)

    def progress(model: str, done: int, total: int) -> None:
        Job.objects.filter(pk=job_id, status=Status.RUNNING).update(
            progress={"model": model, "done": done, "total": total}
        )
        live.announce(job_id)

    try:
        result = pipeline.tag_file(Path(job.path), force=job.force, progress=progress)
        outcome = {
            "status": result.status,
            "reason": result.error if result.status == "skipped" else "",
            "scores": [s.as_dict() for s in result.scores],
            "tags": result.tags,
        }
        status = Status.ERROR if result.status == "error" else Status.DONE
        error = result.error if status == Status.ERROR else ""
    except Exception as exc:
        log.exception("job %s failed", job_id)
        outcome, status, error = None, Status.ERROR, f"internal error: {exc}"
    if outcome and outcome["status"] == "tagged":
        from library.scanning import refresh_quietly

        refresh_quietly(job.path)  # the library's rows now; never raises (logs instead)
    Job.objects.filter(pk=job_id, status=Status.RUNNING, worker=worker_id()).update(
        status=status, finished_at=timezone.now(), result=outcome, error=error
    )
    live.announce(job_id)
    return status


_loaded_generation: dict[str, int] = {}


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
    from tagging.catalog import refresh_catalog

    refresh_catalog()
    return WorkerState.get().models_generation


def workers_alive() -> int:
    """How many django-q2 clusters report themselves running (through the shared cache)."""
    from django_q.status import Stat

    return sum(1 for stat in Stat.get_all() if stat.status != "Stopped")


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


def cleanup(hours: float) -> int:
    """Delete finished jobs older than hours."""
    cutoff = timezone.now() - timedelta(hours=hours)
    deleted, _ = Job.objects.filter(status__in=Job.FINISHED, finished_at__lt=cutoff).delete()
    return deleted


def _pid_alive(pid: int) -> bool:
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


def reset_stuck() -> int:
    """Put back running jobs whose worker died or that ran past the job timeout.

    A worker on this host is checked by its pid; on other hosts only the timeout can
    tell. The file itself needs no repair: writes are atomic, and a stale temp file
    from the dead writer is removed here."""
    from tagging import writers

    cutoff = timezone.now() - timedelta(seconds=settings.NOMARR_JOB_TIMEOUT)
    host = socket.gethostname()
    stuck = []
    for job in Job.objects.filter(status=Status.RUNNING):
        name, _, pid = job.worker.rpartition(":")
        dead = name == host and pid.isdigit() and not _pid_alive(int(pid))
        if dead or (job.started_at and job.started_at < cutoff):
            stuck.append(job)
    for job in stuck:
        writers.remove_stale_temps(Path(job.path))
    count = requeue([job.pk for job in stuck], Status.RUNNING)
    if count:
        log.warning("reset %d stuck jobs", count)
    return count


def requeue(job_ids: list[int], from_status: str) -> int:
    """Put jobs that are in from_status back to pending and send them to the workers.

    A job whose path was queued again meanwhile is left as it is: that job will do."""
    reset = []
    for job_id in job_ids:
        try:
            with transaction.atomic():
                if Job.objects.filter(pk=job_id, status=from_status).update(
                    status=Status.PENDING,
                    error="",
                    worker="",
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
    """Queue failed jobs again."""
    ids = list(Job.objects.filter(status=Status.ERROR).values_list("pk", flat=True))
    return requeue(ids, Status.ERROR)


def counts() -> dict[str, int]:
    found = dict(Job.objects.values_list("status").annotate(n=Count("pk")).order_by())
    return {status: found.get(status, 0) for status in Status.values}


def wait_for(job_ids: list[int], timeout: float, interval: float = 0.1) -> list[Job]:
    """The jobs, once all finished or timeout seconds passed, whichever comes first."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = list(Job.objects.filter(pk__in=job_ids))
        if all(job.status in Job.FINISHED for job in jobs) or time.monotonic() >= deadline:
            return jobs
        time.sleep(interval)
