"""Queue files and folders for the workers."""

from django.core.management.base import BaseCommand, CommandError

from tagging import jobs
from tagging.boundary import OutsideLibrary, library_files, resolve_in_library


class Command(BaseCommand):
    help = "Queue files (folders: every audio file in them) for tagging by the workers."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--force", action="store_true")

    def handle(self, *args, **options):
        failed = 0
        for raw in options["paths"]:
            try:
                found = library_files([resolve_in_library(raw)])
            except (OutsideLibrary, OSError) as exc:
                failed += 1
                reason = "no such file" if isinstance(exc, FileNotFoundError) else str(exc)
                self.stderr.write(f"refused {raw}: {reason}")
                continue
            for refused in found.refused:  # files under the folder that lead outside
                failed += 1
                self.stderr.write(f"refused {refused.path}: {refused.detail}")
            for job in jobs.queue_paths(found.files, force=options["force"]):
                self.stdout.write(f"job {job.pk} {job.status} {job.path}")
        if failed:
            raise CommandError(f"{failed} path(s) refused")
