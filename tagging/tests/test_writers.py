"""Tests for tagging.writers (read back with tagging.tagfiles): real files of every
format, written by ffmpeg.

The fixtures (``make_audio``, ``audio_stream_hash``) live in the root
conftest.py. No database is needed.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import mutagen
import pytest
from mutagen.flac import FLAC, Picture
from mutagen.id3 import TXXX, Encoding
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis

from tagging import writers
from tagging.tagfiles import read_moods, read_tags
from tagging.writers import InvalidTagsError, TagWriteError, write_tags

FORMATS = ["mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"]
ID3_FORMATS = ["mp3", "wav", "aiff"]
NS = "nom"

TAGS = {
    "nom_mood_happy_msd_musicnn_1__happy": ["0.8123"],
    "nom_genre_discogs_effnet_1__top": ["Electronic", "Ambient", "Ünïcødé ✓"],
    "nom_version": ["1"],
}

MakeAudio = Callable[..., Path]


# --------------------------------------------------------------------------
# Helpers: independent views of a file (mutagen directly and ffprobe)
# --------------------------------------------------------------------------


def _is_ours(name: str) -> bool:
    lowered = name.lower()
    for prefix in ("", "txxx:", "----:com.apple.itunes:"):
        if lowered.startswith(prefix + "nom_"):
            return True
        if lowered == prefix + "mood" or lowered == "tmoo":
            return True
    return False


def foreign_snapshot(path: Path) -> list:
    """Every tag mutagen sees that is not Nomarr's, including cover art bytes."""
    audio = mutagen.File(path)
    tags = audio.tags
    if isinstance(audio, (FLAC, OggVorbis, OggOpus)):
        # Ordered list: foreign Vorbis fields must even keep their order.
        snapshot = [(k, v) for k, v in tags if not _is_ours(k)]
        if isinstance(audio, FLAC):
            snapshot += [("picture", p.type, p.mime, p.desc, p.data) for p in audio.pictures]
        return snapshot
    if isinstance(audio, MP4):
        return sorted(
            (key, repr([(bytes(v), getattr(v, "imageformat", None)) for v in values]))
            if values and isinstance(values[0], bytes)
            else (key, repr(values))
            for key, values in tags.items()
            if not _is_ours(key)
        )
    return sorted((key, repr(frame)) for key, frame in tags.items() if not _is_ours(key))


def ffprobe_tags(path: Path) -> dict:
    """Container and stream tags as ffmpeg sees them (a second parser; it also
    reads WAV INFO / AIFF NAME chunks that mutagen ignores)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format_tags:stream_tags", "-of", "json", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out)
    streams = [
        {k: v for k, v in s.get("tags", {}).items() if not _is_ours(k)}
        for s in data.get("streams", [])
    ]
    fmt = {k: v for k, v in data.get("format", {}).get("tags", {}).items() if not _is_ours(k)}
    return {"format": fmt, "streams": streams}


def cover_art(path: Path) -> bytes:
    audio = mutagen.File(path)
    if isinstance(audio, FLAC):
        return audio.pictures[0].data
    if isinstance(audio, (OggVorbis, OggOpus)):
        raw = audio.tags["METADATA_BLOCK_PICTURE"][0]
        return Picture(base64.b64decode(raw)).data
    if isinstance(audio, MP4):
        return bytes(audio.tags["covr"][0])
    return audio.tags.getall("APIC")[0].data


def leftover_temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".nomarr-*.tmp"))


def add_raw_nom_key(path: Path, key: str, value: str) -> None:
    """Write a key the way another tool (or an old Nomarr) might: odd case."""
    audio = mutagen.File(path)
    if isinstance(audio, MP4):
        audio.tags[f"----:com.apple.iTunes:{key}"] = [
            MP4FreeForm(value.encode(), dataformat=AtomDataType.UTF8)
        ]
    elif isinstance(audio, (FLAC, OggVorbis, OggOpus)):
        audio.tags.append((key, value))
    else:
        audio.tags.add(TXXX(encoding=Encoding.UTF8, desc=key, text=[value]))
    audio.save()


# --------------------------------------------------------------------------
# Every format
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_writes_tags_and_reads_them_back_exactly(make_audio: MakeAudio, fmt: str) -> None:
    path = make_audio(fmt)
    assert read_tags(path, NS) == {}

    write_tags(path, TAGS, NS, moods=None)

    assert read_tags(path, NS) == TAGS
    assert read_tags(path, "NOM") == TAGS  # namespace is case-insensitive too
    assert leftover_temps(path.parent) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_stores_keys_the_way_each_format_expects(make_audio: MakeAudio, fmt: str) -> None:
    path = make_audio(fmt)
    write_tags(path, {"nom_x": ["a", "b"]}, NS, moods=["Happy"])

    audio = mutagen.File(path)
    if fmt in ID3_FORMATS:
        assert audio.tags.version[:2] == (2, 4)
        assert audio.tags["TXXX:nom_x"].text == ["a", "b"]
        assert audio.tags["TMOO"].text == ["Happy"]
    elif fmt == "m4a":
        values = audio.tags["----:com.apple.iTunes:nom_x"]
        assert values == [b"a", b"b"]
        assert all(v.dataformat == AtomDataType.UTF8 for v in values)
        assert audio.tags["----:com.apple.iTunes:MOOD"] == [b"Happy"]
    else:
        assert [(k, v) for k, v in audio.tags if k.lower() in ("nom_x", "mood")] == [
            ("NOM_X", "a"),
            ("NOM_X", "b"),
            ("MOOD", "Happy"),
        ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_writes_replaces_and_removes_mood(make_audio: MakeAudio, fmt: str) -> None:
    path = make_audio(fmt)
    assert read_moods(path) == []

    write_tags(path, TAGS, NS, moods=["Happy", "Relaxed"])
    assert read_moods(path) == ["Happy", "Relaxed"]

    write_tags(path, TAGS, NS, moods=None)  # None: leave MOOD alone
    assert read_moods(path) == ["Happy", "Relaxed"]

    write_tags(path, TAGS, NS, moods=["Sad"])
    assert read_moods(path) == ["Sad"]

    write_tags(path, TAGS, NS, moods=[])  # empty: remove MOOD
    assert read_moods(path) == []
    assert read_tags(path, NS) == TAGS


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_keeps_foreign_tags_and_cover_art(make_audio: MakeAudio, fmt: str) -> None:
    path = make_audio(fmt)
    mutagen_before = foreign_snapshot(path)
    ffprobe_before = ffprobe_tags(path)
    cover_before = cover_art(path)
    assert cover_before.startswith(b"\x89PNG")
    assert ("TXXX:NOMAD_RATING" in str(mutagen_before)) or ("NOMAD_RATING" in str(mutagen_before))

    write_tags(path, TAGS, NS, moods=["Happy"])

    assert foreign_snapshot(path) == mutagen_before
    assert ffprobe_tags(path) == ffprobe_before
    assert cover_art(path) == cover_before


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_never_changes_the_audio(
    make_audio: MakeAudio, audio_stream_hash: Callable[[Path], str], fmt: str
) -> None:
    path = make_audio(fmt)
    before = audio_stream_hash(path)
    length_before = mutagen.File(path).info.length
    assert before.startswith("SHA256=")

    write_tags(path, TAGS, NS, moods=["Happy"])
    write_tags(path, {"nom_other": ["x" * 5000]}, NS, moods=[])  # forces tag block resize

    assert audio_stream_hash(path) == before
    assert mutagen.File(path).info.length == pytest.approx(length_before)


@pytest.mark.parametrize("fmt", FORMATS)
def test_rewrite_replaces_old_nom_keys_but_keeps_foreign_tags(
    make_audio: MakeAudio, fmt: str
) -> None:
    path = make_audio(fmt)
    foreign = foreign_snapshot(path)
    write_tags(path, {"nom_a": ["1"], "nom_gone": ["2", "3"]}, NS, moods=["Happy"])

    write_tags(path, {"nom_a": ["9"], "nom_new": ["4"]}, NS, moods=None)

    assert read_tags(path, NS) == {"nom_a": ["9"], "nom_new": ["4"]}
    assert read_moods(path) == ["Happy"]
    assert foreign_snapshot(path) == foreign

    write_tags(path, {}, NS, moods=[])  # empty dict: remove all of Nomarr's keys
    assert read_tags(path, NS) == {}
    assert foreign_snapshot(path) == foreign


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_matches_nomarr_keys_case_insensitively(make_audio: MakeAudio, fmt: str) -> None:
    path = make_audio(fmt)
    add_raw_nom_key(path, "Nom_Legacy", "old")
    assert read_tags(path, NS) == {"nom_legacy": ["old"]}

    write_tags(path, {"nom_fresh": ["new"]}, NS, moods=None)

    assert read_tags(path, NS) == {"nom_fresh": ["new"]}
    assert "legacy" not in str(mutagen.File(path).tags.keys()).lower()


@pytest.mark.parametrize("fmt", FORMATS)
def test_unchanged_tags_are_not_rewritten(make_audio: MakeAudio, fmt: str) -> None:
    path = make_audio(fmt)
    write_tags(path, TAGS, NS, moods=["Happy"])
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = path.read_bytes()

    write_tags(path, TAGS, NS, moods=["Happy"])

    assert path.stat().st_mtime_ns == 1_000_000_000
    assert path.read_bytes() == before


@pytest.mark.parametrize("fmt", ID3_FORMATS)
def test_a_file_without_id3_tag_gets_one(make_audio: MakeAudio, fmt: str) -> None:
    path = make_audio(fmt)
    audio = mutagen.File(path)
    audio.delete()
    assert mutagen.File(path).tags is None

    write_tags(path, TAGS, NS, moods=["Happy"])

    audio = mutagen.File(path)
    assert audio.tags.version[:2] == (2, 4)
    assert read_tags(path, NS) == TAGS
    assert read_moods(path) == ["Happy"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system with little room: an 8 MiB tmpfs (needs root, as in CI and the
    image's tests; skipped where mounting is not allowed)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_leaves_the_original_untouched(
    make_audio: MakeAudio, small_disk: Path, fmt: str
) -> None:
    source = make_audio(fmt)
    path = small_disk / source.name
    shutil.copyfile(source, path)
    # Fill the disk, so the temporary copy the write goes through cannot be made whole.
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(0, free - path.stat().st_size // 2))
    before = path.read_bytes()

    with pytest.raises(TagWriteError, match="disk full"):
        write_tags(path, TAGS, NS, moods=["Happy"])

    assert path.read_bytes() == before
    assert leftover_temps(path.parent) == []


# --------------------------------------------------------------------------
# Failures during the write
# --------------------------------------------------------------------------


def test_disk_full_while_writing_the_copy_leaves_original_untouched(
    make_audio: MakeAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_audio("flac")
    before = path.read_bytes()

    def fsync_fails(_path: Path) -> None:  # fsync reports delayed ENOSPC on e.g. NFS
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers, "_fsync_file", fsync_fails)
    with pytest.raises(TagWriteError, match=r"disk full.*left unchanged"):
        write_tags(path, TAGS, NS, moods=None)

    assert path.read_bytes() == before
    assert leftover_temps(path.parent) == []


def test_a_file_modified_during_tagging_is_refused(
    make_audio: MakeAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_audio("mp3")
    real_verify = writers._verify_temp

    def verify_while_another_program_writes(*args: object, **kwargs: object) -> None:
        real_verify(*args, **kwargs)
        with open(path, "ab") as other_program:  # e.g. another tagger appends ID3v1
            other_program.write(b"TAG" + b"\x00" * 125)

    monkeypatch.setattr(writers, "_verify_temp", verify_while_another_program_writes)
    with pytest.raises(TagWriteError, match="changed while tagging"):
        write_tags(path, TAGS, NS, moods=None)

    # The other program's change survives; ours was not applied.
    assert path.read_bytes().endswith(b"TAG" + b"\x00" * 125)
    assert read_tags(path, NS) == {}
    assert leftover_temps(path.parent) == []


def test_a_file_touched_during_tagging_is_refused(
    make_audio: MakeAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_audio("flac")
    before = path.read_bytes()
    real_verify = writers._verify_temp

    def verify_while_mtime_changes(*args: object, **kwargs: object) -> None:
        real_verify(*args, **kwargs)
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # same size

    monkeypatch.setattr(writers, "_verify_temp", verify_while_mtime_changes)
    with pytest.raises(TagWriteError, match="changed while tagging"):
        write_tags(path, TAGS, NS, moods=None)

    assert path.read_bytes() == before
    assert leftover_temps(path.parent) == []


def test_directory_where_temp_cannot_be_created_is_reported(
    make_audio: MakeAudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_audio("mp3")
    before = path.read_bytes()

    def no_permission(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", no_permission)
    with pytest.raises(TagWriteError, match="directory is not writable"):
        write_tags(path, TAGS, NS, moods=None)
    assert path.read_bytes() == before


# --------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------


def test_missing_file_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp3"
    with pytest.raises(TagWriteError, match="no such file"):
        write_tags(missing, TAGS, NS, moods=None)
    with pytest.raises(TagWriteError, match="no such file"):
        read_tags(missing, NS)
    with pytest.raises(TagWriteError, match="no such file"):
        read_moods(missing)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "album.mp3"
    folder.mkdir()
    with pytest.raises(TagWriteError, match="not a regular file"):
        write_tags(folder, TAGS, NS, moods=None)


def test_read_only_file_is_refused_even_for_root(make_audio: MakeAudio) -> None:
    path = make_audio("mp3")
    before = path.read_bytes()
    path.chmod(0o444)

    with pytest.raises(TagWriteError, match="file is read-only"):
        write_tags(path, TAGS, NS, moods=["Happy"])

    assert path.read_bytes() == before
    assert oct(path.stat().st_mode & 0o777) == oct(0o444)
    assert leftover_temps(path.parent) == []
    assert read_tags(path, NS) == {}  # reading a read-only file is fine


def test_read_only_directory_is_refused_even_for_root(make_audio: MakeAudio) -> None:
    path = make_audio("mp3")
    before = path.read_bytes()
    path.parent.chmod(0o555)
    try:
        with pytest.raises(TagWriteError, match="directory is not writable"):
            write_tags(path, TAGS, NS, moods=None)
    finally:
        path.parent.chmod(0o755)
    assert path.read_bytes() == before
    assert leftover_temps(path.parent) == []


def test_text_file_named_mp3_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("these are not the droids you are looking for\n" * 50)
    before = path.read_bytes()

    with pytest.raises(TagWriteError, match="not a supported audio file"):
        write_tags(path, TAGS, NS, moods=None)
    with pytest.raises(TagWriteError, match="not a supported audio file"):
        read_tags(path, NS)

    assert path.read_bytes() == before
    assert leftover_temps(tmp_path) == []


def test_empty_file_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "empty.flac"
    path.touch()
    with pytest.raises(TagWriteError, match=r"not a supported audio file.*empty"):
        write_tags(path, TAGS, NS, moods=None)
    assert path.read_bytes() == b""
    assert leftover_temps(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file_is_refused(make_audio: MakeAudio, fmt: str) -> None:
    source = make_audio(fmt)
    path = source.with_name(f"truncated.{fmt}")
    path.write_bytes(source.read_bytes()[:2048])
    before = path.read_bytes()

    with pytest.raises(TagWriteError, match=r"truncated|not a supported audio file") as info:
        write_tags(path, TAGS, NS, moods=None)

    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert leftover_temps(path.parent) == []


def test_truncated_mp3_says_truncated(make_audio: MakeAudio) -> None:
    source = make_audio("mp3")
    path = source.with_name("half.mp3")
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])

    with pytest.raises(TagWriteError, match="looks truncated"):
        write_tags(path, TAGS, NS, moods=None)


def test_unsupported_audio_format_is_refused(tmp_path: Path) -> None:
    # An ADTS .aac stream: real audio mutagen can parse, but not a format we tag.
    path = tmp_path / "song.aac"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", path],
        check=True,
    )
    before = path.read_bytes()
    with pytest.raises(TagWriteError, match="unsupported format AAC"):
        write_tags(path, TAGS, NS, moods=None)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "tags",
    [
        {"other_key": ["1"]},  # not ours: the next write could never remove it
        {"nom_": ["1"]},
        {"nom_a=b": ["1"]},
        {"nom_a": "not a list"},
        {"nom_a": [1.5]},
        {"nom_a": ["1"], "NOM_A": ["2"]},
    ],
)
def test_malformed_tags_are_refused_before_touching_the_file(
    make_audio: MakeAudio, tags: dict
) -> None:
    path = make_audio("ogg")
    before = path.read_bytes()
    with pytest.raises(InvalidTagsError) as info:
        write_tags(path, tags, NS, moods=None)
    assert isinstance(info.value, ValueError)
    assert path.read_bytes() == before


# --------------------------------------------------------------------------
# File system details
# --------------------------------------------------------------------------


def test_it_keeps_permissions(make_audio: MakeAudio) -> None:
    path = make_audio("m4a")
    path.chmod(0o640)
    write_tags(path, TAGS, NS, moods=None)
    assert path.stat().st_mode & 0o777 == 0o640


def test_it_writes_through_a_symlink(make_audio: MakeAudio) -> None:
    target = make_audio("flac")
    link = target.with_name("link.flac")
    link.symlink_to(target)

    write_tags(link, TAGS, NS, moods=None)

    assert link.is_symlink()
    assert read_tags(target, NS) == TAGS
