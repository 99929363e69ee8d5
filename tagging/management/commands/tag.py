"""Tag files and folders from the command line."""

import json
import time
from contextlib import closing
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tagging.pipeline import tag_files
from tagging.tagfiles import audio_files


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Command(BaseCommand):
    help = "Analyse audio files (folders recursively) and write Nomarr's tags into them."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--force", action="store_true", help="re-tag files already tagged")
        parser.add_argument(
            "--dry-run", action="store_true", help="compute and show, write nothing"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object per file")

    def handle(self, *args, **options):
        files = audio_files(options["paths"])
        if not files:
            raise CommandError("no audio files found")
        started = time.monotonic()
        failed = 0
        # One file after another, the next one's decoding started while this one's
        # models run; each result as soon as it is known. Leaving stops the batch.
        batch = tag_files(files, force=options["force"], dry_run=options["dry_run"])
        with closing(batch) as results:
            for number, result in enumerate(results, 1):
                failed += result.status == "error"
                if options["json"]:
                    self.stdout.write(json.dumps(result.as_dict()))
                else:
                    self._print_result(result, options["dry_run"])
                elapsed = time.monotonic() - started
                eta = elapsed / number * (len(files) - number)
                bar = "#" * (20 * number // len(files))
                self.stderr.write(
                    f"[{bar:<20}] {number}/{len(files)} {100 * number // len(files)}%"
                    f" elapsed {_clock(elapsed)} eta {_clock(eta)}"
                )
        if failed:
            raise CommandError(f"{failed} of {len(files)} files failed")

    def _print_result(self, result, dry_run):
        # A dry run writes nothing: it says what it would have done.
        status = "would tag" if dry_run and result.status == "tagged" else result.status
        line = f"{status}: {result.path}"
        if result.error:
            line += f" ({result.error})"
        self.stdout.write(line)
        if dry_run and result.tags:
            for key in sorted(result.tags):
                self.stdout.write(f"  {key} = {'; '.join(result.tags[key])}")
