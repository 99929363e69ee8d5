"""The background scan: a django-q2 task on a schedule (every 30 minutes by default)."""

import pytest
from django_q.models import Schedule

from library import tasks
from library.models import LibraryFile, LibraryRoot, Scan
from library.scanning import start_scan

pytestmark = pytest.mark.django_db


def test_the_library_is_scanned_every_30_minutes():
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
    start_scan(busy_root)
    outcome = tasks.scan_library()
    assert set(outcome) == {str(library), str(busy)}
    assert outcome[str(library)].endswith("done")
    assert outcome[str(busy)].startswith("refused")
    assert LibraryFile.objects.count() == 1
    assert Scan.objects.filter(trigger="schedule", status="done").count() == 1


def test_the_admin_task_scans_one_root(add, library):
    add("a.flac")
    tasks.scan_library()
    root = LibraryRoot.objects.get()
    assert tasks.scan_one(root.pk, full=True).endswith("done")
    assert Scan.objects.first().full and Scan.objects.first().trigger == "admin"
    assert tasks.scan_one(10**9) == "no such root"
