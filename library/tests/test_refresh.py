"""When a job writes tags, the file's rows are updated at once, without a rescan."""

import logging

import pytest
from django.db import connection

from library.models import LibraryFile, TagValue
from library.rows import refresh_file
from sonic.models import TrackEmbedding
from tagging import jobs, tagfiles
from tagging.catalog import get_catalog
from tagging.keys import namespace, prefix, score_key, version_key
from tagging.models import Job

# scaleout: bin/test runs these again on PostgreSQL (COPY, executemany, constraints).
pytestmark = [pytest.mark.django_db, pytest.mark.scaleout]


def test_a_real_job_that_tags_a_file_updates_its_rows_at_once(root_row, add, scan):
    song = add("Album/01.flac")
    root_row.auto_tag = True
    root_row.save()
    scan()
    row = LibraryFile.objects.get()
    assert row.nom_version == "" and not row.tags.filter(key__startswith=prefix()).exists()
    row_id = row.pk
    job = Job.objects.get()
    assert jobs.run(job.pk) == "done"
    job.refresh_from_db()
    assert job.result["status"] == "tagged", job.error
    row = LibraryFile.objects.get()
    assert row.pk == row_id
    assert row.nom_version == get_catalog().fingerprint
    stored = row.tag_dict()
    assert all(stored[key] == values for key, values in job.result["tags"].items())
    key = score_key("voice_instrumental-msd-musicnn-1", "instrumental")
    assert TagValue.objects.get(file=row, key=key).number == float(job.result["tags"][key][0])
    assert (row.size, row.mtime_ns) == (song.stat().st_size, song.stat().st_mtime_ns)
    # So the next scan has nothing to read, and nothing to queue.
    again = scan()
    assert (again.read, again.changed, again.queued) == (0, 0, 0)


def rename_table(old: str, new: str) -> None:
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(old)} RENAME TO {quote(new)}")


def test_a_failing_refresh_does_not_fail_the_job(root_row, add, scan, caplog):
    """A real job on a real clip, and a real reason for its refresh to fail: the real
    receiver of `library.signals.file_refreshed` that sonic's AppConfig connects (as
    any app above the library would) stores the job's embeddings in a table this
    database lacks, as on a worker machine upgraded before `migrate` ran. The refresh
    rolls back whole and is logged; the job is done; the next scan catches up."""
    song = add("a.flac")
    scan()
    before = LibraryFile.objects.values().get()
    table = TrackEmbedding._meta.db_table
    rename_table(table, f"{table}_not_migrated")
    job, _ = jobs.queue_file(song)
    with caplog.at_level(logging.ERROR, logger="library.rows"):
        assert jobs.run(job.pk) == "done"
    job.refresh_from_db()
    assert job.status == "done" and job.result["status"] == "tagged", job.error
    fingerprint = get_catalog().fingerprint
    assert tagfiles.read_tags(song, namespace())[version_key()] == [fingerprint]
    assert "library refresh" in caplog.text and table in caplog.text
    # Nothing half-written: the rows are as the scan left them.
    assert LibraryFile.objects.values().get() == before
    assert not TagValue.objects.filter(key__startswith=prefix()).exists()

    rename_table(f"{table}_not_migrated", table)  # `migrate` ran
    again = scan()
    assert (again.read, again.changed) == (1, 1)
    assert LibraryFile.objects.get().nom_version == fingerprint


def test_a_skipped_job_does_not_touch_the_library(add, scan):
    song = add("a.flac")
    scan()
    first, _ = jobs.queue_file(song)
    assert jobs.run(first.pk) == "done"
    # Tagged by the current model set, and its row knows it.
    assert LibraryFile.objects.get().nom_version == get_catalog().fingerprint
    row = LibraryFile.objects.values().get()
    tags = list(TagValue.objects.order_by("id").values_list("id", "key", "value"))
    stat = song.stat()

    again, created = jobs.queue_file(song)
    assert created
    assert jobs.run(again.pk) == "done"
    again.refresh_from_db()
    assert again.result["status"] == "skipped", again.result
    # The file was not written, nor its row refreshed (read_at included).
    assert (song.stat().st_size, song.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert LibraryFile.objects.values().get() == row
    assert list(TagValue.objects.order_by("id").values_list("id", "key", "value")) == tags


def test_refresh_creates_the_row_of_a_file_no_scan_has_seen(add, library):
    song = add("New/a.mp3")
    row = refresh_file(song)
    assert row.path == str(song) and row.root.path == str(library)
    assert row.title and row.tags.exists()


def test_refresh_ignores_paths_outside_the_library(tmp_path, library, audio_sources):
    assert refresh_file(audio_sources["mp3"]) is None
    assert not LibraryFile.objects.exists()


def test_refresh_of_a_renamed_file_takes_over_its_old_row(add, scan, library):
    song = add("a/old name.flac")
    scan()
    row_id = LibraryFile.objects.get().pk
    renamed = song.rename(library / "a" / "new name.flac")
    row = refresh_file(renamed)
    assert row.pk == row_id and row.path == str(renamed)
    assert LibraryFile.objects.count() == 1


def test_refresh_of_a_deleted_file_removes_its_row(add, scan):
    song = add("a.flac")
    scan()
    song.unlink()
    assert refresh_file(song) is None
    assert not LibraryFile.objects.exists()
