"""Real django-q2 workers (`manage.py workers` processes) running real jobs.

Marked `scaleout`: bin/test runs these a second time against PostgreSQL and Redis.
"""

import os
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings

from nomarr_site.workers import claim_pid
from tagging import jobs, tagfiles
from tagging.catalog import get_catalog
from tagging.keys import namespace, score_key, version_key
from tagging.models import Job, WorkerState
from tagging.tests.support import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.scaleout]

JORAM = Path(settings.SHARED_DIR) / "fixtures/audio/joram-moments_of_clarity-08-solipsism-59-88.mp3"


def finished(job: Job):
    job.refresh_from_db()
    return job.status in Job.FINISHED and job


def test_a_real_worker_tags_a_queued_file(cluster, make_audio, library, audio_stream_hash):
    song = make_audio("mp3")
    song = Path(song.rename(library / song.name))
    before = audio_stream_hash(song)
    cluster()
    from django_q.brokers import get_broker

    expected = "Redis" if settings.NOMARR_REDIS_URL else "ORM"
    assert type(get_broker()).__name__ == expected
    job, created = jobs.queue_file(song)
    assert created
    job = wait_until(lambda: finished(job), 120, "the job to finish")
    assert job.status == "done", job.error
    assert job.result["status"] == "tagged" and job.attempts == 1
    stored = tagfiles.read_tags(song, namespace())
    assert stored[version_key()] == [get_catalog().fingerprint]
    assert stored == job.result["tags"]
    assert audio_stream_hash(song) == before


def test_queueing_a_file_twice_gives_the_same_job(library, make_audio):
    song = Path(make_audio("flac").rename(library / "song.flac"))
    first, created = jobs.queue_file(song)
    second, created_again = jobs.queue_file(song)
    assert created and not created_again and first.pk == second.pk
    assert Job.objects.count() == 1


def test_a_paused_worker_starts_nothing_until_resumed(cluster, make_audio, library):
    song = Path(make_audio("ogg").rename(library / "song.ogg"))
    cluster()
    jobs.set_paused(True)
    job, _ = jobs.queue_file(song)
    time.sleep(2)
    job.refresh_from_db()
    assert job.status == "pending"
    jobs.set_paused(False)
    job = wait_until(lambda: finished(job), 120, "the job to finish after resume")
    assert job.status == "done"


def test_a_worker_killed_mid_job_leaves_no_job_stuck_and_no_broken_file(
    cluster, long_track, audio_stream_hash
):
    before = audio_stream_hash(long_track)
    cluster()
    job, _ = jobs.queue_file(long_track)

    def running():
        job.refresh_from_db()
        return job.status == "running" and job.worker

    worker = wait_until(running, 60, "the job to start")
    os.kill(claim_pid(worker), signal.SIGKILL)
    # django-q2 replaces the dead worker; the new one puts the job back and runs it.
    job = wait_until(lambda: finished(job), 180, "the job to be recovered")
    assert job.status == "done", job.error
    assert job.attempts == 2 and job.worker != worker
    assert tagfiles.read_tags(long_track, namespace())[version_key()] == [get_catalog().fingerprint]
    assert audio_stream_hash(long_track) == before
    assert not list(long_track.parent.glob(".nomarr-*"))


def test_a_killed_cluster_leaves_no_job_running_after_restart(cluster, long_track):
    first = cluster()
    job, _ = jobs.queue_file(long_track)
    wait_until(lambda: Job.objects.filter(pk=job.pk, status="running").exists(), 60, "start")
    first.stop(signal.SIGKILL)
    job.refresh_from_db()
    assert job.status == "running"  # nobody is left to say otherwise...
    cluster()  # ...until a worker starts again
    job = wait_until(lambda: finished(job), 180, "the job to be recovered")
    assert job.status == "done" and job.attempts == 2


def test_progress_from_a_worker_process_reaches_a_websocket(cluster, long_track, admin_user):
    """Embedded: the consumer watches the database. Scale-out: the worker's messages
    come through channels-redis (the consumer does not poll then)."""
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator
    from django.test import Client

    from nomarr_site.asgi import application
    from nomarr_site.consumers import crosses_processes

    assert crosses_processes() == bool(settings.NOMARR_REDIS_URL)
    client = Client()
    client.force_login(admin_user)
    headers = [
        (b"origin", b"http://localhost"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]
    cluster()
    job, _ = jobs.queue_file(long_track)

    async def watch() -> list[str]:
        communicator = WebsocketCommunicator(application, f"/ws/jobs/{job.pk}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        seen = []
        while not seen or "status-done" not in seen[-1]:
            seen.append(await communicator.receive_from(timeout=120))
        await communicator.disconnect()
        return seen

    seen = async_to_sync(watch)()
    assert any("11 models: " in message and " s heard" in message for message in seen), seen[:3]
    happy = score_key("mood_happy-msd-musicnn-1", "happy")
    assert happy in seen[-1] or "mood_happy-msd-musicnn-1" in seen[-1]


def test_lidarrs_download_webhook_gets_the_file_tagged_by_a_real_worker(
    library, tmp_path, make_audio, audio_stream_hash
):
    """Lidarr (its real payload, its path, the key as a Basic-auth password) posts to a
    real `manage.py serve`; its real worker tags the file."""
    import socket

    import requests
    from rest_framework_api_key.models import APIKey

    from tagging.tests.support import ManageProcess

    album = library / "Artist" / "Album"
    album.mkdir(parents=True)
    song = Path(make_audio("flac").rename(album / "01 - Song.flac"))
    before = audio_stream_hash(song)
    key = APIKey.objects.create_key(name="lidarr")[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"

    def answers():
        try:
            return requests.get(base + "/accounts/login/", timeout=5).ok
        except requests.RequestException:
            return False

    server = ManageProcess(
        ["serve", "--port", str(port)],
        library,
        tmp_path / "serve.log",
        env={"NOMARR_PATH_MAP": f"/music={library}"},
    ).start(ready=lambda: answers() and WorkerState.objects.workers_alive() > 0)
    try:
        payload = {
            "eventType": "Download",
            "artist": {"id": 12, "name": "Artist", "path": "/music/Artist"},
            "album": {"id": 3, "title": "Album"},
            "trackFiles": [
                {"id": 7, "path": "/music/Artist/Album/01 - Song.flac", "quality": "FLAC"}
            ],
            "isUpgrade": False,
            "instanceName": "Lidarr",
        }
        url = base + "/api/v1/lidarr"
        refused = requests.post(url, json=payload, auth=("lidarr", "wrong"), timeout=30)
        assert refused.status_code == 401
        response = requests.post(url, json=payload, auth=("lidarr", key), timeout=30)
        assert response.status_code == 202, response.text
        job = Job.objects.get(path=str(song))
        job = wait_until(lambda: finished(job), 180, "the worker to tag the file")
        assert job.status == "done", job.error
        assert tagfiles.read_tags(song, namespace())[version_key()] == [get_catalog().fingerprint]
        assert audio_stream_hash(song) == before
    finally:
        server.stop()
