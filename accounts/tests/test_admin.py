"""The admin lists API keys (registered by djangorestframework-api-key) and sessions."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from rest_framework_api_key.models import APIKey

pytestmark = pytest.mark.django_db


def test_api_keys_and_sessions_are_in_the_admin():
    assert admin.site.is_registered(APIKey)
    assert admin.site.is_registered(Session)


def test_a_superuser_sees_who_is_logged_in_and_may_end_a_session():
    listener = get_user_model().objects.create_user("listener", password="pw-for-tests")
    Client().force_login(listener)
    boss = get_user_model().objects.create_superuser("boss", password="pw-for-tests")
    client = Client()
    client.force_login(boss)
    response = client.get("/admin/sessions/session/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "listener" in page and "boss" in page
    assert client.get("/admin/sessions/session/add/").status_code == 403
    theirs = next(
        s for s in Session.objects.all() if s.get_decoded()["_auth_user_id"] == str(listener.pk)
    )
    response = client.post(f"/admin/sessions/session/{theirs.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Session.objects.filter(pk=theirs.pk).exists()
    assert client.get("/admin/rest_framework_api_key/apikey/").status_code == 200
