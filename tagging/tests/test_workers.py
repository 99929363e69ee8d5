"""Real django-q2 workers (`manage.py qcluster` processes) running real jobs.

Marked `scaleout`: bin/test runs these a second time against PostgreSQL and Redis.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tagging import jobs, writers
from tagging.catalog import get_catalog
from tagging.models import Job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.scaleout]

JORAM = Path(settings.SHARED_DIR) / "fixtures/audio/joram-moments_of_clarity-08-solipsism-59-88.mp3"


def database_url() -> str:
    """The test database, as a URL another process can open."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Cluster:
    """A real `manage.py qcluster` in its own process group."""

    def __init__(self, library: Path, log: Path):
        self.library, self.log_path, self.proc = library, log, None

    def start(self) -> "Cluster":
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "nomarr_site.test_settings",
            "DATABASE_URL": database_url(),
            "NOMARR_LIBRARY_ROOTS": str(self.library),
            "NOMARR_Q_NAME": settings.Q_CLUSTER["name"],
            "PYTHONUNBUFFERED": "1",
        }
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: jobs.workers_alive() > 0 or self.proc.poll() is not None, 60, "qcluster")
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture
def library(tmp_path, settings):
    root = tmp_path / "library"
    root.mkdir()
    settings.NOMARR_LIBRARY_ROOTS = [root.resolve()]
    return root.resolve()


@pytest.fixture
def cluster(library, tmp_path):
    started = []

    def start() -> Cluster:
        started.append(Cluster(library, tmp_path / "qcluster.log").start())
        return started[-1]

    yield start
    for one in started:
        one.stop(signal.SIGKILL)


@pytest.fixture
def long_track(library):
    """A 3-minute FLAC (the real clip six times), so a job runs for seconds."""
    path = library / "long.flac"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-stream_loop", "5", "-i", str(JORAM), "-c:a", "flac", str(path)],
        check=True,
    )
    return path


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
    stored = writers.read_tags(song, "nom")
    assert stored["nom_version"] == [get_catalog().fingerprint]
    assert stored == job.result["tags"]
    assert audio_stream_hash(song) == before


def test_queueing_a_file_twice_gives_the_same_job(library, make_audio):
    song = make_audio("flac")
    first, created = jobs.queue_file(song)
    second, created_again = jobs.queue_file(song)
    assert created and not created_again and first.pk == second.pk
    assert Job.objects.count() == 1


def test_a_paused_worker_starts_nothing_until_resumed(cluster, make_audio):
    song = make_audio("ogg")
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
    os.kill(int(worker.rpartition(":")[2]), signal.SIGKILL)
    # django-q2 replaces the dead worker; the new one puts the job back and runs it.
    job = wait_until(lambda: finished(job), 180, "the job to be recovered")
    assert job.status == "done", job.error
    assert job.attempts == 2 and job.worker != worker
    assert writers.read_tags(long_track, "nom")["nom_version"] == [get_catalog().fingerprint]
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
    from tagging import live

    assert live.crosses_processes() == bool(settings.NOMARR_REDIS_URL)
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
    assert any("of 13 models" in message for message in seen), seen[:3]
    assert "nom_mood_happy_msd_musicnn_1__happy" in seen[-1] or "mood_happy-msd-musicnn-1" in seen[-1]
