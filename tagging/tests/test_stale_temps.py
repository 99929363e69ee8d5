"""Temp copies left by killed writers are cleaned up; temp copies of live writers never.

A writer killed with kill -9 in the middle of ``write_tags`` leaves its
``.nomarr-*.tmp`` copy behind. The next write in that folder and the next scan
remove it; the scan never takes it for music. A temp copy that a live process
still holds (its lock, see ``nomarr_site.atomic``) survives writes, scans and
cleaners in other processes. Real processes, real kill -9, real files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from library.models import LibraryFile
from library.scanning import scan_root
from nomarr_site.atomic import remove_abandoned_in
from tagging import writers
from tagging.tagfiles import read_tags
from tagging.writers import remove_stale_temps, write_tags

NS = "nom"

#: A writer in its own process: write_tags on argv[1] with a value of argv[2].
WRITER = (
    "import sys; from tagging.writers import write_tags; "
    "write_tags(sys.argv[1], {'nom_version': [sys.argv[2]]}, 'nom', None)"
)

#: A process holding a temp copy (as a writer does while it works), until its stdin closes.
HOLDER = (
    "import sys; from pathlib import Path; from nomarr_site.atomic import locked_temp\n"
    "with locked_temp(Path(sys.argv[1]), '.nomarr-held.flac.') as (handle, path):\n"
    "    handle.write(b'half a copy'); handle.flush(); print(path, flush=True)\n"
    "    sys.stdin.read()\n"
)

#: Another process's cleaner: how many temp copies it removed from argv[1].
CLEANER = (
    "import sys; from nomarr_site.atomic import remove_abandoned_in; "
    "print(remove_abandoned_in(sys.argv[1]))"
)


def temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".nomarr-*.tmp"))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=settings.BASE_DIR, **kwargs)


@pytest.fixture
def album(library: Path, make_audio) -> Path:
    folder = library / "Album"
    folder.mkdir()
    shutil.move(make_audio("flac"), folder / "01.flac")
    return folder


@pytest.fixture
def big_wav(album: Path) -> Path:
    """Ten minutes of WAV (115 MB): its write takes long enough to be killed in."""
    path = album / "02.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "sine=f=440:d=600:r=48000",
         "-ac", "2", "-c:a", "pcm_s16le", str(path)],
        check=True,
    )  # fmt: skip
    return path


def kill_a_writer(path: Path) -> tuple[Path, str]:
    """Start write_tags on path in another process and kill -9 it in the middle of
    the write; returns the temp copy it left and path's sha256 from before it ran."""
    for attempt in range(5):
        before = sha(path)
        writer = python(WRITER, str(path), f"v{attempt}")
        while writer.poll() is None and not temps(path.parent):
            time.sleep(0.001)
        if writer.poll() is None:
            os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        if left := temps(path.parent):
            return left[0], before
    pytest.fail("no kill -9 landed in the middle of a write in 5 tries")


@pytest.fixture
def killed_writer(big_wav: Path) -> Path:
    """The temp copy a writer killed with kill -9 in the middle of write_tags left."""
    return kill_a_writer(big_wav)[0]


@pytest.fixture
def live_writer(album: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """Another process that holds a temp copy in the album folder, and that copy."""
    holder = python(HOLDER, str(album), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    held = Path(holder.stdout.readline().strip())
    assert held.is_file()
    yield holder, held
    if holder.poll() is None:
        holder.kill()
    holder.wait()


def test_a_killed_writer_leaves_the_file_itself_intact(big_wav: Path) -> None:
    leftover, before = kill_a_writer(big_wav)
    assert leftover.name.startswith(".nomarr-02.wav.")
    assert sha(big_wav) == before


def test_the_next_write_in_the_folder_removes_a_killed_writers_temp(
    killed_writer: Path, album: Path
) -> None:
    other = album / "01.flac"
    write_tags(other, {"nom_version": ["1"]}, NS, moods=None)
    assert not killed_writer.exists()
    assert temps(album) == []
    assert read_tags(other, NS) == {"nom_version": ["1"]}


def test_the_next_write_of_the_same_file_removes_it_and_succeeds(
    killed_writer: Path, big_wav: Path
) -> None:
    write_tags(big_wav, {"nom_version": ["done"]}, NS, moods=None)
    assert temps(big_wav.parent) == []
    assert read_tags(big_wav, NS) == {"nom_version": ["done"]}


@pytest.mark.django_db
def test_a_scan_removes_a_killed_writers_temp_and_never_takes_it_for_music(
    killed_writer: Path, album: Path, root_row
) -> None:
    result = scan_root(root_row)
    assert result.status == "done", result.message
    assert not killed_writer.exists()
    assert sorted(LibraryFile.objects.values_list("path", flat=True)) == [
        str(album / "01.flac"),
        str(album / "02.wav"),
    ]
    assert result.errors == 0, result.problems


@pytest.mark.django_db
def test_a_temp_a_live_process_holds_survives_writes_scans_and_cleaners(
    live_writer: tuple[subprocess.Popen, Path], album: Path, root_row
) -> None:
    holder, held = live_writer
    write_tags(album / "01.flac", {"nom_version": ["1"]}, NS, moods=None)
    assert scan_root(root_row).status == "done"
    assert remove_stale_temps(album / "01.flac") == 0
    assert held.read_bytes() == b"half a copy"
    assert list(LibraryFile.objects.values_list("path", flat=True)) == [str(album / "01.flac")]

    holder.kill()  # the same process, now dead: its copy is a leftover
    holder.wait()
    assert remove_stale_temps(album / "01.flac") == 1
    assert not held.exists()


def test_a_cleaner_in_another_process_never_breaks_a_write_in_progress(
    make_audio, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_audio("m4a")
    cleaned: list[str] = []
    real_fsync = writers._fsync_file

    def fsync_while_another_process_cleans(temp: Path) -> None:
        assert temp.exists()
        cleaner = subprocess.run(
            [sys.executable, "-c", CLEANER, str(temp.parent)],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            check=True,
        )
        cleaned.append(cleaner.stdout.strip())
        real_fsync(temp)

    monkeypatch.setattr(writers, "_fsync_file", fsync_while_another_process_cleans)
    write_tags(path, {"nom_version": ["1"]}, NS, moods=None)

    assert cleaned == ["0"]
    assert read_tags(path, NS) == {"nom_version": ["1"]}
    assert temps(path.parent) == []


def test_nothing_but_our_own_temp_files_is_ever_removed(tmp_path: Path) -> None:
    keep = {
        "song.tmp": b"a user's file",
        ".nomarr-notes.txt": b"not a temp name",
        "nomarr-song.flac.x.tmp": b"no leading dot",
    }
    for name, data in keep.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / ".nomarr-folder.tmp").mkdir()
    target = tmp_path / "target.flac"
    target.write_bytes(b"music")
    (tmp_path / ".nomarr-link.tmp").symlink_to(target)
    fifo = tmp_path / ".nomarr-pipe.tmp"
    os.mkfifo(fifo)

    assert remove_abandoned_in(tmp_path) == 0

    for name, data in keep.items():
        assert (tmp_path / name).read_bytes() == data
    assert (tmp_path / ".nomarr-folder.tmp").is_dir()
    assert (tmp_path / ".nomarr-link.tmp").is_symlink() and target.read_bytes() == b"music"
    assert fifo.exists()
