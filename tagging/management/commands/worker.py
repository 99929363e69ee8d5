"""Pause or resume the tagging workers."""

from django.core.management.base import BaseCommand

from tagging import jobs
from tagging.models import WorkerState


class Command(BaseCommand):
    help = "pause: running jobs finish, no new ones start; resume: start again; status."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["pause", "resume", "status"])

    def handle(self, *args, **options):
        if options["action"] != "status":
            jobs.set_paused(options["action"] == "pause")
        state = WorkerState.get()
        alive = WorkerState.objects.workers_alive()
        self.stdout.write(f"workers {'paused' if state.paused else 'running'}, {alive} alive")
