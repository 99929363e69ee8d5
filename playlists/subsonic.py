"""Push a static playlist to Navidrome over the Subsonic API.

Every request carries token authentication (Subsonic API 1.13+): `u` the user, `s` a
fresh random salt, `t` = md5(password + salt) in hex, `v` the API version, `c` the
client name and `f=json`. Parameters travel as a form POST (Navidrome and the
OpenSubsonic "formPost" extension accept it; song lists can be long for a URL).

A push of playlist NAME is (what Navidrome does is from its source, v0.56-v0.63:
server/subsonic/playlists.go, core/playlists, persistence/sql_search.go):

1. `ping`: the server answers and accepts the credentials;
2. each track's Navidrome song id, by `search3`: first its MusicBrainz recording id
   (Navidrome 0.57+ answers a query that is a UUID with the songs of that recording
   id), then its title and its file name, paged with `songOffset` (SEARCH_SIZE a page,
   at most MAX_PAGES pages), matching the song's `musicBrainzId`, else its `path`
   (which must end with the file's path inside its library root; Navidrome reports
   real paths only when the player's "Report Real Path" is on). Tracks not found are
   left out and listed; if none is found nothing changes;
3. the target: the playlist named `static_name(NAME)` ("NAME (static)", so it never
   collides with the smart playlist NAME.nsp or the NAME.m3u8 Nomarr writes) owned by
   the user (names compared ignoring case, as Navidrome does). Passed over, with the
   reason: one Navidrome marks `readonly` (OpenSubsonic, 0.61+: a smart playlist or
   another user's), one that came from a file (the native API's `path`/`sync`/`rules`,
   which Subsonic does not show; or, when that API cannot be reached, a comment
   Navidrome gives imported files, "Auto-imported from '...'", or Nomarr's marker).
   A smart or file playlist must not be pushed to: 0.63+ refuses with error 50,
   0.56-0.62 answer ok and keep the rule's tracks, and a synced .m3u is re-imported
   over the push on the next scan;
4. `createPlaylist`: with `playlistId` it replaces that playlist's songs, without it
   creates a new one; so pushing twice leaves one playlist; `updatePlaylist` sets the
   comment and the public flag;
5. `getPlaylist`: the playlist is read back; if it does not hold exactly the songs
   sent the push failed (SubsonicError says so), else Pushed says what changed.

Bad credentials, an unreachable server and no track found end in a SubsonicError
whose message says which, before anything is changed.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from library.models import LibraryFile
from playlists.files import MARKER, NSP_COMMENT_NOTE

API_VERSION = "1.16.1"
CLIENT = "nomarr"
TIMEOUT = 15
SEARCH_SIZE = 100
#: search3 pages read per query (SEARCH_SIZE songs each) before giving up on a track.
MAX_PAGES = 20
MAX_LISTED = 20
#: A push looks every track up with search3; longer playlists belong in an .nsp.
MAX_PUSH = 5000
AUTH_CODES = {40, 41, 44}
STATIC_SUFFIX = "(static)"
#: The comment Navidrome gives a playlist it imports from a file (core/playlists).
IMPORTED_COMMENT = "Auto-imported from '"


class SubsonicError(Exception):
    """The push did not happen; the message says why (nothing was changed)."""


class AuthError(SubsonicError):
    pass


class Unreachable(SubsonicError):
    pass


def token(password: str, salt: str) -> str:
    return hashlib.md5((password + salt).encode("utf-8"), usedforsecurity=False).hexdigest()


def static_name(name: str) -> str:
    """The name a pushed (static) playlist gets in Navidrome: "NAME (static)", never
    the name of the smart playlist NAME.nsp or of NAME.m3u8."""
    name = (name or "").strip()
    if not name or name.lower().endswith(STATIC_SUFFIX):
        return name
    return f"{name} {STATIC_SUFFIX}"


def _listed(payload: dict, outer: str, inner: str) -> list[dict]:
    found = (payload.get(outer) or {}).get(inner) or []
    return found if isinstance(found, list) else [found]


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

    def is_me(self, owner: object) -> bool:
        """Navidrome's user names are case-insensitive ("Admin" logs in as "admin")."""
        return isinstance(owner, str) and owner.casefold() == self.user.casefold()

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

    def search_songs(self, query: str, offset: int = 0) -> list[dict]:
        payload = self.call(
            "search3",
            query=query,
            songCount=SEARCH_SIZE,
            songOffset=offset,
            artistCount=0,
            albumCount=0,
        )
        return _listed(payload, "searchResult3", "song")

    def playlists(self) -> list[dict]:
        return _listed(self.call("getPlaylists"), "playlists", "playlist")

    def playlist_songs(self, playlist_id: str) -> list[str]:
        """The song ids Navidrome's playlist holds now, in order."""
        payload = self.call("getPlaylist", id=playlist_id)
        return [str(entry.get("id")) for entry in _listed(payload, "playlist", "entry")]

    def native_playlists(self) -> dict[str, dict] | None:
        """{id: playlist} from Navidrome's native API (what its web UI reads), which
        shows where a playlist came from (`path`, `sync`, `rules`); None when that API
        cannot be reached (another Subsonic server, a proxy passing only /rest)."""
        try:
            login = self._json(
                "auth/login",
                json.dumps({"username": self.user, "password": self.password}).encode(),
                {},
            )
            bearer = login.get("token") if isinstance(login, dict) else None
            if not isinstance(bearer, str) or not bearer:
                return None
            found = self._json("api/playlist", None, {"X-ND-Authorization": f"Bearer {bearer}"})
        except (OSError, ValueError):
            return None
        if not isinstance(found, list):
            return None
        return {str(p.get("id")): p for p in found if isinstance(p, dict)}

    def _json(self, path: str, data: bytes | None, headers: dict[str, str]) -> object:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            f"{self.url}/{path}",
            data=data,
            headers={"Content-Type": "application/json", **headers},
            method="POST" if data is not None else "GET",
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            return json.loads(response.read())


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


def recording_ids(f: LibraryFile) -> list[str]:
    parts = (part.strip().lower() for part in f.mb_recording_id.split(";"))
    return list(dict.fromkeys(part for part in parts if part))


class Matcher:
    """Finds each library file's Navidrome song id with search3 (results cached)."""

    def __init__(self, client: Client):
        self.client = client
        self.cache: dict[str, list[dict]] = {}

    def search(self, query: str) -> list[dict]:
        """Every song search3 finds for query, page after page (at most MAX_PAGES)."""
        if query not in self.cache:
            songs: list[dict] = []
            for page in range(MAX_PAGES):
                found = self.client.search_songs(query, offset=page * SEARCH_SIZE)
                songs.extend(found)
                if len(found) < SEARCH_SIZE:
                    break
            self.cache[query] = songs
        return self.cache[query]

    def find(self, f: LibraryFile) -> tuple[str | None, str]:
        """(song id, "") or (None, why not)."""
        mbids = recording_ids(f)
        relative = relative_path(f)

        def by_id(songs: list[dict]) -> list[dict]:
            return [s for s in songs if str(s.get("musicBrainzId", "")).lower() in mbids]

        def by_path(songs: list[dict]) -> list[dict]:
            return [s for s in songs if path_matches(str(s.get("path", "")), relative)]

        for mbid in mbids:  # Navidrome answers a UUID with that recording's songs
            same = by_id(self.search(mbid))
            if same:  # the same recording twice (album and compilation): prefer the path
                return str((by_path(same) or same)[0]["id"]), ""
        ambiguous = False
        for query in dict.fromkeys([f.title.strip(), Path(f.path).stem]):
            if not query:
                continue
            songs = self.search(query)
            same = by_id(songs)  # Navidrome before 0.57 searches a UUID as text
            if same:
                return str((by_path(same) or same)[0]["id"]), ""
            found = by_path(songs)
            if len(found) == 1:
                return str(found[0]["id"]), ""
            ambiguous = ambiguous or len(found) > 1
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


def not_pushable(client: Client, playlist: dict, native: dict | None) -> str:
    """Why Nomarr must not push to this (same-named) playlist, or "" if it may."""
    if not client.is_me(playlist.get("owner")):
        return f"it belongs to {playlist.get('owner') or 'another user'}"
    if playlist.get("readonly") is True:
        return "Navidrome marks it read-only (a smart playlist)"
    if native is not None:
        if native.get("rules"):
            return "it is a smart playlist"
        if native.get("path") or native.get("sync"):
            where = native.get("path") or "a playlist file"
            return f"it was imported from {where}; the next scan would undo a push"
    comment = str(playlist.get("comment") or "")
    if comment.startswith(IMPORTED_COMMENT):
        return "it was imported from a playlist file; the next scan would undo a push"
    if MARKER in comment:
        return "it comes from a playlist file Nomarr wrote"
    return ""


@dataclass
class Pushed:
    playlist_id: str
    name: str
    songs: int
    created: bool
    added: int = 0
    removed: int = 0
    total: int = 0  # tracks asked for
    unmatched: list[str] = field(default_factory=list)
    passed_over: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """What the push did, in words (several lines when tracks were left out)."""
        if self.created:
            lines = [
                f"Created the Navidrome playlist {self.name!r} (id {self.playlist_id}) "
                f"with {self.songs} songs."
            ]
        else:
            lines = [
                f"Updated the Navidrome playlist {self.name!r} (id {self.playlist_id}): it "
                f"holds {self.songs} songs now ({self.added} added, {self.removed} removed)."
            ]
        lines.extend(f"Left alone: {line}" for line in self.passed_over)
        if self.unmatched:
            lines.append(
                f"{len(self.unmatched)} of {self.total} tracks are not in Navidrome and were "
                "left out:"
            )
            lines.extend(f"  {line}" for line in self.unmatched[:MAX_LISTED])
            if len(self.unmatched) > MAX_LISTED:
                lines.append(f"  ... and {len(self.unmatched) - MAX_LISTED} more")
        return "\n".join(lines)


def _comment(comment: str) -> str:
    """The rules' comment without the note that marks Nomarr's playlist files (a
    pushed playlist is no file: the marker would make the next push pass it over)."""
    comment = comment.replace(f" ({NSP_COMMENT_NOTE})", "").replace(NSP_COMMENT_NOTE, "")
    return comment.replace(MARKER, "").strip()


def push(
    client: Client, name: str, files: list[LibraryFile], comment: str = "", public: bool = False
) -> Pushed:
    """Make Navidrome's playlist static_name(name) (the user's own) hold files, in order,
    leaving out the tracks Navidrome does not have."""
    name = static_name(name)
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
    if not song_ids:
        listed = "\n".join(f"  {line}" for line in unmatched[:MAX_LISTED])
        more = (
            f"\n  ... and {len(unmatched) - MAX_LISTED} more" if len(unmatched) > MAX_LISTED else ""
        )
        raise SubsonicError(
            f"none of the {len(files)} tracks could be found in Navidrome, so nothing was "
            f"changed:\n{listed}{more}"
        )

    same_name = [p for p in client.playlists() if p.get("name") == name]
    native = client.native_playlists() if same_name else None
    target, passed_over = None, []
    for playlist in same_name:
        why = not_pushable(client, playlist, (native or {}).get(str(playlist.get("id"))))
        if not why:
            target = playlist
            break
        if client.is_me(playlist.get("owner")):
            passed_over.append(f"{name!r} (id {playlist.get('id')}): {why}")

    if target is not None:
        playlist_id = str(target["id"])
        before = client.playlist_songs(playlist_id)
        client.call("createPlaylist", playlistId=playlist_id, songId=song_ids)
    else:
        before = []
        payload = client.call("createPlaylist", name=name, songId=song_ids)
        playlist_id = str((payload.get("playlist") or {}).get("id") or "")
        if not playlist_id:  # servers before API 1.14 answer createPlaylist with nothing
            known = {str(p.get("id")) for p in same_name}
            found = [
                p
                for p in client.playlists()
                if p.get("name") == name and str(p.get("id")) not in known
            ]
            if not found:
                raise SubsonicError(f"Navidrome did not create the playlist {name!r}")
            playlist_id = str(found[0]["id"])
    client.call(
        "updatePlaylist",
        playlistId=playlist_id,
        comment=_comment(comment),
        public="true" if public else "false",
    )
    now = client.playlist_songs(playlist_id)
    if now != song_ids:
        raise SubsonicError(
            f"Navidrome answered ok, but its playlist {name!r} (id {playlist_id}) holds "
            f"{len(now)} songs, not the {len(song_ids)} sent: it did not take the push "
            "(a smart playlist, or one synced from a file?)"
        )
    gained = Counter(now) - Counter(before)
    lost = Counter(before) - Counter(now)
    return Pushed(
        playlist_id=playlist_id,
        name=name,
        songs=len(now),
        created=target is None,
        added=sum(gained.values()),
        removed=sum(lost.values()),
        total=len(files),
        unmatched=unmatched,
        passed_over=passed_over,
    )
