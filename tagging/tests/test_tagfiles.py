"""Tests for tagging.tagfiles, the one reader of audio files' tags: real files
(made by ffmpeg, see the root conftest.py), tagged the way other tools tag them.

No database is needed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm

from library.metadata import read_file
from nomarr_site.atomic import TEMP_PREFIX
from tagging.tagfiles import audio_files, is_audio_name, read_moods, read_tags
from tagging.writers import write_tags

MakeAudio = Callable[..., Path]
TEXT = "Ünïcødé ✓ 日本"
ALBUM_ID = "0f9d5a1e-4ec4-4d6b-8d0f-0a8f3b5a4c11"


def _freeform(path: Path, atoms: dict[str, MP4FreeForm]) -> None:
    """Store freeform atoms as another tagger (iTunes, an old Picard) may."""
    audio = MP4(path)
    assert audio.tags is not None
    for name, value in atoms.items():
        audio.tags[f"----:com.apple.iTunes:{name}"] = [value]
    audio.save()


def test_an_mp4_freeform_value_stored_as_utf16_reads_as_its_text(make_audio: MakeAudio) -> None:
    path = make_audio("m4a")
    _freeform(
        path,
        {
            "nom_x__y": MP4FreeForm(TEXT.encode("utf-16-be"), dataformat=AtomDataType.UTF16),
            "MOOD": MP4FreeForm("Happy".encode("utf-16-be"), dataformat=AtomDataType.UTF16),
            "MusicBrainz Album Id": MP4FreeForm(
                ALBUM_ID.encode("utf-16-be"), dataformat=AtomDataType.UTF16
            ),
        },
    )

    assert read_tags(path, "nom") == {"nom_x__y": [TEXT]}
    assert read_moods(path) == ["Happy"]
    # The library reads the standard freeform keys with the same decoder.
    info = read_file(str(path), os.stat(path), "nom")
    assert info.error == ""
    assert ("musicbrainz_albumid", ALBUM_ID) in info.tags
    assert info.columns["mb_album_id"] == ALBUM_ID
    assert ("nom_x__y", TEXT) in info.tags and ("mood", "Happy") in info.tags


def test_an_mp4_freeform_value_stored_as_utf8_reads_as_its_text(make_audio: MakeAudio) -> None:
    path = make_audio("m4a")
    _freeform(
        path,
        {
            "nom_x__y": MP4FreeForm(TEXT.encode(), dataformat=AtomDataType.UTF8),
            "MusicBrainz Album Id": MP4FreeForm(ALBUM_ID.encode(), dataformat=AtomDataType.UTF8),
        },
    )

    assert read_tags(path, "nom") == {"nom_x__y": [TEXT]}
    info = read_file(str(path), os.stat(path), "nom")
    assert info.columns["mb_album_id"] == ALBUM_ID


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a"])
def test_the_library_reads_what_the_writer_wrote(make_audio: MakeAudio, fmt: str) -> None:
    path = make_audio(fmt)
    write_tags(path, {"nom_x__y": ["0.5", TEXT], "nom_version": ["v1"]}, "nom", ["Calm"])

    info = read_file(str(path), os.stat(path), "nom")

    ours = [(k, v) for k, v in info.tags if k.startswith("nom_") or k == "mood"]
    assert sorted(ours) == sorted(
        [("nom_x__y", "0.5"), ("nom_x__y", TEXT), ("nom_version", "v1"), ("mood", "Calm")]
    )
    assert info.nom_version == "v1"


def test_only_audio_names_count_and_nomarr_temp_files_never_do() -> None:
    assert is_audio_name("song.flac") and is_audio_name("Song.MP3") and is_audio_name("a.m4a")
    assert not is_audio_name("cover.jpg")
    assert not is_audio_name("notes.txt")
    assert not is_audio_name(f"{TEMP_PREFIX}song.flac.abc123.tmp")
    assert not is_audio_name(f"{TEMP_PREFIX}song.flac.abc123.flac")


def test_a_folder_gives_its_audio_files_in_order_and_a_named_file_is_kept(
    make_audio: MakeAudio, tmp_path: Path
) -> None:
    album = tmp_path / "album"
    (album / "cd2").mkdir(parents=True)
    first = make_audio("flac", name="b")
    shutil.move(first, album / "b.flac")
    shutil.move(make_audio("mp3", name="a"), album / "A.MP3")
    shutil.move(make_audio("ogg", name="c"), album / "cd2" / "c.ogg")
    shutil.copyfile(album / "b.flac", album / f"{TEMP_PREFIX}b.flac.x1.tmp")
    (album / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    named = tmp_path / "notes.txt"
    named.write_text("not audio")

    found = audio_files([album, named, tmp_path / "missing.mp3"])

    assert found == [
        album / "A.MP3",
        album / "b.flac",
        album / "cd2" / "c.ogg",
        named,
        tmp_path / "missing.mp3",
    ]
