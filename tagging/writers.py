"""Safe, format-aware writing of Nomarr's tags with mutagen.

Nomarr writes model scores into users' music files. Those files are the
user's data, not ours, so every write follows the same rules:

* Only Nomarr's own keys (``f"{namespace}_..."``) and, on request, the standard
  MOOD tag are changed, and a standard field of ``FILLABLE`` (GENRE) is set, on
  request, in a file that has none. Every other tag and all cover art stay as they
  were.
* The audio bytes are never touched: mutagen only rewrites tag blocks/chunks.
* A file is never left half-written. Tags are written into a temporary copy in
  the same directory, the copy is fsync'ed and re-parsed, and only then is it
  atomically renamed over the original (``os.replace``). If anything fails, the
  copy is removed and the original is left byte-for-byte untouched.
* The file is parsed twice, not more: once before (the checks, and the tags that
  are edited and saved into the copy) and once to verify the copy; that second
  parse is handed back (``Written``), so a caller that wants the written tags (the
  library's digest) does not read the file a third time.
* If the file changed while we were working on it (another tagger, a sync
  client), we refuse instead of silently discarding the other change.
* A file that cannot be written (read-only, in a read-only folder or file
  system, truncated, not audio) is refused by ``check_can_write`` before the
  analysis spends seconds and memory on it; ``write_tags`` checks the same again.
* The temp copy is held under a lock (``nomarr_site.atomic.locked_temp``) while
  it exists; a copy left by a killed writer is removed by the next write in its
  folder (and by scans), and a copy a live writer holds never is.

How each container stores the keys, and the readers that verify a write, are
in ``tagging/tagfiles.py``: a key is written exactly the way it is read.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import mutagen
from mutagen.id3 import ID3, TMOO, TXXX, Encoding, Frames
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm, MP4Tags
from mutagen.mp4._atom import Atoms
from mutagen.ogg import OggFileType

from nomarr_site.atomic import fsync_directory, locked_temp, remove_abandoned_in
from tagging.tagfiles import (
    ID3_TYPES,
    MP4_FREEFORM_PREFIX,
    MP4_MOOD_KEY,
    MP4_TYPES,
    TEMP_PREFIX,
    VORBIS_TYPES,
    InvalidTagsError,
    TagWriteError,
    find_oserror,
    key_prefix,
    moods_in,
    mp4_freeform_name,
    open_audio,
    stat_regular_file,
    tags_in,
)

__all__ = [
    "FILLABLE",
    "InvalidTagsError",
    "TagWriteError",
    "Written",
    "check_can_write",
    "folder_syncs_deferred",
    "remove_stale_temps",
    "write_tags",
]

_ANY_WRITE_BIT = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH

#: A container whose header declares this much more audio than the file holds
#: is treated as truncated (see ``_check_not_truncated``).
_TRUNCATION_RATIO = 0.9

#: The standard fields ``write_tags`` may fill (its ``fill``) in a file that has none,
#: and where each container keeps them: the ID3 frame, the Vorbis comment, the MP4
#: atoms (the first is written; any of them holding a value counts as a value).
FILLABLE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "genre": ("TCON", "GENRE", ("\xa9gen", "gnre")),
}


@dataclass(frozen=True)
class Written:
    """A file ``write_tags`` wrote, as it wrote it.

    ``stat``: the written file's own stat, taken through the temp copy's descriptor
    right after the rename (so it describes the bytes written, ctime included, even
    if another program replaced the path a moment later). ``audio``: the written
    bytes as the verification parsed them (the same type as the original's), whose
    tags are the file's tags."""

    stat: os.stat_result
    audio: mutagen.FileType


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def check_can_write(path: Path) -> None:
    """Refuse a file whose tags ``write_tags`` could not write, before any analysis.

    The checks ``write_tags`` starts with, and nothing else: the file exists and
    is a regular file, neither it nor its folder is read-only (a file without
    any write bit counts as read-only even for root), its file system is
    writable, mutagen parses it as a format Nomarr tags, and its container does
    not declare more audio than the file holds (where the header says exactly:
    MP3, WAV, AIFF, MP4). Cheap: a stat or two and a parse of the tag blocks.

    Raises TagWriteError with the reason; nothing is written or created.
    """
    _preflight(Path(path))


def write_tags(
    path: Path,
    tags: dict[str, list[str]],
    namespace: str,
    moods: list[str] | None,
    fill: Mapping[str, list[str]] | None = None,
) -> Written | None:
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

    ``fill`` ({field: values}, fields of ``FILLABLE``: ``{"genre": ["Jazz"]}``) sets
    a standard field only where the file has no value for it: a field the file
    holds (any non-blank value) is left exactly as it is, never overwritten. None
    (the default) fills nothing.

    Every other tag and all cover art stay exactly as they were and the audio
    bytes are never modified. The write goes through a temporary copy in the
    same directory that is atomically renamed over the original, so the file
    is either fully updated or untouched. When the file already holds exactly
    these values nothing is written (so its mtime does not change and library
    scanners are not triggered for nothing).

    Returns the file as written (``Written``: its stat and its verified parse), or
    None when nothing was written.

    Raises:
        InvalidTagsError: ``tags``/``namespace``/``moods``/``fill`` are malformed (a
            caller bug; also a ValueError); the file is not touched.
        TagWriteError: the file could not be tagged; it is left unchanged.
    """
    prefix = key_prefix(namespace)
    wanted = _normalize_tags(tags, prefix)
    wanted_moods = _normalize_values("MOOD", moods) if moods is not None else None
    wanted_fill = _normalize_fill(fill)

    path = Path(path)
    before, real, original = _preflight(path)
    directory = real.parent
    remove_abandoned_in(directory)  # what killed writers left here
    wanted_fill = {f: v for f, v in wanted_fill.items() if not _field_values(original, f)}
    if (
        tags_in(original, namespace) == wanted
        and (wanted_moods is None or moods_in(original) == wanted_moods)
        and not wanted_fill
    ):
        return None

    try:
        with _temp_copy(real) as (handle, temp):
            _write_into(temp, original, prefix, wanted, wanted_moods, wanted_fill)
            _fsync_file(temp)
            written = _parse_written(temp, original)
            _verify_temp(written, original, namespace, wanted, wanted_moods)
            if any(_field_values(written, f) != v for f, v in wanted_fill.items()):
                raise TagWriteError("verification failed, a filled field does not read back")

            after = os.stat(real)
            if _fingerprint(after) != _fingerprint(before):
                raise TagWriteError(
                    f"file changed while tagging, not overwriting it: {path} "
                    "(another program modified it; try again later)"
                )

            shutil.copymode(real, temp)
            _copy_owner(before, temp)
            os.replace(temp, real)  # The temp is the real file now; it stays.
            st = os.fstat(handle.fileno())  # what was written, whatever the path names now
    except TagWriteError:
        raise
    except Exception as exc:
        raise _describe_write_failure(exc, path) from exc

    _sync_folder(directory)
    return Written(st, written)


@contextmanager
def folder_syncs_deferred() -> Iterator[None]:
    """Inside the block, ``write_tags`` leaves the fsync of the folders it renamed
    files in (which makes the renames durable) to the block's end, once per folder
    instead of once per file. Each file's own bytes are still fsync'ed before its
    rename, so a crash leaves every file old or new, never half-written; only which
    of the two it is is known at the block's end: record the writes after it. The
    folders are synced at the end however the block ends."""
    folders: set[Path] = set()
    token = _deferred_folders.set(folders)
    try:
        yield
    finally:
        _deferred_folders.reset(token)
        for folder in sorted(folders):
            fsync_directory(folder)


#: The folders ``folder_syncs_deferred`` syncs at its end (None: sync at once).
_deferred_folders: ContextVar[set[Path] | None] = ContextVar("_deferred_folders", default=None)


def _sync_folder(directory: Path) -> None:
    folders = _deferred_folders.get()
    if folders is None:
        fsync_directory(directory)
    else:
        folders.add(directory)


def remove_stale_temps(path: Path) -> int:
    """Delete the temp copies killed writers left beside path (beside its target, for
    a symlink: that is where they are made); returns how many.

    Safe at any time: a temp copy a live writer (in any process) holds is kept."""
    return remove_abandoned_in(Path(os.path.realpath(path)).parent)


# --------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------


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


def _normalize_fill(fill: Mapping[str, list[str]] | None) -> dict[str, list[str]]:
    """The fields to fill where empty, checked before touching the file: fields of
    FILLABLE (lowercase), values as for any tag; a field with no value is dropped."""
    if fill is None:
        return {}
    if not isinstance(fill, Mapping):
        raise InvalidTagsError(f"fill must map fields to values, got {fill!r}")
    result: dict[str, list[str]] = {}
    for raw_field, raw_values in fill.items():
        field = raw_field.lower() if isinstance(raw_field, str) else raw_field
        if field not in FILLABLE:
            raise InvalidTagsError(
                f"cannot fill {raw_field!r}: only {', '.join(sorted(FILLABLE))} can be filled"
            )
        values = [v for v in _normalize_values(raw_field, raw_values) if v.strip()]
        if values:
            result[field] = values
    return result


def _field_values(audio: mutagen.FileType, field: str) -> list[str]:
    """The non-blank values a standard field of FILLABLE has in an opened file."""
    id3_frame, vorbis_name, mp4_atoms = FILLABLE[field]
    tags: Any = audio.tags
    if tags is None:
        return []
    if isinstance(audio, ID3_TYPES):
        values = [str(t) for frame in tags.getall(id3_frame) for t in frame.text]
    elif isinstance(audio, VORBIS_TYPES):
        values = [value for name, value in tags if name.lower() == vorbis_name.lower()]
    else:
        values = [str(v) for atom in mp4_atoms for v in tags.get(atom, [])]
    return [value for value in values if value.strip()]


def _fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    """What we compare to notice that someone else changed the file: size and
    mtime as asked, plus device/inode to notice it was replaced wholesale."""
    return (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def _preflight(path: Path) -> tuple[os.stat_result, Path, mutagen.FileType]:
    """``check_can_write``'s checks; returns the file's stat (to notice a change
    later), its real path (symlinks resolved: the target is what gets replaced)
    and its parsed audio."""
    before = _check_writable(path)
    real = Path(os.path.realpath(path))
    original = open_audio(real)
    _check_not_truncated(original, real, before.st_size)
    return before, real, original


def _check_writable(path: Path) -> os.stat_result:
    """Refuse files we must not or cannot replace, before creating anything.

    ``os.replace`` happily replaces a read-only file in a writable directory,
    so the file's own permission has to be checked explicitly. ``os.access``
    is always True for root, so a file without any write bit is treated as
    read-only too: a user who chmod'ed their files read-only meant it, even if
    Nomarr runs as root in a container. The directory gets the same treatment
    because the temp copy has to be created there.
    """
    st = stat_regular_file(path)

    directory = Path(os.path.realpath(path)).parent
    if _on_read_only_filesystem(directory):
        raise TagWriteError(f"file is on a read-only file system: {path}")
    if not st.st_mode & _ANY_WRITE_BIT:
        raise TagWriteError(f"file is read-only: {path}")
    if not os.access(path, os.W_OK):
        raise TagWriteError(f"file is read-only for Nomarr (no write permission): {path}")
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


def _duration(audio: mutagen.FileType) -> float:
    """The audio's length in seconds as its header says; 0 when it says none."""
    return float(getattr(audio.info, "length", 0) or 0)


def _check_not_truncated(audio: mutagen.FileType, path: Path, size: int) -> None:
    """Refuse files whose audio is visibly cut off.

    mutagen happily parses the first kilobytes of a file. Writing into such a
    file is harmful for RIFF/AIFF (the new ID3 chunk would land inside the
    declared data chunk) and pointless elsewhere; a truncated download should
    be re-fetched, not tagged. Only headers that declare the audio size
    exactly are trusted (MP3 Xing/VBRI, WAV, AIFF, and MP4's atom sizes); for
    FLAC and Ogg mutagen derives the bitrate from the file size, so the check
    would be a no-op (and their tags live before the audio: writing is safe).
    """
    length = _duration(audio)
    if length <= 0:
        raise TagWriteError(f"not a supported audio file (no audio data, truncated?): {path}")
    if isinstance(audio, ID3_TYPES):
        bitrate = getattr(audio.info, "bitrate", 0) or 0
        declared = length * bitrate / 8
        if declared and size < declared * _TRUNCATION_RATIO:
            raise TagWriteError(
                f"file looks truncated: {path} (its header declares about "
                f"{int(declared)} bytes of audio, the file has {size} bytes)"
            )
    elif isinstance(audio, MP4):
        declared = _mp4_declared_size(path)
        if declared > size:
            raise TagWriteError(
                f"file looks truncated: {path} (its atoms declare {declared} bytes, "
                f"the file has {size} bytes)"
            )
    elif isinstance(audio, OggFileType):
        _check_ogg_pages(path)


#: Reverses the bits of a byte: Ogg's CRC-32 is the unreflected one, zlib's the reflected.
_BIT_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum (CRC-32, polynomial 0x04C11DB7, unreflected, no pre- or
    post-inversion), computed with zlib's reflected CRC-32 on bit-reversed bytes."""
    reflected = zlib.crc32(page.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _check_ogg_pages(path: Path) -> None:
    """Refuse an Ogg file with a damaged page.

    A tag write can renumber every page after the comment header, and mutagen then
    computes every checksum afresh: a page that was damaged would pass its check
    from then on, and the damage (a click, a dropout) could no longer be found by any
    player or checker. So every page's checksum is verified before writing."""
    with open(path, "rb") as handle:
        number, offset = 0, 0
        while header := handle.read(27):
            if len(header) < 27 or header[:4] != b"OggS":
                raise TagWriteError(
                    f"damaged Ogg file: {path} (no Ogg page at byte {offset}); not written"
                )
            lacing = handle.read(header[26])
            body = handle.read(sum(lacing))
            if len(lacing) < header[26] or len(body) < sum(lacing):
                raise TagWriteError(
                    f"file looks truncated: {path} (its last Ogg page, at byte {offset}, "
                    "is cut off); not written"
                )
            stored = int.from_bytes(header[22:26], "little")
            page = header[:22] + b"\0\0\0\0" + header[26:] + lacing + body
            if _ogg_crc(page) != stored:
                raise TagWriteError(
                    f"damaged Ogg file: {path} (page {number} at byte {offset} fails its "
                    "checksum); not written, since writing tags would recompute the "
                    "checksums and hide the damage"
                )
            number, offset = number + 1, offset + len(page)


def _mp4_declared_size(path: Path) -> int:
    """Where the last top-level MP4 atom says it ends (mutagen does not check
    that the media data is all there)."""
    try:
        with open(path, "rb") as handle:
            atoms = Atoms(handle).atoms
    except Exception as exc:
        raise TagWriteError(f"not a supported audio file (unreadable MP4): {path}") from exc
    return max((atom.offset + atom.length for atom in atoms), default=0)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _temp_prefix(target: Path) -> str:
    """Temp files carry their target's name, so a dead writer's leftover can be
    found and removed without touching another writer's temp in the same folder."""
    return f"{TEMP_PREFIX}{target.name[:100]}."


@contextmanager
def _temp_copy(source: Path) -> Iterator[tuple[BinaryIO, Path]]:
    """A locked copy of the file, ``.nomarr-<name>.*.tmp`` (``nomarr_site.atomic``)
    in the same directory (same file system, so ``os.replace`` is atomic), and its
    open descriptor; removed at the end unless it was renamed over the file."""
    directory = source.parent
    with ExitStack() as stack:
        try:
            handle, temp = stack.enter_context(locked_temp(directory, _temp_prefix(source)))
        except PermissionError as exc:
            raise TagWriteError(
                f"directory is not writable: {directory} (cannot create a temporary file "
                f"there: {exc.strerror}); {source.name} was left unchanged"
            ) from exc
        _copy_bytes(source, handle)
        yield handle, temp


#: copy_file_range's errors that mean "not here" (an old kernel, a file system that
#: cannot): the bytes are then read and written by this process.
_NO_KERNEL_COPY = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def _copy_bytes(source: Path, handle: BinaryIO) -> None:
    """Copy the whole file into the (empty) temp copy: by the kernel where it can
    (``copy_file_range``: the bytes do not pass through this process, and a file
    system with shared extents may share them), else read and written here."""
    handle.flush()
    with open(source, "rb") as src:
        copied = 0
        try:
            while step := os.copy_file_range(src.fileno(), handle.fileno(), 1 << 30):
                copied += step
        except OSError as exc:
            if copied or exc.errno not in _NO_KERNEL_COPY:
                raise
            shutil.copyfileobj(src, handle, 1024 * 1024)
    handle.flush()


def _write_into(
    temp: Path,
    audio: mutagen.FileType,
    prefix: str,
    wanted: dict[str, list[str]],
    moods: list[str] | None,
    fill: dict[str, list[str]],
) -> None:
    """Apply the new tags to the original's parse (the temp copy holds the same
    bytes, so it is not parsed again) and save them into the temp copy with mutagen,
    which rewrites only the copy's tag blocks; the original is not written."""
    if audio.tags is None:
        audio.add_tags()
    tags: Any = audio.tags  # mutagen types it as None; each group has its own class

    if isinstance(audio, ID3_TYPES):
        _apply_id3(tags, prefix, wanted, moods, fill)
        audio.save(temp, v2_version=4)
    elif isinstance(audio, VORBIS_TYPES):
        _apply_vorbis(tags, prefix, wanted, moods, fill)
        audio.save(temp)
    elif isinstance(audio, MP4_TYPES):
        _apply_mp4(tags, prefix, wanted, moods, fill)
        audio.save(temp)
    else:  # pragma: no cover - open_audio already refused it
        raise TagWriteError(f"unsupported format {type(audio).__name__}")


def _apply_id3(
    tags: ID3,
    prefix: str,
    wanted: dict[str, list[str]],
    moods: list[str] | None,
    fill: dict[str, list[str]],
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
    for field, values in fill.items():  # fields the file has no value for (write_tags)
        frame_id = FILLABLE[field][0]
        tags.delall(frame_id)  # a blank frame
        tags.add(Frames[frame_id](encoding=Encoding.UTF8, text=values))


def _apply_vorbis(
    tags: list[tuple[str, str]],
    prefix: str,
    wanted: dict[str, list[str]],
    moods: list[str] | None,
    fill: dict[str, list[str]],
) -> None:
    # Vorbis comments are a list of (name, value) pairs; editing the list in
    # place keeps the order of the foreign fields exactly as it was.
    filled = {FILLABLE[field][1].lower() for field in fill}  # blank in the file

    def keep(name: str) -> bool:
        lowered = name.lower()
        if lowered.startswith(prefix) or lowered in filled:
            return False
        return not (moods is not None and lowered == "mood")

    tags[:] = [(name, value) for name, value in tags if keep(name)]
    for key, values in wanted.items():
        tags.extend((key.upper(), value) for value in values)
    if moods:
        tags.extend(("MOOD", mood) for mood in moods)
    for field, values in fill.items():
        tags.extend((FILLABLE[field][1], value) for value in values)


def _apply_mp4(
    tags: MP4Tags,
    prefix: str,
    wanted: dict[str, list[str]],
    moods: list[str] | None,
    fill: dict[str, list[str]],
) -> None:
    for atom in list(tags.keys()):
        name = mp4_freeform_name(atom)
        if name is None:
            continue
        if name.lower().startswith(prefix) or (moods is not None and name.lower() == "mood"):
            del tags[atom]
    for key, values in wanted.items():
        tags[f"{MP4_FREEFORM_PREFIX}{key}"] = _mp4_values(values)
    if moods:
        tags[MP4_MOOD_KEY] = _mp4_values(moods)
    for field, values in fill.items():  # its atoms hold nothing but blanks
        for atom in FILLABLE[field][2]:
            tags.pop(atom, None)
        tags[FILLABLE[field][2][0]] = list(values)


def _mp4_values(values: list[str]) -> list[MP4FreeForm]:
    return [MP4FreeForm(v.encode("utf-8"), dataformat=AtomDataType.UTF8) for v in values]


def _fsync_file(path: Path) -> None:
    """Make sure the new bytes are on disk before the rename makes them the
    real file; otherwise a crash could leave an empty or partial file."""
    with open(path, "rb+") as handle:
        handle.flush()
        os.fsync(handle.fileno())


def _parse_written(temp: Path, original: mutagen.FileType) -> mutagen.FileType:
    """The temp copy, parsed afresh from its bytes as the original's format."""
    try:
        return type(original)(temp)
    except Exception as exc:
        raise TagWriteError(f"verification failed, written copy does not parse ({exc})") from exc


def _verify_temp(
    written: mutagen.FileType,
    original: mutagen.FileType,
    namespace: str,
    wanted: dict[str, list[str]],
    moods: list[str] | None,
) -> None:
    """The temp copy as parsed afresh must still be the same kind of audio with the
    same duration and carry exactly the tags we meant to write."""
    if abs(_duration(written) - _duration(original)) > 0.05:
        raise TagWriteError("verification failed, audio duration changed")
    if tags_in(written, namespace) != wanted:
        raise TagWriteError("verification failed, written tags do not read back")
    if moods is not None and moods_in(written) != moods:
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


_ERRNO_MESSAGES: dict[int, Callable[[str], str]] = {
    errno.ENOSPC: lambda p: f"disk full, could not write tags to {p}",
    errno.EDQUOT: lambda p: f"disk quota exceeded, could not write tags to {p}",
    errno.EROFS: lambda p: f"file is on a read-only file system: {p}",
    errno.EACCES: lambda p: f"permission denied (directory is not writable?): {p}",
    errno.EPERM: lambda p: f"permission denied (directory is not writable?): {p}",
}


def _describe_write_failure(exc: BaseException, path: Path) -> TagWriteError:
    oserror = find_oserror(exc)
    if oserror is not None and oserror.errno in _ERRNO_MESSAGES:
        message = _ERRNO_MESSAGES[oserror.errno](str(path))
    elif oserror is not None:
        message = f"could not write tags to {path} ({oserror.strerror or oserror})"
    else:
        message = f"could not write tags to {path} ({type(exc).__name__}: {exc})"
    return TagWriteError(f"{message}; the file was left unchanged")
