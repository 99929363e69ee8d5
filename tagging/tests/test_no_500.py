"""No 500s: every request that used to fail with a server error gets a 4xx that says why.

Each case is a real request: through Django's test client for the API's JSON errors
and the web pages' messages, and through a real server started as `manage.py serve`
starts it (nomarr_site.webserver, daphne) for requests too large to read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from tagging.models import Job
from tagging.tests.support import database_url, free_port, listening, wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def library(make_library, private_cache) -> Path:
    return make_library("")


@pytest.fixture
def api() -> Client:
    """The API, with a key; an unexpected exception comes back as the answer it gets."""
    key = APIKey.objects.create_key(name="tests")[1]
    return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def web() -> Client:
    """The web pages, logged in as a plain user."""
    client = Client(raise_request_exception=False)
    client.force_login(get_user_model().objects.create_user("listener", password="x"))
    return client


def post(client: Client, url: str, body: str | dict):
    text = body if isinstance(body, str) else json.dumps(body)
    return client.post(url, text, content_type="application/json")


def assert_error(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def assert_page(response, status: int, message: str) -> str:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert message in page, page
    assert "Traceback" not in page
    return page


@pytest.fixture
def song(make_audio, library) -> Path:
    return make_audio("flac").resolve()


@pytest.fixture
def loop(library) -> Path:
    """A symlink loop inside the library: library/loop -> library/loop."""
    link = library / "loop"
    link.symlink_to(link)
    return link


# --- the API ---------------------------------------------------------------------


@pytest.mark.parametrize("page", ["docs/", "redoc/", "schema/"])
def test_options_on_the_api_pages_answers_json(api, page):
    response = api.options(f"/api/v1/{page}")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    assert "renders" in response.json()
    assert_error(api.post(f"/api/v1/{page}"), 405, "method_not_allowed")


def test_an_offset_beyond_the_databases_integers_is_a_400(api, library):
    body = assert_error(api.get("/api/v1/list?offset=9223372036854775808"), 400, "invalid_request")
    assert "offset" in body["fields"]
    response = api.get("/api/v1/list?offset=9223372036854774807")  # the largest there is
    assert response.status_code == 200 and response.json()["jobs"] == []


def test_too_many_query_parameters_is_a_400(api, web, library):
    query = "&".join(f"p{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    assert_error(api.get(f"/api/v1/list?{query}"), 400, "malformed_request")
    assert_page(web.get(f"/queue/?{query}"), 400, "could not be understood")


def test_a_job_id_beyond_the_databases_integers_is_no_such_job(api, library):
    huge = 2**63
    assert_error(api.get(f"/api/v1/status/{huge}"), 404, "job_not_found")
    assert_error(post(api, "/api/v1/admin/queue/remove", {"id": huge}), 404, "job_not_found")


def test_cleanup_refuses_hours_beyond_a_century(api, library, song):
    job = Job.objects.create(path=str(song), status="done")
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=30))
    for hours in ("1e8", "1e400", str(10**400)):
        body = assert_error(
            post(api, "/api/v1/admin/queue/cleanup", f'{{"hours": {hours}}}'),
            400,
            "invalid_request",
        )
        assert "hours" in body["fields"]
    assert Job.objects.filter(pk=job.pk).exists()
    assert post(api, "/api/v1/admin/queue/cleanup", {"hours": 24}).json() == {"deleted": 1}


def test_the_cleanup_command_refuses_hours_beyond_a_century_too(library):
    with pytest.raises(CommandError, match="a century"):
        call_command("cleanup", hours=1e8)


@pytest.mark.parametrize("endpoint", ["tag", "lidarr"])
def test_a_body_over_the_upload_limit_is_a_413(api, library, song, endpoint):
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    payload = {
        "tag": {"path": str(song), "padding": padding},
        "lidarr": {"eventType": "Download", "trackFiles": [{"path": str(song)}], "x": padding},
    }[endpoint]
    body = assert_error(post(api, f"/api/v1/{endpoint}", payload), 413, "request_too_large")
    assert "NOMARR_MAX_BODY_MB" in body["detail"]
    assert not Job.objects.exists()


LONE = "\\ud800"  # as JSON writes it: the escape of half a surrogate pair


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("tag", f'{{"path": "/music/{LONE}.flac"}}'),
        ("lidarr", f'{{"eventType": "{LONE}"}}'),
        ("lidarr", f'{{"eventType": "Download", "trackFiles": [{{"path": "/m/{LONE}"}}]}}'),
        ("lidarr", f'{{"eventType": "Retag", "trackFile": {{"path": "/m/{LONE}"}}}}'),
        (
            "lidarr",
            f'{{"eventType": "Rename", "renamedTrackFiles": '
            f'[{{"path": "/m/a.flac", "previousPath": "/m/{LONE}"}}]}}',
        ),
        ("lidarr", f'{{"eventType": "Test", "{LONE}": 1}}'),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400(api, library, endpoint, body):
    assert_error(post(api, f"/api/v1/{endpoint}", body), 400, "malformed_request")
    assert not Job.objects.exists()


def test_a_surrogate_pair_is_text_and_is_taken(api, library, make_audio):
    # "\ud83c\udfb5" is one character (a musical note), not a lone surrogate.
    song = make_audio("flac").rename(library / "\N{MUSICAL NOTE}.flac")
    response = post(api, "/api/v1/tag", f'{{"path": "{library}/\\ud83c\\udfb5.flac"}}')
    assert response.status_code == 202, response.content[:500]
    assert Job.objects.get().path == str(song.resolve())


def test_a_rename_from_a_symlink_loop_is_answered_file_by_file(api, library, make_audio, loop):
    moved = make_audio("flac", name="moved").resolve()
    renamed = make_audio("flac", name="renamed").resolve()
    job = Job.objects.create(path=str(library / "before.flac"))
    response = post(
        api,
        "/api/v1/lidarr",
        {
            "eventType": "Rename",
            "renamedTrackFiles": [
                {"path": str(moved), "previousPath": str(loop)},
                {"path": str(moved), "previousPath": f"{loop}/deeper/old.flac"},
                {"path": str(renamed), "previousPath": str(library / "before.flac")},
            ],
        },
    )
    assert response.status_code == 200, response.content[:500]
    outcomes = [entry["outcome"] for entry in response.json()["files"]]
    assert outcomes == ["no_pending_job", "no_pending_job", "moved"]
    job.refresh_from_db()
    assert job.path == str(renamed) and job.status == "pending"


# --- the web pages -----------------------------------------------------------------


def test_the_tag_page_explains_a_name_too_long(web, library):
    name = "a" * 300  # over the 255 bytes a file name may have
    page = assert_page(web.post("/tag/", {"path": f"{library}/{name}.flac"}), 400, "too long")
    assert 'id="tag-error"' in page
    assert not Job.objects.exists()


def test_the_tag_page_explains_a_symlink_loop(web, library, loop):
    for path in (loop, loop / "inner.flac"):
        page = assert_page(web.post("/tag/", {"path": str(path)}), 400, f"cannot open {path}")
        assert "symlink loop" in page
    assert not Job.objects.exists()


def test_the_tag_page_takes_a_form_that_is_not_utf8(web, library):
    body = b"path=" + str(library).encode() + b"/%ED%A0%80.flac"  # a lone surrogate's bytes
    response = web.post("/tag/", body, content_type="application/x-www-form-urlencoded")
    assert_page(response, 400, "no such file or folder")
    assert not Job.objects.exists()


def test_a_form_over_the_upload_limit_is_a_413_page(web, library):
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = web.post("/tag/", {"path": str(library), "padding": padding})
    assert_page(response, 413, "NOMARR_MAX_BODY_MB")
    assert not Job.objects.exists()


# --- what no view answers -------------------------------------------------------------


def test_a_page_that_fails_is_a_clean_500_page_and_is_logged(web, library, caplog):
    with connection.cursor() as cursor:  # a real failure: the queue's table is gone
        cursor.execute(f"DROP TABLE {Job._meta.db_table}")  # (the test's transaction restores it)
    response = web.get("/")
    page = assert_page(response, 500, "Something went wrong on the server")
    assert Job._meta.db_table not in page
    assert any(record.name == "django.request" and record.exc_info for record in caplog.records)


def test_an_address_under_the_api_that_names_nothing_is_json(api):
    assert_error(api.get("/api/v2/tag"), 404, "not_found")
    assert_error(api.get("/api/"), 404, "not_found")


def test_a_page_that_names_nothing_is_a_page(web):
    assert_page(web.get("/jobs/987654321/"), 404, "There is nothing at this address")


# --- requests too large to read (a real server) ----------------------------------------


@pytest.fixture
def server(tmp_path) -> str:
    """nomarr_site.webserver (daphne) on a free port, as `manage.py serve` runs it."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nomarr_site.test_settings",
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    log = (tmp_path / "web.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nomarr_site.webserver", "-b", "127.0.0.1", "-p", str(port),
         "nomarr_site.asgi:application"],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    try:
        wait_until(lambda: listening(port) or proc.poll() is not None, 60, "the web server")
        assert proc.poll() is None, (tmp_path / "web.log").read_text()[-3000:]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_requests_too_large_to_read_get_414_and_431(server):
    def get(path: str, headers=None) -> requests.Response:
        started = time.monotonic()
        response = requests.get(server + path, headers=headers, timeout=30)
        assert time.monotonic() - started < 10
        return response

    long_query = "?q=" + "a" * 20_000
    assert_status(get("/api/v1/info" + long_query), 414, "uri_too_long")
    assert_status(get("/library/" + long_query), 414)
    one_big = {"X-Big": "a" * 20_000}
    assert_status(get("/api/v1/info", one_big), 431, "headers_too_large")
    many = {f"X-Part-{n}": "a" * 1_000 for n in range(20)}  # 20 KB in all
    assert_status(get("/", many), 431)
    too_many = {f"X-N-{n}": "1" for n in range(600)}
    assert_status(get("/api/v1/info", too_many), 431, "headers_too_large")
    # Below the limits the server answers as ever.
    ok = get("/api/v1/nothing-here", {"X-Fine": "a" * 8_000})
    assert ok.status_code == 404 and ok.json()["error"] == "not_found"


def assert_status(response: requests.Response, status: int, error: str | None = None) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Connection"] == "close"
    if error is None:
        assert "text/plain" in response.headers["Content-Type"] and str(status) in response.text
    else:
        body = response.json()
        assert body["error"] == error and body["detail"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_a_form_reaches_the_page_whole_through_the_real_server(server, encoding):
    # The server leaves form bodies to Django (webserver.FormlessRequest): a login form
    # posted either way is read field by field (a wrong password, not a missing field).
    session = requests.Session()
    page = session.get(server + "/accounts/login/", timeout=30)
    assert page.status_code == 200
    fields = {
        "csrfmiddlewaretoken": session.cookies["csrftoken"],
        "username": "someone-formless",
        "password": "not the password",
    }
    if encoding == "urlencoded":
        answer = session.post(server + "/accounts/login/", data=fields, timeout=30)
    else:
        parts = {name: (None, value) for name, value in fields.items()}
        answer = session.post(server + "/accounts/login/", files=parts, timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    assert "Please enter a correct username and password" in answer.text
    assert 'value="someone-formless"' in answer.text
    assert "This field is required" not in answer.text
