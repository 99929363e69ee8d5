"""The queue page updates live, as the dashboard does (ws/queue/, tagging/consumers.py)."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from nomarr_site.asgi import application
from tagging.models import Job
from tagging.tests.support import websocket_headers

pytestmark = pytest.mark.django_db(transaction=True)


async def first_and_next(path: str, headers, change) -> list[str]:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    if not connected:
        return [f"closed {code}"]
    received = [await communicator.receive_from(timeout=5)]
    await change()
    received.append(await communicator.receive_from(timeout=5))
    await communicator.disconnect()
    return received


def browser_cookies(user) -> tuple[list[tuple[bytes, bytes]], str]:
    """A browser's socket headers after it loaded the queue page (the session and CSRF
    cookies), and its CSRF cookie."""
    client = Client()
    client.force_login(user)
    client.get("/queue/")
    cookies = "; ".join(f"{name}={c.value}" for name, c in client.cookies.items())
    return [*websocket_headers()[:2], (b"cookie", cookies.encode())], client.cookies[
        "csrftoken"
    ].value


def test_a_job_finishing_reaches_the_open_queue_page_with_working_buttons(admin_user):
    job = Job.objects.create(path="/music/one.flac", status="running", worker="elsewhere:1")
    Job.objects.create(path="/music/two.flac")
    headers, csrf_cookie = browser_cookies(admin_user)

    async def it_fails():
        await sync_to_async(Job.objects.filter(pk=job.pk).update)(status="error", error="bad file")

    first, update = async_to_sync(first_and_next)("/ws/queue/", headers, it_fails)
    assert 'id="queue-live"' in first and "running 1" in first and "/music/one.flac" in first
    assert "error 1" in update and "bad file" in update
    assert 'value="retry"' in update  # staff get the row's buttons...
    # ...and their forms carry a CSRF token the server accepts.
    token = update.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    client.cookies["csrftoken"] = csrf_cookie
    answer = client.post(
        "/queue/action/", {"action": "retry", "job": job.pk, "csrfmiddlewaretoken": token}
    )
    assert answer.status_code == 302
    assert Job.objects.get(pk=job.pk).status == "pending"


def test_the_socket_keeps_the_pages_filter(admin_user):
    Job.objects.create(path="/music/waiting.flac")
    Job.objects.create(path="/music/failed.flac", status="error", error="x")

    async def another_fails():
        await sync_to_async(Job.objects.create)(path="/music/also.flac", status="error")

    first, update = async_to_sync(first_and_next)(
        "/ws/queue/?status=error", websocket_headers(admin_user), another_fails
    )
    assert "/music/failed.flac" in first and "/music/waiting.flac" not in first
    assert "/music/also.flac" in update and "/music/waiting.flac" not in update


def test_plain_users_get_no_buttons_and_the_anonymous_no_socket(django_user_model):
    ann = django_user_model.objects.create_user("ann", password="x" * 20)
    job = Job.objects.create(path="/music/one.flac")

    async def it_runs():
        await sync_to_async(Job.objects.filter(pk=job.pk).update)(status="running")

    first, update = async_to_sync(first_and_next)("/ws/queue/", websocket_headers(ann), it_runs)
    assert "running 1" in update and 'value="remove"' not in first + update
    assert async_to_sync(first_and_next)("/ws/queue/", websocket_headers(), it_runs) == [
        "closed 4401"
    ]
