"""GET /health: whether this Nomarr can do its work, for Docker and uptime monitors.

Unauthenticated and cheap, so a container's HEALTHCHECK or a monitor can call it
every few seconds. It answers 200 when the web server answers (it does, or nothing
would), the database answers a query on the job table and at least one worker
cluster reports itself running, and 503 otherwise; the body says which part failed:

    {"status": "ok", "web": true, "database": true, "workers_alive": 1}
    {"status": "unavailable", "web": true, "database": true, "workers_alive": 0,
     "detail": "no worker is running"}

Nothing else is revealed: no version, no paths, no counts of the queue.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from tagging.models import Job, WorkerState

log = logging.getLogger(__name__)


def database_ok() -> bool:
    try:
        Job.objects.exists()
    except DatabaseError as exc:
        log.warning("health: the database does not answer: %s", exc)
        return False
    return True


def workers_alive() -> int:
    """Worker clusters alive, as their shared status says; 0 when it cannot be read."""
    try:
        return WorkerState.objects.workers_alive()
    except Exception as exc:  # the cache (Redis) may be down: that is an answer too
        log.warning("health: cannot read the workers' status: %s", exc)
        return 0


def check() -> dict:
    """The health answer's body; `status` is "ok" or "unavailable"."""
    database = database_ok()
    workers = workers_alive()
    problems = [
        *([] if database else ["the database does not answer"]),
        *([] if workers else ["no worker is running"]),
    ]
    body = {
        "status": "unavailable" if problems else "ok",
        "web": True,
        "database": database,
        "workers_alive": workers,
    }
    if problems:
        body["detail"] = "; ".join(problems)
    return body


@never_cache
@require_safe
def health(request):
    body = check()
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)
