"""Scan control: one running scan per root, progress saved as it goes, cancel, time
budget, dead scans reaped, and a history of Scan rows."""

import shutil
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from library import scanning
from library.models import LibraryFile, LibraryRoot, Scan
from library.scanning import ScanRefused, cancel_scans, claim_scan, scan_root
from library.tests.helpers import manage
from nomarr_site.workers import worker_id

# scaleout: bin/test runs these again on PostgreSQL (COPY, executemany, constraints).
pytestmark = [pytest.mark.django_db, pytest.mark.scaleout]


@pytest.fixture
def every_file(monkeypatch):
    """Save progress (and look at the cancel flag) after every file."""
    monkeypatch.setattr(scanning, "PROGRESS_EVERY", 0)


@pytest.fixture
def twelve(add):
    return [add(f"Album {n // 4}/{n:02d}.{fmt}") for n, fmt in enumerate(["mp3", "flac"] * 6)]


def test_a_second_scan_of_the_same_root_is_refused(root_row, scan, tmp_path, add):
    add("a.flac")
    running = claim_scan(root_row)
    with pytest.raises(ScanRefused, match="already running"):
        scan()
    # Another root is not held up.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copyfile(root_row.path + "/a.flac", other / "b.flac")
    done = scan_root(LibraryRoot.objects.create(path=str(other), auto_tag=False))
    assert done.status == "done" and done.new == 1
    running.refresh_from_db()
    assert running.status == "running"


@pytest.mark.django_db(transaction=True)
def test_another_process_is_refused_while_a_scan_runs(root_row, add, library):
    add("a.flac")
    running = claim_scan(root_row)
    refused = manage("scan", library=library)
    assert refused.returncode != 0
    assert f"refused: a scan of {library} is already running (scan #{running.pk}" in (
        refused.stderr
    )
    assert Scan.objects.count() == 1
    Scan.objects.filter(pk=running.pk).update(status="done")
    ok = manage("scan", library=library)
    assert ok.returncode == 0, ok.stderr
    assert "done" in ok.stdout and "new 1" in ok.stdout


def test_progress_is_saved_to_the_scan_row_as_it_goes(twelve, scan, every_file):
    saved = []

    def watch(counts):
        saved.append(Scan.objects.first().seen)  # what the database holds now

    scan(on_progress=watch)
    assert saved[0] < saved[-1] == 12
    assert saved == sorted(saved) and len(set(saved)) >= 6


def test_a_cancelled_scan_stops_and_removes_nothing(twelve, add, scan, every_file):
    scan()
    twelve[0].unlink()
    twelve[-1].unlink()

    def cancel_midway(counts):
        if counts["seen"] == 4:
            assert cancel_scans() == 1

    result = scan(on_progress=cancel_midway)
    assert result.status == "cancelled" and result.finished_at
    assert 4 <= result.seen < 10
    assert result.removed == 0 and LibraryFile.objects.count() == 12
    # The next scan finishes the job.
    assert scan().removed == 2


def test_a_scan_stops_at_its_time_budget_and_the_next_carries_on(twelve, scan, every_file):
    result = scan(time_budget=1e-9)
    assert result.status == "interrupted"
    assert result.new < 12
    finished = scan()
    assert finished.status == "done"
    assert LibraryFile.objects.count() == 12


def test_a_scan_whose_process_died_is_reaped(root_row, add, scan):
    add("a.flac")
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = worker_id().rpartition(":")[0]
    ghost = Scan.objects.create(root=root_row, worker=f"{host}:{dead.pid}")
    result = scan()
    assert result.status == "done"
    ghost.refresh_from_db()
    assert ghost.status == "failed" and "died" in ghost.message


def test_a_scan_without_heartbeat_on_another_host_is_reaped(root_row, add, scan):
    add("a.flac")
    ghost = Scan.objects.create(root=root_row, worker="elsewhere:1")
    Scan.objects.filter(pk=ghost.pk).update(
        updated_at=timezone.now() - timedelta(seconds=scanning.STALE_AFTER + 1)
    )
    assert scan().status == "done"
    ghost.refresh_from_db()
    assert ghost.status == "failed" and "no progress" in ghost.message
    # A live one elsewhere is respected.
    Scan.objects.create(root=root_row, worker="elsewhere:2")
    with pytest.raises(ScanRefused):
        scan()


def test_scans_are_kept_as_history(add, scan, library):
    add("a.flac")
    scan()
    add("b.flac")
    scan()
    (library / "a.flac").unlink()
    scan(full=True)
    history = list(Scan.objects.values_list("status", "new", "removed", "full"))
    assert history == [("done", 0, 1, True), ("done", 1, 0, False), ("done", 1, 0, False)]
    assert all(s.finished_at >= s.started_at for s in Scan.objects.all())


def test_a_missing_root_folder_fails_the_scan_and_keeps_the_rows(add, scan, library, tmp_path):
    add("a.flac")
    scan()
    library.rename(tmp_path / "unmounted")
    result = scan()
    assert result.status == "failed" and "missing" in result.message
    assert LibraryFile.objects.count() == 1
