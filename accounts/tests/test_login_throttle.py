"""Login throttling (django-axes): after N failed logins the login page refuses more."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "a long secret phrase"


@pytest.fixture
def ann(django_user_model):
    return django_user_model.objects.create_user("ann", password=PASSWORD)


def login(client: Client, password: str, username: str = "ann"):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_the_defaults_come_from_the_settings():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


def test_after_the_limit_even_the_right_password_is_refused(ann):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "wrong").status_code == 200  # the form again, with an error
    locked = login(client, "wrong")
    assert locked.status_code == 429 and b'id="locked"' in locked.content
    assert b"after 5 failed attempts" in locked.content and b"15 minutes" in locked.content
    refused = login(client, PASSWORD)
    assert refused.status_code == 429 and "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302  # still logged out


def test_a_lock_is_for_that_user_name_only(ann, django_user_model):
    django_user_model.objects.create_user("bob", password=PASSWORD)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "wrong")
    assert login(client, PASSWORD).status_code == 429
    assert login(client, PASSWORD, username="bob").status_code == 302


def test_a_successful_login_resets_the_count(ann):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "wrong")
    assert login(client, PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "wrong").status_code == 200
    assert login(client, PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(ann):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "ann", "password": "wrong"})
    assert login(client, PASSWORD).status_code == 429
