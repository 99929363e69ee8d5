"""The audio fingerprint: unchanged by tag writes in every container, different for
different audio."""

import shutil
import subprocess

import pytest

from library.metadata import fingerprint
from library.tests.helpers import FORMATS
from tagging import writers
from tagging.keys import namespace, score_key, version_key

MANY = {score_key(f"model_{i:03d}", "label"): [f"0.{i:03d}"] for i in range(300)}


@pytest.mark.parametrize("fmt", FORMATS)
def test_writing_tags_leaves_the_fingerprint_alone(fmt, make_audio):
    song = make_audio(fmt)
    before = fingerprint(str(song))
    size = song.stat().st_size
    # Enough keys to move the audio (and renumber every Ogg page after the tags)...
    writers.write_tags(song, {**MANY, version_key(): ["v1"]}, namespace(), ["happy", "party"])
    assert song.stat().st_size != size or fmt == "flac"  # FLAC uses its padding first
    assert fingerprint(str(song)) == before
    # ...and back to almost nothing.
    writers.write_tags(song, {version_key(): ["v2"]}, namespace(), [])
    assert fingerprint(str(song)) == before


def test_an_m4a_with_its_tags_before_the_audio_keeps_its_fingerprint(make_audio, tmp_path):
    source = make_audio("m4a")
    song = tmp_path / "faststart.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(source), "-c", "copy",
         "-movflags", "+faststart", str(song)],
        check=True,
    )  # fmt: skip
    with open(song, "rb") as handle:
        assert b"moov" in handle.read(4096)  # the moov atom comes first
    before = fingerprint(str(song))
    writers.write_tags(song, {**MANY, version_key(): ["v1"]}, namespace(), None)
    assert fingerprint(str(song)) == before


def test_different_audio_has_a_different_fingerprint(make_audio, audio_sources, tmp_path):
    prints = {fingerprint(str(audio_sources[fmt])) for fmt in FORMATS}
    assert len(prints) == len(FORMATS)
    song = make_audio("wav")
    shorter = tmp_path / "shorter.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(song), "-t", "20", str(shorter)],
        check=True,
    )
    assert fingerprint(str(shorter)) != fingerprint(str(song))
    copy = tmp_path / "copy.wav"
    shutil.copyfile(song, copy)
    assert fingerprint(str(copy)) == fingerprint(str(song))
