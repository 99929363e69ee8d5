"""The `Tags` section of navidrome.toml that makes Nomarr's keys Navidrome fields.

Navidrome (custom tags, https://www.navidrome.org/docs/usage/configuration/custom-tags/)
imports only the tags its configuration names. Each `[Tags.<name>]` table defines a
field; its name is the TOML key lowercased, and `Aliases` lists the tag names, as
Navidrome sees them in files, that feed it. How Navidrome (TagLib; its
adapters/taglib and adapters/gotaglib) names a tag in each container:

* ID3v2 (MP3, WAV, AIFF): a TXXX frame is named by its description, lowercased;
* Vorbis comments (FLAC, Ogg Vorbis, Opus): the field name, lowercased;
* MP4: a freeform atom `----:com.apple.iTunes:<name>` is named by <name> with that
  prefix stripped, lowercased.

Nomarr stores a key as the lowercase TXXX description, the uppercase Vorbis field
and the lowercase freeform name (tagging/writers.py), so the three rules give one
alias per key; the MP4 name is also listed with its prefix,
`----:com.apple.itunes:<key>`, the spelling Navidrome's own mappings
(resources/mappings.yaml) give MP4 aliases, for readers that keep the prefix.
`Type = "float"` makes scores numbers (valid types: string, int, float, date,
uuid, pair). Navidrome 0.56 or later is needed: before 0.56 every gt/lt on a score
compares text and is silently always true or always false. Nomarr writes
each mood word as its own value; the mood sets also get `Split` so that files where
another tagger joined them into one value ("happy; relaxed", as Picard does for
ID3v2.3) still give one value per word. Navidrome applies a changed tag
configuration only on a full scan.

The standard MOOD tag needs no entry: Navidrome imports it by default, as the field
`mood`.
"""

from __future__ import annotations

import json

from playlists.fields import FieldCatalog, Kind, library_keys, nomarr_field

MP4_FREEFORM_PREFIX = "----:com.apple.iTunes:"
MIN_VERSION = "0.56"
FLOAT = "float"
MOOD_SPLIT = ["; "]


def stored_names(key: str) -> dict[str, str]:
    """How Nomarr stores key in each container (see tagging/writers.py)."""
    return {
        "id3": key.lower(),  # TXXX desc
        "vorbis": key.upper(),  # field name
        "mp4": MP4_FREEFORM_PREFIX + key.lower(),  # freeform atom
    }


def navidrome_name(container: str, stored: str) -> str:
    """The tag name Navidrome sees for a stored tag name, by container."""
    if container == "mp4":
        if stored.startswith(MP4_FREEFORM_PREFIX):
            stored = stored[len(MP4_FREEFORM_PREFIX) :]
        return stored.lower()
    return stored.lower()  # ID3 TXXX description / Vorbis field name


def aliases(key: str) -> list[str]:
    """Every name Navidrome may see for key, one per distinct spelling."""
    names = [navidrome_name(c, stored) for c, stored in stored_names(key).items()]
    names.append(stored_names(key)["mp4"].lower())  # as Navidrome's mappings.yaml spells MP4
    return sorted(set(names))


def _toml_string(text: str) -> str:
    # A JSON string is a valid TOML basic string for the characters keys can hold.
    return json.dumps(text, ensure_ascii=False)


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(_toml_string(item) for item in items) + "]"


def field_table(key: str) -> list[str]:
    f = nomarr_field(key)
    lines = [f"[Tags.{key.lower()}]", f"Aliases = {_toml_list(aliases(key))}"]
    if f.kind is Kind.SCORE:
        lines.append(f'Type = "{FLOAT}"')
    if f.multi:
        lines.append(f"Split = {_toml_list(MOOD_SPLIT)}")
    return lines


def config_toml(keys: list[str] | None = None) -> str:
    """The navidrome.toml block for keys (default: every Nomarr key in the library)."""
    keys = library_keys() if keys is None else keys
    catalog = FieldCatalog.from_keys(keys)
    fields = [catalog.get(key) for key in catalog.nomarr_keys]
    scores = sum(1 for f in fields if f.kind is Kind.SCORE)
    tiers = sum(1 for f in fields if f.is_tier)
    sets = sum(1 for f in fields if f.multi)
    out = [
        "# Nomarr's tags as Navidrome fields: paste this at the END of navidrome.toml",
        "# (it is a set of TOML tables), restart Navidrome, then run a FULL scan:",
        "# Navidrome reads a changed tag configuration only on a full scan, not a quick one.",
        f"# Needs Navidrome {MIN_VERSION} or later: before {MIN_VERSION} every gt/lt on a score",
        "# compares text and is silently always true or false. Custom tags can only be set",
        "# in a configuration file (ND_CONFIGFILE), not in environment variables. MOOD",
        "# needs no entry: Navidrome imports it as `mood`.",
        f"# {len(fields)} fields: {scores} scores (float), {tiers} tiers, "
        f"{sets} mood sets (multi-valued), {len(fields) - scores - tiers - sets} other.",
    ]
    if not fields:
        out.append(
            "# No file in the library carries Nomarr tags yet: tag and scan the library first."
        )
    for f in fields:
        out.append("")
        out.extend(field_table(f.name))
    return "\n".join(out) + "\n"
