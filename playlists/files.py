"""Playlist files in the library: smart playlists (.nsp) and static ones (.m3u8).

Navidrome imports playlists only from inside its music folder (during its next
scan), so the folder NOMARR_PLAYLIST_DIR must lie inside a library root; anything
else is refused.

Nomarr overwrites only files it wrote. A file is Nomarr's when it carries the marker
(in an .nsp file's "comment", on a comment line of an .m3u8 file) or when it still
holds exactly the bytes Nomarr recorded writing there (WrittenPlaylist). Any other
file of the same name is the user's, and writing is refused with an error.
Files are written to a temporary file beside the target and renamed over it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from library.models import LibraryFile
from library.roots import library_roots
from nomarr_site.atomic import write_atomically
from playlists.models import WrittenPlaylist
from tagging.boundary import OutsideLibrary, Unresolvable, inside_library

MARKER = "Written by Nomarr"
NSP_COMMENT_NOTE = f"{MARKER}; regenerating it overwrites this file."
M3U_NOTE = f"# {MARKER}; exporting it again overwrites this file."
MAX_READ = 1024 * 1024


class PlaylistFileError(Exception):
    """The playlist cannot be written; the message says why."""


def playlist_dir() -> Path:
    """The configured playlist folder (created if missing), if it lies in the library."""
    raw = getattr(settings, "NOMARR_PLAYLIST_DIR", "") or ""
    raw = str(raw).strip()
    if not raw:
        raise PlaylistFileError(
            "NOMARR_PLAYLIST_DIR is not set: set it to a folder inside your library "
            "(Navidrome imports playlists only from its music folder)"
        )
    path = Path(raw).expanduser()
    if "\x00" in raw or not path.is_absolute():
        raise PlaylistFileError(f"NOMARR_PLAYLIST_DIR must be an absolute folder path: {raw}")
    roots = library_roots()
    try:
        resolved = inside_library(path, roots)
    except OutsideLibrary:
        where = ", ".join(str(root) for root in roots) or "none configured"
        raise PlaylistFileError(
            f"NOMARR_PLAYLIST_DIR {raw} is outside the library roots ({where}): Navidrome "
            "imports playlists only from inside its music folder, so Nomarr writes none there"
        ) from None
    except Unresolvable as exc:
        raise PlaylistFileError(f"cannot open NOMARR_PLAYLIST_DIR {raw}: {exc.strerror}") from None
    if resolved.exists() and not resolved.is_dir():
        raise PlaylistFileError(f"NOMARR_PLAYLIST_DIR {raw} is not a folder")
    try:
        resolved.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlaylistFileError(
            f"cannot create NOMARR_PLAYLIST_DIR {raw}: {exc.strerror or exc}"
        ) from exc
    return resolved


#: Characters some file system Navidrome may read the folder through cannot hold
#: (Windows and SMB shares: < > : " / \\ | ? *, besides control characters), and
#: what stands for each so the words keep their meaning: a colon or a slash becomes a
#: dash between spaces ("Focus: calm" -> "Focus - calm", "Rock/Pop" -> "Rock - Pop"),
#: a double quote a single one; ? * < > | are dropped. Look-alike characters
#: (the fullwidth colon U+FF1A) are not used: SMB and macOS map some of them back and forth.
FILE_NAME_MAP = {":": " - ", "/": " - ", "\\": " - ", "|": " - ", '"': "'"}
FILE_NAME_DROP = set("?*<>")
#: Names Windows (and so SMB) refuses whatever the extension.
RESERVED_NAMES = {"con", "prn", "aux", "nul"} | {
    f"{p}{n}" for p in ("com", "lpt") for n in range(10)
}
MAX_NAME_BYTES = 200


def file_name(name: str, suffix: str) -> str:
    """A file name for a playlist name that keeps its words and is valid on Linux,
    macOS, Windows and SMB: no folders, no hidden file, at most MAX_NAME_BYTES."""
    stem = ""
    for char in unicodedata.normalize("NFC", name):
        if char in FILE_NAME_MAP:
            stem += FILE_NAME_MAP[char]
        elif char in FILE_NAME_DROP or unicodedata.category(char)[0] == "C":
            stem += " " if char in "\t\n\r" else ""
        else:
            stem += char
    stem = re.sub(r"\s+", " ", stem)
    stem = re.sub(r"( - )+", " - ", stem).strip(" .-")
    while len(stem.encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    stem = stem.rstrip(" .-")
    if stem.lower().split(".")[0] in RESERVED_NAMES:
        stem = f"{stem} playlist"
    if not stem:
        raise PlaylistFileError(f"the playlist name {name!r} gives no usable file name")
    return f"{stem}.{suffix}"


@dataclass
class Written:
    path: Path
    replaced: bool
    tracks: int | None = None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _has_marker(kind: str, data: bytes) -> bool:
    text = data.decode("utf-8", "replace")
    if kind == WrittenPlaylist.Kind.SMART:
        try:
            document = json.loads(text)
        except ValueError:
            return False
        comment = document.get("comment") if isinstance(document, dict) else None
        return isinstance(comment, str) and MARKER in comment
    return any(line.strip() == M3U_NOTE for line in text.splitlines()[:5])


def check_ours(target: Path, kind: str) -> bool:
    """True if target exists and is Nomarr's, False if it does not exist;
    PlaylistFileError if it is someone else's."""
    if not os.path.lexists(target):
        return False
    if target.is_symlink() or not target.is_file():
        raise PlaylistFileError(f"{target} exists and is not a regular file; not overwriting it")
    try:
        with open(target, "rb") as handle:
            data = handle.read(MAX_READ)
    except OSError as exc:
        raise PlaylistFileError(f"cannot read {target}: {exc.strerror or exc}") from exc
    if _has_marker(kind, data):
        return True
    row = WrittenPlaylist.objects.filter(path=str(target)).first()
    if row is not None and row.sha256 == _sha256(data):
        return True
    raise PlaylistFileError(
        f"{target} already exists and was not written by Nomarr: refusing to overwrite the "
        "user's own playlist. Choose another name, or move that file away."
    )


def _write(target: Path, data: bytes, kind: str) -> bool:
    replaced = check_ours(target, kind)
    write_atomically(target, data)
    return replaced


def _record(target: Path, kind: str, name: str, rules: dict, data: bytes, tracks=None) -> None:
    WrittenPlaylist.objects.update_or_create(
        path=str(target),
        defaults={
            "kind": kind,
            "name": name,
            "rules": rules,
            "tracks": tracks,
            "sha256": _sha256(data),
        },
    )


def _name(rules: dict) -> str:
    name = (rules.get("name") or "").strip()
    if not name:
        raise PlaylistFileError("give the playlist a name")
    return name


def nsp_document(rules: dict) -> dict:
    """The .nsp JSON for validated rules, with Nomarr's marker in the comment."""
    comment = (rules.get("comment") or "").strip()
    if MARKER not in comment:
        comment = f"{comment} ({NSP_COMMENT_NOTE})" if comment else NSP_COMMENT_NOTE
    document: dict = {"name": _name(rules), "comment": comment}
    if "public" in rules:
        document["public"] = rules["public"]
    for key in ("all", "any", "sort", "order", "limit", "limitPercent", "offset", "refreshDelay"):
        if key in rules:
            document[key] = rules[key]
    return document


def write_smart_playlist(rules: dict) -> Written:
    """Write the rules as <name>.nsp into the playlist folder."""
    folder = playlist_dir()
    document = nsp_document(rules)
    target = folder / file_name(document["name"], "nsp")
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    replaced = _write(target, data, WrittenPlaylist.Kind.SMART)
    _record(target, WrittenPlaylist.Kind.SMART, document["name"], document, data)
    return Written(target, replaced)


def m3u_text(name: str, files: list[LibraryFile], folder: Path) -> str:
    """An extended M3U (UTF-8) with paths relative to folder."""
    lines = ["#EXTM3U", f"#PLAYLIST:{name}", M3U_NOTE]
    for f in files:
        seconds = round(f.duration) if f.duration else -1
        label = " - ".join(part for part in (f.artist, f.title) if part) or Path(f.path).stem
        label = label.replace("\n", " ").replace("\r", " ")
        lines.append(f"#EXTINF:{seconds},{label}")
        lines.append(Path(os.path.relpath(f.path, folder)).as_posix())
    return "\n".join(lines) + "\n"


def export_m3u(rules: dict, files: list[LibraryFile]) -> Written:
    """Write files as <name>.m3u8 into the playlist folder."""
    folder = playlist_dir()
    name = _name(rules)
    target = folder / file_name(name, "m3u8")
    data = m3u_text(name, files, folder).encode("utf-8")
    replaced = _write(target, data, WrittenPlaylist.Kind.M3U)
    _record(target, WrittenPlaylist.Kind.M3U, name, rules, data, tracks=len(files))
    return Written(target, replaced, tracks=len(files))
