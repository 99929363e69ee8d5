"""Live job progress for the web UI (the dashboard and job pages, see nomarr_site/consumers.py).

Workers save progress to the database first, then `announce` it. The pages and
their sockets (tagging/consumers.py) render from `dashboard_state()` and
`job_context()`, so a page opened mid-job shows the current state at once.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.paginator import Paginator
from django.db.models import Count, Min
from django.utils import timezone

from nomarr_site import consumers
from tagging.models import Job, WorkerState

GROUP = "nomarr.jobs"


def announce(job_id: int) -> None:
    """Tell the web servers that a job changed (its row is already saved)."""
    consumers.announce(GROUP, job=job_id)


#: The rate behind "queue done in": jobs finished in this recent window.
RATE_WINDOW = timedelta(minutes=10)


def recent_rate(now) -> float | None:
    """Jobs finished per hour lately: those finished in the last RATE_WINDOW, over the
    time since the first of them started (so a queue started two minutes ago counts two
    minutes, not ten). None when none finished in the window."""
    since = now - RATE_WINDOW
    recent = Job.objects.filter(status__in=Job.FINISHED, finished_at__gte=since)
    found = recent.aggregate(n=Count("pk"), first=Min("started_at"), first_end=Min("finished_at"))
    if not found["n"]:
        return None
    start = max(since, found["first"] or found["first_end"])
    seconds = max((now - start).total_seconds(), 1.0)
    return found["n"] * 3600 / seconds


def eta_text(remaining: int, per_hour: float | None, paused: bool) -> str:
    """What the dashboard says about the queue's end, in words."""
    if not remaining:
        return "queue empty"
    if paused:
        return "paused"
    if not per_hour:
        return "no estimate yet"
    minutes = round(remaining / per_hour * 60)
    if minutes < 1:
        return "queue done in under a minute"
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"queue done in about {round(hours / 24)} days"
    if hours:
        return f"queue done in about {hours} h {minutes} min"
    return f"queue done in about {minutes} min"


def dashboard_state() -> dict:
    """Everything the dashboard shows, from the database."""
    now = timezone.now()
    counts = Job.objects.counts()
    remaining = counts["pending"] + counts["running"]
    state = WorkerState.get()
    rate = recent_rate(now)
    return {
        "counts": counts,
        "paused": state.paused,
        "alive": WorkerState.objects.workers_alive(),
        "per_hour": round(rate) if rate is not None else None,
        "eta": eta_text(remaining, rate, state.paused),
        "running": list(Job.objects.filter(status=Job.Status.RUNNING).order_by("started_at")[:20]),
        "errors": list(Job.objects.filter(status=Job.Status.ERROR).order_by("-finished_at")[:10]),
    }


QUEUE_PAGE = 50


def queue_state(status: str = "", page: str | int | None = None) -> dict:
    """The queue page's live region: a page of jobs (newest first, maybe one status),
    the counts and whether the workers are paused."""
    query = Job.objects.order_by("-pk")
    if status not in Job.Status.values:
        status = ""
    if status:
        query = query.filter(status=status)
    return {
        "page": Paginator(query, QUEUE_PAGE).get_page(page),
        "status": status,
        "statuses": Job.Status.values,
        "counts": Job.objects.counts(),
        "paused": WorkerState.get().paused,
    }


def queue_signature(status: str = "", page: str | int | None = None) -> tuple:
    """Changes whenever the queue page's live region would."""
    state = queue_state(status, page)
    rows = tuple((job.pk, job.status, job.attempts, job.error) for job in state["page"])
    return (tuple(sorted(state["counts"].items())), rows, state["paused"])


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
                {**score, "percent": round(max(0.0, min(score["score"], 1.0)) * 100, 1)}
            )
    # As the file page shows them (library/analytics.py score_groups): models by name,
    # each model's labels highest score first.
    ordered = {
        model: sorted(rows, key=lambda s: -s["score"]) for model, rows in sorted(groups.items())
    }
    return {"job": job, "groups": ordered}
