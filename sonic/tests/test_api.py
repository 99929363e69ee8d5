"""/api/v1/similar, /mix and /path: answers, filters and every refusal the issue lists."""

import shutil
from itertools import pairwise
from pathlib import Path

import pytest
from django.conf import settings

from library.rows import refresh_file
from sonic.models import TrackEmbedding
from sonic.tests.conftest import CLIPS
from tagging import catalog

pytestmark = pytest.mark.django_db


def names(answer) -> list[str]:
    return [Path(t["path"]).stem for t in answer]


def test_similar_finds_the_track_by_path_id_or_recording_id(sonic_library, listener):
    files = sonic_library()
    seed = files["joram-flac"]
    seed.mb_recording_id = "0d6a1e4e-0000-4000-8000-000000000001"
    seed.save()
    for query in (
        {"path": seed.path},
        {"id": seed.pk},
        {"mbid": seed.mb_recording_id},
    ):
        answer = listener.get("/api/v1/similar", {**query, "count": 3})
        assert answer.status_code == 200, answer.json()
        body = answer.json()
        assert body["track"]["id"] == seed.pk
        assert names(body["similar"]) == ["joram-tempo", "joram-eq", "joram-pitch"] or set(
            names(body["similar"])
        ) == {"joram-tempo", "joram-eq", "joram-pitch"}
        assert all(0 < t["similarity"] <= 1 for t in body["similar"])
        assert body["similar"][0]["url"].startswith("/library/file/")


def test_it_refuses_a_path_outside_the_library(sonic_library, listener, tmp_path):
    sonic_library("joram-flac")
    outside = tmp_path / "outside.mp3"
    outside.write_bytes(b"x")
    answer = listener.get("/api/v1/similar", {"path": str(outside)})
    assert answer.status_code == 403 and answer.json()["error"] == "outside_library"
    mix = listener.post(
        "/api/v1/mix", {"seeds": [{"path": str(outside)}]}, content_type="application/json"
    )
    assert mix.status_code == 403


def test_a_file_never_analysed_answers_not_analysed_with_a_way_to_queue_it(
    sonic_library, listener, library
):
    sonic_library("joram-flac")
    song = library / "new.mp3"
    shutil.copyfile(Path(settings.SHARED_DIR) / "fixtures/audio" / CLIPS["msd"][0], song)
    unscanned = listener.get("/api/v1/similar", {"path": str(song)})
    assert unscanned.status_code == 404
    body = unscanned.json()
    assert body["error"] == "not_analysed" and body["queue"]["url"] == "/api/v1/tag"
    assert body["queue"]["body"] == {"path": str(song)}
    file = refresh_file(song)  # scanned, but not tagged yet
    answer = listener.get("/api/v1/similar", {"id": file.pk})
    assert answer.status_code == 404 and answer.json()["error"] == "not_analysed"
    assert answer.json()["stale"] is False
    assert listener.get("/api/v1/similar", {"id": 999999}).json()["error"] == "file_not_found"


def test_counts_outside_their_bounds_answer_400(sonic_library, listener):
    file = sonic_library("joram-flac")["joram-flac"]
    for count in (0, 201, "many"):
        answer = listener.get("/api/v1/similar", {"id": file.pk, "count": count})
        assert answer.status_code == 400, count
    for body in (
        {"seeds": [{"id": file.pk}], "count": 0},
        {"seeds": [{"id": file.pk}], "count": 1000},
    ):
        assert (
            listener.post("/api/v1/mix", body, content_type="application/json").status_code == 400
        )
    steps = {"start": {"id": file.pk}, "end": {"id": file.pk}, "steps": 1}
    assert listener.post("/api/v1/path", steps, content_type="application/json").status_code == 400
    assert listener.get("/api/v1/similar").status_code == 400  # no track named


def test_an_empty_library_says_so(library, root_row, listener):
    answer = listener.post("/api/v1/mix", {"artist": "Joram"}, content_type="application/json")
    assert answer.status_code in (400, 404)
    assert "analysed" in answer.json()["detail"]


def test_a_model_set_change_marks_old_embeddings_stale(sonic_library, listener):
    files = sonic_library()
    TrackEmbedding.objects.filter(file=files["joram-flac"]).update(model_set="nomarr1-older")
    answer = listener.get("/api/v1/similar", {"id": files["joram-flac"].pk})
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_analysed" and answer.json()["stale"] is True
    others = listener.get("/api/v1/similar", {"id": files["joram-eq"].pk, "count": 7}).json()
    assert "joram-flac" not in names(others["similar"])  # never mixed into the current space
    TrackEmbedding.objects.update(model_set="nomarr1-older")
    empty = listener.get("/api/v1/similar", {"id": files["joram-eq"].pk})
    assert empty.status_code == 404 and empty.json()["stale"] is True


def test_a_head_added_keeps_the_stored_embeddings_current(
    sonic_library, listener, settings, tmp_path
):
    """Downloading the mood heads or saving a taught tag changes the model set (files are
    tagged again), not what the backbones heard: similar tracks keep working."""
    files = sonic_library()
    before = catalog.current_version()
    extra = tmp_path / "more-models"
    extra.mkdir()
    source = settings.FIXTURE_MODELS_DIR / "mood_happy-msd-musicnn-1"
    for suffix in (".pb", ".json"):
        shutil.copyfile(source.with_suffix(suffix), extra / f"mood_joy-msd-musicnn-1{suffix}")
    engine, dirs = settings.NOMARR_ENGINE, settings.NOMARR_MODELS_DIRS
    settings.NOMARR_ENGINE = "essentia"  # no twin to make for the copy: nothing is run here
    settings.NOMARR_MODELS_DIRS = [*dirs, extra]
    try:
        added = catalog.refresh_catalog()
        assert "mood_joy-msd-musicnn-1" in [head.stem for head in added.heads]
        assert catalog.current_version() != before
        answer = listener.get("/api/v1/similar", {"id": files["joram-flac"].pk, "count": 3})
        assert answer.status_code == 200, answer.json()
        assert set(names(answer.json()["similar"])) == {"joram-tempo", "joram-eq", "joram-pitch"}
    finally:  # the process's catalog as every other test has it
        settings.NOMARR_ENGINE, settings.NOMARR_MODELS_DIRS = engine, dirs
        catalog.refresh_catalog()


def test_a_mix_keeps_its_filters(sonic_library, listener):
    files = sonic_library()
    body = {
        "seeds": [{"id": files["joram-flac"].pk}],
        "count": 8,
        "artist_gap": 0,
        "per_album": 0,
        "min_duration": None,
        "max_duration": None,
    }
    mix = listener.post("/api/v1/mix", body, content_type="application/json").json()["tracks"]
    assert names(mix)[0] == "joram-flac" and set(names(mix)[:4]) == {
        "joram-flac", "joram-tempo", "joram-eq", "joram-pitch",
    }  # fmt: skip
    gap = listener.post(
        "/api/v1/mix", {**body, "artist_gap": 1}, content_type="application/json"
    ).json()["tracks"]
    artists = [t["artist"] for t in gap]
    assert all(a != b for a, b in pairwise(artists))
    one_per_album = listener.post(
        "/api/v1/mix", {**body, "per_album": 1}, content_type="application/json"
    ).json()["tracks"]
    assert sorted(t["album"] for t in one_per_album) == ["MSD Album", "Moments of Clarity"]
    no_seeds = listener.post(
        "/api/v1/mix", {**body, "include_seeds": False}, content_type="application/json"
    ).json()["tracks"]
    assert "joram-flac" not in names(no_seeds) and len(no_seeds) == 7
    too_short = listener.post(
        "/api/v1/mix", {**body, "min_duration": 60}, content_type="application/json"
    ).json()["tracks"]
    assert names(too_short) == ["joram-flac"]  # the 10 s variants are kept out
    by_artist = listener.post(
        "/api/v1/mix", {**body, "seeds": [], "artist": "MSD Artist", "include_seeds": False},
        content_type="application/json",
    ).json()["tracks"]  # fmt: skip
    assert names(by_artist)[:4] and all(n.startswith("joram") for n in names(by_artist))


def test_a_mix_downloads_as_m3u8(sonic_library, listener):
    files = sonic_library()
    body = {"seeds": [{"id": files["msd-eq"].pk}], "count": 3, "artist_gap": 0,
            "per_album": 0, "min_duration": None, "action": "m3u8", "name": "Test mix"}  # fmt: skip
    answer = listener.post("/api/v1/mix", body, content_type="application/json")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("audio/x-mpegurl")
    lines = answer.content.decode().splitlines()
    assert lines[0] == "#EXTM3U" and "#PLAYLIST:Test mix" in lines
    paths = [line for line in lines if line.startswith("/")]
    assert paths[0] == files["msd-eq"].path and len(paths) == 3


def test_a_sonic_path_walks_from_one_clip_to_the_other(sonic_library, listener):
    files = sonic_library()
    body = {
        "start": {"id": files["joram-flac"].pk},
        "end": {"id": files["msd-flac"].pk},
        "steps": 6,
    }
    answer = listener.post("/api/v1/path", body, content_type="application/json")
    assert answer.status_code == 200, answer.json()
    walked = names(answer.json()["tracks"])
    assert walked[0] == "joram-flac" and walked[-1] == "msd-flac"
    assert len(walked) == len(set(walked))
    artists = [t["artist"] for t in answer.json()["tracks"]]
    assert all(a != b for a, b in pairwise(artists[:-1]))


def test_the_api_needs_a_login(sonic_library, client):
    file = sonic_library("joram-flac")["joram-flac"]
    assert client.get("/api/v1/similar", {"id": file.pk}).status_code == 401


def mixed(listener, body) -> list[dict]:
    answer = listener.post("/api/v1/mix", body, content_type="application/json")
    assert answer.status_code == 200, answer.json()
    return answer.json()["tracks"]


def test_a_mix_from_an_artist_or_an_album_keeps_its_filters_with_the_default_seeds(
    sonic_library, listener
):
    sonic_library()  # 4 variants by Joram (Moments of Clarity), 4 by MSD Artist (MSD Album)
    # The defaults: include_seeds, artist_gap 3, per_album 2 (the clips are 10 s long).
    by_artist = mixed(listener, {"artist": "Joram", "count": 10, "min_duration": None})
    # Two artists and a gap of 3: one track of each, the artist's own first.
    assert [t["artist"] for t in by_artist] == ["Joram", "MSD Artist"]
    spaced = mixed(listener, {"artist": "Joram", "count": 10, "min_duration": None,
                              "artist_gap": 1, "per_album": 0})  # fmt: skip
    artists = [t["artist"] for t in spaced]
    assert len(spaced) == 8 and artists[0] == "Joram"
    assert all(a != b for a, b in pairwise(artists))  # the artist's tracks, spaced
    by_album = mixed(listener, {"album": "Moments of Clarity", "count": 10,
                                "min_duration": None, "artist_gap": 0})  # fmt: skip
    albums = [t["album"] for t in by_album]
    assert albums == ["Moments of Clarity"] * 2 + ["MSD Album"] * 2  # per_album 2 for both


def test_a_mix_refuses_an_unknown_mood_or_tier_and_crossed_durations(sonic_library, listener):
    file = sonic_library("joram-flac")["joram-flac"]
    seed = {"seeds": [{"id": file.pk}]}
    for body, said in (
        ({"mood": "no-such-mood"}, "no mood word 'no-such-mood'"),
        ({"mood": "", "tier": "high"}, "a tier needs a mood word"),
        ({"tier": "extreme", "mood": "x"}, "no tier or mood set named 'extreme'"),
        ({"min_duration": 300, "max_duration": 100}, "min_duration (300 s) is above"),
        ({"min_duration": -1}, "min_duration must be 0 seconds or more"),
        ({"artist_gap": -1}, "artist_gap"),
    ):
        answer = listener.post("/api/v1/mix", {**seed, **body}, content_type="application/json")
        assert answer.status_code == 400, body
        assert said in answer.json()["detail"], body


def test_a_mix_with_a_mood_holds_only_tracks_whose_files_carry_it(sonic_library, listener):
    from tagging import keys, tagfiles

    files = sonic_library()
    regular = keys.mood_set_key("regular")
    carried = {
        name: set(tagfiles.read_tags(Path(f.path), keys.namespace()).get(regular, []))
        for name, f in files.items()
    }
    words = sorted({w for moods in carried.values() for w in moods})
    # A word some carry and at least two lack (one of them is the seed, left out).
    splitting = [w for w in words if 0 < sum(w in m for m in carried.values()) < len(files) - 1]
    assert splitting, carried  # the fixture's moods must tell the variants apart
    word = "relaxed" if "relaxed" in splitting else splitting[0]
    seed = next(name for name, moods in carried.items() if word not in moods)
    body = {"seeds": [{"id": files[seed].pk}], "count": 8, "artist_gap": 0, "per_album": 0,
            "min_duration": None, "include_seeds": False, "mood": word}  # fmt: skip
    only = {t["id"] for t in mixed(listener, body)}
    assert only == {files[n].pk for n, moods in carried.items() if word in moods}


def test_a_mistyped_backbone_is_named_not_blamed_on_the_tracks(sonic_library, listener, settings):
    from sonic import embedding

    file = sonic_library("joram-flac", "joram-eq")["joram-flac"]
    settings.NOMARR_SIMILAR_BACKBONE = "mtt"
    answer = listener.get("/api/v1/similar", {"id": file.pk})
    assert answer.status_code == 503 and answer.json()["error"] == "misconfigured"
    detail = answer.json()["detail"]
    assert "no backbone named 'mtt' (installed: msd-musicnn-1, mtt-musicnn-1)" in detail
    assert "not analysed" not in detail
    page = listener.get(f"/sonic/similar/{file.pk}/").content.decode()
    assert "no backbone named" in page and "not analysed yet" not in page
    assert not embedding.missing().exists()  # nothing to hear again because of the typo
