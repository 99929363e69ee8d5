"""Delete old finished jobs."""

from django.core.management.base import BaseCommand, CommandError

from tagging import jobs


class Command(BaseCommand):
    help = "Delete done and failed jobs that finished more than --hours ago."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=float, default=24 * 7)

    def handle(self, *args, **options):
        try:
            deleted = jobs.cleanup(options["hours"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"deleted {deleted} finished jobs")
