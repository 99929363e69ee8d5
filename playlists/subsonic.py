"""Push a static playlist to Navidrome over the Subsonic API.

Every request carries token authentication (Subsonic API 1.13+): `u` the user, `s` a
fresh random salt, `t` = md5(password + salt) in hex, `v` the API version, `c` the
client name and `f=json`. Parameters travel as a form POST (Navidrome and the
OpenSubsonic "formPost" extension accept it; song lists can be long for a URL).

A push is:

1. `ping`: the server answers and accepts the credentials;
2. `search3` (query: the track's title, then its file name) for each track, to find
   its Navidrome song id: by MusicBrainz recording id (the song's `musicBrainzId`),
   else by path (the song's `path` must end with the file's path inside its library
   root; Navidrome reports real paths only when the player's "Report Real Path" is on,
   or Subsonic.DefaultReportRealPath was set when the player was first seen);
3. `getPlaylists`, to find a playlist of that name owned by the user;
4. `createPlaylist`: with `playlistId` it replaces that playlist's songs, without it
   creates a new one; so pushing twice leaves one playlist;
5. `updatePlaylist`: the comment and the public flag.

Nothing is changed on the server unless every track was found (step 2) and the
credentials work (step 1): bad credentials, an unreachable server and unmatched
songs end in a SubsonicError whose message says which.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from library.models import LibraryFile

API_VERSION = "1.16.1"
CLIENT = "nomarr"
TIMEOUT = 15
SEARCH_SIZE = 100
MAX_LISTED = 20
#: A push looks every track up with search3; longer playlists belong in an .nsp.
MAX_PUSH = 5000
AUTH_CODES = {40, 41, 44}


class SubsonicError(Exception):
    """The push did not happen; the message says why (nothing was changed)."""


class AuthError(SubsonicError):
    pass


class Unreachable(SubsonicError):
    pass


def token(password: str, salt: str) -> str:
    return hashlib.md5((password + salt).encode("utf-8"), usedforsecurity=False).hexdigest()


class Client:
    """A Subsonic API client with token authentication, over urllib."""

    def __init__(self, url: str, user: str, password: str, timeout: float = TIMEOUT):
        url = (url or "").strip().rstrip("/")
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SubsonicError(
                f"the Navidrome URL must start with http:// or https://, not {url!r} "
                "(set NOMARR_NAVIDROME_URL)"
            )
        if not user or not password:
            raise AuthError(
                "no Navidrome user name or password (set NOMARR_NAVIDROME_USER and "
                "NOMARR_NAVIDROME_PASSWORD)"
            )
        self.url, self.user, self.password, self.timeout = url, user, password, timeout

    @classmethod
    def from_settings(cls) -> Client:
        return cls(
            getattr(settings, "NOMARR_NAVIDROME_URL", ""),
            getattr(settings, "NOMARR_NAVIDROME_USER", ""),
            getattr(settings, "NOMARR_NAVIDROME_PASSWORD", ""),
        )

    def call(self, method: str, **params) -> dict:
        """The `subsonic-response` object of a successful call, else SubsonicError."""
        salt = secrets.token_hex(8)
        form: list[tuple[str, str]] = [
            ("u", self.user),
            ("t", token(self.password, salt)),
            ("s", salt),
            ("v", API_VERSION),
            ("c", CLIENT),
            ("f", "json"),
        ]
        for key, value in params.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            form.extend((key, str(v)) for v in values)
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            f"{self.url}/rest/{method}",
            data=urllib.parse.urlencode(form).encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise AuthError(
                    f"Navidrome at {self.url} refused user {self.user!r} (HTTP {exc.code})"
                ) from None
            raise SubsonicError(
                f"Navidrome at {self.url} answered HTTP {exc.code} to {method}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach Navidrome at {self.url}: {reason}") from None
        try:
            payload = json.loads(body)["subsonic-response"]
            status = payload["status"]
        except (ValueError, KeyError, TypeError):
            raise SubsonicError(
                f"{self.url} did not answer {method} like a Subsonic server"
            ) from None
        if status != "ok":
            error = payload.get("error") or {}
            code, message = error.get("code"), error.get("message") or "no reason given"
            if code in AUTH_CODES:
                raise AuthError(
                    f"Navidrome at {self.url} refused user {self.user!r}: {message} "
                    f"(Subsonic error {code})"
                )
            raise SubsonicError(f"Navidrome refused {method}: {message} (Subsonic error {code})")
        return payload

    def search_songs(self, query: str) -> list[dict]:
        payload = self.call(
            "search3", query=query, songCount=SEARCH_SIZE, artistCount=0, albumCount=0
        )
        songs = (payload.get("searchResult3") or {}).get("song") or []
        return songs if isinstance(songs, list) else [songs]

    def playlists(self) -> list[dict]:
        payload = self.call("getPlaylists")
        found = (payload.get("playlists") or {}).get("playlist") or []
        return found if isinstance(found, list) else [found]


# --- matching tracks to Navidrome songs ------------------------------------------


def relative_path(f: LibraryFile) -> str:
    """The file's path inside its library root, with forward slashes."""
    try:
        return Path(f.path).relative_to(f.root.path).as_posix()
    except ValueError:
        return Path(f.path).name


def path_matches(reported: str, relative: str) -> bool:
    """Navidrome's path (absolute, or relative to its music folder) ends with the
    file's path inside its library root, on whole path components."""
    reported = reported.replace("\\", "/").strip("/")
    return reported == relative or reported.endswith("/" + relative)


def recording_ids(f: LibraryFile) -> set[str]:
    return {part.strip().lower() for part in f.mb_recording_id.split(";") if part.strip()}


class Matcher:
    """Finds each library file's Navidrome song id with search3 (results cached)."""

    def __init__(self, client: Client):
        self.client = client
        self.cache: dict[str, list[dict]] = {}

    def search(self, query: str) -> list[dict]:
        if query not in self.cache:
            self.cache[query] = self.client.search_songs(query)
        return self.cache[query]

    def find(self, f: LibraryFile) -> tuple[str | None, str]:
        """(song id, "") or (None, why not)."""
        mbids = recording_ids(f)
        relative = relative_path(f)
        queries = [q for q in dict.fromkeys([f.title.strip(), Path(f.path).stem]) if q]
        ambiguous = False
        for query in queries:
            songs = self.search(query)
            if mbids:
                by_id = [s for s in songs if str(s.get("musicBrainzId", "")).lower() in mbids]
                if by_id:
                    return str(by_id[0]["id"]), ""
            by_path = [s for s in songs if path_matches(str(s.get("path", "")), relative)]
            if len(by_path) == 1:
                return str(by_path[0]["id"]), ""
            ambiguous = ambiguous or len(by_path) > 1
        if ambiguous:
            return None, f"several Navidrome songs have a path ending in {relative}"
        what = "its MusicBrainz recording id nor its path" if mbids else "its path"
        hint = (
            ""
            if mbids
            else " (it has no MusicBrainz recording id; for path matching turn "
            "on Report Real Path for the player 'nomarr' in Navidrome)"
        )
        return None, f"search3 found no song with {what} {relative}{hint}"


# --- pushing ---------------------------------------------------------------------


@dataclass
class Pushed:
    playlist_id: str
    name: str
    songs: int
    created: bool


def push(
    client: Client, name: str, files: list[LibraryFile], comment: str = "", public: bool = False
) -> Pushed:
    """Make Navidrome's playlist `name` (the user's own) hold exactly files, in order."""
    name = (name or "").strip()
    if not name:
        raise SubsonicError("give the playlist a name")
    if not files:
        raise SubsonicError("the playlist is empty: nothing to push, nothing changed")
    if len(files) > MAX_PUSH:
        raise SubsonicError(
            f"the playlist holds {len(files)} tracks; a push takes at most {MAX_PUSH} "
            "(set a limit, or write it as a smart playlist); nothing changed"
        )
    client.call("ping")

    matcher = Matcher(client)
    song_ids: list[str] = []
    unmatched: list[str] = []
    for f in files:
        song_id, why = matcher.find(f)
        if song_id is None:
            unmatched.append(f"{f.path}: {why}")
        else:
            song_ids.append(song_id)
    if unmatched:
        listed = "\n".join(f"  {line}" for line in unmatched[:MAX_LISTED])
        more = (
            f"\n  ... and {len(unmatched) - MAX_LISTED} more" if len(unmatched) > MAX_LISTED else ""
        )
        raise SubsonicError(
            f"{len(unmatched)} of {len(files)} tracks could not be found in Navidrome, so "
            f"nothing was changed:\n{listed}{more}"
        )

    mine = [
        p
        for p in client.playlists()
        if p.get("name") == name and p.get("owner", client.user) == client.user
    ]
    if mine:
        playlist_id = str(mine[0]["id"])
        client.call("createPlaylist", playlistId=playlist_id, songId=song_ids)
    else:
        payload = client.call("createPlaylist", name=name, songId=song_ids)
        playlist_id = str((payload.get("playlist") or {}).get("id") or "")
        if not playlist_id:  # servers before API 1.14 answer createPlaylist with nothing
            found = [p for p in client.playlists() if p.get("name") == name]
            if not found:
                raise SubsonicError(f"Navidrome did not create the playlist {name!r}")
            playlist_id = str(found[0]["id"])
    client.call(
        "updatePlaylist",
        playlistId=playlist_id,
        comment=comment,
        public="true" if public else "false",
    )
    return Pushed(playlist_id=playlist_id, name=name, songs=len(song_ids), created=not mine)
