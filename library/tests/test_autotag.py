"""Auto-tag: a scan queues new files, and files tagged by an older model set, once."""

import pytest

from library import autotag, scanning
from library.models import LibraryFile
from tagging import catalog, jobs, writers
from tagging.catalog import get_catalog
from tagging.keys import namespace, score_key, version_key
from tagging.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def auto(root_row):
    root_row.auto_tag = True
    root_row.save()
    return root_row


def pending() -> set[str]:
    return set(Job.objects.filter(status="pending").values_list("path", flat=True))


def test_new_files_are_queued_when_the_root_has_auto_tag_on(auto, seven, scan):
    result = scan()
    assert result.queued == 7
    assert pending() == {str(p) for p in seven}
    assert not Job.objects.filter(force=True).exists()


def test_nothing_is_queued_when_auto_tag_is_off(root_row, seven, scan):
    assert not root_row.auto_tag
    assert scan().queued == 0
    assert not Job.objects.exists()


def test_files_tagged_by_an_older_model_set_are_queued_and_current_ones_not(auto, add, scan):
    current = get_catalog().fingerprint
    old, fresh = add("old.flac"), add("fresh.flac")
    writers.write_tags(old, {version_key(): ["nomarr1-000000000000"]}, namespace(), None)
    writers.write_tags(fresh, {version_key(): [current]}, namespace(), None)
    assert scan().queued == 1
    assert pending() == {str(old)}


def test_a_file_is_queued_once_per_model_set(auto, add, scan, monkeypatch):
    song = add("a.flac")
    assert scan().queued == 1
    # The job ran and left the file as it was (skipped, or failed): no second job.
    Job.objects.update(status="done")
    again = scan(full=True)
    assert again.queued == 0 and Job.objects.count() == 1
    # A new model set queues it again.
    monkeypatch.setattr(catalog, "current_version", lambda: "nomarr1-newmodels000")
    assert scan().queued == 1
    assert pending() == {str(song)}


def test_a_changed_file_that_lost_its_tags_is_queued_again(auto, add, scan):
    song = add("a.flac")
    scan()
    Job.objects.update(status="done")
    # another tool rewrote it
    writers.write_tags(song, {score_key("x", "y"): ["1"]}, namespace(), None)
    assert scan().queued == 1


def test_auto_tag_turned_on_later_queues_what_is_there(root_row, seven, scan):
    scan()
    assert not Job.objects.exists()
    root_row.auto_tag = True
    root_row.save()
    assert scan().queued == 7


def test_short_and_unreadable_files_are_not_queued(auto, add, scan, settings, library):
    add("a.flac")
    (library / "broken.mp3").write_bytes(b"not audio at all" * 100)
    settings.NOMARR_MIN_DURATION = 60  # the 30-s clip is now too short to tag
    result = scan()
    assert (result.queued, result.errors) == (0, 1)
    settings.NOMARR_MIN_DURATION = 7
    result = scan()
    assert result.queued == 1 and pending() == {str(library / "a.flac")}
    assert LibraryFile.objects.get(path=str(library / "broken.mp3")).queued_version == ""


def test_without_models_nothing_is_queued_and_the_scan_says_why(
    auto, add, scan, settings, tmp_path
):
    add("a.flac")
    installed = settings.NOMARR_MODELS_DIRS
    settings.NOMARR_MODELS_DIRS = [tmp_path / "no-models"]
    jobs.refresh_models()  # the models are gone, and the user refreshed the list
    try:
        result = scan()
    finally:
        settings.NOMARR_MODELS_DIRS = installed
        jobs.refresh_models()
    assert result.status == "done" and result.queued == 0
    assert "no models" in result.message


def test_queueing_stops_with_the_scan_and_the_next_scan_queues_the_rest(
    auto, seven, scan, monkeypatch
):
    monkeypatch.setattr(autotag, "QUEUE_CHUNK", 2)
    monkeypatch.setattr(scanning, "PROGRESS_EVERY", 0)

    def cancel_once_some_are_queued(counts):
        if counts["queued"] >= 2:
            scanning.cancel_scans()

    stopped = scan(on_progress=cancel_once_some_are_queued)
    # The flag is seen at the next chunk.
    assert stopped.status == "cancelled" and stopped.queued == 4
    assert len(pending()) == 4
    assert scan().queued == 3
    assert pending() == {str(p) for p in seven}


def test_a_first_scan_queues_in_bulk_with_one_message_for_the_workers(
    auto, seven, scan, monkeypatch, django_capture_on_commit_callbacks
):
    """One insert a chunk, and past DISPATCH_INLINE new jobs one broker message (a worker
    sends the run messages): not a job insert and a message per file."""
    from django_q.models import OrmQ

    monkeypatch.setattr(jobs, "DISPATCH_INLINE", 2)  # so that 7 files are "many"
    with django_capture_on_commit_callbacks(execute=True):
        assert scan().queued == 7
    assert pending() == {str(p) for p in seven}
    [message] = OrmQ.objects.all()
    assert message.task["func"] == "tagging.tasks.send_run_messages"
    assert sorted(message.task["args"][0]) == sorted(Job.objects.values_list("pk", flat=True))
