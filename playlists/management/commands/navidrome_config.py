"""Print the Tags section for navidrome.toml: every Nomarr key in the library as a field."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from playlists import navidrome


class Command(BaseCommand):
    help = (
        "Print the [Tags.*] tables for navidrome.toml that make every Nomarr key in the "
        "library a Navidrome field (paste at the end of navidrome.toml, then run a full scan)."
    )

    def add_arguments(self, parser):
        parser.add_argument("-o", "--output", help="write the block to this file instead")

    def handle(self, *args, **options):
        text = navidrome.config_toml()
        if not options["output"]:
            self.stdout.write(text, ending="")
            return
        target = Path(options["output"])
        try:
            target.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from exc
        self.stderr.write(
            f"wrote {target}: paste it at the end of navidrome.toml, then run a full scan"
        )
