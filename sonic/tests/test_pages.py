"""The sonic pages: instant mix, sonic path, library map, duplicates; all behind the login."""

import pytest
from django.core.management import call_command

from library import analytics
from library.models import TagValue
from sonic import libmap
from tagging import keys

pytestmark = pytest.mark.django_db


def test_every_sonic_page_needs_a_login(client):
    for url in (
        "/sonic/mix/",
        "/sonic/path/",
        "/sonic/map/",
        "/sonic/duplicates/",
        "/sonic/similar/1/",
    ):
        answer = client.get(url)
        assert answer.status_code == 302 and "/login" in answer["Location"], url


def test_the_mix_page_previews_and_downloads_a_mix(sonic_library, listener):
    files = sonic_library()
    form = {"seed": str(files["joram-eq"].pk), "count": 4, "artist_gap": 0, "per_album": 0}
    form.update(min_duration="", max_duration="", include_seeds="on", action="preview")
    page = listener.get("/sonic/mix/", form)
    assert page.status_code == 200
    result = page.content.decode().split('id="result"')[1]
    assert result.count("joram ") == 4 and "msd " not in result
    download = listener.get("/sonic/mix/", {**form, "action": "m3u8"})
    assert download["Content-Type"].startswith("audio/x-mpegurl")
    assert files["joram-eq"].path in download.content.decode()


def test_the_mix_page_says_why_it_cannot_mix(sonic_library, listener, library):
    sonic_library("joram-flac")
    page = listener.get("/sonic/mix/", {"seed": str(library / "nothing.mp3"), "count": 5,
                                       "artist_gap": 0, "per_album": 0})  # fmt: skip
    assert page.status_code == 400
    first = listener.get("/sonic/mix/", {"seed": "1"})  # a file page's link: the form, filled in
    assert first.status_code == 200 and 'value="1"' in first.content.decode()


def test_a_mix_is_written_into_the_playlist_folder(sonic_library, listener, library, settings):
    files = sonic_library()
    settings.NOMARR_PLAYLIST_DIR = str(library / "Playlists")
    form = {"seed": str(files["msd-flac"].pk), "count": 3, "artist_gap": 0, "per_album": 0,
            "min_duration": "", "max_duration": "", "include_seeds": "on", "action": "write",
            "name": "Sounds like MSD"}  # fmt: skip
    page = listener.post("/sonic/mix/", form, follow=True)
    written = library / "Playlists" / "Sounds like MSD.m3u8"
    assert page.status_code == 200 and written.is_file()
    assert "msd-flac.flac" in written.read_text()


def test_the_path_page_walks_between_two_tracks(sonic_library, listener):
    files = sonic_library()
    ends = {"start": files["joram-flac"].pk, "end": files["msd-flac"].pk}
    page = listener.get("/sonic/path/", {**ends, "steps": 4, "action": "preview"})
    result = page.content.decode().split('id="result"')[1]
    assert result.index("joram flac") < result.index("msd flac")


def test_the_map_is_computed_in_the_background_and_then_drawn(sonic_library, listener):
    files = sonic_library()
    assert "being computed" in listener.get("/sonic/map/").content.decode()
    assert listener.get("/sonic/map/points").status_code == 202
    assert libmap.build() == len(files)  # what the worker's task runs
    answer = listener.get("/sonic/map/points", {"colour": "genre"}).json()
    assert answer["ready"] and len(answer["points"]) == len(files)
    assert {p["id"] for p in answer["points"]} == {f.pk for f in files.values()}
    assert "Click one to open it" in listener.get("/sonic/map/").content.decode()


def test_the_map_colours_each_track_by_a_mood_words_tier(sonic_library, listener):
    files = sonic_library()
    libmap.build()
    words = analytics.mood_words()
    word = next(w for w, labels in words.items() if len(labels) == 1)
    tiers = dict(
        TagValue.objects.filter(key=words[word][0].tier_key).values_list("file_id", "value")
    )
    assert set(tiers) == {f.pk for f in files.values()}  # every variant was tiered
    page = listener.get("/sonic/map/", {"colour": f"tier:{word}"}).content.decode()
    assert f'value="tier:{word}" selected' in page
    answer = listener.get("/sonic/map/points", {"colour": f"tier:{word}"}).json()
    assert {p["id"]: p["group"] for p in answer["points"]} == tiers
    assert answer["groups"] == [t for t in keys.TIERS if t in set(tiers.values())]


def test_an_empty_library_says_so_on_every_page(library, root_row, listener):
    assert "No track is analysed" in listener.get("/sonic/map/").content.decode()
    assert (
        "no track of the library is analysed" in listener.get("/sonic/duplicates/").content.decode()
    )


def test_the_mix_command_prints_an_m3u8(sonic_library, capsys):
    files = sonic_library()
    call_command("mix", str(files["msd-pitch"].pk), "--count", "3", "--artist-gap", "0",
                 "--per-album", "0", "--min-duration", "0")  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "#EXTM3U" and out[out.index(files["msd-pitch"].path) - 1].startswith("#EXTINF")
