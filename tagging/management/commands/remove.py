"""Remove jobs from the queue."""

from django.core.management.base import BaseCommand, CommandError

from tagging import jobs
from tagging.models import Job


class Command(BaseCommand):
    help = "Remove jobs by id (refused while running), or every job of a status with --status."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int)
        parser.add_argument("--status", action="append", choices=Job.Status.values)

    def handle(self, *args, **options):
        if not options["ids"] and not options["status"]:
            raise CommandError("give job ids or --status")
        try:
            for job_id in options["ids"]:
                jobs.remove(job_id)
                self.stdout.write(f"removed job {job_id}")
            if options["status"]:
                self.stdout.write(f"removed {jobs.flush(options['status'])} jobs")
        except (Job.DoesNotExist, jobs.JobConflict) as exc:
            raise CommandError(str(exc)) from exc
