"""Deleted files leave the library; moved and renamed files keep their row."""

import shutil

import pytest

from library.models import LibraryFile, TagValue
from tagging import jobs, writers
from tagging.keys import namespace, score_key, version_key
from tagging.models import Job

# scaleout: bin/test runs these again on PostgreSQL (COPY, executemany, constraints).
pytestmark = [pytest.mark.django_db, pytest.mark.scaleout]

SCORE = score_key("mood_happy-msd-musicnn-1", "happy")


def tagged(path, score="0.873"):
    writers.write_tags(path, {SCORE: [score], version_key(): ["nomarr1-old"]}, namespace(), None)
    return path


def test_a_renamed_file_keeps_its_row_and_scores_without_being_read(add, scan, library):
    song = tagged(add("Artist/Album/01 Song.flac"))
    scan()
    row = LibraryFile.objects.get(path=str(song))
    (library / "Artist" / "Other Album").mkdir()
    moved = song.rename(library / "Artist" / "Other Album" / "01 - Song (remaster).flac")
    result = scan()
    assert (result.moved, result.new, result.removed, result.read) == (1, 0, 0, 0)
    after = LibraryFile.objects.get()
    assert after.pk == row.pk and after.path == str(moved)
    assert after.folder == str(moved.parent)
    assert TagValue.objects.get(file=after, key=SCORE).number == 0.873


def test_a_move_whose_file_changed_is_recognised_by_its_audio(add, scan, library):
    """A copy to another folder with its tags rewritten: new mtime and size, same audio."""
    song = tagged(add("old/song.ogg"))
    scan()
    row_id = LibraryFile.objects.get().pk
    target = library / "new" / "renamed.ogg"
    target.parent.mkdir()
    shutil.copyfile(song, target)
    song.unlink()
    tagged(target, "0.901")
    result = scan()
    assert (result.moved, result.new, result.removed, result.read) == (1, 0, 0, 1)
    after = LibraryFile.objects.get()
    assert after.pk == row_id and after.path == str(target)
    assert TagValue.objects.get(file=after, key=SCORE).number == 0.901


def test_deleted_files_and_folders_are_removed(seven, add, scan, library):
    extra = add("Gone/Entirely/x.mp3")
    scan()
    seven[0].unlink()
    shutil.rmtree(extra.parent.parent)
    result = scan()
    assert (result.removed, result.moved, result.new) == (2, 0, 0)
    paths = set(LibraryFile.objects.values_list("path", flat=True))
    assert paths == {str(p) for p in seven[1:]}
    assert not TagValue.objects.filter(file__path=str(seven[0])).exists()


def test_a_copy_is_new_while_the_original_stays(add, scan, library):
    song = add("a/song.flac")
    scan()
    shutil.copyfile(song, library / "a" / "copy.flac")
    result = scan()
    assert (result.new, result.moved, result.removed) == (1, 0, 0)
    assert LibraryFile.objects.count() == 2


def test_a_swap_of_two_files_is_two_changes_not_a_loss(add, scan, library):
    one, two = add("a/one.flac"), tagged(add("a/two.flac"))
    scan()
    ids = dict(LibraryFile.objects.values_list("path", "pk"))
    tmp = library / "a" / "tmp"
    one.rename(tmp)
    two.rename(one)
    tmp.rename(two)
    result = scan()
    assert (result.changed, result.removed, result.new, result.moved) == (2, 0, 0, 0)
    assert dict(LibraryFile.objects.values_list("path", "pk")) == ids
    assert LibraryFile.objects.get(path=str(one)).nom_version == "nomarr1-old"
    assert LibraryFile.objects.get(path=str(two)).nom_version == ""


def test_an_empty_root_does_not_empty_the_library(seven, scan, library):
    """An unmounted disk looks like an empty folder."""
    scan()
    for path in seven:
        path.unlink()
    result = scan()
    assert result.status == "failed" and "mounted" in result.message
    assert LibraryFile.objects.count() == 7


def test_a_pending_job_follows_its_moved_file(add, scan, library):
    song = add("a/song.flac")
    scan()
    job, _ = jobs.queue_file(song)
    moved = song.rename(library / "a" / "moved.flac")
    scan()
    assert Job.objects.get(pk=job.pk).path == str(moved)
