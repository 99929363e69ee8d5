"""What the library knows about one audio file: its tags, read with mutagen, and an
audio-content fingerprint that tag writes do not change.

The fingerprint
---------------
A moved or renamed file must be recognised by its content, yet Nomarr (and every other
tagger) rewrites tags, and tags live inside the file: at the start of MP3 (ID3v2),
FLAC and Ogg, at the end of MP3 too (ID3v1, APEv2), and anywhere in M4A (the moov
atom may come before or after the audio). So the fingerprint never hashes the file
as such: it first finds where the audio payload lies in the container

* MP3: after the ID3v2 tag(s), before ID3v1 and APEv2;
* FLAC: after the last metadata block;
* Ogg (Vorbis, Opus, FLAC): after the page that ends the header packets; Ogg page
  headers carry a sequence number and CRC that change when a longer comment header
  needs an extra page, so those 8 bytes of every page header are zeroed;
* M4A/MP4: the payload of the `mdat` atom; WAV: the `data` chunk; AIFF: `SSND`;

and hashes the payload's length with a 64 KiB window from its middle (BLAKE2b, 128
bits). Trade-off: one seek and one 64 KiB read per file instead of reading whole
files (5-50 MB each), at the price that two files whose payloads have the same
length and the same middle 64 KiB count as the same recording. That happens only
for copies of one encode (which are the same recording) or for edits outside the
window that keep the length (cutting a few bytes of silence changes the length).
Unknown containers fall back to the whole file as the "payload".
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import stat
import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, BinaryIO

import mutagen
from mutagen.id3 import TCON

# The one reader of audio tags, so the library reads Nomarr's keys exactly as they are written.
from tagging import keys, tagfiles

WINDOW = 64 * 1024

# Standard keys -> where each container keeps them. Keys are Picard's internal names.
_ID3_TEXT = {
    "title": "TIT2",
    "artist": "TPE1",
    "album": "TALB",
    "albumartist": "TPE2",
    "genre": "TCON",
    "date": "TDRC",
    "originaldate": "TDOR",
    "tracknumber": "TRCK",
    "discnumber": "TPOS",
}
_ID3_TXXX = {
    "musicbrainz_trackid": "musicbrainz release track id",
    "musicbrainz_albumid": "musicbrainz album id",
    "musicbrainz_artistid": "musicbrainz artist id",
    "musicbrainz_albumartistid": "musicbrainz album artist id",
    "musicbrainz_releasegroupid": "musicbrainz release group id",
}
_VORBIS_NAMES = {
    "title": ("title",),
    "artist": ("artist",),
    "album": ("album",),
    "albumartist": ("albumartist", "album artist", "album_artist"),
    "genre": ("genre",),
    "date": ("date", "year"),
    "originaldate": ("originaldate", "originalyear"),
    "tracknumber": ("tracknumber",),
    "discnumber": ("discnumber",),
    # Vorbis' MUSICBRAINZ_TRACKID is the recording id (Picard's mapping).
    "musicbrainz_recordingid": ("musicbrainz_trackid",),
    "musicbrainz_trackid": ("musicbrainz_releasetrackid",),
    "musicbrainz_albumid": ("musicbrainz_albumid",),
    "musicbrainz_artistid": ("musicbrainz_artistid",),
    "musicbrainz_albumartistid": ("musicbrainz_albumartistid",),
    "musicbrainz_releasegroupid": ("musicbrainz_releasegroupid",),
}
_MP4_ATOMS = {
    "title": "©nam",
    "artist": "©ART",
    "album": "©alb",
    "albumartist": "aART",
    "genre": "©gen",
    "date": "©day",
}
_MP4_FREEFORM = {
    "musicbrainz_recordingid": "musicbrainz track id",
    "musicbrainz_trackid": "musicbrainz release track id",
    "musicbrainz_albumid": "musicbrainz album id",
    "musicbrainz_artistid": "musicbrainz artist id",
    "musicbrainz_albumartistid": "musicbrainz album artist id",
    "musicbrainz_releasegroupid": "musicbrainz release group id",
}
# TagValue key -> LibraryFile column (text columns join several values with "; ").
TEXT_COLUMNS = {
    "title": "title",
    "artist": "artist",
    "album": "album",
    "albumartist": "album_artist",
    "genre": "genre",
    "musicbrainz_recordingid": "mb_recording_id",
    "musicbrainz_trackid": "mb_track_id",
    "musicbrainz_albumid": "mb_album_id",
    "musicbrainz_artistid": "mb_artist_id",
    "musicbrainz_albumartistid": "mb_album_artist_id",
    "musicbrainz_releasegroupid": "mb_release_group_id",
}
MB_COLUMN_LENGTH = 200


@dataclass
class FileInfo:
    """Everything one read of a file gives: stat, audio properties, tags, fingerprint."""

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    fingerprint: str = ""
    format: str = ""
    duration: float | None = None
    bitrate: int | None = None
    sample_rate: int | None = None
    channels: int | None = None
    columns: dict[str, object] = field(default_factory=dict)
    # (key, value) in file order; TagValue rows are made from these.
    tags: list[tuple[str, str]] = field(default_factory=list)
    nom_version: str = ""
    error: str = ""
    # The file vanished between the folder listing and the read.
    gone: bool = False

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)

    @cached_property
    def tags_digest(self) -> str:
        """Short hash of every tag value, to skip rewriting unchanged TagValue rows."""
        digest = hashlib.blake2b(digest_size=16)
        for key, value in self.tags:
            digest.update(f"{key}\x1f{value}\x1e".encode("utf-8", "surrogatepass"))
        return digest.hexdigest()


def read_file(
    path: str, st: os.stat_result, namespace: str, parsed: mutagen.FileType | None = None
) -> FileInfo:
    """Read a file's tags and fingerprint. Never raises for a bad file: the reason
    lands in FileInfo.error (the file is then kept, so it is not re-read unchanged).

    `parsed`: the file already parsed by content (tagging.writers.Written.audio, the
    parse that verified a write), so it is not parsed again."""
    info = FileInfo(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns)
    if not stat.S_ISREG(st.st_mode):
        info.error = "not a regular file"
        return info
    if st.st_size == 0:
        info.error = "empty file"
        return info
    try:
        # The format by content, not by name.
        audio = parsed if parsed is not None else tagfiles.parse_audio(path)
    except Exception as exc:  # mutagen raises many kinds for bad files
        oserror = tagfiles.find_oserror(exc)
        if oserror is not None and oserror.errno == errno.ENOENT:
            info.gone = True
            info.error = "no such file"
        elif oserror is not None and oserror.errno in (errno.EACCES, errno.EPERM):
            info.error = "permission denied"
        elif oserror is not None:
            info.error = f"cannot read: {oserror.strerror or oserror}"
        else:
            info.error = _describe(exc)
        return info
    kind = tagfiles.FORMAT_NAMES.get(type(audio)) if audio is not None else None
    if kind is None:
        info.error = "not a supported audio file" + (
            f" ({type(audio).__name__})" if audio is not None else ""
        )
        return info
    info.format = kind
    length = getattr(audio.info, "length", None)
    info.duration = round(float(length), 3) if length and math.isfinite(length) else None
    info.bitrate = _int(getattr(audio.info, "bitrate", None))
    # Opus always decodes at 48 kHz (mutagen gives no rate for it).
    info.sample_rate = _int(getattr(audio.info, "sample_rate", None)) or (
        48000 if kind == "opus" else None
    )
    info.channels = _int(getattr(audio.info, "channels", None))
    try:
        info.tags = _standard_tags(audio) + _nomarr_tags(audio, namespace)
    except Exception as exc:  # a malformed frame must not stop the scan
        info.error = f"unreadable tags: {_describe(exc)}"
        info.tags = []
    info.columns = columns(info.tags)
    version_key = keys.version_key(namespace)
    info.nom_version = next((v for k, v in info.tags if k == version_key), "")[:64]
    try:
        info.fingerprint = fingerprint(path)
    except OSError as exc:
        info.error = info.error or f"cannot read: {exc.strerror or exc}"
    return info


def columns(tags: list[tuple[str, str]]) -> dict[str, object]:
    """The LibraryFile columns for a file's tags."""
    values: dict[str, list[str]] = {}
    for key, value in tags:
        values.setdefault(key, []).append(value)
    result: dict[str, object] = {}
    for key, column in TEXT_COLUMNS.items():
        text = "; ".join(v for v in values.get(key, []) if v)
        result[column] = text[:MB_COLUMN_LENGTH] if column.startswith("mb_") else text
    result["year"] = _year(values.get("date") or values.get("originaldate") or [])
    result["track_number"] = _leading_int(values.get("tracknumber", []))
    result["disc_number"] = _leading_int(values.get("discnumber", []))
    return result


def number(value: str) -> float | None:
    """A tag value as a number, for scores, years and track numbers; None if it is none."""
    text = value.strip()
    if not text or len(text) > 40:
        return None
    try:
        result = float(text)
    except ValueError:
        return None
    return result if math.isfinite(result) else None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"unreadable or corrupt ({text[:300]})"


def _int(value: float | str | None) -> int | None:
    try:
        return int(value) if value else None
    except (TypeError, ValueError):
        return None


def _year(values: list[str]) -> int | None:
    for value in values:
        digits = value.strip()[:4]
        if len(digits) == 4 and digits.isdigit():
            return int(digits)
    return None


def _leading_int(values: list[str]) -> int | None:
    for value in values:
        head = value.strip().split("/")[0].strip()
        if head.isdigit() and len(head) < 9:
            return int(head)
    return None


def _standard_tags(audio: mutagen.FileType) -> list[tuple[str, str]]:
    tags: Any = audio.tags  # mutagen types it as None; each group has its own class
    if tags is None:
        return []
    found: list[tuple[str, str]] = []
    if isinstance(audio, tagfiles.ID3_TYPES):
        for key, frame_id in _ID3_TEXT.items():
            for frame in tags.getall(frame_id):
                texts = frame.genres if frame_id == "TCON" else frame.text
                found.extend((key, str(t)) for t in texts if str(t))
        for ufid in tags.getall("UFID"):
            if ufid.owner == "http://musicbrainz.org" and ufid.data:
                found.append(("musicbrainz_recordingid", ufid.data.decode("ascii", "replace")))
        wanted = {desc: key for key, desc in _ID3_TXXX.items()}
        for frame in tags.getall("TXXX"):
            mapped = wanted.get(frame.desc.lower())
            if mapped:
                found.extend((mapped, str(t)) for t in frame.text if str(t))
    elif isinstance(audio, tagfiles.VORBIS_TYPES):
        names = {name: key for key, aliases in _VORBIS_NAMES.items() for name in aliases}
        for name, value in tags:
            mapped = names.get(name.lower())
            if mapped and value:
                found.append((mapped, value))
    elif isinstance(audio, tagfiles.MP4_TYPES):
        for key, atom in _MP4_ATOMS.items():
            found.extend((key, str(v)) for v in tags.get(atom, []) if str(v))
        if "©gen" not in tags:
            for code in tags.get("gnre", []):
                found.extend(("genre", g) for g in TCON(text=[f"({code - 1})"]).genres)
        for atom, key in (("trkn", "tracknumber"), ("disk", "discnumber")):
            for pair in tags.get(atom, []):
                if pair and pair[0]:
                    found.append((key, f"{pair[0]}/{pair[1]}" if pair[1] else str(pair[0])))
        wanted = {name: key for key, name in _MP4_FREEFORM.items()}
        for atom, values in tags.items():
            name = tagfiles.mp4_freeform_name(atom)
            mapped = wanted.get(name.lower()) if name is not None else None
            if mapped:
                found.extend((mapped, tagfiles.mp4_text(v)) for v in values)
    return found


def _nomarr_tags(audio: mutagen.FileType, namespace: str) -> list[tuple[str, str]]:
    found = [
        (key, value)
        for key, values in tagfiles.tags_in(audio, namespace).items()
        for value in values
    ]
    found.extend(("mood", mood) for mood in tagfiles.moods_in(audio) if mood)
    return found


# --- fingerprint -----------------------------------------------------------------


def fingerprint(path: str) -> str:
    """The audio-content fingerprint of a file (see the module docstring)."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(64)
        kind, start, end = _payload(handle, head, size)
        length = max(0, end - start)
        offset = start + max(0, (length - WINDOW) // 2)
        handle.seek(offset)
        window = handle.read(min(WINDOW, length))
    if kind == "ogg":
        window = _normalise_ogg(window)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{kind}:{length}:".encode())
    digest.update(window)
    return digest.hexdigest()


def _payload(handle: BinaryIO, head: bytes, size: int) -> tuple[str, int, int]:
    """(container, first byte, end) of the audio payload."""
    try:
        if head.startswith(b"fLaC") or (head.startswith(b"ID3") and _flac_after_id3(handle)):
            return ("flac", *_flac_payload(handle, size))
        if head.startswith(b"OggS"):
            return "ogg", _ogg_audio_start(handle, size), size
        if head[4:8] == b"ftyp":
            return ("mp4", *_atom_payload(handle, size, b"mdat"))
        if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
            return ("wav", *_chunk_payload(handle, size, 12, b"data", "<I"))
        if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
            return ("aiff", *_chunk_payload(handle, size, 12, b"SSND", ">I"))
        return ("mpeg", *_mpeg_payload(handle, size))
    except (struct.error, ValueError):
        return "raw", 0, size


def _id3v2_end(handle: BinaryIO, offset: int = 0) -> int:
    """Offset after any ID3v2 tags starting at offset."""
    for _ in range(8):
        handle.seek(offset)
        header = handle.read(10)
        if len(header) < 10 or not header.startswith(b"ID3"):
            break
        b = header[6:10]
        tag_size = (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)
        offset += 10 + tag_size + (10 if header[5] & 0x10 else 0)
    return offset


def _mpeg_payload(handle: BinaryIO, size: int) -> tuple[int, int]:
    start = _id3v2_end(handle)
    end = size
    if end - start >= 128:
        handle.seek(end - 128)
        if handle.read(3) == b"TAG":
            end -= 128
    if end - start >= 32:
        handle.seek(end - 32)
        footer = handle.read(32)
        if footer.startswith(b"APETAGEX"):
            ape_size, flags = struct.unpack("<I4xI", footer[12:24])
            total = ape_size + (32 if flags & 0x80000000 else 0)
            if 0 < total <= end - start:
                end -= total
    return start, end


def _flac_after_id3(handle: BinaryIO) -> bool:
    offset = _id3v2_end(handle)
    handle.seek(offset)
    return handle.read(4) == b"fLaC"


def _flac_payload(handle: BinaryIO, size: int) -> tuple[int, int]:
    offset = _id3v2_end(handle) + 4
    while offset < size:
        handle.seek(offset)
        header = handle.read(4)
        if len(header) < 4:
            break
        offset += 4 + int.from_bytes(header[1:4], "big")
        if header[0] & 0x80:
            break
    return min(offset, size), size


def _ogg_audio_start(handle: BinaryIO, size: int) -> int:
    """End of the page that completes the stream's header packets (audio starts on a
    fresh page in every Ogg mapping Nomarr reads)."""
    offset, packets, needed, first = 0, 0, None, b""
    for _ in range(1000):
        handle.seek(offset)
        header = handle.read(27)
        if len(header) < 27 or not header.startswith(b"OggS"):
            break
        table = handle.read(header[26])
        body_size = sum(table)
        if needed is None:
            first = handle.read(16)
            if first.startswith(b"\x01vorbis"):
                needed = 3
            elif first.startswith(b"OpusHead") or first.startswith(b"Speex"):
                needed = 2
            elif first.startswith(b"\x7fFLAC") and len(first) >= 9:
                needed = 1 + int.from_bytes(first[7:9], "big")
            else:
                needed = 1
        packets += sum(1 for lace in table if lace < 255)
        offset += 27 + len(table) + body_size
        if packets >= needed:
            return min(offset, size)
    return min(offset, size)


def _normalise_ogg(window: bytes) -> bytes:
    """Drop the bytes before the first page boundary and zero every page header's
    sequence number and CRC (a tag write may renumber every page after the tags)."""
    data = bytearray(window)
    pos = data.find(b"OggS")
    if pos < 0:
        return bytes(data)
    data = data[pos:]
    pos = 0
    while 0 <= pos < len(data):
        if pos + 27 > len(data) or pos + 27 + data[pos + 26] > len(data):
            data[pos:] = b"\0" * (len(data) - pos)
            break
        segments = data[pos + 26]
        body = sum(data[pos + 27 : pos + 27 + segments])
        data[pos + 18 : pos + 26] = b"\0" * 8
        following = pos + 27 + segments + body
        if data[following : following + 4] == b"OggS" or following >= len(data):
            pos = following
        else:
            pos = data.find(b"OggS", pos + 4)
    return bytes(data)


def _atom_payload(handle: BinaryIO, size: int, wanted: bytes) -> tuple[int, int]:
    """The largest top-level atom of that type (MP4), as (payload start, end)."""
    offset, best = 0, None
    while offset + 8 <= size:
        handle.seek(offset)
        atom_size, kind = struct.unpack(">I4s", handle.read(8))
        header = 8
        if atom_size == 1:
            atom_size = struct.unpack(">Q", handle.read(8))[0]
            header = 16
        elif atom_size == 0:
            atom_size = size - offset
        if atom_size < header:
            break
        if kind == wanted and (best is None or atom_size - header > best[1] - best[0]):
            best = (offset + header, min(offset + atom_size, size))
        offset += atom_size
    if best is None:
        raise ValueError("no audio atom")
    return best


def _chunk_payload(
    handle: BinaryIO, size: int, offset: int, wanted: bytes, fmt: str
) -> tuple[int, int]:
    """A RIFF/AIFF chunk's payload (chunks are padded to an even size)."""
    while offset + 8 <= size:
        handle.seek(offset)
        header = handle.read(8)
        chunk_size = struct.unpack(fmt, header[4:8])[0]
        if header[:4] == wanted:
            end = size if chunk_size == 0xFFFFFFFF else min(offset + 8 + chunk_size, size)
            return offset + 8, end
        offset += 8 + chunk_size + (chunk_size & 1)
    raise ValueError("no audio chunk")
