"""Genre suggestions written into GENRE itself, only when asked: from the teach genre
page (a second button that asks first), and from `manage.py teach genres
--write-genre`; only into files without a genre, with the audio untouched and the
library's rows showing the genre; a plain user is refused."""

from __future__ import annotations

import os
from io import StringIO
from pathlib import Path

import mutagen
import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from library.models import LibraryFile, TagValue
from tagging import keys, tagfiles
from teach import genres
from teach.tests.conftest import GENRES, HELD_OUT, TRAIN

pytestmark = pytest.mark.django_db

#: The held-out variants carry no genre: the suggestions go to them (Opus and MP3).
SUGGESTED = [f"{clip}-{variant}" for clip in GENRES for variant in HELD_OUT]


def genre_in(path: str) -> list[str]:
    """GENRE as the file holds it (mutagen's easy names: TCON, GENRE)."""
    return list(mutagen.File(path, easy=True).get("genre") or [])


def give_genre(path: str, genre: str) -> None:
    """The user tags a genre with their own tagger (the library has not read it yet)."""
    audio = mutagen.File(path, easy=True)
    audio["genre"] = [genre]
    audio.save()


@pytest.fixture
def staff(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_user("boss", password="x", is_staff=True))
    return client


@pytest.fixture
def plain(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_user("listener", password="x"))
    return client


def test_genre_is_written_only_when_asked_and_only_where_there_is_none(
    teach_library, audio_stream_hash
):
    files = teach_library()
    found = genres.learn()
    assert len(found.suggested) == len(SUGGESTED)
    mine = files["joram-eq"].path
    give_genre(mine, "Jazz")  # after the learning: the library still thinks it has none
    audio = {name: audio_stream_hash(Path(files[name].path)) for name in SUGGESTED}
    with_genre = {files[f"{c}-{v}"].path for c in GENRES for v in TRAIN}
    mtimes = {path: os.stat(path).st_mtime_ns for path in with_genre}

    # Not asked: the suggestion key, and no GENRE anywhere.
    written = genres.write(found)
    assert written.written == len(SUGGESTED) and written.filled == 0
    for name in SUGGESTED:
        path = files[name].path
        assert tagfiles.read_tags(path, keys.namespace())[genres.suggested_key()]
        assert genre_in(path) == (["Jazz"] if path == mine else [])
        assert LibraryFile.objects.get(pk=files[name].pk).genre == ("Jazz" if path == mine else "")

    # Asked: GENRE filled where there is none; the user's Jazz stays.
    written = genres.write(found, genre=True)
    assert written.written == len(SUGGESTED) and not written.failed
    assert written.filled == len(SUGGESTED) - 1
    for name in SUGGESTED:
        path, clip = files[name].path, name.split("-")[0]
        expected = "Jazz" if path == mine else GENRES[clip]
        assert genre_in(path) == [expected], name
        assert tagfiles.read_tags(path, keys.namespace())[genres.suggested_key()] == [GENRES[clip]]
        # The library shows it: the row's column and its tag rows.
        row = LibraryFile.objects.get(pk=files[name].pk)
        assert row.genre == expected
        assert TagValue.objects.filter(file=row, key="genre", value=expected).exists()
        assert audio_stream_hash(Path(path)) == audio[name], name
    # The files with a genre of their own were never in the suggestions: untouched.
    assert {path: os.stat(path).st_mtime_ns for path in with_genre} == mtimes

    # Asked again: nothing left to fill, and no file rewritten.
    again = {name: os.stat(files[name].path).st_mtime_ns for name in SUGGESTED}
    assert genres.write(found, genre=True).filled == 0
    assert {name: os.stat(files[name].path).st_mtime_ns for name in SUGGESTED} == again


def test_the_page_asks_first_and_refuses_a_plain_user(staff, plain, teach_library):
    files = teach_library()
    url = reverse("teach:genres")
    page = staff.get(url, {"preview": "1"}).content.decode()
    assert 'id="write-genre-field"' in page and "data-confirm=" in page
    assert 'id="write-genre-field"' not in plain.get(url, {"preview": "1"}).content.decode()

    # A plain user may look, never write (confirmed or not).
    assert plain.post(url, {"genre": "yes", "confirm": "yes"}).status_code == 403
    # Staff without the confirmation get the question, and nothing is written.
    answer = staff.post(url, {"genre": "yes"})
    assert answer.status_code == 200 and 'id="confirm-question"' in answer.content.decode()
    assert "GENRE tag of the files that have none" in answer.content.decode()
    assert 'name="genre" value="yes"' in answer.content.decode()
    for name in SUGGESTED:
        path = files[name].path
        assert genre_in(path) == []
        assert genres.suggested_key() not in tagfiles.read_tags(path, keys.namespace())

    # The first button: the suggestion only.
    answer = staff.post(url, {}, follow=True).content.decode()
    assert f"written into {len(SUGGESTED)} files without a genre" in answer
    assert all(genre_in(files[name].path) == [] for name in SUGGESTED)

    # The second, confirmed: GENRE too.
    answer = staff.post(url, {"genre": "yes", "confirm": "yes"}, follow=True).content.decode()
    assert f"GENRE written into {len(SUGGESTED)} of them" in answer
    for name in SUGGESTED:
        assert genre_in(files[name].path) == [GENRES[name.split("-")[0]]]
        assert LibraryFile.objects.get(pk=files[name].pk).genre == GENRES[name.split("-")[0]]


def test_the_command_writes_genre_only_with_write_genre(teach_library):
    files = teach_library()
    out = StringIO()
    call_command("teach", "genres", "--write", stdout=out)
    assert all(genre_in(files[name].path) == [] for name in SUGGESTED)
    give_genre(files["msd-later"].path, "Blues")
    call_command("teach", "genres", "--write-genre", stdout=out)
    assert f"GENRE written into {len(SUGGESTED) - 1} files" in out.getvalue()
    assert genre_in(files["msd-later"].path) == ["Blues"]
    assert genre_in(files["msd-eq"].path) == ["Rock"]
    assert genre_in(files["joram-later"].path) == ["Ambient"]
