"""Live progress over websockets, as the browser's htmx ws extension receives it."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from nomarr_site.asgi import application
from tagging.models import Job
from tagging.tests.support import websocket_headers

pytestmark = pytest.mark.django_db(transaction=True)


async def first_messages(path: str, headers, change=None, count: int = 1) -> list[str]:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    if not connected:
        return [f"closed {code}"]
    received = [await communicator.receive_from(timeout=5)]
    if change:
        await change()
        while len(received) < count + 1:
            received.append(await communicator.receive_from(timeout=5))
    await communicator.disconnect()
    return received


@pytest.mark.parametrize("path", ["/ws/dashboard/", "/ws/jobs/1/"])
def test_the_anonymous_get_a_closed_socket(path):
    assert async_to_sync(first_messages)(path, websocket_headers()) == ["closed 4401"]


def test_a_foreign_origin_is_refused(admin_user):
    headers = [(b"origin", b"http://evil.example"), *websocket_headers(admin_user)[1:]]
    messages = async_to_sync(first_messages)("/ws/dashboard/", headers)
    assert messages[0].startswith("closed")


def test_the_dashboard_shows_the_current_state_at_once_and_then_changes(admin_user):
    Job.objects.create(path="/music/one.flac")
    Job.objects.create(path="/music/two.flac", status="running", worker="elsewhere:1")

    async def a_job_progresses():
        from asgiref.sync import sync_to_async

        await sync_to_async(Job.objects.filter(path="/music/two.flac").update)(
            progress={"model": "msd-musicnn-1", "done": 1, "total": 13}
        )

    first, update = async_to_sync(first_messages)(
        "/ws/dashboard/", websocket_headers(admin_user), a_job_progresses
    )
    assert 'id="live"' in first
    assert 'id="count-pending">1<' in first and 'id="count-running">1<' in first
    assert "/music/two.flac" in first and "msd-musicnn-1 (1/13)" not in first
    assert "msd-musicnn-1 (1/13)" in update


def test_a_job_page_socket_sends_that_jobs_scores_when_it_finishes(admin_user):
    job = Job.objects.create(path="/music/one.flac", status="running", worker="elsewhere:1")
    scores = [
        {"model": "mood_happy-msd-musicnn-1", "label": "happy", "score": 0.873, "tier": "high"}
    ]

    async def it_finishes():
        from asgiref.sync import sync_to_async

        await sync_to_async(Job.objects.filter(pk=job.pk).update)(
            status="done", result={"status": "tagged", "scores": scores, "tags": {}}
        )

    first, update = async_to_sync(first_messages)(
        f"/ws/jobs/{job.pk}/", websocket_headers(admin_user), it_finishes
    )
    assert 'id="job-status" class="status-running">running<' in first
    assert 'id="job-status" class="status-done">done<' in update
    assert "mood_happy-msd-musicnn-1" in update and "0.873" in update and "width: 87.3%" in update
