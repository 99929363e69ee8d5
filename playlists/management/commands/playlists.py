"""Smart playlists from the command line: list the templates, preview rules, write
them as .nsp, export them as .m3u8, or push them to Navidrome."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from playlists import presets, service, subsonic
from playlists.fields import FieldCatalog
from playlists.rules import RuleError, validate


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(text)
    return name.strip(), value.strip()


class Command(BaseCommand):
    help = (
        "list: the templates (and whether the library has their tags); "
        "preview|write|m3u|push: a template (--template SLUG --set NAME=VALUE) or rules "
        "from a .nsp/JSON file (--rules FILE, - for stdin)."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="list the templates and their parameters")
        for name, what in (
            ("preview", "count and sample the tracks the rules select"),
            ("write", "write the rules as a .nsp smart playlist into NOMARR_PLAYLIST_DIR"),
            ("m3u", "write the selected tracks as a .m3u8 into NOMARR_PLAYLIST_DIR"),
            ("push", "push the selected tracks to Navidrome as a playlist (Subsonic API)"),
        ):
            sub = actions.add_parser(name, help=what)
            source = sub.add_mutually_exclusive_group(required=True)
            source.add_argument("--template", metavar="SLUG", help="a template (see list)")
            source.add_argument("--rules", metavar="FILE", help="a .nsp/JSON file, - for stdin")
            sub.add_argument(
                "--set",
                dest="params",
                action="append",
                type=_pair,
                default=[],
                metavar="NAME=VALUE",
                help="a template parameter (repeatable)",
            )
            sub.add_argument("--name", help="the playlist's name")
            sub.add_argument("--limit", type=int, help="at most this many tracks")
            sub.add_argument("--sample", type=int, default=20, help="tracks to show")

    def handle(self, *args, **options):
        client = None
        if options["action"] == "push":  # the settings first, before computing anything
            try:
                client = service.navidrome_client()
            except subsonic.SubsonicError as exc:
                raise CommandError(f"cannot push: {exc}") from None
        catalog = FieldCatalog.current()
        if options["action"] == "list":
            self.list_presets(catalog)
            return
        rules = self.load(options, catalog)
        outcome = service.run(
            options["action"], rules, catalog, sample=options["sample"], client=client
        )
        shown = outcome.preview
        self.stdout.write(
            f"{shown.matched} tracks match; the playlist holds {shown.selected}"
            + (f" (limit {shown.limit})" if shown.limit else "")
        )
        for track in shown.tracks:
            label = " - ".join(p for p in (track.artist, track.title) if p) or "(no title)"
            self.stdout.write(f"  {label}  [{track.path}]")
        if outcome.error:
            raise CommandError(outcome.error)
        if options["action"] != "preview":
            self.stdout.write(outcome.message)

    def list_presets(self, catalog: FieldCatalog) -> None:
        for status in service.preset_statuses(catalog):
            preset = status.preset
            params = " ".join(f"{p.name}={p.default}" for p in preset.params)
            self.stdout.write(f"{preset.slug}: {preset.name} — {preset.description}")
            self.stdout.write(f"    parameters: {params}")
            if status.missing:
                self.stdout.write(f"    NOT IN THE LIBRARY: {', '.join(status.missing)}")

    def load(self, options, catalog: FieldCatalog) -> dict:
        try:
            if options["template"]:
                params = dict(options["params"])
                if options["limit"] is not None:
                    params["limit"] = options["limit"]
                rules = service.preset_rules(options["template"], params, catalog)
            else:
                if options["params"]:
                    raise CommandError("--set is for templates; edit the rules file instead")
                rules = validate(self.read_rules(options["rules"]), catalog)
                if options["limit"] is not None:
                    rules = validate({**rules, "limit": options["limit"]}, catalog)
            if options["name"]:
                rules = validate({**rules, "name": options["name"]}, catalog)
        except presets.PresetError as exc:
            raise CommandError(str(exc)) from None
        except RuleError as exc:
            raise CommandError("the rules are not valid:\n" + "\n".join(exc.errors)) from None
        return rules

    def read_rules(self, source: str) -> object:
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text("utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {source}: {exc.strerror or exc}") from None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise CommandError(f"{source} is not JSON: {exc}") from None
