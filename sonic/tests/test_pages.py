"""The sonic pages: instant mix, sonic path, library map, duplicates; all behind the login."""

import re

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
    assert first.status_code == 200
    assert re.search(r'<textarea name="seed"[^>]*>\s*1</textarea>', first.content.decode())


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


def mix_form(seed: str, **more) -> dict:
    form = {"seed": seed, "count": 4, "artist_gap": 0, "per_album": 0, "min_duration": "",
            "max_duration": "", "include_seeds": "on", "action": "preview"}  # fmt: skip
    return {**form, **more}


def test_a_link_that_asks_to_write_or_push_writes_nothing(
    sonic_library, listener, library, settings
):
    files = sonic_library()
    folder = library / "Playlists"
    settings.NOMARR_PLAYLIST_DIR = str(folder)
    seed = str(files["msd-flac"].pk)
    for action in ("write", "push"):
        page = listener.get("/sonic/mix/", mix_form(seed, action=action, name="ViaGet"))
        assert page.status_code == 400
        assert "takes the Write or Push button" in page.content.decode()
    ends = {"start": files["joram-flac"].pk, "end": files["msd-flac"].pk, "steps": 4}
    page = listener.get("/sonic/path/", {**ends, "action": "write", "name": "PathViaGet"})
    assert page.status_code == 400 and "takes the Write or Push button" in page.content.decode()
    assert not folder.exists() or not list(folder.iterdir())
    # The preview itself has no CSRF token in its address: the token travels in the POST.
    preview = listener.get("/sonic/mix/", mix_form(seed)).content.decode()
    get_form = preview.split('id="mix-form"')[1].split("</form>")[0]
    assert "csrfmiddlewaretoken" not in get_form
    deliver = preview.split('id="deliver-form"')[1].split("</form>")[0]
    assert "csrfmiddlewaretoken" in deliver and 'value="write"' in deliver


def test_a_write_posted_from_another_site_is_refused(sonic_library, library, settings):
    from django.contrib.auth import get_user_model
    from django.test import Client

    files = sonic_library()
    settings.NOMARR_PLAYLIST_DIR = str(library / "Playlists")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(get_user_model().objects.create_user("victim", password="x"))
    form = mix_form(str(files["msd-flac"].pk), action="write", name="Forged")
    assert browser.post("/sonic/mix/", form).status_code == 403  # no CSRF token
    assert not (library / "Playlists" / "Forged.m3u8").exists()


def test_the_mix_page_takes_several_seed_tracks(sonic_library, listener):
    files = sonic_library()
    named = ["msd-eq", "joram-pitch", "msd-tempo"]
    seeds = f"{files['msd-eq'].pk}, {files['joram-pitch'].pk}\n{files['msd-tempo'].path}\n"
    page = listener.get("/sonic/mix/", mix_form(seeds, count=5))
    assert page.status_code == 200
    result = page.content.decode().split('id="result"')[1]
    rows = result.split("<tbody>")[1].split("</tr>")[:5]
    assert [next(n for n in files if n.replace("-", " ") in row) for row in rows[:3]] == named
    missing = listener.get("/sonic/mix/", mix_form(f"{files['msd-eq'].pk}, 999999"))
    assert (
        missing.status_code == 400 and "no library file has id 999999" in missing.content.decode()
    )


def test_the_mix_page_refuses_what_the_api_refuses_and_says_why(sonic_library, listener):
    files = sonic_library()
    seed = str(files["joram-flac"].pk)
    for more, said in (
        ({"mood": "no-such-mood"}, "no mood word &#x27;no-such-mood&#x27;"),
        ({"mood": "", "tier": "high"}, "a tier needs a mood word"),
        ({"min_duration": "300", "max_duration": "100"}, "min_duration (300 s) is above"),
        ({"artist_gap": "-2"}, "artist_gap must be"),
    ):
        page = listener.get("/sonic/mix/", mix_form(seed, **more))
        assert page.status_code == 400, more
        assert said in page.content.decode().split('id="problem"')[1], more
    word = next(w for w in analytics.mood_words() if w == "relaxed")
    relaxed = listener.get("/sonic/mix/", mix_form(seed, mood=word, include_seeds=""))
    assert relaxed.status_code == 200
    result = relaxed.content.decode().split('id="result"')[1]
    assert "joram eq" in result and "msd eq" in result and "joram tempo" not in result
