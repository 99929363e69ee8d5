"""ws/dashboard/ and ws/jobs/<id>/: the tagging pages' live regions, from tagging/live.py."""

from __future__ import annotations

from django.template.loader import render_to_string

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
