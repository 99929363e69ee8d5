"""The background scan: a django-q2 task on a schedule (every 30 minutes by default)."""

import importlib

import pytest
from django_q.brokers import get_broker
from django_q.models import Schedule
from django_q.signing import SignedPackage

from library import tasks
from library.models import LibraryFile, LibraryRoot, Scan
from library.scanning import ScanRefused, cancel_scans, claim_scan

pytestmark = pytest.mark.django_db


def test_the_library_is_scanned_every_30_minutes():
    # The schedule is the data migration's row; a transactional test that ran before
    # this one in the same process flushed it, so the migration's step is run again.
    from django.apps import apps

    importlib.import_module("library.migrations.0002_scan_schedule").create(apps, None)
    schedule = Schedule.objects.get(name="nomarr: scan the library")
    assert schedule.func == "library.tasks.scan_library"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 30, -1)


def test_the_task_scans_every_enabled_root_and_skips_a_busy_one(add, library, tmp_path):
    add("a.flac")
    busy = tmp_path / "busy"
    busy.mkdir()
    busy_root = LibraryRoot.objects.create(path=str(busy), auto_tag=False)
    off = tmp_path / "off"
    off.mkdir()
    LibraryRoot.objects.create(path=str(off), enabled=False)
    claim_scan(busy_root)
    outcome = tasks.scan_library()
    assert set(outcome) == {str(library), str(busy)}
    assert outcome[str(library)].endswith("done")
    assert outcome[str(busy)].startswith("refused")
    assert LibraryFile.objects.count() == 1
    assert Scan.objects.filter(trigger="schedule", status="done").count() == 1


def test_a_started_scan_is_claimed_at_once_and_run_by_a_worker(add, library):
    add("a.flac")
    tasks.scan_library()
    root = LibraryRoot.objects.get()
    started = tasks.start_scan(root, full=True, trigger="admin")
    assert started.status == "running" and started.full and started.trigger == "admin"
    # The first scan queued the new file's tagging job too (auto-tag is on by default).
    [task] = [t for t in queued_tasks() if t["func"] == "library.tasks.run_started_scan"]
    assert task["args"] == (started.pk,)
    with pytest.raises(ScanRefused, match="already running"):
        tasks.start_scan(root)
    assert tasks.run_started_scan(started.pk) == f"scan #{started.pk} done"
    started.refresh_from_db()
    assert (started.status, started.read) == ("done", 1)
    # A message that comes twice does nothing the second time.
    assert "no longer running" in tasks.run_started_scan(started.pk)


def test_a_scan_cancelled_before_a_worker_took_it_never_runs(add, root_row):
    add("a.flac")
    started = tasks.start_scan(root_row)
    assert cancel_scans(root_row) == 1
    assert "no longer running" in tasks.run_started_scan(started.pk)
    started.refresh_from_db()
    assert (started.status, started.seen) == ("cancelled", 0)
    assert not LibraryFile.objects.exists()


def test_a_disabled_root_is_not_started(library, tmp_path):
    root = LibraryRoot.objects.create(path=str(tmp_path), enabled=False)
    with pytest.raises(ScanRefused, match="disabled"):
        tasks.start_scan(root)
    assert not Scan.objects.exists() and queued_tasks() == []


def queued_tasks() -> list[dict]:
    """The django-q2 tasks waiting in the broker, all taken off it (a dequeue takes
    Q_CLUSTER's bulk, one by default)."""
    broker = get_broker()
    found: list[dict] = []
    while broker.queue_size():
        found += [SignedPackage.loads(payload) for _, payload in broker.dequeue() or []]
    return found
