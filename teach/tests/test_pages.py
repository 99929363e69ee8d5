"""The teach pages over HTTP: make a tag, take examples from everywhere, mark on the file
page, train and preview, write; outsiders refused."""

from __future__ import annotations

import pytest
from django.urls import reverse

from playlists import fields
from playlists.tests.fake_navidrome import FakeNavidrome, Song
from sonic.index import search_backbone
from tagging import keys, tagfiles
from teach import learning, tasks
from teach.models import Example, TaughtTag
from teach.tests.conftest import HELD_OUT, TRAIN

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("boss", password="x", is_staff=True))
    return client


@pytest.fixture
def plain(django_user_model):
    from django.test import Client

    client = Client()
    client.force_login(django_user_model.objects.create_user("listener", password="x"))
    return client


def test_outsiders_are_refused(client, plain, teach_library):
    files = teach_library()
    tag = TaughtTag.objects.create(name="calm")
    file = files["joram-flac"]
    urls = [
        reverse("teach:index"),
        reverse("teach:genres"),
        reverse("teach:mark", args=[file.pk]),
        reverse("teach:tag", args=[tag.name]),
    ]
    posts = {
        reverse("teach:index"): {"name": "sneaky"},
        reverse("teach:mark", args=[file.pk]): {"tag": "calm", "answer": "yes"},
        reverse("teach:examples", args=[tag.name]): {
            "source": "random",
            "where": "3",
            "side": "no",
        },
        reverse("teach:train", args=[tag.name]): {},
        reverse("teach:apply", args=[tag.name]): {},
        reverse("teach:head", args=[tag.name]): {},
        reverse("teach:genres"): {"genre": "yes", "confirm": "yes"},
        reverse("teach:tag", args=[tag.name]): {"action": "delete"},
    }
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 302 and "/login" in answer["Location"], url
        assert plain.get(url).status_code == 200, url  # everyone logged in may look
    for url, data in posts.items():
        assert client.post(url, data).status_code == 302, url
        assert plain.post(url, data).status_code == 403, url
    assert list(TaughtTag.objects.values_list("name", flat=True)) == ["calm"]
    assert not Example.objects.exists()
    region = plain.get(reverse("teach:mark", args=[file.pk]), HTTP_HX_REQUEST="true")
    assert "<button" not in region.content.decode()  # a plain user sees the marks, no buttons


def test_staff_teach_a_tag_from_the_pages(staff, teach_library, library, settings):
    files = teach_library()
    page = staff.post(reverse("teach:index"), {"name": "Rainy Day"})
    assert page.status_code == 400 and "not a valid field name" in page.content.decode()
    assert staff.post(reverse("teach:index"), {"name": "rainy"})["Location"] == "/teach/tag/rainy/"
    tag = TaughtTag.objects.get(name="rainy")
    add = reverse("teach:examples", args=["rainy"])

    # Yes from the file page's marker region (htmx), from a tag value and a playlist file.
    file_page = staff.get(reverse("library:file", args=[files["joram-slow"].pk])).content.decode()
    assert reverse("teach:mark", args=[files["joram-slow"].pk]) in file_page
    region = staff.post(
        reverse("teach:mark", args=[files["joram-slow"].pk]),
        {"tag": "rainy", "answer": "yes"},
        HTTP_HX_REQUEST="true",
    )
    assert "rainy: <strong>yes</strong>" in region.content.decode()
    playlist = library / "calm.m3u8"
    outside = library.parent / "elsewhere.mp3"
    playlist.write_text(f"#EXTM3U\n{files['joram-flac'].path}\njoram-tempo.mp3\n{outside}\n")
    answer = staff.post(
        add, {"source": "playlist", "where": str(playlist), "side": "yes"}, follow=True
    )
    assert "2 examples marked yes" in answer.content.decode()
    assert "1 refused" in answer.content.decode()
    staff.post(add, {"source": "tag", "where": "GENRE", "value": "ambient", "side": "yes"})
    assert tag.examples.filter(positive=True).count() == len(TRAIN)

    # No from a Navidrome playlist (found by MusicBrainz id or path) and a folder.
    songs = [
        Song(f"s{i}", f"msd {v}", f"/music/{files[f'msd-{v}'].path.rsplit('/', 1)[1]}")
        for i, v in enumerate(TRAIN)
    ]
    with FakeNavidrome({"nomarr": "secret"}, songs) as navidrome:
        navidrome.add_playlist("Not rainy", "nomarr", [s.id for s in songs[:3]])
        settings.NOMARR_NAVIDROME_URL = navidrome.url
        settings.NOMARR_NAVIDROME_USER, settings.NOMARR_NAVIDROME_PASSWORD = "nomarr", "secret"
        answer = staff.post(
            add, {"source": "navidrome", "where": "Not rainy", "side": "no"}, follow=True
        )
        assert "3 examples marked no" in answer.content.decode()
        assert "getPlaylist" in navidrome.methods()
    for v in TRAIN[3:]:
        staff.post(
            reverse("teach:mark", args=[files[f"msd-{v}"].pk]), {"tag": "rainy", "answer": "no"}
        )
    assert tag.examples.filter(positive=False).count() == len(TRAIN)

    # Train: the preview shows the accuracy and the tracks, and nothing is written.
    preview = staff.post(reverse("teach:train", args=["rainy"])).content.decode()
    assert "Cross-validated accuracy: <strong>1.00</strong>" in preview
    most = preview.split('id="most"')[1].split('id="least"')[0]
    assert most.count("joram ") == len(HELD_OUT)  # the other files: Joram's first
    assert most.index("joram ") < most.index("msd ")
    key = learning.score_key("rainy", search_backbone())
    assert key not in tagfiles.read_tags(files["joram-eq"].path, keys.namespace())

    # Write: claimed for the workers (a second click is refused meanwhile), then what a
    # worker runs (the browser test has a real one do it).
    answer = staff.post(reverse("teach:apply", args=["rainy"]), follow=True).content.decode()
    assert "rainy is being written" in answer and "waiting for a worker" in answer
    again = staff.post(reverse("teach:apply", args=["rainy"]), follow=True).content.decode()
    assert "being written already" in again
    assert tasks.write_tag(tag.pk) == f"rainy written into {len(files)} files"
    assert tasks.write_tag(tag.pk).endswith("nothing done")  # a message delivered twice
    page = staff.get(reverse("teach:tag", args=["rainy"])).content.decode()
    assert f"<strong>written</strong>, {len(files)} of {len(files)} files" in page
    assert float(tagfiles.read_tags(files["joram-eq"].path, keys.namespace())[key][0]) > 0.8
    assert float(tagfiles.read_tags(files["msd-eq"].path, keys.namespace())[key][0]) < 0.2
    # Like every key: in Navidrome's [Tags] config and the playlist builder's fields.
    assert key in staff.get(reverse("playlists:navidrome_config")).content.decode()
    assert key in fields.library_keys()


def test_the_pages_say_what_is_wrong(staff, teach_library):
    teach_library()
    TaughtTag.objects.create(name="lonely")
    answer = staff.post(reverse("teach:train", args=["lonely"]))
    assert answer.status_code == 400 and "no examples yet" in answer.content.decode()
    answer = staff.post(
        reverse("teach:examples", args=["lonely"]),
        {"source": "folder", "where": "/etc", "side": "yes"},
        follow=True,
    )
    assert "outside the library" in answer.content.decode()
    answer = staff.post(
        reverse("teach:examples", args=["lonely"]),
        {"source": "navidrome", "where": "Mine", "side": "yes"},
        follow=True,
    )
    assert "set NOMARR_NAVIDROME_URL" in answer.content.decode()  # not configured
    page = staff.get(reverse("teach:genres"), {"preview": "1"}).content.decode()
    assert "Ambient (5)" in page and "Rock (5)" in page


def test_junk_gets_an_answer_never_a_500(staff, teach_library):
    files = teach_library()
    TaughtTag.objects.create(name="junk")
    file = files["msd-eq"].pk
    junk = [
        {},
        {"name": "x" * 500},
        {"name": "\x00"},
        {"source": "folder", "where": "\x00", "side": "yes"},
        {"source": "playlist", "where": "/nowhere.m3u", "side": "no"},
        {"source": "playlist_text", "where": "relative.mp3\n", "side": "no"},
        {"source": "tag", "where": "genre", "value": "", "side": "no"},
        {"source": "random", "where": "-4", "side": "no"},
        {"source": "nope", "where": "x", "side": "maybe"},
        {"tag": "nope", "answer": "perhaps"},
        {"action": "delete-all"},
    ]
    urls = [
        reverse("teach:index"),
        reverse("teach:examples", args=["junk"]),
        reverse("teach:train", args=["junk"]),
        reverse("teach:apply", args=["junk"]),
        reverse("teach:head", args=["junk"]),
        reverse("teach:mark", args=[file]),
        reverse("teach:tag", args=["unknown"]),
        reverse("teach:genres"),
    ]
    for url in urls:
        for data in junk:
            answer = staff.post(url, data)
            assert answer.status_code < 500, (url, data, answer.status_code)
    assert staff.get(reverse("teach:mark", args=[999999])).status_code == 404
