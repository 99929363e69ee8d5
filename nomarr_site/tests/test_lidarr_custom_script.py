"""The Custom Script fallback hands Lidarr's tracks to a real Nomarr, as Lidarr runs it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from accounts import keys
from tagging.models import Job

SCRIPT = Path(settings.BASE_DIR) / "docker" / "lidarr-custom-script.sh"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("curl") is None, reason="the script needs curl"),
]


@pytest.fixture
def key() -> str:
    return keys.create("lidarr").key


def lidarr_runs(live_server, key: str, **lidarr_env: str) -> subprocess.CompletedProcess:
    """The script with the environment Lidarr gives it (its variable names lowercased)."""
    env = {
        "PATH": os.environ["PATH"],
        "NOMARR_URL": live_server.url,
        "NOMARR_KEY": key,
        "no_proxy": "*",
        **lidarr_env,
    }
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_lidarrs_test_passes_when_nomarr_answers_with_the_key(live_server, key):
    proc = lidarr_runs(live_server, key, lidarr_eventtype="Test")
    assert proc.returncode == 0, proc.stderr


def test_lidarrs_test_fails_with_a_wrong_key(live_server, key):
    proc = lidarr_runs(live_server, "abcdefgh.wrongwrongwrong", lidarr_eventtype="Test")
    assert proc.returncode != 0
    assert "NOMARR_KEY" in proc.stderr


def test_lidarrs_test_fails_when_nomarr_does_not_answer(key):
    class Nowhere:
        url = "http://127.0.0.1:9"

    proc = lidarr_runs(Nowhere, key, lidarr_eventtype="Test")
    assert proc.returncode != 0


def test_an_import_queues_every_added_track_even_with_quotes_in_names(
    live_server, key, library, make_audio
):
    album = library / 'Say "Hi" \\ Bye'
    album.mkdir()
    first = album / '01 - "Quoted".mp3'
    second = album / "02 - Plain.mp3"
    for path in (first, second):
        shutil.copy(make_audio("mp3"), path)
    proc = lidarr_runs(
        live_server,
        key,
        lidarr_eventtype="AlbumDownload",
        lidarr_addedtrackpaths=f"{first}|{second}",
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(Job.objects.values_list("path", flat=True)) == [str(first), str(second)]


def test_a_retag_reaches_nomarr(live_server, key, library, make_audio):
    track = library / "03 - Retagged.mp3"
    shutil.copy(make_audio("mp3"), track)
    proc = lidarr_runs(
        live_server, key, lidarr_eventtype="TrackRetag", lidarr_trackfile_path=str(track)
    )
    assert proc.returncode == 0, proc.stderr
    assert list(Job.objects.values_list("path", flat=True)) == [str(track)]


@pytest.mark.parametrize("event", ["Grab", "Rename", "HealthIssue", "AlbumDownload"])
def test_events_that_add_no_track_succeed_and_queue_nothing(live_server, key, event):
    proc = lidarr_runs(live_server, key, lidarr_eventtype=event)
    assert proc.returncode == 0, proc.stderr
    assert not Job.objects.exists()


def test_a_path_nomarr_refuses_makes_the_script_fail(live_server, key, library):
    proc = lidarr_runs(
        live_server,
        key,
        lidarr_eventtype="TrackRetag",
        lidarr_trackfile_path="/somewhere/else/track.mp3",
    )
    assert proc.returncode != 0
    assert "/somewhere/else/track.mp3" in proc.stderr


def test_lidarrs_paths_are_translated_by_the_path_map_as_for_the_webhook(
    live_server, key, library, make_audio, settings
):
    settings.NOMARR_PATH_MAP = [("/data/music", str(library))]
    track = library / "Artist" / "04 - Mapped.mp3"
    track.parent.mkdir()
    shutil.copy(make_audio("mp3"), track)
    proc = lidarr_runs(
        live_server,
        key,
        lidarr_eventtype="AlbumDownload",
        lidarr_addedtrackpaths="/data/music/Artist/04 - Mapped.mp3",
    )
    assert proc.returncode == 0, proc.stderr
    assert list(Job.objects.values_list("path", flat=True)) == [str(track)]


def test_the_tag_api_maps_a_lidarr_path_too(client, key, library, make_audio, settings):
    settings.NOMARR_PATH_MAP = [("/data/music", str(library))]
    track = library / "05 - Direct.mp3"
    shutil.copy(make_audio("mp3"), track)
    response = client.post(
        "/api/v1/tag",
        {"path": "/data/music/05 - Direct.mp3"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 202, response.content
    assert [job["path"] for job in response.json()["jobs"]] == [str(track)]
