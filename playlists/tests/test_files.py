"""Writing .nsp and .m3u8 files into the library: only inside it, only over our own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from playlists import files, service
from playlists.fields import FieldCatalog
from playlists.models import WrittenPlaylist
from playlists.rules import selected_files
from tagging.keys import mood_set_key

from .conftest import HAPPY


def happy_rules(catalog, **params):
    return service.preset_rules("happy-energetic", params, catalog)


def test_it_writes_a_smart_playlist_navidrome_can_read(mixed):
    catalog = FieldCatalog.current()
    written = files.write_smart_playlist(happy_rules(catalog, happy=0.75))
    assert written.path == mixed.root / "Playlists" / "Happy and energetic.nsp"
    assert not written.replaced
    document = json.loads(written.path.read_text("utf-8"))
    assert document["name"] == "Happy and energetic"
    assert files.MARKER in document["comment"]
    assert [key for key in ("all", "any") if key in document] == ["all"]
    assert document["all"][0] == {"gt": {HAPPY: 0.75}}
    assert document["sort"] == f"-{HAPPY}"
    assert document["limit"] == 100
    row = WrittenPlaylist.objects.get(path=str(written.path))
    assert row.kind == "nsp" and row.name == "Happy and energetic"


def test_writing_again_replaces_its_own_file(mixed):
    catalog = FieldCatalog.current()
    first = files.write_smart_playlist(happy_rules(catalog))
    second = files.write_smart_playlist(happy_rules(catalog, limit=5))
    assert second.path == first.path and second.replaced
    assert json.loads(second.path.read_text())["limit"] == 5
    assert WrittenPlaylist.objects.count() == 1
    leftovers = [p.name for p in first.path.parent.iterdir() if p.name.startswith(".nomarr-")]
    assert leftovers == []


def test_it_refuses_to_overwrite_a_users_playlist(mixed):
    target = mixed.root / "Playlists" / "Happy and energetic.nsp"
    target.parent.mkdir()
    mine = '{"name": "Happy and energetic", "all": [{"is": {"loved": true}}]}\n'
    target.write_text(mine)
    with pytest.raises(files.PlaylistFileError, match="not written by Nomarr: refusing"):
        files.write_smart_playlist(happy_rules(FieldCatalog.current()))
    assert target.read_text() == mine
    assert not WrittenPlaylist.objects.exists()


def test_a_file_the_user_took_over_is_theirs(mixed):
    catalog = FieldCatalog.current()
    written = files.write_smart_playlist(happy_rules(catalog))
    edited = json.loads(written.path.read_text())
    edited["comment"] = "my own now"
    written.path.write_text(json.dumps(edited))
    with pytest.raises(files.PlaylistFileError, match="refusing to overwrite"):
        files.write_smart_playlist(happy_rules(catalog))
    assert json.loads(written.path.read_text())["comment"] == "my own now"


def test_the_playlist_folder_outside_the_library_is_refused(mixed, settings, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere")
    settings.NOMARR_PLAYLIST_DIR = str(outside / "Playlists")
    with pytest.raises(files.PlaylistFileError, match="outside the library roots"):
        files.write_smart_playlist(happy_rules(FieldCatalog.current()))
    assert not (outside / "Playlists").exists()
    # Nor through a link inside the library that points out of it.
    (mixed.root / "escape").symlink_to(outside, target_is_directory=True)
    settings.NOMARR_PLAYLIST_DIR = str(mixed.root / "escape")
    with pytest.raises(files.PlaylistFileError, match="outside the library roots"):
        files.playlist_dir()
    assert list(outside.iterdir()) == []


def test_an_unset_playlist_folder_is_explained(mixed, settings):
    settings.NOMARR_PLAYLIST_DIR = ""
    with pytest.raises(files.PlaylistFileError, match="NOMARR_PLAYLIST_DIR is not set"):
        files.playlist_dir()


def test_it_exports_an_m3u8_with_paths_relative_to_the_playlist_folder(mixed):
    catalog = FieldCatalog.current()
    rules = service.preset_rules("focus", {}, catalog)
    tracks = selected_files(rules, catalog)
    written = files.export_m3u(rules, tracks)
    assert written.path.name == "Focus - instrumental and calm.m3u8"
    lines = written.path.read_text("utf-8").splitlines()
    assert lines[:3] == ["#EXTM3U", "#PLAYLIST:Focus: instrumental and calm", files.M3U_NOTE]
    entries = [line for line in lines if not line.startswith("#")]
    assert len(entries) == written.tracks == 2
    for entry, track in zip(entries, tracks, strict=True):
        assert not Path(entry).is_absolute() and entry.startswith("../Artist/Album/")
        assert (written.path.parent / entry).resolve() == Path(track.path)
    assert any(re.fullmatch(r"#EXTINF:(29|30),Tester - Calm Focus", line) for line in lines)
    again = files.export_m3u(rules, tracks)
    assert again.replaced


def test_it_refuses_to_overwrite_a_users_m3u8(mixed):
    catalog = FieldCatalog.current()
    rules = service.preset_rules("focus", {}, catalog)
    target = mixed.root / "Playlists" / "Focus - instrumental and calm.m3u8"
    target.parent.mkdir()
    target.write_text("#EXTM3U\nmine.mp3\n")
    with pytest.raises(files.PlaylistFileError, match="refusing to overwrite"):
        files.export_m3u(rules, selected_files(rules, catalog))
    assert target.read_text() == "#EXTM3U\nmine.mp3\n"


def test_a_name_cannot_escape_the_folder():
    assert files.file_name("../../etc/passwd", "nsp") == "etc - passwd.nsp"
    assert files.file_name(".hidden", "nsp") == "hidden.nsp"
    with pytest.raises(files.PlaylistFileError):
        files.file_name("///", "nsp")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Focus: instrumental and calm", "Focus - instrumental and calm.nsp"),
        ("Rock/Pop: the 80s", "Rock - Pop - the 80s.nsp"),
        ('Songs "for" you?', "Songs 'for' you.nsp"),
        ("Café: 日本の歌 & more", "Café - 日本の歌 & more.nsp"),
        ("nul", "nul playlist.nsp"),
        ("ends with dots...", "ends with dots.nsp"),
    ],
)
def test_a_file_name_keeps_the_words_and_suits_every_file_system(name, expected):
    # Windows and SMB refuse < > : " / \\ | ? * and names such as NUL; look-alikes
    # (U+FF1A for ":") are mapped back and forth by SMB clients, so plain words it is.
    assert files.file_name(name, "nsp") == expected
    assert not set(expected) & set('<>:"/\\|?*')
    assert len(files.file_name("ü" * 300, "nsp").encode()) <= files.MAX_NAME_BYTES + 4


def test_the_mood_template_names_each_mood_its_own_file(mixed):
    catalog = FieldCatalog.current()
    happy = files.write_smart_playlist(service.preset_rules("mood", {"mood": "happy"}, catalog))
    sad = files.write_smart_playlist(service.preset_rules("mood", {"mood": "sad"}, catalog))
    loose = service.preset_rules("mood", {"mood": "sad", "set": "loose"}, catalog)
    loose_sad = files.write_smart_playlist(loose)
    assert [happy.path.name, sad.path.name, loose_sad.path.name] == [
        "Mood - happy.nsp",
        "Mood - sad.nsp",
        "Mood - sad (loose).nsp",
    ]
    assert json.loads(happy.path.read_text())["name"] == "Mood: happy"
    assert json.loads(sad.path.read_text())["all"] == [{"is": {mood_set_key("regular"): "sad"}}]
