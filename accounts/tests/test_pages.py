"""The settings and keys page: roots, what the environment sets, API keys shown once."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework import exceptions
from rest_framework_api_key.models import APIKey

from accounts.auth import check_key
from library.models import LibraryRoot

pytestmark = pytest.mark.django_db

KEY = re.compile(r'<section class="card newkey" id="new-key">.*?<code>([^<]+)</code>', re.S)


@pytest.fixture
def person(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_user("bob", password="x" * 20))
    return client


def test_the_page_shows_roots_and_what_the_environment_sets(admin_client, library, settings):
    settings.NOMARR_PATH_MAP = [("/music", "/data/music")]
    page = admin_client.get("/accounts/settings/")
    text = page.content.decode()
    assert page.status_code == 200
    root = LibraryRoot.objects.get()  # seeded from NOMARR_LIBRARY_ROOTS by the page
    assert f'id="root-{root.pk}"' in text and str(library) in text
    assert '<code id="namespace">nom</code>' in text and "NOMARR_NAMESPACE" in text
    assert "<code>/music</code> → <code>/data/music</code>" in text
    assert 'name="csrfmiddlewaretoken"' in text


def test_staff_change_a_roots_auto_tag_and_ignore_patterns(admin_client, library):
    admin_client.get("/accounts/settings/")
    root = LibraryRoot.objects.get()
    response = admin_client.post(
        f"/accounts/settings/roots/{root.pk}/",
        {f"root{root.pk}-ignore_patterns": "*/Podcasts\n*/.Trash*"},  # auto_tag unticked
    )
    assert response.status_code == 302
    root.refresh_from_db()
    assert not root.auto_tag and root.patterns() == ["*/Podcasts", "*/.Trash*"]
    admin_client.post(
        f"/accounts/settings/roots/{root.pk}/",
        {f"root{root.pk}-auto_tag": "on", f"root{root.pk}-ignore_patterns": ""},
    )
    root.refresh_from_db()
    assert root.auto_tag and root.patterns() == []
    assert admin_client.post("/accounts/settings/roots/999999/").status_code == 404


def test_a_new_key_is_shown_once_and_then_only_its_prefix(admin_client):
    response = admin_client.post("/accounts/settings/keys/", {"action": "create", "name": "lidarr"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    key = KEY.search(response.content.decode()).group(1)
    api_key = check_key(key)
    assert api_key.name == "lidarr" and key.startswith(api_key.prefix + ".")
    later = admin_client.get("/accounts/settings/").content.decode()
    assert api_key.prefix in later and key not in later and 'id="new-key"' not in later
    secret = key.split(".", 1)[1]
    assert secret not in later


def test_rotate_revokes_the_old_key_and_shows_the_new_one_once(admin_client):
    _, old = APIKey.objects.create_key(name="lidarr")
    _, other = APIKey.objects.create_key(name="script")
    response = admin_client.post(
        "/accounts/settings/keys/", {"action": "rotate", "name": "lidarr", "confirm": "yes"}
    )
    new = KEY.search(response.content.decode()).group(1)
    assert check_key(new).name == "lidarr"
    with pytest.raises(exceptions.AuthenticationFailed):
        check_key(old)
    assert check_key(other).name == "script"
    assert new not in admin_client.get("/accounts/settings/").content.decode()


def test_revoke_stops_a_key_at_once(admin_client):
    api_key, key = APIKey.objects.create_key(name="lidarr")
    response = admin_client.post(
        "/accounts/settings/keys/",
        {"action": "revoke", "prefix": api_key.prefix, "confirm": "yes"},
        follow=True,
    )
    assert b"revoked" in response.content
    with pytest.raises(exceptions.AuthenticationFailed):
        check_key(key)
    again = admin_client.post(
        "/accounts/settings/keys/",
        {"action": "revoke", "prefix": api_key.prefix, "confirm": "yes"},
        follow=True,
    )
    assert b"no usable API key" in again.content


def test_bad_key_names_are_refused(admin_client):
    for name in ["", "   ", "x" * 51]:
        response = admin_client.post(
            "/accounts/settings/keys/", {"action": "create", "name": name}, follow=True
        )
        assert b'id="new-key"' not in response.content
    assert not APIKey.objects.exists()


def test_people_who_are_not_staff_see_the_page_but_cannot_change_it(person, library):
    APIKey.objects.create_key(name="lidarr")
    page = person.get("/accounts/settings/")
    assert page.status_code == 200 and b"managed by staff" in page.content
    assert b"lidarr" not in page.content and b'action="/accounts/settings/' not in page.content
    root = LibraryRoot.objects.get()
    for url, data in [
        ("/accounts/settings/keys/", {"action": "create", "name": "mine"}),
        ("/accounts/settings/keys/", {"action": "revoke", "prefix": "x"}),
        (f"/accounts/settings/roots/{root.pk}/", {f"root{root.pk}-ignore_patterns": ""}),
    ]:
        assert person.post(url, data).status_code == 403, url
    assert APIKey.objects.count() == 1 and LibraryRoot.objects.get().patterns()


def test_key_forms_need_the_csrf_token(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/accounts/settings/keys/", {"action": "create", "name": "lidarr"})
    assert response.status_code == 403 and not APIKey.objects.exists()
