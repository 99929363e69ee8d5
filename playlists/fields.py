"""The fields a playlist rule can name, and what kind of value each holds.

Two sources:

* a few of Navidrome's own fields that the library database also knows (title,
  album, artist, genre, mood, year, duration);
* every Nomarr key present in the library (TagValue rows under the namespace). Only
  these become Navidrome custom tags (see `navidrome.config_toml`), so only these
  are valid fields: a key that no file carries is unknown to Navidrome too.

Kinds follow the key scheme (tagging.keys parses each key):

* a score key is a float: compared as a number;
* tier, mood set and version keys, and any other key under the namespace, are
  strings; the mood sets hold several values each.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.db import connection

from library.models import TagValue
from tagging import keys


class Kind(StrEnum):
    SCORE = "score"  # Nomarr score: a tag whose values are numbers
    TAG = "tag"  # a (multi-valued) string tag: matches if any value matches
    TEXT = "text"  # a LibraryFile text column
    NUMBER = "number"  # a LibraryFile number column

    @property
    def numeric(self) -> bool:
        return self in (Kind.SCORE, Kind.NUMBER)


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    # Where the library database keeps it: a TagValue key or a LibraryFile column.
    tag_key: str = ""
    column: str = ""
    multi: bool = False
    description: str = ""

    @property
    def is_nomarr(self) -> bool:
        return bool(self.tag_key) and self.tag_key.startswith(keys.prefix())

    @property
    def is_tier(self) -> bool:
        parsed = keys.parse(self.tag_key)
        return parsed is not None and parsed.kind == "tier"


#: Navidrome fields the preview can evaluate from the library database. artist,
#: albumartist, genre and mood are multi-valued in Navidrome (roles and tags), so
#: they are matched against the file's TagValue rows, any value matching.
BUILTIN_FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("title", Kind.TEXT, column="title", description="track title"),
        Field("album", Kind.TEXT, column="album", description="album name"),
        Field("artist", Kind.TAG, tag_key="artist", multi=True, description="track artist"),
        Field(
            "albumartist", Kind.TAG, tag_key="albumartist", multi=True, description="album artist"
        ),
        Field("genre", Kind.TAG, tag_key="genre", multi=True, description="genre"),
        Field("mood", Kind.TAG, tag_key="mood", multi=True, description="the standard MOOD tag"),
        Field("year", Kind.NUMBER, column="year", description="year of release"),
        Field("duration", Kind.NUMBER, column="duration", description="duration in seconds"),
    )
}


def nomarr_kind(key: str) -> tuple[Kind, bool, str]:
    """(kind, multi-valued, description) of a Nomarr key, from the key scheme."""
    parsed = keys.parse(key)
    if parsed is None:
        return Kind.TAG, False, "Nomarr tag"
    if parsed.kind == "tier":
        return Kind.TAG, False, f"tier: {', '.join(keys.TIERS[:-1])} or {keys.TIERS[-1]}"
    if parsed.kind == "mood_set":
        return Kind.TAG, True, f"mood words ({parsed.label} set)"
    if parsed.kind == "score":
        return Kind.SCORE, False, "score from 0 to 1"
    return Kind.TAG, False, "model set fingerprint"


def nomarr_field(key: str) -> Field:
    kind, multi, description = nomarr_kind(key)
    return Field(key, kind, tag_key=key, multi=multi, description=description)


def library_keys() -> list[str]:
    """Every distinct Nomarr key in the library, sorted.

    On SQLite (byte-order comparison) a skip scan: one indexed "next key after this
    one" query per distinct key, so millions of tag rows cost a few hundred index
    lookups. Elsewhere collations may not sort `_` by its code point, so one DISTINCT
    query does it.
    """
    prefix = keys.prefix()
    ours = TagValue.objects.filter(key__startswith=prefix)
    if connection.vendor != "sqlite":
        return sorted(set(ours.values_list("key", flat=True).distinct()))
    # The first string after every string that starts with prefix (byte order).
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    rows = ours.filter(key__gte=prefix, key__lt=upper).order_by("key")
    found: list[str] = []
    while True:
        query = rows.filter(key__gt=found[-1]) if found else rows
        key = query.values_list("key", flat=True).first()
        if key is None:
            return found
        found.append(key)


@dataclass
class FieldCatalog:
    """The fields valid right now: Navidrome's built-ins plus the library's Nomarr keys."""

    fields: dict[str, Field]

    @classmethod
    def current(cls) -> FieldCatalog:
        return cls.from_keys(library_keys())

    @classmethod
    def from_keys(cls, keys: list[str]) -> FieldCatalog:
        fields = dict(BUILTIN_FIELDS)
        for key in keys:
            fields[key] = nomarr_field(key)
        return cls(fields)

    def get(self, name: str) -> Field | None:
        return self.fields.get(name.lower()) if isinstance(name, str) else None

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    @property
    def nomarr_keys(self) -> list[str]:
        return sorted(name for name, f in self.fields.items() if f.is_nomarr)

    def names(self) -> list[str]:
        return sorted(self.fields)
