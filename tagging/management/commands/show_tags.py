"""Print Nomarr's tags (and the standard MOOD tag) stored in one file."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tagging import keys, tagfiles


class Command(BaseCommand):
    help = "Print Nomarr's tags in FILE."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, **options):
        path = Path(options["file"])
        try:
            tags = tagfiles.read_tags(path, keys.namespace())
            moods = tagfiles.read_moods(path)
        except tagfiles.TagWriteError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        if not tags:
            self.stdout.write(f"{path}: no Nomarr tags")
        for key in sorted(tags):
            self.stdout.write(f"{key} = {'; '.join(tags[key])}")
        if moods:
            self.stdout.write(f"MOOD = {'; '.join(moods)}")
