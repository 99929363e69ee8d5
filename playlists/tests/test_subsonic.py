"""Pushing a static playlist to Navidrome over real HTTP, to a small server that behaves
as Navidrome 0.56-0.63 does (fake_navidrome.py says what it copies from which version)."""

from __future__ import annotations

import hashlib
import socket

import pytest

from playlists import service, subsonic
from playlists.fields import FieldCatalog
from playlists.rules import selected_files, validate

from .conftest import MIXED, Library
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

    assert pushed.created and pushed.songs == 5 and pushed.added == 5 and not pushed.unmatched
    (playlist,) = navidrome.playlists.values()
    # Its own name: never the name of the smart playlist "Nomarr mix.nsp" would get.
    assert (playlist.name, playlist.owner, playlist.comment, playlist.public) == (
        "Nomarr mix (static)",
        USER,
        "from Nomarr",
        True,
    )
    by_title = {song.title: song.id for song in navidrome.songs.values()}
    assert playlist.songs == [by_title[f.title] for f in files]
    assert pushed.summary().startswith(
        f"Created the Navidrome playlist 'Nomarr mix (static)' (id {playlist.id}) with 5 songs."
    )

    methods = navidrome.methods()
    assert methods[0] == "ping"
    assert set(methods[1:-4]) == {"search3"}
    # The playlist is read back after the push: what Navidrome holds is what is reported.
    assert methods[-4:] == ["getPlaylists", "createPlaylist", "updatePlaylist", "getPlaylist"]
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


def test_songs_are_looked_up_by_musicbrainz_recording_id_first(mixed):
    # Navidrome's titles differ from the files' (another tagger): only the ids match.
    songs = [
        Song(id=s.id, title=f"{s.title} (Remaster)", path=s.path, musicBrainzId=s.musicBrainzId)
        for s in songs_for_mixed()
        if s.musicBrainzId
    ]
    with FakeNavidrome({USER: PASSWORD}, songs) as navidrome:
        catalog = FieldCatalog.current()
        rules = validate({"all": [{"is": {"title": "Sunny Day"}}]}, catalog)
        pushed = subsonic.push(
            subsonic.Client(navidrome.url, USER, PASSWORD), "One", selected_files(rules, catalog)
        )
        assert pushed.songs == 1 and navidrome.playlists[pushed.playlist_id].songs == ["song-1"]
        searches = [r.one("query") for r in navidrome.requests if r.method == "search3"]
        assert searches == [MIXED["Sunny Day"][2]]  # the id, and nothing else was needed


def test_search_results_are_paged_beyond_the_first_hundred(library: Library):
    library.add("flac", "Intro")  # no MusicBrainz id: found by its path only
    library.scan()
    # 250 songs called "Intro" in Navidrome; ours is the 231st.
    songs = [Song(f"other-{i}", "Intro", f"/music/Other {i}/Intro.flac") for i in range(230)]
    songs.append(Song("ours", "Intro", "/srv/music/Artist/Album/Intro.flac"))
    songs += [Song(f"later-{i}", "Intro", f"/music/Later {i}/Intro.flac") for i in range(19)]
    with FakeNavidrome({USER: PASSWORD}, songs) as navidrome:
        client = subsonic.Client(navidrome.url, USER, PASSWORD)
        pushed = subsonic.push(client, "Intros", [library.file("Intro")])
        assert navidrome.playlists[pushed.playlist_id].songs == ["ours"]
        offsets = [r.one("songOffset") for r in navidrome.requests if r.method == "search3"]
        assert offsets == ["0", "100", "200"]


def test_pushing_twice_leaves_one_playlist_and_says_what_changed(mixed, navidrome):
    catalog = FieldCatalog.current()
    client = subsonic.Client(navidrome.url, USER, PASSWORD)
    first = subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
    fewer = selected_files(everything(catalog, limit=2), catalog)
    second = subsonic.push(client, "Mix", fewer, comment="fewer")
    assert not second.created and second.playlist_id == first.playlist_id
    (playlist,) = navidrome.playlists.values()
    assert len(playlist.songs) == 2 and playlist.comment == "fewer"
    assert (second.songs, second.added, second.removed) == (2, 0, 3)
    assert "holds 2 songs now (0 added, 3 removed)" in second.summary()
    create = [r for r in navidrome.requests if r.method == "createPlaylist"]
    assert create[1].one("playlistId") == first.playlist_id and "name" not in create[1].params


def test_owner_names_are_compared_ignoring_case(mixed):
    # Navidrome stores "Admin"; Nomarr is set up with "admin" (Navidrome accepts it).
    with FakeNavidrome({"Admin": PASSWORD}, songs_for_mixed()) as navidrome:
        existing = navidrome.add_playlist("Mix (static)", "Admin", ["song-1"])
        catalog = FieldCatalog.current()
        client = subsonic.Client(navidrome.url, "admin", PASSWORD)
        pushed = subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
        assert not pushed.created and pushed.playlist_id == existing.id
        assert len(navidrome.playlists) == 1 and len(existing.songs) == 5


def test_someone_elses_playlist_of_the_same_name_is_left_alone(mixed):
    # An admin sees every user's playlists, and Navidrome 0.63 would let it overwrite them.
    with FakeNavidrome({USER: PASSWORD, "other": "x"}, songs_for_mixed(), admins=(USER,)) as nd:
        theirs = nd.add_playlist("Mix (static)", "other", ["song-1"])
        catalog = FieldCatalog.current()
        client = subsonic.Client(nd.url, USER, PASSWORD)
        pushed = subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
        assert pushed.created and pushed.playlist_id != theirs.id
        assert theirs.songs == ["song-1"] and len(nd.playlists) == 2


SMART = {"all": [{"gt": {"rating": 3}}]}


@pytest.mark.parametrize("version", ["0.63.2", "0.62.0", "0.60.0"])
def test_a_smart_playlist_of_the_same_name_is_never_pushed_to(mixed, version):
    # 0.63 would refuse with error 50, 0.56-0.62 answer ok and keep the rule's tracks.
    with FakeNavidrome({USER: PASSWORD}, songs_for_mixed(), version=version) as navidrome:
        smart = navidrome.add_playlist("Mix (static)", USER, ["song-4"], rules=SMART)
        catalog = FieldCatalog.current()
        client = subsonic.Client(navidrome.url, USER, PASSWORD)
        pushed = subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
        assert pushed.created and pushed.playlist_id != smart.id
        assert smart.songs == ["song-4"] and len(navidrome.playlists[pushed.playlist_id].songs) == 5
        assert f"Left alone: 'Mix (static)' (id {smart.id})" in pushed.summary()
        assert "smart playlist" in pushed.summary()


def test_a_playlist_synced_from_a_file_is_never_pushed_to(mixed):
    # Navidrome re-imports a synced .m3u on every scan; only its native API shows the path.
    with FakeNavidrome({USER: PASSWORD}, songs_for_mixed()) as navidrome:
        synced = navidrome.add_playlist(
            "Mix (static)", USER, ["song-2"], path="/music/Playlists/Mix.m3u8", sync=True
        )
        synced.comment = "my favourites"  # the user changed Navidrome's own comment
        catalog = FieldCatalog.current()
        client = subsonic.Client(navidrome.url, USER, PASSWORD)
        pushed = subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
        assert pushed.created and synced.songs == ["song-2"]
        assert "imported from /music/Playlists/Mix.m3u8" in pushed.summary()
        assert "auth/login" in navidrome.methods() and "api/playlist" in navidrome.methods()


def test_without_the_native_api_an_imported_playlist_is_known_by_its_comment(mixed):
    with FakeNavidrome({USER: PASSWORD}, songs_for_mixed(), native_api=False) as navidrome:
        imported = navidrome.add_playlist(
            "Mix (static)", USER, ["song-2"], path="/music/Mix (static).m3u8", sync=True
        )
        imported.comment = "Auto-imported from 'Mix (static).m3u8'"
        catalog = FieldCatalog.current()
        client = subsonic.Client(navidrome.url, USER, PASSWORD)
        pushed = subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
        assert pushed.created and imported.songs == ["song-2"]


def test_a_push_navidrome_answers_ok_but_ignores_is_reported(mixed):
    # Navidrome 0.60: no readonly flag, no native API here, a comment of the user's own:
    # nothing shows it is smart, and createPlaylist answers ok without changing it.
    with FakeNavidrome(
        {USER: PASSWORD}, songs_for_mixed(), version="0.60.0", native_api=False
    ) as navidrome:
        smart = navidrome.add_playlist("Mix (static)", USER, ["song-4"], rules=SMART)
        catalog = FieldCatalog.current()
        client = subsonic.Client(navidrome.url, USER, PASSWORD)
        with pytest.raises(subsonic.SubsonicError) as caught:
            subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
        assert (
            f"Navidrome answered ok, but its playlist 'Mix (static)' (id {smart.id}) holds 1"
            in (str(caught.value))
        )
        assert "did not take the push" in str(caught.value)
        assert smart.songs == ["song-4"] and len(navidrome.playlists) == 1


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


def test_songs_that_cannot_be_matched_are_listed_and_the_rest_pushed(mixed):
    # Made-up paths (Report Real Path off): only the two files with MusicBrainz ids match.
    with FakeNavidrome({USER: PASSWORD}, songs_for_mixed(real_paths=False)) as navidrome:
        existing = navidrome.add_playlist("Mix (static)", USER, ["song-1"])
        catalog = FieldCatalog.current()
        client = subsonic.Client(navidrome.url, USER, PASSWORD)
        pushed = subsonic.push(client, "Mix", selected_files(everything(catalog), catalog))
        assert existing.songs == ["song-3", "song-1"]  # Calm Focus, Sunny Day (by title)
        assert (pushed.songs, pushed.added, pushed.removed) == (2, 1, 0)
        message = pushed.summary()
        assert "3 of 5 tracks are not in Navidrome and were left out:" in message
        assert "Artist/Album/Rainy Night.flac" in message and "Report Real Path" in message
        assert "Sunny Day" not in message  # matched by its MusicBrainz recording id


def test_when_no_song_matches_nothing_changes(mixed):
    with FakeNavidrome({USER: PASSWORD}, songs_for_mixed(real_paths=False)) as navidrome:
        existing = navidrome.add_playlist("Mix (static)", USER, ["song-1"])
        catalog = FieldCatalog.current()
        rules = validate({"all": [{"is": {"title": "Rage"}}]}, catalog)
        client = subsonic.Client(navidrome.url, USER, PASSWORD)
        with pytest.raises(subsonic.SubsonicError, match="none of the 1 tracks could be found"):
            subsonic.push(client, "Mix", selected_files(rules, catalog))
        assert "createPlaylist" not in navidrome.methods()
        assert existing.songs == ["song-1"]


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
    assert (
        "Created the Navidrome playlist 'Focus: instrumental and calm (static)'" in outcome.message
    )
    (playlist,) = navidrome.playlists.values()
    assert sorted(playlist.songs) == ["song-2", "song-3"]
    assert playlist.comment == rules["comment"]
    settings.NOMARR_NAVIDROME_URL = "ftp://nowhere"
    assert "must start with http://" in service.run("push", rules, catalog).error
