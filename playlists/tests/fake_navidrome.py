"""A small HTTP server speaking the subset of the Subsonic API that a push uses.

Real HTTP on 127.0.0.1 (random port), in a thread. It checks token authentication as
Navidrome does (t == md5(password + s)), keeps playlists per owner and records every
request, so tests can see what a push sent and what it changed.
"""

from __future__ import annotations

import hashlib
import json
import threading
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

    def summary(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "comment": self.comment,
            "public": self.public,
            "songCount": len(self.songs),
        }


class SubsonicError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class FakeNavidrome:
    def __init__(self, users: dict[str, str], songs: list[Song]):
        self.users = users
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

    def add_playlist(self, name: str, owner: str, songs=(), public=False) -> Playlist:
        self._ids += 1
        playlist = Playlist(f"pl-{self._ids}", name, owner, list(songs), public=public)
        self.playlists[playlist.id] = playlist
        return playlist

    # -- the API --

    def answer(self, method: str, params: dict[str, list[str]], http_method: str) -> dict:
        one = {key: values[0] for key, values in params.items()}
        user = one.get("u", "")
        password = self.users.get(user)
        salt, token = one.get("s", ""), one.get("t", "")
        expected = (
            hashlib.md5((password + salt).encode(), usedforsecurity=False).hexdigest()
            if password is not None
            else None
        )
        authenticated = bool(salt) and token == expected
        with self._lock:
            self.requests.append(Request(method, params, authenticated, http_method))
            if not authenticated:
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
        query = one.get("query", "").strip('"').lower()
        count = int(one.get("songCount", 20))
        found = [s.child() for s in self.songs.values() if query in s.title.lower()]
        return {"searchResult3": {"song": found[:count]}}

    def api_getPlaylists(self, user, one, params) -> dict:
        visible = [p.summary() for p in self.playlists.values() if p.owner == user or p.public]
        return {"playlists": {"playlist": visible}}

    def _own(self, user: str, playlist_id: str) -> Playlist:
        playlist = self.playlists.get(playlist_id)
        if playlist is None:
            raise SubsonicError(70, "Playlist not found")
        if playlist.owner != user:
            raise SubsonicError(50, "Not the owner")
        return playlist

    def api_createPlaylist(self, user, one, params) -> dict:
        songs = params.get("songId", [])
        missing = [s for s in songs if s not in self.songs]
        if missing:
            raise SubsonicError(70, f"Song not found: {missing[0]}")
        if one.get("playlistId"):
            playlist = self._own(user, one["playlistId"])
            playlist.songs = list(songs)
        elif one.get("name"):
            playlist = self.add_playlist(one["name"], user, songs)
        else:
            raise SubsonicError(10, "Required parameter 'name' is missing")
        return {"playlist": {**playlist.summary(), "entry": [self.songs[s].child() for s in songs]}}

    def api_updatePlaylist(self, user, one, params) -> dict:
        playlist = self._own(user, one.get("playlistId", ""))
        if "comment" in one:
            playlist.comment = one["comment"]
        if "public" in one:
            playlist.public = one["public"] == "true"
        if "name" in one:
            playlist.name = one["name"]
        return {}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.respond("GET", "")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.respond("POST", self.rfile.read(length).decode())

            def respond(self, http_method: str, body: str):
                url = urlsplit(self.path)
                params = parse_qs(url.query, keep_blank_values=True)
                for key, values in parse_qs(body, keep_blank_values=True).items():
                    params.setdefault(key, []).extend(values)
                method = url.path.removeprefix("/rest/").removesuffix(".view")
                payload = {"status": "ok", "version": "1.16.1", "type": "navidrome"}
                try:
                    payload.update(fake.answer(method, params, http_method))
                except SubsonicError as exc:
                    payload["status"] = "failed"
                    payload["error"] = {"code": exc.code, "message": exc.message}
                data = json.dumps({"subsonic-response": payload}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
