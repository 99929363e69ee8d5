"""ws/dashboard/ and ws/jobs/<id>/: the tagging pages' live regions, from tagging/live.py."""

from __future__ import annotations

from urllib.parse import parse_qs

from django.conf import settings
from django.template.loader import render_to_string

from nomarr_site import roles
from nomarr_site.consumers import LiveConsumer
from tagging import live
from tagging.models import Job


class DashboardConsumer(LiveConsumer):
    """The dashboard's live region: counts, workers, running jobs, recent errors."""

    group = live.GROUP

    def signature(self) -> tuple:
        return live.signature()

    def render(self) -> str:
        return render_to_string("tagging/_dashboard_live.html", live.dashboard_state())


class JobConsumer(LiveConsumer):
    """One job's live region: its status, progress and, once done, its scores."""

    group = live.GROUP

    @property
    def job_id(self) -> int:
        return self.scope["url_route"]["kwargs"]["job_id"]

    def wants(self, event: dict) -> bool:
        return event.get("job") == self.job_id

    def signature(self) -> tuple:
        return live.signature(self.job_id)

    def render(self) -> str:
        job = Job.objects.filter(pk=self.job_id).first()
        return render_to_string("tagging/_job_live.html", live.job_context(job))


class QueueConsumer(LiveConsumer):
    """The queue page's live region: the counts and the page of jobs it shows
    (ws/queue/?status=...&page=..., as the page's own query)."""

    group = live.GROUP

    def query(self) -> tuple[str, str | None]:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        return query.get("status", [""])[0], query.get("page", [None])[0]

    def signature(self) -> tuple:
        return live.queue_signature(*self.query())

    def render(self) -> str:
        # The region's staff forms need the page's CSRF token: the cookie's secret is one.
        context = {
            **live.queue_state(*self.query()),
            "staff": roles.is_staff(self.scope.get("user")),
            "csrf_token": self.scope.get("cookies", {}).get(settings.CSRF_COOKIE_NAME, ""),
        }
        return render_to_string("tagging/_queue_live.html", context)
