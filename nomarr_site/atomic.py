"""Writing a whole file so that readers see the old bytes or the new ones, never half.

Nomarr writes files where other programs look: model files that the catalog
discovers, playlists that Navidrome imports, tags inside users' music. Each write
goes to a temporary file in the target's folder (same file system, so the rename
is atomic), is fsync'ed, and only then renamed over the target. A failure removes
the temporary file and leaves the target as it was.

Every temporary file Nomarr makes, here or in tagging/writers.py, is named
``TEMP_PREFIX...TEMP_SUFFIX`` (``is_temp_name``): model discovery, the library
scanner and Navidrome pass over such names, and a leftover after a power cut is
recognisable as ours. This module imports nothing of Django or of the apps, so
it also serves ``python -m tagging.convert``, which runs without Django.

Leftovers
---------
A writer that is killed (kill -9, a power cut) leaves its temporary file behind.
Every temporary file is made by ``locked_temp``, which holds an exclusive
``flock`` on it for as long as the writer works on it; the kernel drops the lock
when the writer's process dies, however it dies. ``remove_abandoned`` deletes a
temporary file only when it can take that lock without waiting, so a file that
a live process (this one or another, on this host or over NFS) is still writing
is never deleted. On a file system without locks, a leftover is removed once it
is ``UNLOCKABLE_STALE_AFTER`` seconds old instead.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "UNLOCKABLE_STALE_AFTER",
    "is_temp_name",
    "locked_temp",
    "remove_abandoned",
    "remove_abandoned_in",
    "write_atomically",
]

#: The start of every temporary file's name (a hidden file, so players skip it too).
TEMP_PREFIX = ".nomarr-"
#: The end of every temporary file's name.
TEMP_SUFFIX = ".tmp"
#: Where a temporary file cannot be locked, the age (seconds since its last
#: change) after which it counts as abandoned.
UNLOCKABLE_STALE_AFTER = 3600


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file Nomarr makes (never music, never a model)."""
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace path's content with data (mode 0644), or leave path untouched.

    Raises the OSError that stopped the write (disk full, folder not writable);
    the temporary file is removed first.
    """
    path = Path(path)
    with locked_temp(path.parent) as (handle, tmp):
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


def fsync_directory(directory: Path) -> None:
    """Persist the renames done in directory. Best effort: the rename already happened,
    so a failure here must not report the write as failed."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def locked_temp(directory: Path, prefix: str = TEMP_PREFIX) -> Iterator[tuple[BinaryIO, Path]]:
    """A new, empty temporary file in directory, open for writing and locked.

    Yields the open file and its path. The lock is held until the block ends, so
    ``remove_abandoned`` leaves the file alone meanwhile, even if the block gives
    the path to other code (mutagen reopens it by name). When the block ends the
    file is removed, unless it was renamed away (``os.replace`` onto its target):
    then it is the target now and stays. prefix must start with TEMP_PREFIX.

    Raises the OSError of creating it (PermissionError: the folder is not writable).
    """
    if not prefix.startswith(TEMP_PREFIX):
        raise ValueError(f"a temporary file's prefix must start with {TEMP_PREFIX!r}")
    handle, path = _create_locked(Path(directory), prefix)
    try:
        yield handle, path
    finally:
        try:
            if _same_file(path, os.fstat(handle.fileno())):
                os.unlink(path)
        except OSError:
            pass
        try:
            handle.close()
        except OSError:
            pass  # Nothing of it is needed any more (written data was fsync'ed).


def remove_abandoned(path: Path) -> bool:
    """Delete one temporary file of Nomarr's if no live process holds it.

    Returns True if it was removed. Anything that is not a regular file named
    like our temporary files (``is_temp_name``) is never touched; neither is one
    whose lock is held (a writer is working on it), nor, where locks are not
    supported, one changed in the last UNLOCKABLE_STALE_AFTER seconds. Never
    raises for a file it cannot open or delete: it simply stays.
    """
    path = Path(path)
    if not is_temp_name(path.name):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # gone, a symlink, or not ours to open
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False  # a live writer holds it
            if time.time() - st.st_mtime < UNLOCKABLE_STALE_AFTER:
                return False  # no locks here: only old leftovers go
        if not _same_file(path, st):
            return False  # replaced meanwhile: not the file we locked
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def remove_abandoned_in(directory: Path) -> int:
    """Delete every abandoned temporary file directly in directory; returns how many.

    Safe at any time: a file a live writer holds is kept (see ``remove_abandoned``)."""
    try:
        with os.scandir(directory) as listing:
            names = [entry.name for entry in listing if is_temp_name(entry.name)]
    except OSError:
        return 0
    return sum(remove_abandoned(Path(directory) / name) for name in names)


def _create_locked(directory: Path, prefix: str) -> tuple[BinaryIO, Path]:
    """mkstemp, then the lock. A cleaner can slip in between the two (the file
    exists unlocked for an instant); the name is then gone, so try again."""
    for _ in range(10):
        fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=TEMP_SUFFIX)
        handle = os.fdopen(fd, "wb")
        path = Path(name)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                # A cleaner holds it for the instant before it deletes it.
                handle.close()
                continue
            # No locks on this file system: the cleaner goes by age there.
        if _same_file(path, os.fstat(handle.fileno())):
            return handle, path
        handle.close()
    raise OSError(errno.EAGAIN, f"could not create a temporary file in {directory}")


def _same_file(path: Path, st: os.stat_result) -> bool:
    """Whether path still names the file st describes."""
    try:
        now = os.lstat(path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)
