"""Pushing a static playlist to Navidrome over real HTTP, to a small Subsonic server."""

from __future__ import annotations

import hashlib
import socket

import pytest

from playlists import service, subsonic
from playlists.fields import FieldCatalog
from playlists.rules import selected_files, validate

from .conftest import MIXED
from .fake_navidrome import FakeNavidrome, Song

USER, PASSWORD = "admin", "s3cret pass"


def songs_for_mixed(real_paths: bool = True) -> list[Song]:
    """Navidrome's view of the mixed library: ids, MusicBrainz ids where the files have
    them, and paths (real ones under Navidrome's own music folder, or made-up ones)."""
    found = []
    for index, (title, (fmt, _, mbid)) in enumerate(MIXED.items(), start=1):
        path = (
            f"/srv/navidrome/music/Artist/Album/{title}.{fmt}"
            if real_paths
            else f"Tester/Album/{index:02d} - {title}.{fmt}"
        )
        found.append(Song(id=f"song-{index}", title=title, path=path, musicBrainzId=mbid))
    return found


@pytest.fixture
def navidrome():
    with FakeNavidrome({USER: PASSWORD, "other": "x"}, songs_for_mixed()) as server:
        yield server


def everything(catalog, **extra):
    rules = {"all": [{"gt": {"duration": 0}}], "sort": "title", **extra}
    return validate(rules, catalog)


def test_it_pushes_a_playlist_with_songs_matched_by_musicbrainz_id_or_path(mixed, navidrome):
    catalog = FieldCatalog.current()
    files = selected_files(everything(catalog), catalog)
    client = subsonic.Client(navidrome.url, USER, PASSWORD)
    pushed = subsonic.push(client, "Nomarr mix", files, comment="from Nomarr", public=True)

    assert pushed.created and pushed.songs == 5
    (playlist,) = navidrome.playlists.values()
    assert (playlist.name, playlist.owner, playlist.comment, playlist.public) == (
        "Nomarr mix",
        USER,
        "from Nomarr",
        True,
    )
    by_title = {song.title: song.id for song in navidrome.songs.values()}
    assert playlist.songs == [by_title[f.title] for f in files]

    methods = navidrome.methods()
    assert methods[0] == "ping"
    assert set(methods[1:-3]) == {"search3"}
    assert methods[-3:] == ["getPlaylists", "createPlaylist", "updatePlaylist"]
    salts = set()
    for request in navidrome.requests:
        assert request.authenticated
        salt = request.one("s")
        assert (
            request.one("t")
            == hashlib.md5((PASSWORD + salt).encode(), usedforsecurity=False).hexdigest()
        )
        assert (request.one("u"), request.one("f"), request.one("c")) == (USER, "json", "nomarr")
        assert request.one("v") and "p" not in request.params  # never the password itself
        salts.add(salt)
    assert len(salts) == len(navidrome.requests)  # a fresh salt every time


def test_pushing_twice_leaves_one_playlist(mixed, navidrome):
    catalog = FieldCatalog.current()
    client = subsonic.Client(navidrome.url, USER, PASSWORD)
    first = subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
    fewer = selected_files(everything(catalog, limit=2), catalog)
    second = subsonic.push(client, "Mix", fewer, comment="fewer")
    assert not second.created and second.playlist_id == first.playlist_id
    (playlist,) = navidrome.playlists.values()
    assert len(playlist.songs) == 2 and playlist.comment == "fewer"
    create = [r for r in navidrome.requests if r.method == "createPlaylist"]
    assert create[1].one("playlistId") == first.playlist_id and "name" not in create[1].params


def test_someone_elses_playlist_of_the_same_name_is_left_alone(mixed, navidrome):
    theirs = navidrome.add_playlist("Mix", "other", ["song-1"], public=True)
    catalog = FieldCatalog.current()
    client = subsonic.Client(navidrome.url, USER, PASSWORD)
    pushed = subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
    assert pushed.created and pushed.playlist_id != theirs.id
    assert theirs.songs == ["song-1"] and len(navidrome.playlists) == 2


def test_bad_credentials_are_reported_and_change_nothing(mixed, navidrome):
    catalog = FieldCatalog.current()
    client = subsonic.Client(navidrome.url, USER, "wrong")
    with pytest.raises(subsonic.AuthError, match=r"refused user 'admin'.*Subsonic error 40"):
        subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
    assert navidrome.methods() == ["ping"]
    assert navidrome.playlists == {}


def test_an_unreachable_server_is_reported(mixed):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    catalog = FieldCatalog.current()
    client = subsonic.Client(f"http://127.0.0.1:{port}", USER, PASSWORD, timeout=2)
    with pytest.raises(
        subsonic.Unreachable, match=f"cannot reach Navidrome at http://127.0.0.1:{port}"
    ):
        subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))


def test_songs_that_cannot_be_matched_are_listed_and_change_nothing(mixed):
    # Made-up paths (Report Real Path off): only the two files with MusicBrainz ids match.
    with FakeNavidrome({USER: PASSWORD}, songs_for_mixed(real_paths=False)) as navidrome:
        existing = navidrome.add_playlist("Mix", USER, ["song-1"])
        catalog = FieldCatalog.current()
        client = subsonic.Client(navidrome.url, USER, PASSWORD)
        with pytest.raises(subsonic.SubsonicError) as caught:
            subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
        message = str(caught.value)
        assert message.startswith("3 of 5 tracks could not be found in Navidrome")
        assert "nothing was changed" in message
        assert "Artist/Album/Rainy Night.flac" in message and "Report Real Path" in message
        assert "Sunny Day" not in message  # matched by its MusicBrainz recording id
        assert "createPlaylist" not in navidrome.methods()
        assert "updatePlaylist" not in navidrome.methods()
        assert existing.songs == ["song-1"] and len(navidrome.playlists) == 1


def test_an_empty_playlist_is_not_pushed(mixed, navidrome):
    client = subsonic.Client(navidrome.url, USER, PASSWORD)
    with pytest.raises(subsonic.SubsonicError, match="empty"):
        subsonic.push(client, "Mix", [])
    assert navidrome.requests == []


def test_the_push_action_uses_the_settings(mixed, navidrome, settings):
    settings.NOMARR_NAVIDROME_URL = navidrome.url + "/"
    settings.NOMARR_NAVIDROME_USER = USER
    settings.NOMARR_NAVIDROME_PASSWORD = PASSWORD
    catalog = FieldCatalog.current()
    rules = service.preset_rules("focus", {}, catalog)
    outcome = service.run("push", rules, catalog)
    assert outcome.error == ""
    assert "Created the Navidrome playlist 'Focus: instrumental and calm'" in outcome.message
    (playlist,) = navidrome.playlists.values()
    assert sorted(playlist.songs) == ["song-2", "song-3"]
    assert playlist.comment == rules["comment"]
    settings.NOMARR_NAVIDROME_URL = "ftp://nowhere"
    assert "must start with http://" in service.run("push", rules, catalog).error
