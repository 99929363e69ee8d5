"""Rescans: a file whose size and mtime are unchanged is not opened again."""

import os

import pytest

from library.models import LibraryFile, TagValue
from tagging import writers
from tagging.keys import namespace, score_key, version_key

pytestmark = pytest.mark.django_db

SCORE = score_key("x", "y")


def snapshot():
    return {
        row.path: (row.pk, row.read_at, row.size, row.mtime_ns, row.title)
        for row in LibraryFile.objects.all()
    }, sorted(TagValue.objects.values_list("pk", "file_id", "key", "value"))


def test_an_unchanged_rescan_reads_no_file(seven, scan):
    scan()
    before = snapshot()
    again = scan()
    assert (again.seen, again.read, again.new, again.changed) == (7, 0, 0, 0)
    assert (again.moved, again.removed, again.errors) == (0, 0, 0)
    assert snapshot() == before


def test_a_rescan_does_not_even_open_files_whose_stat_is_unchanged(add, scan):
    """Garbage of the same size with the old mtime put back: only a read would notice."""
    song = add("a/song.flac")
    scan()
    st = song.stat()
    song.write_bytes(b"\0" * st.st_size)
    os.utime(song, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = scan()
    assert (again.read, again.errors) == (0, 0)
    row = LibraryFile.objects.get(path=str(song))
    assert row.error == "" and row.title
    # A full scan reads it and finds the damage.
    full = scan(full=True)
    assert (full.read, full.errors) == (1, 1)
    assert "corrupt" in LibraryFile.objects.get(path=str(song)).error


def test_a_file_whose_tags_changed_is_read_again(seven, scan):
    scan()
    song = seven[1]
    row_id = LibraryFile.objects.get(path=str(song)).pk
    writers.write_tags(song, {SCORE: ["0.5"], version_key(): ["v1"]}, namespace(), None)
    again = scan()
    assert (again.read, again.changed, again.new, again.moved) == (1, 1, 0, 0)
    row = LibraryFile.objects.get(path=str(song))
    assert row.pk == row_id
    assert (row.size, row.mtime_ns) == (song.stat().st_size, song.stat().st_mtime_ns)
    assert row.nom_version == "v1"
    assert TagValue.objects.get(file=row, key=SCORE).number == 0.5


def test_a_touched_file_is_read_but_its_tag_rows_stay(add, scan):
    song = add("a/song.mp3")
    scan()
    ids = list(TagValue.objects.values_list("pk", flat=True))
    os.utime(song, ns=(0, song.stat().st_mtime_ns + 10**9))
    again = scan()
    assert (again.read, again.changed) == (1, 1)
    assert list(TagValue.objects.values_list("pk", flat=True)) == ids


def test_a_full_scan_reads_every_file_without_counting_them_changed(seven, scan):
    scan()
    full = scan(full=True)
    assert (full.seen, full.read, full.changed, full.new) == (7, 7, 0, 0)
    assert full.full
