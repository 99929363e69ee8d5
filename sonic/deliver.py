"""Where a mix or a path goes: an M3U8 to download, a file in the playlist folder, or
Navidrome (over Subsonic). The playlists app does the writing and the pushing; this
is the one place sonic calls it."""

from __future__ import annotations

from pathlib import Path

from django.http import HttpResponse

from library.models import LibraryFile
from playlists import files as playlist_files
from playlists import subsonic

ACTIONS = ("json", "m3u8", "write", "push")


class DeliveryError(Exception):
    """The playlist could not be written or pushed; nothing was changed."""


def m3u8(name: str, tracks: list[LibraryFile]) -> str:
    """An extended M3U with absolute paths (a download is not beside the music; the
    playlist folder's copy, `deliver("write", ...)`, has paths relative to it)."""
    text = playlist_files.m3u_text(name, tracks, Path("/"))
    return "\n".join(
        line if line.startswith("#") or not line else "/" + line for line in text.split("\n")
    )


def m3u8_download(name: str, tracks: list[LibraryFile]) -> HttpResponse:
    """The M3U8 as a file to download."""
    response = HttpResponse(m3u8(name, tracks), content_type="audio/x-mpegurl; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="nomarr.m3u8"'
    return response


def deliver(action: str, name: str, tracks: list[LibraryFile]) -> str:
    """Write (into NOMARR_PLAYLIST_DIR) or push (to Navidrome) the tracks as playlist
    `name`; what happened, in words. DeliveryError says why not."""
    name = (name or "").strip()
    if not name:
        raise DeliveryError("give the playlist a name")
    try:
        if action == "write":
            written = playlist_files.export_m3u({"name": name, "sonic": True}, tracks)
            verb = "Replaced" if written.replaced else "Wrote"
            return f"{verb} {written.path} with {written.tracks} tracks."
        if action == "push":
            pushed = subsonic.push(subsonic.Client.from_settings(), name, tracks)
            verb = "Created" if pushed.created else "Updated"
            return f"{verb} the Navidrome playlist {pushed.name!r} with {pushed.songs} songs."
    except (playlist_files.PlaylistFileError, subsonic.SubsonicError) as exc:
        raise DeliveryError(str(exc)) from None
    raise ValueError(f"unknown action {action!r}")
