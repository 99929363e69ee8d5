"""Where a taught tag's examples come from: a mark on a page, a folder, an M3U/M3U8
playlist, a Navidrome playlist (Subsonic `getPlaylist`) or an existing tag value.

Every path goes through the library's one boundary rule (tagging/boundary.py):
a path outside the library roots is refused and said so, never followed. A file
becomes an example only once the library has a row for it (a scan, or a tag job,
read it); the others are reported as not in the library. Adding a file already
marked changes its side (the latest word counts).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from library.models import LibraryFile, TagValue
from playlists import subsonic
from sonic import similar
from sonic.models import TrackEmbedding
from tagging.boundary import OutsideLibrary, inside_library, library_files
from teach.models import Example, TaughtTag

#: The most entries one playlist (file or Navidrome) may bring.
MAX_ENTRIES = 20000


class ExampleError(Exception):
    """The examples cannot be taken from there; the message says why."""


@dataclass
class Added:
    """What one `add_*` did: files marked, and what was left out and why."""

    added: int = 0
    not_found: list[str] = field(default_factory=list)  # inside the library, but no row
    refused: list[str] = field(default_factory=list)  # outside the library, unreadable

    def summary(self, positive: bool) -> str:
        side = "yes" if positive else "no"
        parts = [f"{self.added} example{'s' if self.added != 1 else ''} marked {side}"]
        if self.not_found:
            parts.append(
                f"{len(self.not_found)} not in the library yet (scan first): "
                + ", ".join(self.not_found[:3])
            )
        if self.refused:
            parts.append(f"{len(self.refused)} refused: " + "; ".join(self.refused[:3]))
        return "; ".join(parts)


def mark(tag: TaughtTag, file: LibraryFile, positive: bool | None, source: str = "mark") -> None:
    """Mark one file yes (True) or no (False) for tag; None takes the mark away."""
    if positive is None:
        Example.objects.filter(tag=tag, file=file).delete()
        return
    Example.objects.update_or_create(
        tag=tag, file=file, defaults={"positive": positive, "source": source}
    )


def _mark_all(tag: TaughtTag, files: Iterable[LibraryFile], positive: bool, source: str) -> int:
    count = 0
    for file in files:
        mark(tag, file, positive, source)
        count += 1
    return count


def _rows_for(paths: list[Path], result: Added) -> list[LibraryFile]:
    """The library rows of these real paths, in order; those without one noted."""
    by_path = {f.path: f for f in LibraryFile.objects.filter(path__in=[str(p) for p in paths])}
    rows = []
    for path in paths:
        row = by_path.get(str(path))
        if row is None:
            result.not_found.append(str(path))
        else:
            rows.append(row)
    return rows


def add_paths(tag: TaughtTag, paths: list[str], positive: bool, source: str) -> Added:
    """Files and folders (their audio files) inside the library, marked as one side."""
    if len(paths) > MAX_ENTRIES:
        raise ExampleError(f"{len(paths)} entries; at most {MAX_ENTRIES} at a time")
    found = library_files(paths)
    result = Added(refused=[refused.detail for refused in found.refused])
    result.added = _mark_all(tag, _rows_for(found.files, result), positive, source)
    return result


def add_folder(tag: TaughtTag, folder: str, positive: bool) -> Added:
    """Every file of the library under folder (a path inside the library)."""
    try:
        real = inside_library(folder.strip())
    except (OutsideLibrary, OSError) as exc:
        raise ExampleError(str(exc)) from None
    if not real.is_dir():
        raise ExampleError(f"not a folder: {folder}")
    files = LibraryFile.objects.filter(path__startswith=str(real) + os.sep).order_by("path")
    result = Added()
    result.added = _mark_all(tag, files, positive, Example.Source.FOLDER)
    if not result.added:
        raise ExampleError(f"the library has no file under {real} yet (scan it first)")
    return result


def playlist_entries(text: str, base: Path | None) -> list[str]:
    """The paths an M3U/M3U8 playlist lists (comments and blank lines skipped);
    relative entries are resolved against base (the playlist's folder), and are
    refused when there is none."""
    entries = []
    for line in text.splitlines():
        line = line.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        if line.startswith("file://"):
            line = line.removeprefix("file://")
        path = Path(line)
        if not path.is_absolute():
            if base is None:
                raise ExampleError(
                    f"the playlist lists a relative path ({line}); give the playlist's path "
                    "inside the library instead of its text, so it can be resolved"
                )
            path = base / path
        entries.append(str(path))
    if not entries:
        raise ExampleError("the playlist lists no file")
    return entries


def add_playlist_file(tag: TaughtTag, playlist: str, positive: bool) -> Added:
    """The files an M3U/M3U8 inside the library lists."""
    try:
        real = inside_library(playlist.strip())
        text = real.read_bytes().decode("utf-8", errors="replace")
    except (OutsideLibrary, OSError) as exc:
        raise ExampleError(f"cannot read the playlist: {exc}") from None
    return add_paths(tag, playlist_entries(text, real.parent), positive, Example.Source.PLAYLIST)


def add_playlist_text(tag: TaughtTag, text: str, positive: bool) -> Added:
    """The files an uploaded M3U/M3U8 lists (absolute paths only: it has no folder)."""
    return add_paths(tag, playlist_entries(text, None), positive, Example.Source.PLAYLIST)


def add_tag_value(tag: TaughtTag, key: str, value: str, positive: bool) -> Added:
    """Every file whose tag key holds value (case-insensitive: GENRE=Jazz)."""
    key, value = key.strip().lower(), value.strip()
    if not key or not value:
        raise ExampleError("give a tag and a value, e.g. genre and Jazz")
    file_ids = TagValue.objects.filter(key=key, value__iexact=value).values("file_id")
    result = Added()
    files = LibraryFile.objects.filter(pk__in=file_ids).order_by("path")
    result.added = _mark_all(tag, files, positive, Example.Source.TAG)
    if not result.added:
        raise ExampleError(f"no file of the library has {key}={value}")
    return result


def _song_file(song: dict) -> LibraryFile | None:
    """The library file of a Navidrome song: by MusicBrainz recording id, else by path."""
    mbid = str(song.get("musicBrainzId") or "").strip().lower()
    if mbid:
        for file in LibraryFile.objects.filter(mb_recording_id__icontains=mbid):
            if mbid in subsonic.recording_ids(file):
                return file
    reported = str(song.get("path") or "").replace("\\", "/").strip("/")
    if not reported:
        return None
    name = reported.rsplit("/", 1)[-1]
    candidates = [
        file
        for file in LibraryFile.objects.filter(path__endswith=name).select_related("root")
        if subsonic.path_matches(reported, subsonic.relative_path(file))
    ]
    return candidates[0] if len(candidates) == 1 else None


def add_navidrome_playlist(
    tag: TaughtTag, playlist: str, positive: bool, client: subsonic.Client | None = None
) -> Added:
    """The songs of a Navidrome playlist (its id or its name), found in the library."""
    wanted = playlist.strip()
    if not wanted:
        raise ExampleError("give the Navidrome playlist's name or id")
    try:
        client = client or subsonic.Client.from_settings()
        ids = [
            str(p.get("id")) for p in client.playlists() if wanted in (p.get("id"), p.get("name"))
        ]
        if not ids:
            raise ExampleError(f"Navidrome has no playlist {wanted!r} for this user")
        payload = client.call("getPlaylist", id=ids[0])
    except subsonic.SubsonicError as exc:
        raise ExampleError(str(exc)) from None
    entries = (payload.get("playlist") or {}).get("entry") or []
    entries = entries if isinstance(entries, list) else [entries]
    if len(entries) > MAX_ENTRIES:
        raise ExampleError(f"the playlist has {len(entries)} songs; at most {MAX_ENTRIES}")
    result = Added()
    files = []
    for song in entries:
        file = _song_file(song) if isinstance(song, dict) else None
        if file is None:
            label = song.get("path") or song.get("title") if isinstance(song, dict) else song
            result.not_found.append(str(label))
        else:
            files.append(file)
    result.added = _mark_all(tag, files, positive, Example.Source.NAVIDROME)
    return result


SOURCES = {
    "folder": "a folder inside the library",
    "playlist": "an M3U/M3U8 inside the library (its path)",
    "playlist_text": "an M3U/M3U8's text (absolute paths)",
    "navidrome": "a Navidrome playlist (its name or id)",
    "tag": "a tag value (e.g. genre = Jazz)",
    "random": "random analysed tracks not marked yes (for the no side)",
}


def add_from(
    tag: TaughtTag, source: str, positive: bool, where: str = "", value: str = ""
) -> Added:
    """Examples from one of SOURCES: where is the folder, playlist path, playlist text,
    Navidrome playlist, tag key or count; value is the tag value."""
    if source == "folder":
        return add_folder(tag, where, positive)
    if source == "playlist":
        return add_playlist_file(tag, where, positive)
    if source == "playlist_text":
        return add_playlist_text(tag, where, positive)
    if source == "navidrome":
        return add_navidrome_playlist(tag, where, positive)
    if source == "tag":
        return add_tag_value(tag, where, value, positive)
    if source == "random":
        return add_random(tag, where, positive)
    raise ExampleError(f"no source {source!r}; there are: {', '.join(SOURCES)}")


def add_random(tag: TaughtTag, count: str, positive: bool) -> Added:
    """count analysed files, drawn at random among those not marked yet."""
    try:
        wanted = int(str(count).strip() or "20")
    except ValueError:
        raise ExampleError(f"not a number of tracks: {count!r}") from None
    if not 1 <= wanted <= 1000:
        raise ExampleError("draw between 1 and 1000 tracks")
    try:
        backbone, model_set = similar.space()
    except similar.SonicError as exc:
        raise ExampleError(str(exc)) from None
    marked = Example.objects.filter(tag=tag).values("file_id")
    analysed = TrackEmbedding.objects.filter(backbone=backbone, model_set=model_set).values(
        "file_id"
    )
    files = (
        LibraryFile.objects.filter(pk__in=analysed).exclude(pk__in=marked).order_by("?")[:wanted]
    )
    result = Added()
    result.added = _mark_all(tag, files, positive, Example.Source.MARK)
    return result
