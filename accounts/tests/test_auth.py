"""Who may call the API: API keys in every accepted form, and people logged in.

Over real HTTP against a live server; every outsider gets a JSON 401 (or 403 for
a session without its CSRF token) and queues nothing."""

from __future__ import annotations

import base64
from datetime import timedelta
from io import StringIO

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_api_key.models import APIKey

from accounts.auth import APIKeyAuthentication, APIKeyUser
from tagging.models import Job

live = pytest.mark.django_db(transaction=True)


def tag(live_server, song, headers: dict | None = None, **kwargs) -> requests.Response:
    return requests.post(
        f"{live_server.url}/api/v1/tag",
        json={"path": str(song)},
        headers=headers or {},
        timeout=30,
        **kwargs,
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_refused(response: requests.Response, error: str = "authentication_failed") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="nomarr"'
    body = response.json()
    assert body["error"] == error and body["detail"]


@live
def test_a_key_is_accepted_in_every_documented_form(live_server, song, key):
    forms = [
        {"Authorization": f"Bearer {key}"},
        {"Authorization": f"bearer {key}"},
        {"Authorization": f"Token {key}"},
        {"Authorization": f"Api-Key {key}"},
        {"X-Api-Key": key},
        {"Authorization": basic("lidarr", key)},
        {"Authorization": basic("", key)},
    ]
    for headers in forms:
        response = tag(live_server, song, headers)
        assert response.status_code == 202, (headers, response.text)
    assert Job.objects.count() == 1


@live
def test_it_refuses_a_request_without_credentials(live_server, song):
    assert_refused(tag(live_server, song), "not_authenticated")
    assert_refused(tag(live_server, song, {"Authorization": "Digest abc"}), "not_authenticated")
    response = requests.get(f"{live_server.url}/api/v1/list", timeout=30)
    assert_refused(response, "not_authenticated")
    assert not Job.objects.exists()


@live
def test_it_refuses_a_wrong_key(live_server, song, key):
    prefix, _, secret = key.partition(".")
    wrong = [
        f"{prefix}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}",  # right prefix
        "Abcdefgh.abcdefghijklmnopqrstuvwxyz012345",  # unknown prefix
        "no-dot-in-it",
        key + "x" * 300,
        prefix,
    ]
    for bad in wrong:
        assert_refused(tag(live_server, song, {"Authorization": f"Bearer {bad}"}))
        assert_refused(tag(live_server, song, {"X-Api-Key": bad}))
        assert_refused(tag(live_server, song, {"Authorization": basic("lidarr", bad)}))
    assert_refused(tag(live_server, song, {"Authorization": "Bearer"}))
    assert_refused(tag(live_server, song, {"Authorization": "Basic !!not-base64"}))
    assert_refused(tag(live_server, song, {"Authorization": basic("lidarr", "")}))
    no_colon = "Basic " + base64.b64encode(key.encode()).decode()
    assert_refused(tag(live_server, song, {"Authorization": no_colon}))
    # A wrong key is refused even beside a good one in another header.
    assert_refused(tag(live_server, song, {"Authorization": "Bearer a.b", "X-Api-Key": key}))
    assert not Job.objects.exists()


@live
def test_it_refuses_a_revoked_key(live_server, song, key):
    APIKey.objects.get_from_key(key)  # valid until now
    call_command("revoke_api_key", "tests", stdout=StringIO())
    assert_refused(tag(live_server, song, {"Authorization": f"Bearer {key}"}))
    assert not Job.objects.exists()


@live
def test_it_refuses_an_expired_key(live_server, song):
    _, key = APIKey.objects.create_key(
        name="old", expiry_date=timezone.now() - timedelta(minutes=1)
    )
    assert_refused(tag(live_server, song, {"Authorization": f"Bearer {key}"}))


@live
def test_it_refuses_a_key_rotated_away(live_server, song, key):
    out = StringIO()
    call_command("rotate_api_key", "tests", stdout=out, stderr=StringIO())
    new = out.getvalue().splitlines()[-1]
    assert_refused(tag(live_server, song, {"Authorization": f"Bearer {key}"}))
    assert not Job.objects.exists()
    assert tag(live_server, song, {"Authorization": f"Bearer {new}"}).status_code == 202


def session_cookies(user) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


def csrf_pair() -> tuple[str, str]:
    """A CSRF cookie and a matching token, as a page would hand them out."""
    request = RequestFactory().get("/")
    token = get_token(request)
    return request.META["CSRF_COOKIE"], token


@live
def test_a_person_logged_in_may_use_the_api_with_the_csrf_token(live_server, song):
    user = get_user_model().objects.create_user("listener", password="pw-for-tests")
    cookies = session_cookies(user)
    listing = requests.get(f"{live_server.url}/api/v1/list", cookies=cookies, timeout=30)
    assert listing.status_code == 200
    # A POST without the CSRF token is refused (a forged cross-site request would be).
    response = tag(live_server, song, cookies=cookies)
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied" and "CSRF" in response.json()["detail"]
    assert not Job.objects.exists()
    cookie, token = csrf_pair()
    response = tag(
        live_server, song, {"X-CSRFToken": token}, cookies={**cookies, "csrftoken": cookie}
    )
    assert response.status_code == 202, response.text
    # A session that is gone (logged out, expired) is an outsider again.
    Session.objects.all().delete()
    assert_refused(
        requests.get(f"{live_server.url}/api/v1/list", cookies=cookies, timeout=30),
        "not_authenticated",
    )


@pytest.mark.django_db
def test_the_authenticator_gives_a_non_database_user_and_the_key(key):
    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {key}")
    user, auth = APIKeyAuthentication().authenticate(request)
    assert isinstance(user, APIKeyUser) and user.is_authenticated and not user.is_anonymous
    assert user.pk is None and not user.is_staff and str(user) == "api-key:tests"
    assert isinstance(auth, APIKey) and auth.name == "tests"
    assert APIKeyAuthentication().authenticate(RequestFactory().get("/")) is None
    bad = RequestFactory().get("/", HTTP_X_API_KEY="x.y")
    with pytest.raises(AuthenticationFailed):
        APIKeyAuthentication().authenticate(bad)


@pytest.mark.django_db
def test_keys_are_stored_hashed(key):
    stored = APIKey.objects.get()
    prefix, _, secret = key.partition(".")
    assert stored.prefix == prefix
    assert secret not in stored.hashed_key and secret not in stored.id
    assert stored.hashed_key.startswith("sha512$$")
