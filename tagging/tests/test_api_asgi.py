"""The API and the pages through the ASGI application serve runs (nomarr_site.asgi:
lanes, and each request's sync part in one call of its lane's thread), spoken to as
daphne speaks to it. The answers are those of Django's own handler: statuses, JSON
errors, cookies; the Job table is the truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connections
from django.test import override_settings
from rest_framework_api_key.models import APIKey

from nomarr_site.asgi import application
from tagging.models import Job

live = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def lanes_let_go():
    """Each lane keeps its database connection (NOMARR_DB_CONN_MAX_AGE): closed after
    each test, so that the test database can be dropped (PostgreSQL refuses while a
    connection is open)."""
    yield
    for lane in application.application_mapping["http"].free or []:
        lane.submit(connections.close_all).result()


@pytest.fixture
def library(make_library, private_cache) -> Path:
    return make_library("")


def call(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
    """One HTTP request through the ASGI application: (status, headers, body)."""
    sent = [(b"host", b"localhost"), (b"content-length", str(len(body)).encode())]
    sent += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": sent,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }

    async def talk():
        app = ApplicationCommunicator(application, scope)
        await app.send_input({"type": "http.request", "body": body, "more_body": False})
        start = await app.receive_output(30)
        content = b""
        while True:
            message = await app.receive_output(30)
            content += message.get("body", b"")
            if not message.get("more_body"):
                break
        await app.wait(30)
        return start["status"], dict(start["headers"]), content

    from asgiref.sync import async_to_sync

    return async_to_sync(talk)()


def post_tag(key: str | None, path: str):
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    return call("POST", "/api/v1/tag", json.dumps({"path": path}).encode(), headers)


@live
def test_it_queues_a_file_through_the_lanes(library, key, make_audio):
    track = make_audio("mp3").resolve()
    status, headers, body = post_tag(key, str(track))
    assert status == 202, body
    assert headers[b"Content-Type"] == b"application/json"
    (job,) = json.loads(body)["jobs"]
    assert Job.objects.get(pk=job["id"]).path == str(track)
    # The same path again: the same job, not a second one.
    status, _, body = post_tag(key, str(track))
    assert status == 202 and json.loads(body)["jobs"][0]["id"] == job["id"]
    assert Job.objects.filter(path=str(track)).count() == 1


@live
def test_it_refuses_a_request_without_a_key_or_with_a_revoked_one(library, key, make_audio):
    track = str(make_audio("mp3").resolve())
    status, _, body = post_tag(None, track)
    assert status == 401 and json.loads(body)["error"]
    APIKey.objects.filter(prefix=key.partition(".")[0]).update(revoked=True)
    status, _, body = post_tag(key, track)
    assert status == 401, body
    assert not Job.objects.exists()


@live
def test_it_refuses_a_path_outside_the_library(library, key, tmp_path_factory, audio_sources):
    outside = tmp_path_factory.mktemp("outside") / "secret.flac"
    shutil.copyfile(audio_sources["flac"], outside)
    status, _, body = post_tag(key, str(outside))
    assert status == 403 and json.loads(body)["error"] == "outside_library"
    assert not Job.objects.exists()


@live
def test_it_refuses_a_body_that_is_not_json_with_a_400_not_a_500(library, key):
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    status, _, body = call("POST", "/api/v1/tag", b"{not json", headers)
    assert status == 400 and json.loads(body)["error"]
    assert not Job.objects.exists()


@live
def test_a_page_gets_its_cookies_and_a_request_too_large_gets_413(library, key):
    status, headers, body = call("GET", "/accounts/login/")
    assert status == 200 and b"<form" in body
    assert b"csrftoken=" in headers.get(b"Set-Cookie", b"")
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10):
        headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        status, _, _ = call("POST", "/api/v1/tag", b'{"path": "/' + b"x" * 100 + b'"}', headers)
    assert status == 413
