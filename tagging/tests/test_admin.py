"""The jobs admin: failed jobs retried, finished ones removed, running ones left alone."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tagging.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    boss = get_user_model().objects.create_superuser("boss", password="pw-for-tests")
    client = Client()
    client.force_login(boss)
    return client


def test_removing_jobs_keeps_the_running_ones(client):
    done = Job.objects.create(path="/music/a.flac", status=Job.Status.DONE)
    failed = Job.objects.create(path="/music/b.flac", status=Job.Status.ERROR)
    running = Job.objects.create(path="/music/c.flac", status=Job.Status.RUNNING)
    response = client.post(
        "/admin/tagging/job/",
        {"action": "remove", "_selected_action": [done.pk, failed.pk, running.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "2 jobs removed" in page and "1 running jobs kept" in page
    assert list(Job.objects.values_list("pk", flat=True)) == [running.pk]
