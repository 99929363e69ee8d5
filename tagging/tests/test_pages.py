"""The web pages: people who logged in get working pages (who may use which page is
swept in nomarr_site/tests/test_url_sweep.py)."""

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from tagging.models import Job, WorkerState

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/", "/tag/", "/queue/", "/models/"])
def test_a_person_who_logged_in_sees_each_page(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code == 200
    assert b"Log out" in response.content


def test_login_with_the_right_password_and_not_the_wrong_one(django_user_model):
    django_user_model.objects.create_user("ann", password="a long secret phrase")
    client = Client()
    wrong = client.post(reverse("login"), {"username": "ann", "password": "nope"})
    assert wrong.status_code == 200 and b"Please enter a correct" in wrong.content
    right = client.post(reverse("login"), {"username": "ann", "password": "a long secret phrase"})
    assert right.status_code == 302 and right["Location"] == "/"
    assert client.get("/").status_code == 200


def test_forms_without_a_csrf_token_are_refused(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post("/queue/action/", {"action": "pause"}).status_code == 403
    assert not WorkerState.get().paused


def test_tag_now_refuses_a_path_outside_the_library(admin_client, settings, tmp_path):
    settings.NOMARR_LIBRARY_ROOTS = [(tmp_path / "library").resolve()]
    (tmp_path / "library").mkdir()
    outside = tmp_path / "elsewhere.mp3"
    outside.write_bytes(b"x")
    response = admin_client.post("/tag/", {"path": str(outside)})
    assert response.status_code == 400
    assert b"outside the library" in response.content
    sneaky = admin_client.post(
        "/tag/", {"path": str(tmp_path / "library" / ".." / "elsewhere.mp3")}
    )
    assert sneaky.status_code == 400
    assert Job.objects.count() == 0


def test_tag_now_queues_a_file_and_shows_its_job(admin_client, settings, make_audio):
    song = make_audio("flac")
    settings.NOMARR_LIBRARY_ROOTS = [song.parent.resolve()]
    response = admin_client.post("/tag/", {"path": str(song)})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    page = admin_client.get(response["Location"])
    assert str(Path(job.path)).encode() in page.content
    assert b'id="job-status"' in page.content and b"pending" in page.content
    assert f'ws-connect="/ws/jobs/{job.pk}/"'.encode() in page.content


def test_the_queue_page_pauses_resumes_and_refuses_to_remove_a_running_job(admin_client):
    running = Job.objects.create(path="/music/a.flac", status="running")
    failed = Job.objects.create(path="/music/b.flac", status="error", error="cannot decode audio")
    page = admin_client.get("/queue/?status=error")
    assert b"/music/b.flac" in page.content and b"/music/a.flac" not in page.content
    admin_client.post("/queue/action/", {"action": "pause"})
    assert WorkerState.get().paused
    admin_client.post("/queue/action/", {"action": "resume"})
    assert not WorkerState.get().paused
    refused = admin_client.post(
        "/queue/action/", {"action": "remove", "job": running.pk, "confirm": "yes"}, follow=True
    )
    assert b"is running" in refused.content and Job.objects.filter(pk=running.pk).exists()
    admin_client.post("/queue/action/", {"action": "retry", "job": failed.pk})
    failed.refresh_from_db()
    assert failed.status == "pending"


def test_the_queue_action_never_redirects_off_site(admin_client):
    response = admin_client.post(
        "/queue/action/", {"action": "pause", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/queue/"


def test_the_models_page_lists_loaded_heads(admin_client):
    page = admin_client.get("/models/")
    assert b"mood_happy-msd-musicnn-1" in page.content and b"msd-musicnn-1" in page.content
