"""manage.py similar FILE: the tracks that sound most like FILE."""

from django.core.management.base import BaseCommand, CommandError

from sonic import similar, tracks
from tagging.boundary import OutsideLibrary


class Command(BaseCommand):
    help = "List the library tracks that sound most like FILE (a path or a library file id)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="a path inside the library, or a library file id")
        parser.add_argument("--count", type=int, default=20)

    def handle(self, *args, **options):
        file = find_track(options["file"])
        try:
            found = similar.similar(file, options["count"])
        except similar.SonicError as exc:
            raise CommandError(str(exc)) from None
        for match in found:
            f = match.file
            who = " - ".join(p for p in (f.artist, f.album, f.title) if p)
            self.stdout.write(f"{match.score:.3f}  {f.path}" + (f"  ({who})" if who else ""))


def find_track(text: str):
    """The library file named by a path or an id, or a CommandError that says why not."""
    try:
        return tracks.named(text)
    except (OutsideLibrary, tracks.NotInLibrary, OSError) as exc:
        raise CommandError(str(exc)) from None
