"""Live job progress for the web UI (the dashboard and job pages, see nomarr_site/consumers.py).

Workers save progress to the database first, then `announce` it. The pages and
their sockets (tagging/consumers.py) render from `dashboard_state()` and
`job_context()`, so a page opened mid-job shows the current state at once.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from nomarr_site import consumers
from tagging.models import Job, WorkerState

GROUP = "nomarr.jobs"


def announce(job_id: int) -> None:
    """Tell the web servers that a job changed (its row is already saved)."""
    consumers.announce(GROUP, job=job_id)


def dashboard_state() -> dict:
    """Everything the dashboard shows, from the database."""
    now = timezone.now()
    counts = Job.objects.counts()
    done_last_hour = Job.objects.filter(
        status__in=Job.FINISHED, finished_at__gte=now - timedelta(hours=1)
    ).count()
    remaining = counts["pending"] + counts["running"]
    eta = timedelta(hours=remaining / done_last_hour) if done_last_hour and remaining else None
    state = WorkerState.get()
    return {
        "counts": counts,
        "paused": state.paused,
        "alive": WorkerState.objects.workers_alive(),
        "per_hour": done_last_hour,
        "eta": eta,
        "running": list(Job.objects.filter(status=Job.Status.RUNNING).order_by("started_at")[:20]),
        "errors": list(Job.objects.filter(status=Job.Status.ERROR).order_by("-finished_at")[:10]),
    }


def signature(job_id: int | None = None) -> tuple:
    """Changes whenever what a live page shows changes; cheap enough to poll each second."""
    if job_id is not None:
        return tuple(Job.objects.filter(pk=job_id).values_list("status", "progress", "attempts"))
    running = tuple(
        Job.objects.filter(status=Job.Status.RUNNING).values_list("pk", "progress").order_by("pk")
    )
    return (tuple(sorted(Job.objects.counts().items())), running, WorkerState.get().paused)


def job_context(job: Job | None) -> dict:
    """A job and its scores grouped by model, for the job page and its live region."""
    groups: dict[str, list[dict]] = {}
    if job and job.result:
        for score in job.result.get("scores", []):
            groups.setdefault(score["model"], []).append(
                {**score, "percent": round(score["score"] * 100, 1)}
            )
    return {"job": job, "groups": groups}
