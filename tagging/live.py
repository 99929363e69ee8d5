"""Live job progress for the web UI.

Workers save progress to the database first, then announce it. Through Redis
(channels-redis, the scale-out set-up) the announcement reaches every web server's
consumers directly. The in-memory channel layer of the embedded set-up does not
cross from a `qcluster` process to the web server, so there the consumers watch
the database instead (see JobsConsumer). Either way a page renders from the
database, so one opened mid-job shows the current state at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.utils import timezone

from tagging import jobs
from tagging.models import Job, WorkerState

GROUP = "nomarr.jobs"


def crosses_processes() -> bool:
    layer = get_channel_layer()
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)


def announce(job_id: int) -> None:
    """Tell the web servers that a job changed (its row is already saved)."""
    if not crosses_processes():
        return
    try:
        async_to_sync(get_channel_layer().group_send)(GROUP, {"type": "job.changed", "job": job_id})
    except Exception:  # a page missing an update must never fail a job
        logging.getLogger(__name__).warning("could not announce job %s", job_id, exc_info=True)


def dashboard_state() -> dict:
    """Everything the dashboard shows, from the database."""
    now = timezone.now()
    counts = jobs.counts()
    done_last_hour = Job.objects.filter(
        status__in=Job.FINISHED, finished_at__gte=now - timedelta(hours=1)
    ).count()
    remaining = counts["pending"] + counts["running"]
    eta = timedelta(hours=remaining / done_last_hour) if done_last_hour and remaining else None
    state = WorkerState.get()
    return {
        "counts": counts,
        "paused": state.paused,
        "alive": jobs.workers_alive(),
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
    return (tuple(sorted(jobs.counts().items())), running, WorkerState.get().paused)
