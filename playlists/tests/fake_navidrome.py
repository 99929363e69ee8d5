"""A small HTTP server speaking the parts of Navidrome's APIs that a push uses.

Real HTTP on 127.0.0.1 (random port), in a thread. It checks token authentication as
Navidrome does (t == md5(password + s); user names case-insensitive, reported as
stored), keeps playlists per owner and records every request, so tests can see what
a push sent and what it changed. What it copies from Navidrome's source
(server/subsonic/playlists.go, core/playlists, persistence/sql_search.go):

* `version` picks the behaviour: from 0.61 `getPlaylists` carries OpenSubsonic's
  `readonly` (true for a smart playlist and for another user's); from 0.63
  `createPlaylist` on a smart playlist is refused with error 50, before it it
  answers ok and changes nothing (the tracks of a smart playlist are not stored);
* an admin sees every playlist (`getPlaylists`), others their own and public ones;
* `search3` pages with `songCount`/`songOffset`; a query that is a UUID matches the
  songs' MusicBrainz recording id (from 0.57), anything else the title;
* the native API (`POST /auth/login`, `GET /api/playlist` with X-ND-Authorization)
  shows each playlist's `path`, `sync` and `rules`, as Navidrome's web UI reads them;
  `native_api=False` answers 404 there (a proxy that passes only /rest).
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Song:
    id: str
    title: str
    path: str
    musicBrainzId: str = ""
    artist: str = "Tester"

    def child(self) -> dict:
        data = {"id": self.id, "title": self.title, "artist": self.artist, "path": self.path}
        if self.musicBrainzId:
            data["musicBrainzId"] = self.musicBrainzId
        return data


@dataclass
class Request:
    method: str
    params: dict[str, list[str]]
    authenticated: bool
    http_method: str

    def one(self, name: str) -> str:
        return self.params.get(name, [""])[0]


@dataclass
class Playlist:
    id: str
    name: str
    owner: str
    songs: list[str] = field(default_factory=list)
    comment: str = ""
    public: bool = False
    rules: dict | None = None  # a smart playlist (.nsp)
    path: str = ""  # imported from this file
    sync: bool = False  # re-imported from the file on each scan

    @property
    def smart(self) -> bool:
        return self.rules is not None

    def summary(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "comment": self.comment,
            "public": self.public,
            "songCount": len(self.songs),
        }

    def native(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "comment": self.comment,
            "ownerName": self.owner,
            "ownerId": f"user-{self.owner}",
            "public": self.public,
            "path": self.path,
            "sync": self.sync,
            "rules": self.rules,
            "songCount": len(self.songs),
        }


class SubsonicError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


class FakeNavidrome:
    def __init__(
        self,
        users: dict[str, str],
        songs: list[Song],
        version: str = "0.63.2",
        admins: tuple[str, ...] = (),
        native_api: bool = True,
    ):
        self.users = users  # as stored in Navidrome (its spelling is the owner's name)
        self.admins = set(admins)
        self.version = _version(version)
        self.native_api = native_api
        self.songs = {song.id: song for song in songs}
        self.playlists: dict[str, Playlist] = {}
        self.requests: list[Request] = []
        self._ids = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeNavidrome:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]

    def add_playlist(self, name: str, owner: str, songs=(), public=False, **extra) -> Playlist:
        self._ids += 1
        playlist = Playlist(f"pl-{self._ids}", name, owner, list(songs), public=public, **extra)
        self.playlists[playlist.id] = playlist
        return playlist

    def user(self, name: str) -> str | None:
        """The stored spelling of a user name (Navidrome looks users up ignoring case)."""
        return next((u for u in self.users if u.lower() == name.lower()), None)

    # -- the Subsonic API --

    def answer(self, method: str, params: dict[str, list[str]], http_method: str) -> dict:
        one = {key: values[0] for key, values in params.items()}
        user = self.user(one.get("u", ""))
        password = self.users.get(user) if user else None
        salt, token = one.get("s", ""), one.get("t", "")
        expected = (
            hashlib.md5((password + salt).encode(), usedforsecurity=False).hexdigest()
            if password is not None
            else None
        )
        authenticated = bool(salt) and token == expected
        with self._lock:
            self.requests.append(Request(method, params, authenticated, http_method))
            if not authenticated or user is None:
                raise SubsonicError(40, "Wrong username or password")
            for required in ("v", "c"):
                if not one.get(required):
                    raise SubsonicError(10, f"Required parameter '{required}' is missing")
            handler = getattr(self, f"api_{method}", None)
            if handler is None:
                raise SubsonicError(0, f"unknown method {method}")
            return handler(user, one, params)

    def api_ping(self, user, one, params) -> dict:
        return {}

    def api_search3(self, user, one, params) -> dict:
        query = one.get("query", "").strip().strip('"').lower()
        count = int(one.get("songCount", 20))
        offset = int(one.get("songOffset", 0))
        if _is_uuid(query) and self.version >= (0, 57):
            found = [s for s in self.songs.values() if s.musicBrainzId.lower() == query]
        else:
            found = [s for s in self.songs.values() if query and query in s.title.lower()]
        return {"searchResult3": {"song": [s.child() for s in found[offset : offset + count]]}}

    def _visible(self, user: str) -> list[Playlist]:
        return [
            p for p in self.playlists.values() if user in self.admins or p.owner == user or p.public
        ]

    def _summary(self, user: str, playlist: Playlist) -> dict:
        data = playlist.summary()
        if self.version >= (0, 61):  # OpenSubsonic's playlist extension
            data["readonly"] = playlist.smart or playlist.owner != user
        return data

    def api_getPlaylists(self, user, one, params) -> dict:
        return {"playlists": {"playlist": [self._summary(user, p) for p in self._visible(user)]}}

    def api_getPlaylist(self, user, one, params) -> dict:
        playlist = self.playlists.get(one.get("id", ""))
        if playlist is None or playlist not in self._visible(user):
            raise SubsonicError(70, "playlist not found")
        entries = [self.songs[s].child() for s in playlist.songs]
        return {"playlist": {**self._summary(user, playlist), "entry": entries}}

    def _writable(self, user: str, playlist_id: str) -> Playlist:
        playlist = self.playlists.get(playlist_id)
        if playlist is None:
            raise SubsonicError(70, "data not found")
        may = playlist.owner == user or (user in self.admins and self.version >= (0, 63))
        if not may:
            raise SubsonicError(50, "User not authorized for the given operation")
        return playlist

    def api_createPlaylist(self, user, one, params) -> dict:
        songs = params.get("songId", [])
        missing = [s for s in songs if s not in self.songs]
        if missing:
            raise SubsonicError(70, f"Song not found: {missing[0]}")
        if one.get("playlistId"):
            playlist = self._writable(user, one["playlistId"])
            if playlist.smart:
                if self.version >= (0, 63):
                    raise SubsonicError(50, "User not authorized for the given operation")
                # 0.56-0.62: the row is saved, the tracks of a smart playlist are not.
            else:
                playlist.songs = list(songs)
        elif one.get("name"):
            playlist = self.add_playlist(one["name"], user, songs)
        else:
            raise SubsonicError(10, "Required parameter 'name' is missing")
        entries = [self.songs[s].child() for s in playlist.songs]
        return {"playlist": {**self._summary(user, playlist), "entry": entries}}

    def api_updatePlaylist(self, user, one, params) -> dict:
        playlist = self._writable(user, one.get("playlistId", ""))
        if "comment" in one:
            playlist.comment = one["comment"]
        if "public" in one:
            playlist.public = one["public"] == "true"
        if "name" in one:
            playlist.name = one["name"]
        return {}

    # -- the native API (what Navidrome's web UI uses) --

    def login(self, body: bytes) -> tuple[int, object]:
        try:
            data = json.loads(body)
        except ValueError:
            return 422, {"error": "invalid request payload"}
        user = self.user(str(data.get("username", "")))
        with self._lock:
            self.requests.append(Request("auth/login", {}, user is not None, "POST"))
        if user is None or self.users[user] != data.get("password"):
            return 401, {"error": "Invalid username or password"}
        return 200, {"id": f"user-{user}", "username": user, "token": f"token-{user}"}

    def native_playlists(self, authorization: str) -> tuple[int, object]:
        user = authorization.removeprefix("Bearer ").removeprefix("token-")
        with self._lock:
            self.requests.append(Request("api/playlist", {}, user in self.users, "GET"))
        if not authorization.startswith("Bearer token-") or user not in self.users:
            return 401, {"error": "Not authenticated"}
        return 200, [p.native() for p in self._visible(user)]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.respond("GET", b"")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.respond("POST", self.rfile.read(length))

            def send_json(self, status: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def respond(self, http_method: str, body: bytes):
                url = urlsplit(self.path)
                if url.path in ("/auth/login", "/api/playlist"):
                    if not fake.native_api:
                        self.send_json(404, {"error": "not found"})
                    elif url.path == "/auth/login" and http_method == "POST":
                        self.send_json(*fake.login(body))
                    else:
                        header = self.headers.get("X-ND-Authorization", "")
                        self.send_json(*fake.native_playlists(header))
                    return
                params = parse_qs(url.query, keep_blank_values=True)
                for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
                    params.setdefault(key, []).extend(values)
                method = url.path.removeprefix("/rest/").removesuffix(".view")
                payload = {"status": "ok", "version": "1.16.1", "type": "navidrome"}
                try:
                    payload.update(fake.answer(method, params, http_method))
                except SubsonicError as exc:
                    payload["status"] = "failed"
                    payload["error"] = {"code": exc.code, "message": exc.message}
                self.send_json(200, {"subsonic-response": payload})

        return Handler
