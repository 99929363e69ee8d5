"""Lidarr payloads of thousands of files: queued in bulk, in seconds, up to a documented cap.

A webhook that names 20,000 track files is answered while Lidarr waits: the files
are checked against one reading of the library roots, queued with one look-up and
one insert per chunk (tagging.jobs.queue_files), and their run messages are sent by
a worker, not by the request (one broker message stands for all of them). Above
NOMARR_LIDARR_MAX_FILES the payload is refused with a 413 and nothing is queued.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from django.test import Client
from django_q.brokers import get_broker
from rest_framework_api_key.models import APIKey

from tagging import jobs
from tagging.models import Job
from tagging.tests.support import wait_until

BULK = 20_000


@pytest.fixture
def hook() -> Client:
    key = APIKey.objects.create_key(name="lidarr")[1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    def send(payload: dict):
        return client.post("/api/v1/lidarr", json.dumps(payload), content_type="application/json")

    client.send = send
    return client


@pytest.fixture
def clip(make_audio, library) -> Path:
    """A real 2 s FLAC in the library: a worker skips it as too short, running no model."""
    source = make_audio("flac")
    target = library / "clip.flac"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(source), "-t", "2", str(target)],
        check=True,
        timeout=60,
    )
    return target


def copies(clip: Path, count: int) -> list[Path]:
    """count files in the library, each its own path (hard links of the clip)."""
    folder = clip.parent / "box set"
    folder.mkdir(exist_ok=True)
    paths = [folder / f"{n:05d} track.flac" for n in range(count)]
    for path in paths:
        if not path.exists():
            os.link(clip, path)
    return paths


def download(paths: list[Path]) -> dict:
    return {"eventType": "Download", "trackFiles": [{"path": str(p)} for p in paths]}


@pytest.mark.django_db
def test_a_download_of_20000_files_is_queued_in_seconds(
    hook, clip, django_capture_on_commit_callbacks
):
    paths = copies(clip, BULK)
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):  # as the request's commit does
        response = hook.send(download(paths))
    took = time.monotonic() - started
    assert response.status_code == 202, response.content[:500]
    body = response.json()
    assert body["queued"] == BULK and body["refused"] == 0
    assert {entry["outcome"] for entry in body["files"]} == {"queued"}
    assert Job.objects.filter(status="pending").count() == BULK
    assert took < 60, f"{took:.1f} s for {BULK} files"
    # One broker message carries them all; a worker sends the 20,000 run messages.
    assert get_broker().queue_size() == 1
    # The same payload again queues nothing new.
    again = hook.send(download(paths)).json()
    assert {entry["outcome"] for entry in again["files"]} == {"already_queued"}
    assert Job.objects.count() == BULK


@pytest.mark.django_db
def test_more_files_than_the_cap_is_a_413_and_queues_nothing(hook, clip, settings):
    assert settings.NOMARR_LIDARR_MAX_FILES == BULK  # the documented default
    payload = download([clip] * (BULK + 1))
    for event in ("Download", "Retag", "Rename"):
        key = "renamedTrackFiles" if event == "Rename" else "trackFiles"
        response = hook.send({"eventType": event, key: payload["trackFiles"]})
        assert response.status_code == 413, response.content[:500]
        body = response.json()
        assert body["error"] == "too_many_files"
        assert "NOMARR_LIDARR_MAX_FILES" in body["detail"] and str(BULK + 1) in body["detail"]
    assert not Job.objects.exists()
    settings.NOMARR_LIDARR_MAX_FILES = 3
    assert hook.send(download(copies(clip, 3))).status_code == 202
    assert hook.send(download(copies(clip, 4))).status_code == 413


@pytest.mark.django_db
def test_a_file_named_twice_gets_one_job(hook, clip):
    body = hook.send(download([clip, clip])).json()
    first, second = body["files"]
    assert (first["outcome"], second["outcome"]) == ("queued", "already_queued")
    assert first["job"] == second["job"] and Job.objects.count() == 1


@pytest.mark.django_db
def test_a_retag_in_bulk_keeps_the_pending_jobs_and_forces_nothing(hook, clip):
    paths = copies(clip, 3)
    hook.send(download(paths[:2]))
    body = hook.send({"eventType": "Retag", "trackFiles": [{"path": str(p)} for p in paths]})
    assert [entry["outcome"] for entry in body.json()["files"]] == [
        "already_queued",
        "already_queued",
        "queued",
    ]
    # Lidarr's Retag follows its own tag writing: the version check decides, not force.
    assert set(Job.objects.values_list("force", flat=True)) == {False}
    assert Job.objects.count() == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.scaleout
def test_jobs_whose_messages_a_worker_sends_are_run(hook, clip, cluster, monkeypatch):
    monkeypatch.setattr(jobs, "DISPATCH_INLINE", 2)  # so that 5 files are "many"
    cluster()
    assert hook.send(download(copies(clip, 5))).status_code == 202

    def all_done():
        return set(Job.objects.values_list("status", flat=True)) == {"done"}

    wait_until(all_done, 120, "the five jobs to run")
    assert {job.result["status"] for job in Job.objects.all()} == {"skipped"}
