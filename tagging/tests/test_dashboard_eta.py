"""The dashboard's rate and "queue done in", as the page renders them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tagging.models import Job, WorkerState

pytestmark = pytest.mark.django_db


def finished(n: int, minutes_ago: float, took_seconds: float = 30) -> None:
    end = timezone.now() - timedelta(minutes=minutes_ago)
    for i in range(n):
        Job.objects.create(
            path=f"/music/done-{minutes_ago}-{i}.flac",
            status="done",
            started_at=end - timedelta(seconds=took_seconds),
            finished_at=end,
        )


def pending(n: int) -> None:
    Job.objects.bulk_create(Job(path=f"/music/todo-{i}.flac") for i in range(n))


def eta_of(client) -> tuple[str, str]:
    page = client.get("/").content.decode()
    per_hour = page.split('id="per-hour">', 1)[1].split("<", 1)[0].strip()
    return per_hour, page.split('id="eta">', 1)[1].split("<", 1)[0].strip()


def test_the_rate_comes_from_the_last_ten_minutes_and_the_eta_is_whole(admin_client):
    # 20 jobs over the last 10 minutes (one batch per 2 minutes, the first started 10 min
    # ago): 120 per hour. An hour-old burst does not count.
    for minutes_ago in (8, 6, 4, 2, 0.01):
        finished(4, minutes_ago, took_seconds=110)
    finished(500, 50)
    pending(250)
    per_hour, eta = eta_of(admin_client)
    assert 115 <= int(per_hour) <= 125
    # 250 left at ~120 per hour: about 2 h 5 min (nothing cut off the end).
    assert eta.startswith("queue done in about 2 h "), eta
    assert eta.endswith(" min"), eta


def test_a_queue_that_started_minutes_ago_counts_those_minutes(admin_client):
    finished(6, 0.01, took_seconds=120)  # 6 jobs in the last 2 minutes: 180 per hour
    pending(3)
    per_hour, eta = eta_of(admin_client)
    assert 170 <= int(per_hour) <= 190
    assert eta == "queue done in about 1 min"


def test_it_says_paused_when_the_workers_are_paused(admin_client):
    finished(5, 1)
    pending(10)
    WorkerState.get()
    WorkerState.objects.update(paused=True)
    assert eta_of(admin_client)[1] == "paused"


def test_without_recent_jobs_there_is_no_estimate_and_an_empty_queue_says_so(admin_client):
    finished(5, 30)  # finished, but not in the last 10 minutes
    pending(1)
    assert eta_of(admin_client) == ("\u2013", "no estimate yet")  # an en dash
    Job.objects.filter(status="pending").delete()
    assert eta_of(admin_client)[1] == "queue empty"
