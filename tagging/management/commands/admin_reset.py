"""Put stuck or failed jobs back in the queue."""

from django.core.management.base import BaseCommand, CommandError

from tagging import jobs


class Command(BaseCommand):
    help = (
        "--stuck: running jobs whose worker died or timed out, and every pending job sent "
        "to the workers again; --errors: failed jobs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--stuck", action="store_true")
        parser.add_argument("--errors", action="store_true")

    def handle(self, *args, **options):
        if not options["stuck"] and not options["errors"]:
            raise CommandError("give --stuck, --errors or both")
        if options["stuck"]:
            # A pending job whose message died with a worker looks fine but never runs:
            # sending every pending job again is harmless (a job is claimed once).
            reset, sent = jobs.recover()
            self.stdout.write(f"reset {reset} stuck jobs; sent {sent} pending jobs again")
        if options["errors"]:
            self.stdout.write(f"reset {jobs.reset_errors()} failed jobs")
