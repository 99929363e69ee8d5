"""Lidarr's Webhook connection (POST /api/v1/lidarr), over real HTTP.

Payloads have the shapes Lidarr sends; Lidarr puts the API key in the password of
Basic auth (its Webhook form has user name and password fields). Lidarr sees the
library as /music; NOMARR_PATH_MAP turns that into the test's library folder.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import uuid
from pathlib import Path

import pytest
import requests
from rest_framework_api_key.models import APIKey

from tagging import jobs, writers
from tagging.catalog import get_catalog
from tagging.keys import namespace, version_key
from tagging.lidarr import map_lidarr_path
from tagging.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

DOWNLOAD = {
    "eventType": "Download",
    "artist": {"id": 12, "name": "A", "path": "/music/A"},
    "album": {"id": 3, "title": "B"},
    "trackFiles": [
        {"id": 7, "path": "/music/A/B/01 - C.flac", "quality": "FLAC", "size": 41234567}
    ],
    "isUpgrade": False,
    "instanceName": "Lidarr",
}
TEST = {
    "eventType": "Test",
    "artist": {"id": 1, "name": "Test Name", "path": "C:\\testpath"},
    "albums": [{"id": 123, "title": "Test title"}],
    "instanceName": "Lidarr",
}


@pytest.fixture
def library(settings, make_library, private_cache) -> Path:
    """tmp_path is the one library root, which Lidarr sees as /music."""
    root = make_library("")
    settings.NOMARR_PATH_MAP = [("/music", str(root))]
    return root


@pytest.fixture
def key() -> str:
    return APIKey.objects.create_key(name="lidarr")[1]


@pytest.fixture
def hook(live_server, library, key):
    """POST to the webhook the way Lidarr does: JSON, key as the Basic password."""

    def post(payload, auth=("lidarr", key), **kwargs) -> requests.Response:
        if "data" not in kwargs:
            kwargs["json"] = payload
        return requests.post(f"{live_server.url}/api/v1/lidarr", auth=auth, timeout=30, **kwargs)

    return post


@pytest.fixture
def track(make_audio, library):
    """A real audio file at /music/<relative> as Lidarr names it; returns Nomarr's path."""

    def make(relative: str, fmt: str = "flac") -> Path:
        source = make_audio(fmt, name=f"_{uuid.uuid4().hex}")
        target = library / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
        return target

    return make


def download(*paths: str) -> dict:
    payload = copy.deepcopy(DOWNLOAD)
    payload["trackFiles"] = [
        {"id": n, "path": path, "quality": "FLAC", "size": 1} for n, path in enumerate(paths)
    ]
    return payload


def outcomes(response: requests.Response) -> dict[str, str]:
    return {f["path"]: f["outcome"] for f in response.json()["files"]}


def test_the_test_event_answers_200_and_does_nothing(hook):
    response = hook(TEST)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["event"] == "Test" and body["ignored"] is False and body["files"] == []
    assert not Job.objects.exists()


def test_a_download_queues_the_imported_track(hook, track):
    song = track("A/B/01 - C.flac")
    response = hook(DOWNLOAD)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["queued"] == 1 and body["refused"] == 0
    [outcome] = body["files"]
    assert outcome["path"] == "/music/A/B/01 - C.flac"
    assert outcome["local_path"] == str(song) and outcome["outcome"] == "queued"
    job = Job.objects.get(pk=outcome["job"]["id"])
    assert job.path == str(song) and job.status == "pending" and not job.force
    # Lidarr sending the same import twice gets the same job back.
    again = hook(DOWNLOAD).json()["files"][0]
    assert again["outcome"] == "already_queued" and again["job"]["id"] == job.pk
    assert Job.objects.count() == 1


def test_a_download_reports_each_refused_or_missing_file(hook, track, library, tmp_path_factory):
    good = track("A/B/01.flac")
    secret = tmp_path_factory.mktemp("outside") / "secret.flac"
    shutil.copyfile(good, secret)
    (library / "A" / "B" / "link.flac").symlink_to(secret)
    payload = download(
        "/music/A/B/01.flac",
        "/music/A/B/02 - missing.flac",
        str(secret),
        f"/music/../{secret.parent.name}/secret.flac",
        "/music/A/B/link.flac",
        "relative/03.flac",
    )
    payload["trackFiles"].append({"id": 99, "quality": "FLAC"})
    payload["trackFiles"].append("not an object")
    response = hook(payload)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["queued"] == 1 and body["refused"] == 7
    assert outcomes(response) == {
        "/music/A/B/01.flac": "queued",
        "/music/A/B/02 - missing.flac": "not_found",
        str(secret): "outside_library",
        f"/music/../{secret.parent.name}/secret.flac": "outside_library",
        "/music/A/B/link.flac": "outside_library",
        "relative/03.flac": "invalid",
        None: "invalid",
    }
    assert list(Job.objects.values_list("path", flat=True)) == [str(good)]


def test_a_download_whose_files_are_all_refused_is_answered_422_with_the_fix(
    hook, caplog, admin_client, client, django_user_model
):
    """Lidarr logs a warning, with the body, for any status from 400 up
    (HttpClient.Execute, then NotificationService: "Unable to send OnReleaseImport
    notification"), so a 200 would hide that nothing is tagged."""
    with caplog.at_level(logging.WARNING, logger="tagging.lidarr"):
        response = hook(download("/elsewhere/x.flac", "/music/none.flac"))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "paths_refused" and body["queued"] == 0 and body["refused"] == 2
    assert "NOMARR_PATH_MAP" in body["detail"] and "/elsewhere/x.flac" in body["detail"]
    assert outcomes(response) == {
        "/elsewhere/x.flac": "outside_library",
        "/music/none.flac": "not_found",
    }
    assert not Job.objects.exists()
    assert any("refused" in r.message and "NOMARR_PATH_MAP" in r.message for r in caplog.records)
    # Staff see the refused paths and the fix on the dashboard; other people do not.
    page = admin_client.get("/").content.decode()
    assert "Refused Lidarr paths" in page and "/elsewhere/x.flac" in page
    assert "NOMARR_PATH_MAP" in page
    client.force_login(django_user_model.objects.create_user("plain", password="x"))
    plain = client.get("/")
    assert plain.status_code == 200 and "/elsewhere/x.flac" not in plain.content.decode()


def test_the_refused_paths_clear_once_a_download_queues_everything(hook, track, admin_client):
    assert hook(download("/elsewhere/x.flac")).status_code == 422
    assert "Refused Lidarr paths" in admin_client.get("/").content.decode()
    track("A/B/01.flac")
    # Some files queued: 202, and the refused one still shown.
    assert hook(download("/music/A/B/01.flac", "/elsewhere/y.flac")).status_code == 202
    page = admin_client.get("/").content.decode()
    assert "/elsewhere/y.flac" in page and "/elsewhere/x.flac" in page
    assert hook(download("/music/A/B/01.flac")).status_code == 202
    assert "Refused Lidarr paths" not in admin_client.get("/").content.decode()


def test_retag_queues_the_files_again_without_force(hook, track):
    """Lidarr fires Retag after writing its own tags on every import: the job's version
    check skips a file whose Nomarr tags survived instead of analysing it again."""
    song = track("A/B/01.flac")
    other = track("A/B/02.flac")
    writers.write_tags(song, {version_key(): [get_catalog().fingerprint]}, namespace(), None)
    first = hook(download("/music/A/B/01.flac")).json()["files"][0]["job"]["id"]
    Job.objects.filter(pk=first).update(status="done")
    payload = {
        "eventType": "Retag",
        "artist": {"id": 12, "name": "A", "path": "/music/A"},
        "trackFile": {"id": 7, "path": "/music/A/B/01.flac"},
        "trackFiles": [{"id": 8, "path": "/music/A/B/02.flac"}],
    }
    response = hook(payload)
    assert response.status_code == 202, response.text
    assert outcomes(response) == {"/music/A/B/01.flac": "queued", "/music/A/B/02.flac": "queued"}
    live = Job.objects.filter(status="pending")
    assert {(j.path, j.force) for j in live} == {(str(song), False), (str(other), False)}
    before = song.read_bytes()
    job = live.get(path=str(song))
    assert jobs.run(job.pk) == "done"
    job.refresh_from_db()
    assert job.result["status"] == "skipped" and "already tagged" in job.result["reason"]
    assert song.read_bytes() == before


def test_lidarr_may_use_the_put_method(hook, track, live_server, key):
    song = track("A/B/01 - C.flac")
    response = requests.put(
        f"{live_server.url}/api/v1/lidarr", json=DOWNLOAD, auth=("lidarr", key), timeout=30
    )
    assert response.status_code == 202, response.text
    assert Job.objects.get().path == str(song)
    anonymous = requests.put(f"{live_server.url}/api/v1/lidarr", json=DOWNLOAD, timeout=30)
    assert anonymous.status_code == 401


def test_rename_points_pending_jobs_at_the_new_paths(hook, track, library):
    old = track("A/B/01 - Old.flac")
    hook(download("/music/A/B/01 - Old.flac"))
    job = Job.objects.get()
    new = old.with_name("01 - New.flac")
    os.rename(old, new)
    running_old = track("A/B/02 - Old.flac")
    busy, _ = jobs.queue_file(running_old)
    assert jobs.claim(busy.pk)
    running_new = running_old.with_name("02 - New.flac")
    os.rename(running_old, running_new)
    track("A/B/03 - Untouched.flac")
    payload = {
        "eventType": "Rename",
        "artist": {"id": 12, "name": "A", "path": "/music/A"},
        "renamedTrackFiles": [
            {
                "id": 1,
                "path": "/music/A/B/01 - New.flac",
                "previousPath": "/music/A/B/01 - Old.flac",
            },
            {
                "id": 2,
                "path": "/music/A/B/02 - New.flac",
                "previousPath": "/music/A/B/02 - Old.flac",
            },
            {
                "id": 3,
                "path": "/music/A/B/03 - Untouched.flac",
                "previousPath": "/music/A/B/03.flac",
            },
            {"id": 4, "path": "/elsewhere/04.flac", "previousPath": "/music/A/B/04.flac"},
            {"id": 5, "path": "/music/A/B/05.flac"},
        ],
    }
    response = hook(payload)
    assert response.status_code == 200, response.text
    assert outcomes(response) == {
        "/music/A/B/01 - New.flac": "moved",
        "/music/A/B/02 - New.flac": "running",
        "/music/A/B/03 - Untouched.flac": "no_pending_job",
        "/elsewhere/04.flac": "outside_library",
        "/music/A/B/05.flac": "invalid",
    }
    job.refresh_from_db()
    assert job.path == str(new) and job.status == "pending"
    assert Job.objects.count() == 2  # nothing new queued


def test_rename_onto_a_path_with_its_own_job_drops_the_old_one(hook, track):
    old = track("A/B/old.flac")
    new = track("A/B/new.flac")
    hook(download("/music/A/B/old.flac", "/music/A/B/new.flac"))
    kept = Job.objects.get(path=str(new))
    old.unlink()
    payload = {
        "eventType": "Rename",
        "renamedTrackFiles": [
            {"path": "/music/A/B/new.flac", "previousPath": "/music/A/B/old.flac"}
        ],
    }
    response = hook(payload)
    assert outcomes(response) == {"/music/A/B/new.flac": "merged"}
    assert response.json()["files"][0]["job"]["id"] == kept.pk
    assert list(Job.objects.values_list("pk", flat=True)) == [kept.pk]


def test_other_events_are_ignored_with_a_note(hook, track):
    track("A/B/01 - C.flac")
    for event in ["Grab", "Health", "AlbumDelete", "ApplicationUpdate"]:
        payload = {**DOWNLOAD, "eventType": event}
        response = hook(payload)
        assert response.status_code == 200
        body = response.json()
        assert body["ignored"] is True and event in body["detail"]
    assert not Job.objects.exists()


def test_lidarr_is_refused_without_the_right_key(hook, key, track):
    track("A/B/01 - C.flac")
    response = hook(DOWNLOAD, auth=None)
    assert response.status_code == 401 and response.json()["error"] == "not_authenticated"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="nomarr"'
    response = hook(DOWNLOAD, auth=("lidarr", key[:-1] + ("x" if key[-1] != "x" else "y")))
    assert response.status_code == 401 and response.json()["error"] == "authentication_failed"
    response = hook(DOWNLOAD, auth=("lidarr", ""))
    assert response.status_code == 401
    APIKey.objects.filter(name="lidarr").update(revoked=True)
    assert hook(DOWNLOAD).status_code == 401
    assert not Job.objects.exists()


def test_lidarr_may_send_the_key_in_a_header(hook, key, track):
    track("A/B/01 - C.flac")
    response = hook(DOWNLOAD, auth=None, headers={"X-Api-Key": key})
    assert response.status_code == 202


def test_malformed_payloads_are_400(hook):
    cases = [
        {"data": b'{"eventType": "Download", ', "headers": {"Content-Type": "application/json"}},
        {"json": ["Download"]},
        {"json": {"trackFiles": []}},
        {"json": {"eventType": 5}},
        {"json": {"eventType": "Download", "trackFiles": "/music/a.flac"}},
        {"json": {"eventType": "Rename", "renamedTrackFiles": {"path": "/music/a.flac"}}},
    ]
    for case in cases:
        response = hook(None, **case)
        assert response.status_code == 400, (case, response.text)
        body = response.json()
        assert body["error"] in {"malformed_request", "invalid_request"} and body["detail"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_the_path_map_prefers_the_longest_prefix(settings):
    settings.NOMARR_PATH_MAP = [
        ("/data", "/srv/data"),
        ("/data/music/", "/library"),
        ("C:\\Music", "/win"),
    ]
    assert map_lidarr_path("/data/music/A/01.flac") == "/library/A/01.flac"
    assert map_lidarr_path("/data/music") == "/library"
    assert map_lidarr_path("/data/other/01.flac") == "/srv/data/other/01.flac"
    assert map_lidarr_path("/database/01.flac") == "/database/01.flac"
    assert map_lidarr_path("c:\\music\\A\\01.flac") == "/win/A/01.flac"
    assert map_lidarr_path("/elsewhere/01.flac") == "/elsewhere/01.flac"
    settings.NOMARR_PATH_MAP = [("/", "/mnt/lidarr/")]
    assert map_lidarr_path("/A/01.flac") == "/mnt/lidarr/A/01.flac"
