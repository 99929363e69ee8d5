"""Fetch Essentia's classifier heads (mood, danceability, voice...) into the models folder."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tagging import zoo


class Command(BaseCommand):
    help = (
        "Download Essentia's classifier heads for the installed backbones: NAME is a head "
        "(mood_happy-msd-musicnn-1 or mood_happy), 'moods' for every mood head, or --all. "
        "They are CC BY-NC-SA 4.0: --accept-license is required."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME")
        parser.add_argument("--all", action="store_true", help="every head in the manifest")
        parser.add_argument("--list", action="store_true", help="list the heads and exit")
        parser.add_argument(
            "--accept-license", action="store_true", help="accept CC BY-NC-SA 4.0 (required)"
        )
        parser.add_argument("--force", action="store_true", help="download installed ones too")
        parser.add_argument("--manifest", help="another manifest (default NOMARR_MODELS_MANIFEST)")
        parser.add_argument("--from", dest="base", help="another source (NOMARR_MODELS_URL)")

    def handle(self, *args, **options):
        try:
            manifest = zoo.load_manifest(options["manifest"] or settings.NOMARR_MODELS_MANIFEST)
            if options["list"]:
                self._list(manifest)
                return
            heads = manifest.select(options["names"], options["all"])
        except zoo.ZooError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{len(heads)} heads, about {zoo.estimated_size(heads) / 1e6:.1f} MB, from "
            f"{options['base'] or settings.NOMARR_MODELS_URL}\n"
            f"Licence: {manifest.licence} ({manifest.licence_url})\n{manifest.licence_text}"
        )
        if not options["accept_license"]:
            raise CommandError(
                f"these models are {manifest.licence}: run again with --accept-license "
                "to accept it; nothing was downloaded"
            )
        try:
            outcome = zoo.download(
                options["names"],
                options["all"],
                progress=ProgressBar(self.stdout),
                force=options["force"],
                manifest_path=options["manifest"],
                base=options["base"],
            )
        except zoo.ZooError as exc:
            raise CommandError(str(exc)) from exc
        for stem in outcome.installed:
            self.stdout.write(f"installed {stem}")
        for stem in outcome.already:
            self.stdout.write(f"already installed {stem}")
        for stem, why in outcome.failed:
            self.stderr.write(f"not installed {stem}: {why}")
        if outcome.installed:
            self.stdout.write(
                f"{len(outcome.installed)} heads installed into {settings.NOMARR_MODELS_DIR}; "
                "the workers reload their models before their next job"
            )
        if not outcome.ok:
            raise CommandError(f"{len(outcome.failed)} heads not installed (see above)")

    def _list(self, manifest: zoo.Manifest) -> None:
        for head in manifest.heads:
            installed = zoo.is_installed(head, list(settings.NOMARR_MODELS_DIRS))
            self.stdout.write(
                f"{head.stem:36} {head.group:6} {'installed' if installed else '-':10} {head.adds}"
            )


class ProgressBar:
    """One line per file, redrawn in place on a terminal; a line at the end otherwise."""

    WIDTH = 30

    def __init__(self, out) -> None:
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())

    def __call__(self, name: str, done: int, total: int | None) -> None:
        finished = total is not None and done >= total
        if not self.tty and not finished:
            return
        if total:
            filled = min(self.WIDTH, self.WIDTH * done // total)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            line = f"[{bar}] {done / 1024:7.1f} of {total / 1024:.1f} KB {name}"
        else:
            line = f"{done / 1024:7.1f} KB {name}"
        self.out.write(("\r" if self.tty else "") + line, ending="\n" if finished else "")
        self.out.flush()
