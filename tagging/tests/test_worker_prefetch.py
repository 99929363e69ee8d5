"""A worker decodes its next job's file while this job's models run (jobs.next_to_run,
pipeline.tag_file's `upcoming`): the next job is still tagged as it would be alone,
nothing outside the library is read ahead, and a stream never taken stops itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tagging import jobs, pipeline, tagfiles
from tagging.keys import namespace
from tagging.models import Job, WorkerState
from tagging.tests.support import wait_until
from tagging.tests.test_tag_files import _decoders_running

pytestmark = [pytest.mark.django_db, pytest.mark.scaleout]

Status = Job.Status

JORAM = Path(settings.SHARED_DIR) / "fixtures/audio/joram-moments_of_clarity-08-solipsism-59-88.mp3"


def flac(target: Path, loops: int = 0) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops), "-i", str(JORAM),
         "-c:a", "flac", str(target)],
        check=True,
    )  # fmt: skip
    return target


def queue(*paths: Path) -> list[int]:
    return [job.pk for job, _ in jobs.queue_files(list(paths))]


def test_the_next_jobs_file_is_decoded_ahead_and_tagged_as_alone(library, audio_stream_hash):
    first = flac(library / "a" / "first.flac")
    second = flac(
        library / "b" / "second.flac", loops=2
    )  # 90 s: still decoding at the end of the first
    alone = pipeline.tag_file(second, dry_run=True)
    hashes = {path: audio_stream_hash(path) for path in (first, second)}
    one, two = queue(first, second)
    assert jobs.next_to_run(one) == second
    assert jobs.run(one) == Status.DONE
    assert "ffmpeg" in _decoders_running()  # the second file's, started during the first
    assert jobs.run(two) == Status.DONE
    assert _decoders_running() == []
    for pk, path in ((one, first), (two, second)):
        job = Job.objects.get(pk=pk)
        assert job.result["status"] == "tagged"
        assert audio_stream_hash(path) == hashes[path]
    assert {k: v for k, v in tagfiles.read_tags(second, namespace()).items()} == alone.tags


def test_a_stream_whose_job_never_comes_stops_itself(library, monkeypatch):
    monkeypatch.setattr(pipeline, "UNTAKEN_LIFE", 0.5)
    first = flac(library / "first.flac")
    second = flac(library / "second.flac", loops=2)
    one, two = queue(first, second)
    assert jobs.run(one) == Status.DONE
    jobs.remove(two)  # the job it was decoding for is gone
    wait_until(lambda: _decoders_running() == [], 10, "the untaken decoder to stop")
    # A later job of the same file decodes it afresh, whole.
    (three,) = queue(second)
    assert jobs.run(three) == Status.DONE
    assert Job.objects.get(pk=three).result["status"] == "tagged"


def test_nothing_outside_the_library_is_read_ahead(library, tmp_path):
    first = flac(library / "first.flac")
    folder = library / "incoming"
    flac(folder / "second.flac", loops=2)
    one, two = queue(first, folder / "second.flac")
    outside = tmp_path / "outside"
    shutil.move(folder, outside)
    folder.symlink_to(outside)  # the folder swapped for a symlink out, after queueing
    assert jobs.next_to_run(one) is None
    assert jobs.run(one) == Status.DONE
    assert _decoders_running() == []
    assert jobs.run(two) == Status.ERROR
    assert "outside the library" in Job.objects.get(pk=two).error


def test_a_paused_queue_or_a_cluster_of_several_workers_reads_nothing_ahead(library, settings):
    first, second = flac(library / "first.flac"), flac(library / "second.flac")
    one, _ = queue(first, second)
    assert jobs.next_to_run(one) == second
    jobs.set_paused(True)
    assert jobs.next_to_run(one) is None
    jobs.set_paused(False)
    assert not WorkerState.get().paused
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "workers": 2}
    assert jobs.next_to_run(one) is None


def test_with_read_ahead_off_the_next_file_is_opened_only_at_its_turn(library, settings):
    settings.NOMARR_READ_AHEAD = False
    first = flac(library / "first.flac")
    second = flac(library / "second.flac", loops=2)
    one, two = queue(first, second)
    assert jobs.run(one) == Status.DONE
    assert _decoders_running() == []
    assert jobs.run(two) == Status.DONE


@pytest.fixture(autouse=True)
def no_stream_left():
    """A stream a test left prepared in this thread goes with the test."""
    yield
    pipeline._Stream.drop()
