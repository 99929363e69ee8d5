"""The navidrome.toml Tags section, checked against real tagged files of every format.

Navidrome's documented custom-tag rules (docs: usage/configuration/custom-tags; its
TagLib adapters for the names): the field is the TOML key lowercased; a file's tag
reaches the field when its name, as Navidrome sees it, is one of the Aliases:
ID3 TXXX -> the description lowercased; Vorbis -> the field name lowercased;
MP4 freeform -> the name without "----:com.apple.iTunes:", lowercased.
The rules are re-implemented here from the documentation, not imported.
"""

from __future__ import annotations

import tomllib
from io import StringIO

import mutagen
import pytest
from django.core.management import call_command
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

from playlists import navidrome
from playlists.fields import library_keys
from tagging.keys import mood_set_key, prefix, tier_key_for, version_key

from .conftest import AGGRESSIVE, CHILL, HAPPY, SLOW, nomarr_tags

FORMATS = ("mp3", "wav", "aiff", "flac", "ogg", "opus", "m4a")
VALID_TYPES = {"string", "int", "float", "date", "uuid", "pair"}
ITUNES = "----:com.apple.iTunes:"


def navidrome_names(path) -> dict[str, str]:
    """{raw tag name in the file: the name Navidrome sees}, read with mutagen."""
    audio = mutagen.File(path)
    names = {}
    if isinstance(audio.tags, ID3):
        for frame in audio.tags.getall("TXXX"):
            names[f"TXXX:{frame.desc}"] = frame.desc.lower()
    elif isinstance(audio, MP4):
        for atom in audio.tags:
            if atom.startswith(ITUNES):
                names[atom] = atom[len(ITUNES) :].lower()
    else:
        for name, _ in audio.tags:
            names[name] = name.lower()
    return names


def parse(text: str) -> dict[str, dict]:
    config = tomllib.loads(text)
    assert set(config) == {"Tags"}, "the block holds nothing but the Tags section"
    return config["Tags"]


@pytest.fixture
def every_format(library):
    for fmt in FORMATS:
        library.add(fmt, f"song-{fmt}", {HAPPY: 0.9, AGGRESSIVE: 0.1})
    library.scan()
    return {fmt: library.root / "Artist/Album" / f"song-{fmt}.{fmt}" for fmt in FORMATS}


def test_each_key_nomarr_wrote_reaches_exactly_one_field_in_every_format(every_format, catalog):
    tags = parse(navidrome.config_toml())
    field_aliases = {
        name.lower(): {a.lower() for a in spec["Aliases"]} for name, spec in tags.items()
    }
    written = set(nomarr_tags(catalog, {HAPPY: 0.9, AGGRESSIVE: 0.1})[0])
    assert len(written) > 100
    for fmt, path in every_format.items():
        names = navidrome_names(path).items()
        seen = {raw: name for raw, name in names if name.startswith(prefix())}
        assert set(seen.values()) == written, f"{fmt}: the file holds every key Nomarr wrote"
        for raw, name in seen.items():
            fields = [field for field, aliases in field_aliases.items() if name in aliases]
            assert len(fields) == 1, f"{fmt}: {raw} reaches {fields}"
            # The field Navidrome will filter on is the key itself.
            assert fields == [name]
            if fmt == "m4a":  # also as Navidrome's own mappings spell MP4 aliases
                assert raw.lower() in field_aliases[name]


def test_scores_are_floats_mood_sets_split_and_the_rest_strings(every_format):
    tags = parse(navidrome.config_toml())
    for name, spec in tags.items():
        assert name == name.lower()
        assert spec.get("Type", "string") in VALID_TYPES
        assert set(spec) <= {"Aliases", "Type", "Split"}
    assert tags[HAPPY]["Type"] == "float"
    assert tags[CHILL]["Type"] == "float"
    assert tags[SLOW]["Type"] == "float"
    tier = tags[tier_key_for(HAPPY)]
    assert "Type" not in tier and "Split" not in tier
    for mood_set in (mood_set_key("strict"), mood_set_key("regular"), mood_set_key("loose")):
        assert tags[mood_set]["Split"] == ["; "]
        assert "Type" not in tags[mood_set]
    assert "Type" not in tags[version_key()]


def test_it_covers_every_nomarr_key_in_the_library_and_leaves_mood_to_navidrome(every_format):
    tags = parse(navidrome.config_toml())
    assert sorted(tags) == library_keys()
    every_alias = {a for spec in tags.values() for a in spec["Aliases"]}
    # MOOD (TMOO / MOOD / ----:com.apple.iTunes:MOOD) is Navidrome's own `mood` field.
    assert not every_alias & {"mood", "tmoo"}


def test_the_output_says_a_full_scan_is_needed(every_format):
    text = navidrome.config_toml()
    assert "full scan" in text.lower()
    assert "Navidrome 0.56 or later" in text and "0.55" not in text


def test_the_command_prints_the_same_block(every_format, tmp_path):
    out = StringIO()
    call_command("navidrome_config", stdout=out)
    assert out.getvalue() == navidrome.config_toml()
    target = tmp_path / "tags.toml"
    call_command("navidrome_config", "--output", str(target), stderr=StringIO())
    assert parse(target.read_text()) == parse(out.getvalue())


def test_an_untagged_library_gets_an_empty_but_valid_block(library):
    library.add("flac", "plain")
    library.scan()
    text = navidrome.config_toml()
    assert tomllib.loads(text) == {}
    assert "No file in the library carries Nomarr tags" in text


def test_only_the_namespace_keys_become_fields(library):
    """Keys beside the namespace in sort order (nomad_..., "nom`") are not Nomarr's."""
    from library.models import LibraryFile, TagValue

    row = LibraryFile.objects.create(
        root=library.row, path=str(library.root / "x.flac"), folder=str(library.root), size=1,
        mtime_ns=1,
    )  # fmt: skip
    for key in ("nomad_rating", "nom`x", "nom", "nom_b__x", "nom_a__y", "nom_a__y", "mood", "nop"):
        TagValue.objects.create(file=row, key=key, value="0.5", number=0.5)
    assert library_keys() == ["nom_a__y", "nom_b__x"]
    assert sorted(parse(navidrome.config_toml())) == ["nom_a__y", "nom_b__x"]
