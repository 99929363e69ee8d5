"""tag_files: a batch of real files, the next file's decoding started while this one's
models run, each file still what tag_file alone makes of it."""

import os
import shutil
import subprocess
from pathlib import Path

from django.conf import settings

from tagging import tagfiles
from tagging.keys import namespace, version_key
from tagging.pipeline import tag_file, tag_files

SHARED = Path(settings.SHARED_DIR)
JORAM = SHARED / "fixtures/audio/joram-moments_of_clarity-08-solipsism-59-88.mp3"
GUITAR = SHARED / "fixtures/audio/TRWJAZW128F42760DD_test.mp3"


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def _decoders_running() -> list[str]:
    """The ffmpeg and ffprobe processes this test process started that still run."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            parent = int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and name in ("ffmpeg", "ffprobe"):
            found.append(name)
    return found


def test_a_batch_gives_each_file_what_tag_file_alone_gives_and_a_dry_run_writes_nothing(
    tmp_path,
):
    files = [tmp_path / "joram.flac", tmp_path / "guitar.mp3", tmp_path / "joram-slow.ogg"]
    _ffmpeg("-i", str(JORAM), str(files[0]))
    shutil.copyfile(GUITAR, files[1])
    _ffmpeg("-i", str(JORAM), "-af", "atempo=0.8", "-c:a", "libvorbis", str(files[2]))
    before = {path: path.read_bytes() for path in files}
    batch = list(tag_files(files, dry_run=True))
    assert [r.path for r in batch] == [str(path) for path in files]
    assert [r.status for r in batch] == ["tagged"] * 3
    for path, result in zip(files, batch, strict=True):
        alone = tag_file(path, dry_run=True)
        assert result.tags == alone.tags and result.tags[version_key()]
        assert [s.as_dict() for s in result.scores] == [s.as_dict() for s in alone.scores]
        assert path.read_bytes() == before[path]
    assert batch[0].tags != batch[2].tags  # the slowed copy is heard as itself
    assert _decoders_running() == []


def test_it_goes_on_past_a_broken_a_short_and_a_tagged_file_and_writes_the_good_ones(
    tmp_path, audio_stream_hash
):
    good, broken, short, tagged, last = (
        tmp_path / name
        for name in ("good.flac", "broken.mp3", "short.flac", "tagged.mp3", "last.mp3")
    )
    _ffmpeg("-i", str(JORAM), str(good))
    broken.write_bytes(b"not audio at all " * 500)
    _ffmpeg("-i", str(JORAM), "-t", "5", str(short))
    shutil.copyfile(GUITAR, tagged)
    assert tag_file(tagged).status == "tagged"
    shutil.copyfile(GUITAR, last)
    hashes = {path: audio_stream_hash(path) for path in (good, last)}
    tagged_bytes = tagged.read_bytes()
    results = list(tag_files([good, broken, short, tagged, last]))
    assert [r.status for r in results] == ["tagged", "error", "skipped", "skipped", "tagged"]
    assert results[1].error  # said, as tag_file says it
    assert "shorter than the 7 s minimum" in results[2].error
    assert "already tagged" in results[3].error
    assert tagged.read_bytes() == tagged_bytes
    for path, result in ((good, results[0]), (last, results[4])):
        assert tagfiles.read_tags(path, namespace()) == result.tags
        assert audio_stream_hash(path) == hashes[path]
    assert _decoders_running() == []


def test_a_file_replaced_after_its_decoding_started_is_heard_as_it_is_now(tmp_path):
    first, second = tmp_path / "first.flac", tmp_path / "second.mp3"
    _ffmpeg("-i", str(JORAM), str(first))
    shutil.copyfile(JORAM, second)
    calls, replaced = [], []

    def progress(what: str, done: int, total: int) -> None:
        # Once the first file's models ran, the second file's decoding has started.
        calls.append(done)
        if len(calls) == 2:
            incoming = tmp_path / "incoming.mp3"
            shutil.copyfile(GUITAR, incoming)
            os.replace(incoming, second)
            replaced.append(done)

    results = list(tag_files([first, second], dry_run=True, progress=progress))
    assert replaced and [r.status for r in results] == ["tagged", "tagged"]
    assert results[1].tags == tag_file(second, dry_run=True).tags  # the guitar piece
    assert results[1].tags != tag_file(first, dry_run=True).tags


def test_leaving_a_batch_early_stops_the_next_files_decoder(tmp_path):
    short_one, long_one = tmp_path / "a.flac", tmp_path / "b.flac"
    _ffmpeg("-i", str(JORAM), str(short_one))
    _ffmpeg("-stream_loop", "5", "-i", str(JORAM), "-c:a", "flac", str(long_one))
    batch = tag_files([short_one, long_one], dry_run=True)
    assert next(batch).status == "tagged"
    assert "ffmpeg" in _decoders_running()  # the 3-minute file, decoding ahead
    batch.close()
    assert _decoders_running() == []
