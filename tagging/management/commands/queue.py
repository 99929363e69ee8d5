"""Queue files and folders for the workers."""

from django.core.management.base import BaseCommand, CommandError

from library.roots import OutsideLibrary, resolve_in_library
from tagging import jobs


class Command(BaseCommand):
    help = "Queue files (folders: every audio file in them) for tagging by the workers."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--force", action="store_true")

    def handle(self, *args, **options):
        failed = 0
        for raw in options["paths"]:
            try:
                path = resolve_in_library(raw)
            except (OutsideLibrary, FileNotFoundError) as exc:
                failed += 1
                reason = "no such file" if isinstance(exc, FileNotFoundError) else str(exc)
                self.stderr.write(f"refused {raw}: {reason}")
                continue
            for job in jobs.queue_paths([path], force=options["force"]):
                self.stdout.write(f"job {job.pk} {job.status} {job.path}")
        if failed:
            raise CommandError(f"{failed} path(s) refused")
