"""Unreadable files, permission errors, symlink loops, names that are not UTF-8 and
empty folders are counted and reported; none of them stops a scan."""

import os
import shutil
import subprocess

import pytest

from library.models import LibraryFile, Scan
from library.tests.helpers import manage
from tagging.tests.support import without_dac_override

pytestmark = pytest.mark.django_db


def problems(scan: Scan) -> dict[str, str]:
    return {p["path"]: p["problem"] for p in scan.problems}


def test_a_corrupt_file_is_reported_kept_out_of_tagging_and_retried_when_it_changes(
    add, scan, library, audio_sources
):
    add("a/good.flac")
    broken = library / "a" / "broken.mp3"
    broken.write_bytes(os.urandom(20_000))
    (library / "a" / "empty.flac").write_bytes(b"")
    result = scan()
    assert result.status == "done"
    assert (result.seen, result.new, result.errors) == (3, 3, 2)
    found = problems(result)
    assert "corrupt" in found[str(broken)] and found[str(library / "a" / "empty.flac")] == (
        "empty file"
    )
    row = LibraryFile.objects.get(path=str(broken))
    assert "corrupt" in row.error and row.format == ""
    # Unchanged, it is not read again; repaired, it is.
    assert scan().read == 0
    shutil.copyfile(audio_sources["mp3"], broken)
    fixed = scan()
    assert (fixed.read, fixed.changed, fixed.errors) == (1, 1, 1)
    assert LibraryFile.objects.get(path=str(broken)).error == ""


def test_symlink_loops_and_broken_links_are_reported(add, scan, library):
    add("a/song.flac")
    (library / "loop-a").symlink_to(library / "loop-b")
    (library / "loop-b").symlink_to(library / "loop-a")
    (library / "a" / "self").symlink_to(library / "a" / "self")
    (library / "a" / "dangling.mp3").symlink_to(library / "nowhere.mp3")
    result = scan()
    assert result.status == "done" and result.seen == 1
    assert result.errors == 4
    found = problems(result)
    assert found[str(library / "loop-a")] == "symlink loop"
    assert found[str(library / "a" / "self")] == "symlink loop"
    assert found[str(library / "a" / "dangling.mp3")] == "broken symlink"


def test_symlinks_are_not_followed_and_links_out_of_the_library_are_reported(
    add, scan, library, tmp_path, audio_sources
):
    song = add("a/song.flac")
    (library / "b").mkdir()
    (library / "b" / "same-song.flac").symlink_to(song)
    (library / "b" / "album-link").symlink_to(library / "a")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(audio_sources["mp3"], outside / "x.mp3")
    (library / "b" / "elsewhere").symlink_to(outside)
    result = scan()
    assert list(LibraryFile.objects.values_list("path", flat=True)) == [str(song)]
    assert (result.seen, result.skipped, result.errors) == (1, 3, 0)
    assert "outside the library" in problems(result)[str(library / "b" / "elsewhere")]


def test_names_that_are_not_utf8_are_reported_not_fatal(add, scan, library, audio_sources):
    add("a/fine.flac")
    folder = os.fsencode(library / "a")
    bad_file = folder + b"/caf\xe9.mp3"  # Latin-1, not UTF-8
    shutil.copyfile(audio_sources["mp3"], bad_file)
    bad_folder = os.fsencode(library) + b"/Bj\xf6rk"
    os.mkdir(bad_folder)
    shutil.copyfile(audio_sources["flac"], bad_folder + b"/01.flac")
    result = scan()
    assert result.status == "done"
    assert (result.seen, result.errors) == (1, 2)
    found = problems(result)
    assert "not valid UTF-8" in found[f"{library}/a/caf\\xe9.mp3"]
    assert "not valid UTF-8" in found[f"{library}/Bj\\xf6rk"]
    assert LibraryFile.objects.count() == 1


def test_empty_folders_are_counted(add, scan, library):
    add("a/song.flac")
    (library / "empty" / "nested").mkdir(parents=True)
    result = scan()
    assert result.empty_folders == 1 and result.errors == 0
    assert problems(result)[str(library / "empty" / "nested")] == "empty folder"


@pytest.mark.django_db(transaction=True)
def test_unreadable_folders_and_files_are_reported_and_their_rows_kept(add, scan, library):
    prefix = without_dac_override()
    add("ok.flac")
    inner = add("Locked/inner.flac")
    secret = add("secret.mp3")
    scan()
    locked = inner.parent
    probe = subprocess.run([*prefix, "ls", str(library)], capture_output=True)
    assert probe.returncode == 0
    locked.chmod(0)
    secret.chmod(0)
    try:
        assert subprocess.run([*prefix, "ls", str(locked)], capture_output=True).returncode != 0
        done = manage("scan", "--full", library=library, prefix=prefix)
        assert done.returncode == 0, done.stderr
        assert "permission denied" in done.stdout
        result = Scan.objects.first()
        assert result.status == "done"
        assert (result.errors, result.removed) == (2, 0)
        found = problems(result)
        assert "permission denied" in found[str(locked)]
        assert found[str(secret)] == "permission denied"
        # The locked folder's file is still in the library: it was not seen to go.
        assert LibraryFile.objects.filter(path=str(inner)).exists()
        assert LibraryFile.objects.get(path=str(secret)).error == "permission denied"
    finally:
        locked.chmod(0o755)
        secret.chmod(0o644)
    # Fixing the mode is enough for the file to be read again (its ctime changed).
    again = scan()
    assert (again.read, again.errors) == (1, 0)
    assert LibraryFile.objects.get(path=str(secret)).error == ""
