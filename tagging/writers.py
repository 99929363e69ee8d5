"""Safe, format-aware reading and writing of Nomarr's tags with mutagen.

Nomarr writes model scores into users' music files. Those files are the
user's data, not ours, so every write follows the same rules:

* Only Nomarr's own keys (``f"{namespace}_..."``) and, on request, the standard
  MOOD tag are changed. Every other tag and all cover art stay as they were.
* The audio bytes are never touched: mutagen only rewrites tag blocks/chunks.
* A file is never left half-written. Tags are written into a temporary copy in
  the same directory, the copy is fsync'ed and re-parsed, and only then is it
  atomically renamed over the original (``os.replace``). If anything fails, the
  copy is removed and the original is left byte-for-byte untouched.
* If the file changed while we were working on it (another tagger, a sync
  client), we refuse instead of silently discarding the other change.

How keys are stored per container:

* ID3 (MP3, WAV, AIFF): ID3v2.4 ``TXXX`` frames, ``desc`` = the lowercase key,
  several values as the frame's text list. MOOD is the ``TMOO`` frame.
* Vorbis comments (FLAC, Ogg Vorbis, Ogg Opus): uppercase field names
  (``NOM_...``), several values as repeated fields. MOOD is ``MOOD``.
* MP4/M4A: freeform atoms ``----:com.apple.iTunes:<lowercase key>`` with UTF-8
  values. MOOD is ``----:com.apple.iTunes:MOOD``.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import mutagen
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TMOO, TXXX, Encoding
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm, MP4Tags
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

__all__ = [
    "InvalidTagsError",
    "TagWriteError",
    "read_moods",
    "read_tags",
    "remove_stale_temps",
    "write_tags",
]

#: Temp files are named like this so that library scanners can skip them and
#: so that leftovers (e.g. after a power cut) are recognisable as ours.
TEMP_PREFIX = ".nomarr-"
TEMP_SUFFIX = ".tmp"

_ID3_TYPES: tuple[type[mutagen.FileType], ...] = (MP3, WAVE, AIFF)
_VORBIS_TYPES: tuple[type[mutagen.FileType], ...] = (FLAC, OggVorbis, OggOpus)
_MP4_TYPES: tuple[type[mutagen.FileType], ...] = (MP4,)

_MP4_MEAN = "com.apple.iTunes"
_MP4_FREEFORM_PREFIX = f"----:{_MP4_MEAN}:"
_MP4_MOOD_KEY = f"{_MP4_FREEFORM_PREFIX}MOOD"

_ANY_WRITE_BIT = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH

#: A container whose header declares this much more audio than the file holds
#: is treated as truncated (see ``_check_not_truncated``).
_TRUNCATION_RATIO = 0.9


class TagWriteError(Exception):
    """Reading or writing tags failed; the message says why in plain words.

    Callers (the tagging task, the UI) show this message to users, so it names
    the file and the cause: missing, read-only, not audio, changed meanwhile,
    disk full... When it is raised by ``write_tags`` the file is unchanged.
    """


class InvalidTagsError(TagWriteError, ValueError):
    """The tags/namespace passed in are malformed (a caller bug, not a file
    problem). Also a ValueError; a TagWriteError so that a batch that reports
    per-file errors keeps going instead of crashing."""


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def read_tags(path: Path, namespace: str) -> dict[str, list[str]]:
    """Return Nomarr's own keys in the file, lowercased key -> list of values.

    A key is "ours" when it starts with ``f"{namespace}_"`` compared
    case-insensitively, because other tools (and older Nomarr versions) may
    have changed its case. Keys that differ only by case are merged.

    Raises TagWriteError for missing/unreadable/unsupported files.
    """
    prefix = _prefix(namespace)
    audio = _open_audio(Path(path))
    return _read_nom(audio, prefix)


def read_moods(path: Path) -> list[str]:
    """Return the standard MOOD values (ID3 TMOO, Vorbis MOOD, MP4 MOOD atom).

    Raises TagWriteError for missing/unreadable/unsupported files.
    """
    audio = _open_audio(Path(path))
    return _read_moods(audio)


def write_tags(
    path: Path,
    tags: dict[str, list[str]],
    namespace: str,
    moods: list[str] | None,
) -> None:
    """Replace all of Nomarr's keys in the file with ``tags``, safely.

    Every key in the file starting with ``f"{namespace}_"`` (case-insensitive)
    is removed and the keys of ``tags`` are written instead, so a key that is
    absent from ``tags`` disappears from the file: the file always mirrors the
    latest analysis. Keys are lowercase (e.g.
    ``nom_mood_happy_msd_musicnn_1__happy``); a list of several values is a
    multi-value tag and an empty list means "no such key".

    If ``moods`` is not None the standard MOOD tag is replaced by those values
    (an empty list removes it); None leaves MOOD alone, for users who manage
    MOOD themselves.

    Every other tag and all cover art stay exactly as they were and the audio
    bytes are never modified. The write goes through a temporary copy in the
    same directory that is atomically renamed over the original, so the file
    is either fully updated or untouched. When the file already holds exactly
    these values nothing is written (so its mtime does not change and library
    scanners are not triggered for nothing).

    Raises:
        InvalidTagsError: ``tags``/``namespace``/``moods`` are malformed (a
            caller bug; also a ValueError); the file is not touched.
        TagWriteError: the file could not be tagged; it is left unchanged.
    """
    prefix = _prefix(namespace)
    wanted = _normalize_tags(tags, prefix)
    wanted_moods = _normalize_values("MOOD", moods) if moods is not None else None

    path = Path(path)
    before = _check_writable(path)
    # Resolve symlinks so that we replace the target, not the link itself.
    real = Path(os.path.realpath(path))

    original = _open_audio(real)
    _check_not_truncated(original, real, before.st_size)
    if _read_nom(original, prefix) == wanted and (
        wanted_moods is None or _read_moods(original) == wanted_moods
    ):
        return

    directory = real.parent
    temp: Path | None = None
    try:
        temp = _make_temp_copy(real, directory)
        _write_into(temp, prefix, wanted, wanted_moods)
        _fsync_file(temp)
        _verify_temp(temp, original, prefix, wanted, wanted_moods)

        after = os.stat(real)
        if _fingerprint(after) != _fingerprint(before):
            raise TagWriteError(
                f"file changed while tagging, not overwriting it: {path} "
                "(another program modified it; try again later)"
            )

        shutil.copymode(real, temp)
        _copy_owner(before, temp)
        os.replace(temp, real)
        temp = None  # It is the real file now; never delete it.
    except TagWriteError:
        raise
    except Exception as exc:
        raise _describe_write_failure(exc, path) from exc
    finally:
        if temp is not None:
            _remove_quietly(temp)

    _fsync_directory(directory)


# --------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------


def _prefix(namespace: str) -> str:
    """Return the lowercase key prefix; an empty namespace would match every
    ``_``-prefixed key in the file, so it is refused."""
    if not isinstance(namespace, str) or not namespace.strip():
        raise InvalidTagsError("namespace must be a non-empty string")
    return f"{namespace}_".lower()


def _normalize_values(key: str, values: Iterable[str] | None) -> list[str]:
    """Check that values are a list of strings (a bare str would otherwise be
    written one character per value)."""
    if isinstance(values, (str, bytes)) or values is None:
        raise InvalidTagsError(f"values for {key!r} must be a list of strings")
    result = list(values)
    for value in result:
        if not isinstance(value, str):
            raise InvalidTagsError(f"values for {key!r} must be strings, got {value!r}")
        if "\x00" in value:
            raise InvalidTagsError(f"values for {key!r} must not contain NUL characters")
    return result


def _normalize_tags(tags: dict[str, list[str]], prefix: str) -> dict[str, list[str]]:
    """Lowercase and validate keys before touching the file.

    Keys must carry our prefix (otherwise the next write could never remove
    them again) and must be valid Vorbis comment field names (printable ASCII
    without ``=``), the strictest of the formats we write, so that the same
    dict works for every file in a library.
    """
    result: dict[str, list[str]] = {}
    for raw_key, raw_values in tags.items():
        if not isinstance(raw_key, str):
            raise InvalidTagsError(f"tag key must be a string, got {raw_key!r}")
        key = raw_key.lower()
        if not key.startswith(prefix) or len(key) == len(prefix):
            raise InvalidTagsError(f"tag key {raw_key!r} does not start with {prefix!r}")
        if any(not (0x20 <= ord(ch) <= 0x7D) or ch == "=" for ch in key):
            raise InvalidTagsError(f"tag key {raw_key!r} must be printable ASCII without '='")
        if key in result:
            raise InvalidTagsError(f"tag key {raw_key!r} given twice (keys are case-insensitive)")
        values = _normalize_values(raw_key, raw_values)
        if values:
            result[key] = values
    return result


def _fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    """What we compare to notice that someone else changed the file: size and
    mtime as asked, plus device/inode to notice it was replaced wholesale."""
    return (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def _check_writable(path: Path) -> os.stat_result:
    """Refuse files we must not or cannot replace, before creating anything.

    ``os.replace`` happily replaces a read-only file in a writable directory,
    so the file's own permission has to be checked explicitly. ``os.access``
    is always True for root, so a file without any write bit is treated as
    read-only too: a user who chmod'ed their files read-only meant it, even if
    Nomarr runs as root in a container. The directory gets the same treatment
    because the temp copy has to be created there.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TagWriteError(f"no such file: {path}") from None
    except OSError as exc:
        raise TagWriteError(f"cannot access file: {path} ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise TagWriteError(f"no such file (not a regular file): {path}")

    directory = Path(os.path.realpath(path)).parent
    if _on_read_only_filesystem(directory):
        raise TagWriteError(f"file is on a read-only file system: {path}")
    if not os.access(path, os.W_OK) or not st.st_mode & _ANY_WRITE_BIT:
        raise TagWriteError(f"file is read-only: {path}")
    try:
        dir_mode = os.stat(directory).st_mode
    except OSError as exc:
        raise TagWriteError(f"cannot access directory {directory} ({exc.strerror})") from exc
    if not os.access(directory, os.W_OK | os.X_OK) or not dir_mode & _ANY_WRITE_BIT:
        raise TagWriteError(
            f"directory is not writable: {directory} "
            f"(tags are written via a temporary file next to {path.name})"
        )
    return st


def _on_read_only_filesystem(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # statvfs is POSIX-only
        return False


def _open_audio(path: Path) -> mutagen.FileType:
    """Parse the file by content (not extension) and check it is a format we
    know how to tag without corrupting it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TagWriteError(f"no such file: {path}") from None
    except OSError as exc:
        raise TagWriteError(f"cannot access file: {path} ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise TagWriteError(f"no such file (not a regular file): {path}")
    if st.st_size == 0:
        raise TagWriteError(f"not a supported audio file (file is empty): {path}")

    try:
        audio = mutagen.File(path)
    except Exception as exc:
        oserror = _find_oserror(exc)
        if oserror is not None and oserror.errno in (errno.EACCES, errno.EPERM):
            raise TagWriteError(f"cannot read file (permission denied): {path}") from exc
        raise TagWriteError(
            f"not a supported audio file (unreadable or corrupt): {path} ({exc})"
        ) from exc
    if audio is None:
        raise TagWriteError(f"not a supported audio file: {path}")
    if not isinstance(audio, _ID3_TYPES + _VORBIS_TYPES + _MP4_TYPES):
        raise TagWriteError(
            f"not a supported audio file (unsupported format {type(audio).__name__}): {path}"
        )
    return audio


def _check_not_truncated(audio: mutagen.FileType, path: Path, size: int) -> None:
    """Refuse files whose audio is visibly cut off.

    mutagen happily parses the first kilobytes of a file. Writing into such a
    file is harmful for RIFF/AIFF (the new ID3 chunk would land inside the
    declared data chunk) and pointless elsewhere; a truncated download should
    be re-fetched, not tagged. Only headers that declare the audio size
    exactly are trusted (MP3 Xing/VBRI, WAV, AIFF); for other formats mutagen
    derives the bitrate from the file size, so the check would be a no-op.
    """
    length = getattr(audio.info, "length", 0) or 0
    if length <= 0:
        raise TagWriteError(f"not a supported audio file (no audio data, truncated?): {path}")
    if isinstance(audio, _ID3_TYPES):
        bitrate = getattr(audio.info, "bitrate", 0) or 0
        declared = length * bitrate / 8
        if declared and size < declared * _TRUNCATION_RATIO:
            raise TagWriteError(
                f"file looks truncated: {path} (its header declares about "
                f"{int(declared)} bytes of audio, the file has {size} bytes)"
            )


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _read_nom(audio: mutagen.FileType, prefix: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    tags = audio.tags
    if tags is None:
        return result
    if isinstance(audio, _ID3_TYPES):
        for frame in tags.getall("TXXX"):
            key = frame.desc.lower()
            if key.startswith(prefix):
                result.setdefault(key, []).extend(str(t) for t in frame.text)
    elif isinstance(audio, _VORBIS_TYPES):
        for name, value in tags:
            key = name.lower()
            if key.startswith(prefix):
                result.setdefault(key, []).append(value)
    else:
        for atom, values in tags.items():
            key = _mp4_freeform_name(atom)
            if key is not None and key.lower().startswith(prefix):
                result.setdefault(key.lower(), []).extend(_mp4_text(v) for v in values)
    return result


def _read_moods(audio: mutagen.FileType) -> list[str]:
    tags = audio.tags
    if tags is None:
        return []
    if isinstance(audio, _ID3_TYPES):
        return [str(t) for frame in tags.getall("TMOO") for t in frame.text]
    if isinstance(audio, _VORBIS_TYPES):
        return [value for name, value in tags if name.lower() == "mood"]
    moods: list[str] = []
    for atom, values in tags.items():
        name = _mp4_freeform_name(atom)
        if name is not None and name.lower() == "mood":
            moods.extend(_mp4_text(v) for v in values)
    return moods


def _mp4_freeform_name(atom: str) -> str | None:
    """``----:com.apple.iTunes:name`` -> ``name``; None for any other atom
    (freeform atoms of other tools' ``mean`` are not ours)."""
    if atom.startswith(_MP4_FREEFORM_PREFIX):
        return atom[len(_MP4_FREEFORM_PREFIX) :]
    return None


def _mp4_text(value: object) -> str:
    if isinstance(value, MP4FreeForm):
        encoding = "utf-16-be" if value.dataformat == AtomDataType.UTF16 else "utf-8"
        return bytes(value).decode(encoding, errors="replace")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _temp_prefix(target: Path) -> str:
    """Temp files carry their target's name, so a dead writer's leftover can be
    found and removed without touching another writer's temp in the same folder."""
    return f"{TEMP_PREFIX}{target.name[:100]}."


def remove_stale_temps(path: Path) -> int:
    """Delete temp files a killed writer left beside path; returns how many.

    Only call this when no writer for path can still be running (its job was reset)."""
    removed = 0
    for temp in path.parent.glob(glob.escape(_temp_prefix(path)) + "*" + TEMP_SUFFIX):
        _remove_quietly(temp)
        removed += 1
    return removed


def _make_temp_copy(source: Path, directory: Path) -> Path:
    """Copy the file to ``.nomarr-*.tmp`` in the same directory (same file
    system, so ``os.replace`` is atomic)."""
    try:
        fd, name = tempfile.mkstemp(prefix=_temp_prefix(source), suffix=TEMP_SUFFIX, dir=directory)
    except PermissionError as exc:
        raise TagWriteError(
            f"directory is not writable: {directory} (cannot create a temporary file "
            f"there: {exc.strerror}); {source.name} was left unchanged"
        ) from exc
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as dst, open(source, "rb") as src:
            shutil.copyfileobj(src, dst, 1024 * 1024)
    except BaseException:
        _remove_quietly(temp)
        raise
    return temp


def _write_into(
    temp: Path,
    prefix: str,
    wanted: dict[str, list[str]],
    moods: list[str] | None,
) -> None:
    """Apply the new tags to the temp copy with mutagen (format by content)."""
    audio = mutagen.File(temp)
    if audio is None:  # The copy is the same bytes; this means it changed.
        raise TagWriteError(f"temporary copy is not readable as audio: {temp}")
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags

    if isinstance(audio, _ID3_TYPES):
        _apply_id3(tags, prefix, wanted, moods)
        audio.save(v2_version=4)
    elif isinstance(audio, _VORBIS_TYPES):
        _apply_vorbis(tags, prefix, wanted, moods)
        audio.save()
    elif isinstance(audio, _MP4_TYPES):
        _apply_mp4(tags, prefix, wanted, moods)
        audio.save()
    else:  # pragma: no cover - _open_audio already refused it
        raise TagWriteError(f"unsupported format {type(audio).__name__}")


def _apply_id3(
    tags: ID3, prefix: str, wanted: dict[str, list[str]], moods: list[str] | None
) -> None:
    for frame in list(tags.getall("TXXX")):
        if frame.desc.lower().startswith(prefix):
            del tags[frame.HashKey]
    for key, values in wanted.items():
        tags.add(TXXX(encoding=Encoding.UTF8, desc=key, text=values))
    if moods is not None:
        tags.delall("TMOO")
        if moods:
            tags.add(TMOO(encoding=Encoding.UTF8, text=moods))


def _apply_vorbis(
    tags: list[tuple[str, str]],
    prefix: str,
    wanted: dict[str, list[str]],
    moods: list[str] | None,
) -> None:
    # Vorbis comments are a list of (name, value) pairs; editing the list in
    # place keeps the order of the foreign fields exactly as it was.
    def keep(name: str) -> bool:
        lowered = name.lower()
        if lowered.startswith(prefix):
            return False
        return not (moods is not None and lowered == "mood")

    tags[:] = [(name, value) for name, value in tags if keep(name)]
    for key, values in wanted.items():
        tags.extend((key.upper(), value) for value in values)
    if moods:
        tags.extend(("MOOD", mood) for mood in moods)


def _apply_mp4(
    tags: MP4Tags, prefix: str, wanted: dict[str, list[str]], moods: list[str] | None
) -> None:
    for atom in list(tags.keys()):
        name = _mp4_freeform_name(atom)
        if name is None:
            continue
        if name.lower().startswith(prefix) or (moods is not None and name.lower() == "mood"):
            del tags[atom]
    for key, values in wanted.items():
        tags[f"{_MP4_FREEFORM_PREFIX}{key}"] = _mp4_values(values)
    if moods:
        tags[_MP4_MOOD_KEY] = _mp4_values(moods)


def _mp4_values(values: list[str]) -> list[MP4FreeForm]:
    return [MP4FreeForm(v.encode("utf-8"), dataformat=AtomDataType.UTF8) for v in values]


def _fsync_file(path: Path) -> None:
    """Make sure the new bytes are on disk before the rename makes them the
    real file; otherwise a crash could leave an empty or partial file."""
    with open(path, "rb+") as handle:
        handle.flush()
        os.fsync(handle.fileno())


def _verify_temp(
    temp: Path,
    original: mutagen.FileType,
    prefix: str,
    wanted: dict[str, list[str]],
    moods: list[str] | None,
) -> None:
    """Re-parse the temp copy: it must still be the same kind of audio with the
    same duration and carry exactly the tags we meant to write."""
    try:
        written = mutagen.File(temp)
    except Exception as exc:
        raise TagWriteError(f"verification failed, written copy does not parse ({exc})") from exc
    if type(written) is not type(original):
        raise TagWriteError("verification failed, written copy is not the same format")
    if abs(written.info.length - original.info.length) > 0.05:
        raise TagWriteError("verification failed, audio duration changed")
    if _read_nom(written, prefix) != wanted:
        raise TagWriteError("verification failed, written tags do not read back")
    if moods is not None and _read_moods(written) != moods:
        raise TagWriteError("verification failed, written MOOD does not read back")


def _copy_owner(before: os.stat_result, temp: Path) -> None:
    """Keep the file's owner when we can (we run as root in containers; the
    music belongs to the user). Unprivileged processes cannot chown, and then
    the file was necessarily writable by us anyway."""
    try:
        st = os.stat(temp)
        if (st.st_uid, st.st_gid) != (before.st_uid, before.st_gid):
            os.chown(temp, before.st_uid, before.st_gid)
    except (OSError, AttributeError):
        pass


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself. Best effort: the replace already happened, so
    failing here must not report the write as failed."""
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


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass


def _find_oserror(exc: BaseException) -> OSError | None:
    """mutagen wraps I/O errors in MutagenError; dig the OSError out so that
    e.g. ENOSPC can be reported as "disk full"."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
        todo.extend([current.__cause__, current.__context__])
    return None


_ERRNO_MESSAGES: dict[int, Callable[[str], str]] = {
    errno.ENOSPC: lambda p: f"disk full, could not write tags to {p}",
    errno.EDQUOT: lambda p: f"disk quota exceeded, could not write tags to {p}",
    errno.EROFS: lambda p: f"file is on a read-only file system: {p}",
    errno.EACCES: lambda p: f"permission denied (directory is not writable?): {p}",
    errno.EPERM: lambda p: f"permission denied (directory is not writable?): {p}",
}


def _describe_write_failure(exc: BaseException, path: Path) -> TagWriteError:
    oserror = _find_oserror(exc)
    if oserror is not None and oserror.errno in _ERRNO_MESSAGES:
        message = _ERRNO_MESSAGES[oserror.errno](str(path))
    elif oserror is not None:
        message = f"could not write tags to {path} ({oserror.strerror or oserror})"
    else:
        message = f"could not write tags to {path} ({type(exc).__name__}: {exc})"
    return TagWriteError(f"{message}; the file was left unchanged")
