"""write_tags' `fill`: a standard field (GENRE) set only in a file that has none, in
every format, atomically and with the audio untouched; a genre the file holds is
never overwritten, and nothing is filled unless asked.

Real files of every format (the root conftest's ``make_audio``), read back by
mutagen and by ffprobe (a second parser). No database is needed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import mutagen
import pytest
from mutagen.id3 import TCON, Encoding
from mutagen.mp4 import MP4

from tagging.tagfiles import read_tags
from tagging.tests.test_writers import FORMATS, NS, TAGS, ffprobe_tags, foreign_snapshot
from tagging.writers import InvalidTagsError, write_tags

MakeAudio = Callable[..., Path]


def genre_in(path: Path) -> list[str]:
    """The file's GENRE as mutagen reads it (TCON, GENRE, ©gen)."""
    audio = mutagen.File(path)
    tags = audio.tags
    if tags is None:
        return []
    if isinstance(audio, MP4):
        return list(tags.get("\xa9gen", []))
    if hasattr(tags, "getall"):
        return [str(t) for frame in tags.getall("TCON") for t in frame.text]
    return [value for name, value in tags if name.lower() == "genre"]


#: ffmpeg reads a WAV's RIFF INFO chunk, not its ID3 chunk (where Nomarr writes).
FFPROBE_BLIND = {"wav"}


def ffprobe_genre(path: Path) -> str | None:
    """GENRE as ffmpeg reads it, from the container's or the stream's tags."""
    if path.suffix.lstrip(".") in FFPROBE_BLIND:
        return genre_in(path)[0] if genre_in(path) else None
    seen = ffprobe_tags(path)
    for tags in [seen["format"], *seen["streams"]]:
        for key, value in tags.items():
            if key.lower() == "genre":
                return value
    return None


def give_genre(path: Path, genre: str) -> None:
    """A genre set by the user's own tagger (mutagen, as Picard would)."""
    audio = mutagen.File(path)
    if isinstance(audio, MP4):
        audio.tags["\xa9gen"] = [genre]
    elif hasattr(audio.tags, "getall"):
        audio.tags.setall("TCON", [TCON(encoding=Encoding.UTF8, text=[genre])])
    else:
        audio.tags["GENRE"] = [genre]
    audio.save()


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_fills_genre_in_a_file_without_one_and_keeps_the_rest(
    make_audio: MakeAudio, audio_stream_hash: Callable[[Path], str], fmt: str
) -> None:
    path = make_audio(fmt)
    assert genre_in(path) == [] and ffprobe_genre(path) is None
    audio_before = audio_stream_hash(path)
    foreign_before = foreign_snapshot(path)

    assert write_tags(path, TAGS, NS, None, fill={"genre": ["Ambient"]}) is not None

    assert genre_in(path) == ["Ambient"]
    assert ffprobe_genre(path) == "Ambient"
    assert read_tags(path, NS) == TAGS
    assert audio_stream_hash(path) == audio_before
    # Every other tag as it was (GENRE is new; none was there to keep).
    after = [entry for entry in foreign_snapshot(path) if "genre" not in str(entry).lower()]
    after = [entry for entry in after if "TCON" not in str(entry) and "\xa9gen" not in str(entry)]
    assert after == foreign_before
    assert not list(path.parent.glob(".nomarr-*.tmp"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_never_overwrites_a_genre_the_file_has(
    make_audio: MakeAudio, audio_stream_hash: Callable[[Path], str], fmt: str
) -> None:
    path = make_audio(fmt)
    give_genre(path, "Jazz")
    write_tags(path, TAGS, NS, None)
    mtime = os.stat(path).st_mtime_ns

    # Only the fill differs from the file: nothing to do, nothing written.
    assert write_tags(path, TAGS, NS, None, fill={"genre": ["Rock"]}) is None
    assert os.stat(path).st_mtime_ns == mtime
    # With Nomarr's keys changing, the file is written, its genre stays the user's.
    audio_before = audio_stream_hash(path)
    write_tags(path, {**TAGS, "nom_version": ["2"]}, NS, None, fill={"genre": ["Rock"]})
    assert read_tags(path, NS)["nom_version"] == ["2"]
    assert genre_in(path) == ["Jazz"] and ffprobe_genre(path) == "Jazz"
    assert audio_stream_hash(path) == audio_before


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a"])
def test_it_fills_nothing_unless_asked(make_audio: MakeAudio, fmt: str) -> None:
    path = make_audio(fmt)
    write_tags(path, TAGS, NS, None)
    write_tags(path, {**TAGS, "nom_version": ["2"]}, NS, ["Happy"], fill={})
    write_tags(path, TAGS, NS, None, fill={"genre": ["", "  "]})  # blanks fill nothing
    assert genre_in(path) == [] and ffprobe_genre(path) is None


@pytest.mark.parametrize("fmt", ["mp3", "ogg"])
def test_a_blank_genre_counts_as_none(make_audio: MakeAudio, fmt: str) -> None:
    path = make_audio(fmt)
    give_genre(path, " ")
    write_tags(path, TAGS, NS, None, fill={"genre": ["Rock"]})
    assert genre_in(path) == ["Rock"]


@pytest.mark.parametrize(
    "fill",
    [
        {"title": ["Mine now"]},  # not a field write_tags fills
        {"nom_genre": ["x"]},
        {"genre": "Rock"},  # a bare string would be one value per letter
        {"genre": [3]},
        {"genre": ["Ro\x00ck"]},
        ["genre", "Rock"],
    ],
)
def test_it_refuses_a_malformed_fill_before_touching_the_file(
    make_audio: MakeAudio, fill: object
) -> None:
    path = make_audio("flac")
    before = path.read_bytes()
    with pytest.raises(InvalidTagsError):
        write_tags(path, TAGS, NS, None, fill=fill)  # type: ignore[arg-type]
    assert path.read_bytes() == before
