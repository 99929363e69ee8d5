"""What the page and the `playlists` command do with a set of rules, one call each."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from playlists import files, presets, subsonic
from playlists.fields import FieldCatalog
from playlists.rules import Preview, RuleError, preview, selected_files, validate

ACTIONS = {
    "preview": "Preview",
    "write": "Write smart playlist (.nsp)",
    "m3u": "Export static playlist (.m3u8)",
    "push": "Push to Navidrome",
}


@dataclass
class Outcome:
    """A preview, and what became of the action: a message or an error."""

    rules: dict
    preview: Preview
    message: str = ""
    error: str = ""

    @property
    def nsp(self) -> str:
        try:
            return json.dumps(files.nsp_document(self.rules), indent=2, ensure_ascii=False)
        except files.PlaylistFileError:
            return json.dumps(self.rules, indent=2, ensure_ascii=False)


def navidrome_client(check: bool = True) -> subsonic.Client:
    """The Subsonic client the settings describe, its credentials tried with `ping`
    when check (SubsonicError names the setting or the failure)."""
    client = subsonic.Client.from_settings()
    if check:
        client.call("ping")
    return client


def run(
    action: str,
    rules: dict,
    catalog: FieldCatalog,
    sample: int = 20,
    client: subsonic.Client | None = None,
) -> Outcome:
    """Preview validated rules, then write, export or push them (push: to client,
    default the one the settings describe).

    Failures (a user's file in the way, a playlist folder outside the library, a
    Navidrome that refuses) land in Outcome.error; nothing is half-done."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    outcome = Outcome(rules=rules, preview=preview(rules, catalog, sample))
    shown = outcome.preview
    try:
        if action == "preview":
            outcome.message = (
                f"{shown.matched} tracks match; the playlist would hold {shown.selected}."
            )
        elif action == "write":
            written = files.write_smart_playlist(rules)
            verb = "Replaced" if written.replaced else "Wrote"
            outcome.message = (
                f"{verb} {written.path} ({shown.selected} tracks today). Navidrome imports it "
                "on its next library scan."
            )
        elif action == "m3u":
            written = files.export_m3u(rules, selected_files(rules, catalog))
            verb = "Replaced" if written.replaced else "Wrote"
            outcome.message = f"{verb} {written.path} with {written.tracks} tracks."
        else:
            pushed = subsonic.push(
                client or navidrome_client(check=False),
                rules.get("name", ""),
                selected_files(rules, catalog),
                comment=rules.get("comment", ""),
                public=rules.get("public", False),
            )
            outcome.message = pushed.summary()
    except (files.PlaylistFileError, subsonic.SubsonicError) as exc:
        outcome.error = str(exc)
    return outcome


@dataclass
class PresetStatus:
    preset: presets.Preset
    missing: list[str] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return not self.missing


def preset_statuses(catalog: FieldCatalog) -> list[PresetStatus]:
    return [PresetStatus(p, p.missing_keys(catalog)) for p in presets.PRESETS]


def preset_rules(slug: str, params: Mapping[str, object], catalog: FieldCatalog) -> dict:
    """A preset's rules, validated against the library (PresetError, RuleError)."""
    preset = presets.get(slug)
    rules = preset.rules(params)
    missing = preset.missing_keys(catalog)
    if missing:
        raise RuleError(
            [
                f"the template {preset.name!r} reads tags no file in the library has: "
                f"{', '.join(missing)}. Tag the library with the models that write them "
                "(and scan it) first."
            ]
        )
    return validate(rules, catalog)


def preset_preview(slug: str, params: Mapping[str, object], catalog: FieldCatalog) -> Outcome:
    """A preset's preview (PresetError, RuleError when it cannot be built)."""
    return run("preview", preset_rules(slug, params, catalog), catalog)
