"""GET /metrics gives Prometheus the queue, the workers, the analysis rate and the scans."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import keys
from library.models import LibraryFile, LibraryRoot, Scan
from tagging.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def key() -> str:
    return keys.create("prometheus").key


def scrape(client, key: str) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return response.content.decode()


def test_metrics_need_an_api_key(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_key_is_refused(client):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer abcdefgh.nope")
    assert response.status_code == 401


def test_a_setting_opens_the_metrics_without_a_key(client, settings):
    settings.NOMARR_METRICS_PUBLIC = True
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "nomarr_jobs" in response.content.decode()


def test_metrics_count_the_queue_by_status(client, key):
    Job.objects.create(path="/music/a.mp3")
    Job.objects.create(path="/music/b.mp3")
    Job.objects.create(path="/music/c.mp3", status=Job.Status.ERROR, finished_at=timezone.now())
    text = scrape(client, key)
    assert 'nomarr_jobs{status="pending"} 2.0' in text
    assert 'nomarr_jobs{status="running"} 0.0' in text
    assert 'nomarr_jobs{status="error"} 1.0' in text
    assert 'nomarr_jobs_finished_last_hour{status="error"} 1.0' in text
    assert "nomarr_workers_alive 0.0" in text
    assert "nomarr_workers_paused 0.0" in text


def test_metrics_give_analysis_seconds_per_audio_minute(client, key, tmp_path):
    root = LibraryRoot.objects.create(path=str(tmp_path))
    now = timezone.now()
    for name, seconds, duration in [("a", 10, 120.0), ("b", 20, 180.0)]:
        path = f"{root.path}/{name}.mp3"
        Job.objects.create(
            path=path,
            status=Job.Status.DONE,
            started_at=now - timedelta(seconds=seconds),
            finished_at=now,
            result={"status": "tagged"},
        )
        LibraryFile.objects.create(
            root=root, path=path, folder=root.path, size=1, mtime_ns=0, duration=duration
        )
    text = scrape(client, key)
    # 30 s of work for 5 minutes of audio.
    assert "nomarr_analysis_seconds_per_audio_minute 6.0" in text


def test_metrics_give_each_roots_last_scan(client, key, tmp_path):
    root = LibraryRoot.objects.create(path=str(tmp_path))
    scan = Scan.objects.create(root=root, status=Scan.Status.DONE)
    Scan.objects.filter(pk=scan.pk).update(finished_at=scan.started_at + timedelta(seconds=42))
    text = scrape(client, key)
    root_path = root.path
    assert f'nomarr_scan_last_duration_seconds{{root="{root_path}"}} 42.0' in text
    assert f'nomarr_scan_running{{root="{root_path}"}} 0.0' in text
