"""List jobs."""

from django.core.management.base import BaseCommand

from tagging.models import Job


class Command(BaseCommand):
    help = "List jobs, newest first, with counts per status."

    def add_arguments(self, parser):
        parser.add_argument("--status", choices=Job.Status.values)
        parser.add_argument("--limit", type=int, default=50)

    def handle(self, *args, **options):
        query = Job.objects.order_by("-pk")
        if options["status"]:
            query = query.filter(status=options["status"])
        for job in query[: options["limit"]]:
            line = f"{job.pk:>6} {job.status:<8} {job.path}"
            if job.error:
                line += f"  ({job.error})"
            self.stdout.write(line)
        self.stdout.write(" ".join(f"{s}={n}" for s, n in Job.objects.counts().items()))
