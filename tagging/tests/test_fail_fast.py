"""Files that cannot be tagged are refused before the analysis, and content, not name,
says a file's format.

A read-only file or folder, a file Nomarr may not write, a truncated file: each is
refused before any model runs (before, the models ran for 11 s and 530 MB first).
A dry run writes nothing, so it skips that check. A FLAC file named ``.mp3`` is
read, tagged and catalogued as FLAC, never failed with "can't sync to MPEG frame".
Real files, a real chmod (as root, without CAP_DAC_OVERRIDE), the real CLI.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mutagen
import pytest
from django.conf import settings
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TIT2, Encoding
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from library.metadata import read_file
from tagging import keys
from tagging.pipeline import tag_file
from tagging.tagfiles import open_audio, read_tags
from tagging.tests.support import without_dac_override
from tagging.writers import TagWriteError, check_can_write, write_tags

NS = "nom"
TAGS = {"nom_version": ["1"], "nom_mood_happy_x__happy": ["0.812"]}
#: Each fixture format, and what its content is.
KINDS = {
    "mp3": MP3,
    "flac": FLAC,
    "ogg": OggVorbis,
    "opus": OggOpus,
    "m4a": MP4,
    "wav": WAVE,
    "aiff": AIFF,
}
WRONG_NAMES = [(fmt, ext) for fmt, ext in itertools.product(KINDS, KINDS) if fmt != ext]


def temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".nomarr-*.tmp"))


def tag_in_another_process(*paths: Path, prefix: tuple[str, ...] = ()) -> tuple[list[dict], str]:
    """`manage.py tag --json` with Python's import log: the results, and the modules
    it imported."""
    proc = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-X",
            "importtime",
            "manage.py",
            "tag",
            "--json",
            *map(str, paths),
        ],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "nomarr_site.test_settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    imported = "\n".join(
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    )
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert results, f"manage.py tag said nothing (exit {proc.returncode}): {proc.stderr[-3000:]}"
    return results, imported


def cut_in_half(path: Path) -> Path:
    half = path.with_name(f"half-{path.name}")
    half.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    path.unlink()
    return half


def moov_first(path: Path) -> Path:
    """The same M4A with its index (moov) before the audio, as streaming tools write it."""
    target = path.with_name(f"fast-{path.name}")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-c", "copy",
         "-movflags", "+faststart", str(target)],
        check=True,
    )  # fmt: skip
    path.unlink()
    return target


# --------------------------------------------------------------------------
# Refused before the analysis
# --------------------------------------------------------------------------


def test_read_only_files_and_folders_are_refused_before_any_model_loads(make_audio, tmp_path):
    read_only = make_audio("mp3", name="read-only")
    read_only.chmod(0o444)
    locked_folder = tmp_path / "locked"
    locked_folder.mkdir()
    in_locked = locked_folder / "song.flac"
    shutil.move(make_audio("flac"), in_locked)
    locked_folder.chmod(0o555)
    refused = [read_only, in_locked]
    if os.geteuid() == 0:  # someone else's file, that we may read but not write
        foreign = make_audio("ogg", name="foreign")
        os.chown(foreign, 65534, 65534)
        refused.append(foreign)
    before = {path: path.read_bytes() for path in refused}
    try:
        results, imported = tag_in_another_process(*refused, prefix=without_dac_override())
    finally:
        locked_folder.chmod(0o755)

    errors = {Path(r["path"]): r["error"] for r in results if r["status"] == "error"}
    assert errors == {
        read_only: f"file is read-only: {read_only}",
        in_locked: f"directory is not writable: {locked_folder} "
        "(tags are written via a temporary file next to song.flac)",
        **{
            foreign: f"file is read-only for Nomarr (no write permission): {foreign}"
            for foreign in refused[2:]
        },
    }
    assert "essentia" not in imported.split()  # no model was loaded, no audio decoded
    assert "tagging.pipeline" in imported.split()
    assert {path: path.read_bytes() for path in refused} == before
    assert temps(tmp_path) == [] and temps(locked_folder) == []


@pytest.mark.parametrize("fmt", ["mp3", "wav", "aiff", "m4a"])
def test_a_truncated_file_is_refused_before_any_model_runs(make_audio, fmt):
    path = make_audio(fmt)
    if fmt == "m4a":
        path = moov_first(path)  # else cutting it loses the index and it is no M4A at all
    path = cut_in_half(path)
    before = path.read_bytes()
    models_run: list[str] = []

    result = tag_file(path, progress=lambda model, done, total: models_run.append(model))

    assert result.status == "error"
    assert result.error.startswith(f"file looks truncated: {path} (its ")
    assert models_run == []
    assert path.read_bytes() == before and temps(path.parent) == []


def test_check_can_write_refuses_what_write_tags_would_refuse(make_audio, tmp_path):
    text = tmp_path / "notes.flac"
    text.write_text("not music")
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    read_only = make_audio("opus")
    read_only.chmod(0o444)
    for path in (text, empty, read_only, tmp_path / "missing.ogg", tmp_path):
        with pytest.raises(TagWriteError) as checked:
            check_can_write(path)
        with pytest.raises(TagWriteError) as written:
            write_tags(path, TAGS, NS, moods=None)
        assert str(checked.value) == str(written.value)
    check_can_write(make_audio("m4a", name="fine"))  # a writable, whole file passes


def test_a_dry_run_of_a_read_only_file_still_shows_its_tags(make_audio):
    path = make_audio("ogg")
    path.chmod(0o444)
    before = path.read_bytes()

    result = tag_file(path, dry_run=True)

    assert (result.status, result.error) == ("tagged", "")
    assert keys.version_key() in result.tags and result.scores
    assert path.read_bytes() == before


# --------------------------------------------------------------------------
# The content says the format
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "ext"), WRONG_NAMES, ids=[f"{f}-as-{e}" for f, e in WRONG_NAMES])
def test_a_file_under_a_wrong_name_is_tagged_as_what_it_is(make_audio, audio_stream_hash, fmt, ext):
    path = make_audio(fmt)
    misnamed = path.with_name(f"misnamed.{ext}")
    path.rename(misnamed)
    audio_before = audio_stream_hash(misnamed)

    write_tags(misnamed, TAGS, NS, moods=["Happy"])

    assert type(mutagen.File(misnamed, options=[KINDS[fmt]])) is KINDS[fmt]
    assert type(open_audio(misnamed)) is KINDS[fmt]
    assert read_tags(misnamed, NS) == TAGS
    assert audio_stream_hash(misnamed) == audio_before
    info = read_file(str(misnamed), misnamed.stat(), NS)  # the library's view of it
    assert (info.error, info.format) == ("", fmt)
    assert temps(misnamed.parent) == []


def test_a_flac_named_mp3_is_analysed_and_tagged_as_flac(make_audio, audio_stream_hash):
    path = make_audio("flac")
    misnamed = path.with_name("really-flac.mp3")
    path.rename(misnamed)
    audio_before = audio_stream_hash(misnamed)

    result = tag_file(misnamed)

    assert (result.status, result.error) == ("tagged", "")
    assert FLAC(misnamed).tags[keys.version_key().upper()] == result.tags[keys.version_key()]
    assert audio_stream_hash(misnamed) == audio_before


@pytest.mark.parametrize("name", ["behind-id3.flac", "behind-id3.mp3"])
def test_a_flac_behind_an_id3_tag_stays_flac(make_audio, audio_stream_hash, name):
    """Some taggers put an ID3 tag in front of FLAC; mutagen's FLAC reads past it."""
    flac = make_audio("flac")
    path = flac.with_name(name)
    ID3().save(path)  # nothing but the tag
    id3 = ID3(path)
    id3.add(TIT2(encoding=Encoding.UTF8, text=["in front"]))
    id3.save(path, padding=lambda info: 0)
    path.write_bytes(path.read_bytes() + flac.read_bytes())
    audio_before = audio_stream_hash(path)

    write_tags(path, TAGS, NS, moods=None)

    assert type(open_audio(path)) is FLAC
    assert read_tags(path, NS) == TAGS
    assert audio_stream_hash(path) == audio_before
    assert path.read_bytes().startswith(b"ID3")  # the other tool's tag stays where it was


@pytest.mark.parametrize("name", ["song.mp3", "song.flac", "song.m4a", "song.wav"])
def test_audio_of_a_format_nomarr_does_not_tag_is_refused_whatever_its_name(tmp_path, name):
    aac = tmp_path / "song.aac"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "sine=d=10",
         "-c:a", "aac", str(aac)],
        check=True,
    )  # fmt: skip
    path = aac.rename(tmp_path / name)
    before = path.read_bytes()
    models_run: list[str] = []

    result = tag_file(path, progress=lambda model, done, total: models_run.append(model))

    assert result.status == "error"
    assert result.error.startswith("not a supported audio file")
    assert str(path) in result.error
    assert models_run == []
    assert path.read_bytes() == before and temps(tmp_path) == []
