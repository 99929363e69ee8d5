"""Reading Nomarr's tags and the MOOD tag from audio files with mutagen.

This is the one module that knows which files Nomarr tags and how each
container keeps Nomarr's keys; ``tagging/writers.py`` writes by the same rules
and verifies its writes with these readers, and the library reads the same way
(``library/metadata.py``), so a key reads back as it was written.

How keys are stored per container (the format groups below):

* ID3 (MP3, WAV, AIFF): ID3v2.4 ``TXXX`` frames, ``desc`` = the lowercase key,
  several values as the frame's text list. MOOD is the ``TMOO`` frame.
* Vorbis comments (FLAC, Ogg Vorbis, Ogg Opus): uppercase field names
  (``NOM_...``), several values as repeated fields. MOOD is ``MOOD``.
* MP4/M4A: freeform atoms ``----:com.apple.iTunes:<lowercase key>`` with UTF-8
  values. MOOD is ``----:com.apple.iTunes:MOOD``. Other tools may store a
  freeform value as UTF-16 (the atom's data type says so); ``mp4_text`` is the
  one decoder of freeform values and honours it.

A key is Nomarr's when it starts with the namespace prefix (``nom_``), compared
case-insensitively because other tools and older Nomarr versions may have
changed its case; keys that differ only by case are merged, lowercased.

Which files: an audio file is named with one of ``AUDIO_EXTENSIONS`` and does
not start with ``TEMP_PREFIX`` (Nomarr's own temporary files, see
``nomarr_site/atomic.py``). The content decides the format, not the name
(``parse_audio``): a FLAC file named ``.mp3`` is read, and tagged, as FLAC.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mutagen
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from nomarr_site.atomic import TEMP_PREFIX, TEMP_SUFFIX, is_temp_name
from tagging import keys

__all__ = [
    "AUDIO_EXTENSIONS",
    "FORMAT_NAMES",
    "ID3_TYPES",
    "MP4_FREEFORM_PREFIX",
    "MP4_MOOD_KEY",
    "MP4_TYPES",
    "SUPPORTED_TYPES",
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "VORBIS_TYPES",
    "InvalidTagsError",
    "TagWriteError",
    "audio_files",
    "find_oserror",
    "is_audio_name",
    "key_prefix",
    "moods_in",
    "mp4_freeform_name",
    "mp4_text",
    "open_audio",
    "parse_audio",
    "read_moods",
    "read_tags",
    "tags_in",
]

#: The file name endings Nomarr treats as audio (lowercase, with the dot).
AUDIO_EXTENSIONS = frozenset(
    {".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".wav", ".aif", ".aiff"}
)

#: The format groups: containers that keep tags the same way.
ID3_TYPES: tuple[type[mutagen.FileType], ...] = (MP3, WAVE, AIFF)
VORBIS_TYPES: tuple[type[mutagen.FileType], ...] = (FLAC, OggVorbis, OggOpus)
MP4_TYPES: tuple[type[mutagen.FileType], ...] = (MP4,)
SUPPORTED_TYPES = ID3_TYPES + VORBIS_TYPES + MP4_TYPES

#: mutagen's type -> the short format name the library shows and stores.
FORMAT_NAMES: dict[type[mutagen.FileType], str] = {
    MP3: "mp3",
    FLAC: "flac",
    OggVorbis: "ogg",
    OggOpus: "opus",
    MP4: "m4a",
    WAVE: "wav",
    AIFF: "aiff",
}

#: Freeform MP4 atoms under this ``mean`` hold Nomarr's keys and MOOD.
MP4_FREEFORM_PREFIX = "----:com.apple.iTunes:"
MP4_MOOD_KEY = f"{MP4_FREEFORM_PREFIX}MOOD"


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
# Which files
# --------------------------------------------------------------------------


def is_audio_name(name: str) -> bool:
    """True if a file of this name is one Nomarr reads and tags (by its
    extension, case-insensitively); Nomarr's temporary files never are."""
    if name.startswith(TEMP_PREFIX):
        return False
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def audio_files(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, plus every audio file under the folders named, in order.

    A named file is kept whatever its extension (the user asked for it, and a bad one
    gets its own error); a missing one is kept too, so it is reported."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if is_audio_name(p.name) and p.is_file())
            )
        else:
            found.append(path)
    return found


# --------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------


def key_prefix(namespace: str) -> str:
    """Return the lowercase key prefix (``"nom_"``, see ``tagging.keys.prefix``);
    an empty namespace would match every ``_``-prefixed key in the file, so it is
    refused with InvalidTagsError."""
    if not isinstance(namespace, str) or not namespace.strip():
        raise InvalidTagsError("namespace must be a non-empty string")
    return keys.prefix(namespace)


def read_tags(path: Path, namespace: str) -> dict[str, list[str]]:
    """Return Nomarr's own keys in the file, lowercased key -> list of values.

    Raises TagWriteError for missing/unreadable/unsupported files, and
    InvalidTagsError for an empty namespace.
    """
    prefix = key_prefix(namespace)
    return _tags_with_prefix(open_audio(Path(path)), prefix)


def read_moods(path: Path) -> list[str]:
    """Return the standard MOOD values (ID3 TMOO, Vorbis MOOD, MP4 MOOD atom).

    Raises TagWriteError for missing/unreadable/unsupported files.
    """
    return moods_in(open_audio(Path(path)))


def stat_regular_file(path: Path) -> os.stat_result:
    """The file's stat, or TagWriteError when it is missing, unreachable or not a
    regular file (a folder, a FIFO, a device)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TagWriteError(f"no such file: {path}") from None
    except OSError as exc:
        raise TagWriteError(f"cannot access file: {path} ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise TagWriteError(f"no such file (not a regular file): {path}")
    return st


def open_audio(path: Path) -> mutagen.FileType:
    """Parse the file by content (not extension) and check it is a format we
    know how to tag without corrupting it.

    Raises TagWriteError naming the file and the cause.
    """
    st = stat_regular_file(path)
    if st.st_size == 0:
        raise TagWriteError(f"not a supported audio file (file is empty): {path}")
    if is_temp_name(Path(path).name):
        raise TagWriteError(f"not a music file (a temporary file Nomarr was writing): {path}")

    try:
        audio = parse_audio(path)
    except Exception as exc:
        oserror = find_oserror(exc)
        if oserror is not None and oserror.errno in (errno.EACCES, errno.EPERM):
            raise TagWriteError(f"cannot read file (permission denied): {path}") from exc
        raise TagWriteError(
            f"not a supported audio file (unreadable or corrupt): {path} ({exc})"
        ) from exc
    if audio is None:
        raise TagWriteError(f"not a supported audio file: {path}")
    if not isinstance(audio, SUPPORTED_TYPES):
        raise TagWriteError(
            f"not a supported audio file (unsupported format {type(audio).__name__}): {path}"
        )
    return audio


def parse_audio(path: Path) -> mutagen.FileType | None:
    """Parse a file with mutagen, its format told by its content, not its name.

    ``mutagen.File`` lets a name's extension outweigh the first bytes: a FLAC
    file named ``.mp3`` is read as MP3 and fails with "can't sync to MPEG
    frame", anything named ``.flac`` or ``.wav`` is read as FLAC or WAV. Here
    the first bytes choose among the formats Nomarr tags, and the name only
    breaks a tie between formats the bytes fit equally. Bytes that fit none of
    them are left to ``mutagen.File`` (so an AAC file is still named as AAC).

    Returns None when mutagen knows no such format; raises what mutagen (or
    opening the file) raises for a file it cannot read.
    """
    with open(path, "rb") as handle:
        header = handle.read(128)
        behind_id3 = _behind_id3(handle, header)
    kind = _kind_by_content(header, behind_id3, os.fsdecode(path))
    audio: mutagen.FileType | None = mutagen.File(path) if kind is None else kind(path)
    return audio


def _behind_id3(handle: Any, header: bytes) -> bytes:
    """The first bytes after an ID3v2 tag at the start of the file (b"" if none):
    some taggers put one in front of FLAC, which mutagen's FLAC reads past."""
    if not header.startswith(b"ID3") or len(header) < 10:
        return b""
    size = 0
    for byte in header[6:10]:  # a synchsafe integer: 7 bits a byte
        size = (size << 7) | (byte & 0x7F)
    handle.seek(10 + size)
    return bytes(handle.read(4))


def _kind_by_content(header: bytes, behind_id3: bytes, name: str) -> type[mutagen.FileType] | None:
    """The supported format the first bytes say, the name breaking ties; None when
    the bytes fit none. Each mutagen type scores the bytes as ``mutagen.File``
    does, once with no name (content alone) and once with the name."""
    if header.startswith(b"ID3"):
        return FLAC if behind_id3 == b"fLaC" else MP3
    scored = []
    for kind in SUPPORTED_TYPES:
        by_content = kind.score("", None, header)
        if by_content > 0:
            scored.append((by_content, kind.score(name, None, header), kind.__name__, kind))
    if not scored:
        return None
    return max(scored)[3]


# --------------------------------------------------------------------------
# Reading a parsed file (for callers that opened it themselves)
# --------------------------------------------------------------------------


def tags_in(audio: mutagen.FileType, namespace: str) -> dict[str, list[str]]:
    """Nomarr's keys in an opened file, as ``read_tags`` returns them."""
    return _tags_with_prefix(audio, key_prefix(namespace))


def moods_in(audio: mutagen.FileType) -> list[str]:
    """The MOOD values in an opened file, as ``read_moods`` returns them."""
    tags: Any = audio.tags  # mutagen types it as None; each group has its own class
    if tags is None:
        return []
    if isinstance(audio, ID3_TYPES):
        return [str(t) for frame in tags.getall("TMOO") for t in frame.text]
    if isinstance(audio, VORBIS_TYPES):
        return [value for name, value in tags if name.lower() == "mood"]
    moods: list[str] = []
    for atom, values in tags.items():
        name = mp4_freeform_name(atom)
        if name is not None and name.lower() == "mood":
            moods.extend(mp4_text(v) for v in values)
    return moods


def mp4_freeform_name(atom: str) -> str | None:
    """``----:com.apple.iTunes:name`` -> ``name``; None for any other atom
    (freeform atoms of other tools' ``mean`` are not ours)."""
    if atom.startswith(MP4_FREEFORM_PREFIX):
        return atom[len(MP4_FREEFORM_PREFIX) :]
    return None


def mp4_text(value: object) -> str:
    """One MP4 freeform value as text: UTF-16 (big-endian) when the atom's data
    type says so, UTF-8 otherwise; undecodable bytes become U+FFFD."""
    if isinstance(value, MP4FreeForm):
        encoding = "utf-16-be" if value.dataformat == AtomDataType.UTF16 else "utf-8"
        return bytes(value).decode(encoding, errors="replace")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def find_oserror(exc: BaseException) -> OSError | None:
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


def _tags_with_prefix(audio: mutagen.FileType, prefix: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    tags: Any = audio.tags  # mutagen types it as None; each group has its own class
    if tags is None:
        return result
    if isinstance(audio, ID3_TYPES):
        for frame in tags.getall("TXXX"):
            key = frame.desc.lower()
            if key.startswith(prefix):
                result.setdefault(key, []).extend(str(t) for t in frame.text)
    elif isinstance(audio, VORBIS_TYPES):
        for name, value in tags:
            key = name.lower()
            if key.startswith(prefix):
                result.setdefault(key, []).append(value)
    else:
        for atom, values in tags.items():
            name = mp4_freeform_name(atom)
            if name is not None and name.lower().startswith(prefix):
                result.setdefault(name.lower(), []).extend(mp4_text(v) for v in values)
    return result
