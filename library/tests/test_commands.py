"""`manage.py scan [--full] [ROOT]`, `scan --cancel` and `scan --history`."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from library.models import LibraryFile, LibraryRoot, Scan
from library.scanning import claim_scan

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("scan", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_scan_seeds_the_settings_root_and_prints_counts_and_problems(add, library):
    add("a/song.flac")
    (library / "a" / "bad.mp3").write_bytes(b"junk" * 1000)
    out, _ = run()
    assert LibraryRoot.objects.get().from_settings
    assert f"of {library}: done" in out
    assert "seen 2, read 2, new 2" in out and "errors 1" in out
    assert "corrupt" in out and str(library / "a" / "bad.mp3") in out
    out, _ = run("--full")
    assert "read 2, new 0" in out


def test_scan_takes_a_root_by_path_or_name_and_refuses_others(add, library, tmp_path):
    add("a.flac")
    other = tmp_path / "other"
    other.mkdir()
    LibraryRoot.objects.create(path=str(other), name="Other")
    out, _ = run("Other")
    assert f"of {other}" in out and str(library) not in out
    out, _ = run(str(library) + "/")
    assert f"of {library}" in out and "new 1" in out
    with pytest.raises(CommandError, match="not a library root"):
        run(str(tmp_path))


def test_scan_without_any_root_says_so(settings):
    settings.NOMARR_LIBRARY_ROOTS = []
    with pytest.raises(CommandError, match="no library roots"):
        run()


def test_cancel_flags_the_running_scan(root_row):
    running = claim_scan(root_row)
    out, _ = run("--cancel")
    assert "1 running scan(s) asked to stop" in out
    running.refresh_from_db()
    assert running.cancel_requested


def test_history_lists_the_last_scans(add):
    add("a.flac")
    run()
    run()
    out, _ = run("--history", "5")
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"scan #{Scan.objects.first().pk}")
    assert LibraryFile.objects.count() == 1


def test_a_refused_scan_fails_the_command(root_row, add):
    add("a.flac")
    claim_scan(root_row)
    with pytest.raises(CommandError, match="refused or failed"):
        run()
