"""The playlists page and the Navidrome configuration page, through Django's test client."""

from __future__ import annotations

import json
import tomllib

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import reverse

from playlists import navidrome
from tagging.keys import mood_set_key

from .conftest import HAPPY, RELAXED
from .fake_navidrome import FakeNavidrome
from .test_subsonic import PASSWORD, USER, songs_for_mixed

INDEX = "playlists:index"
CONFIG = "playlists:navidrome_config"


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("listener", password="pw")


@pytest.fixture
def browser(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def post(browser: Client, data: dict):
    """A POST as a browser sends it: with the CSRF token from the page's form."""
    page = browser.get(reverse(INDEX))
    token = page.context["csrf_token"]
    management = {
        "rows-TOTAL_FORMS": "5",
        "rows-INITIAL_FORMS": "0",
        "rows-MIN_NUM_FORMS": "0",
        "rows-MAX_NUM_FORMS": "50",
    }
    return browser.post(
        reverse(INDEX), {**management, "match": "all", **data, "csrfmiddlewaretoken": token}
    )


@pytest.mark.parametrize("name", [INDEX, CONFIG])
def test_an_anonymous_visitor_is_sent_to_the_login_page(db, name):
    for response in (Client().get(reverse(name)), Client().post(reverse(name), {})):
        assert response.status_code == 302
        assert response["Location"].startswith(resolve_url(settings.LOGIN_URL))


def test_a_post_without_the_csrf_token_is_refused(mixed, user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse(INDEX), {"action": "write", "name": "x", "rules_json": "{}"})
    assert response.status_code == 403
    assert not (mixed.root / "Playlists").exists()


def test_the_page_lists_the_templates_and_flags_the_missing_ones(library, browser):
    library.add("flac", "untagged")
    library.scan()
    page = browser.get(reverse(INDEX)).content.decode()
    assert page.count('class="preset"') >= 12
    assert "Chill evening" in page
    assert f"Not in the library yet: {RELAXED}" in page


def test_a_template_fills_the_builder_and_previews(mixed, browser):
    response = browser.get(
        reverse(INDEX), {"preset": "happy-energetic", "param-happy": "0.8", "param-limit": "7"}
    )
    assert response.status_code == 200
    preview = response.context["outcome"].preview
    assert (preview.matched, preview.selected) == (1, 1)
    assert [t.title for t in preview.tracks] == ["Sunny Day"]
    form = response.context["form"]
    assert json.loads(form.initial["rules_json"])["all"][0] == {"gt": {HAPPY: 0.8}}
    assert form.initial["limit"] == 7
    assert "Sunny Day" in response.content.decode()


def test_a_bad_template_parameter_is_shown(mixed, browser):
    response = browser.get(reverse(INDEX), {"preset": "happy-energetic", "param-happy": "2"})
    assert "happy must be from 0 to 1" in response.content.decode()
    assert response.context["outcome"] is None


def test_the_builder_rows_preview(mixed, browser):
    response = post(
        browser,
        {
            "action": "preview",
            "rows-0-field": RELAXED,
            "rows-0-op": "gt",
            "rows-0-value": "0.7",
            "rows-1-field": mood_set_key("regular"),
            "rows-1-op": "isNot",
            "rows-1-value": "sad",
        },
    )
    outcome = response.context["outcome"]
    assert outcome.rules["all"] == [
        {"gt": {RELAXED: 0.7}},
        {"isNot": {mood_set_key("regular"): "sad"}},
    ]
    assert [t.title for t in outcome.preview.tracks] == ["Calm Focus"]
    assert "1</strong> tracks match" in response.content.decode()


def test_invalid_rules_are_explained_and_nothing_is_written(mixed, browser):
    rules = {"all": [{"inTheRange": {HAPPY: [0.2, 0.8]}}]}
    response = post(browser, {"action": "write", "name": "Ranged", "rules_json": json.dumps(rules)})
    assert response.status_code == 200
    assert response.context["outcome"] is None
    assert "Navidrome refuses inTheRange on tags" in response.content.decode()
    assert not list((mixed.root / "Playlists").glob("*.nsp"))


def test_the_write_button_writes_the_nsp_file(mixed, browser):
    rules = {"any": [{"all": [{"gt": {HAPPY: 0.6}}]}]}
    response = post(
        browser,
        {"action": "write", "name": "Good mood", "rules_json": json.dumps(rules), "limit": "3"},
    )
    outcome = response.context["outcome"]
    assert outcome.error == ""
    target = mixed.root / "Playlists" / "Good mood.nsp"
    assert f"Wrote {target}" in response.content.decode()
    document = json.loads(target.read_text())
    assert document["any"] == rules["any"] and document["limit"] == 3
    assert document["public"] is False


def test_the_page_refuses_to_overwrite_a_users_playlist(mixed, browser):
    target = mixed.root / "Playlists" / "Good mood.nsp"
    target.parent.mkdir()
    target.write_text('{"all": [{"is": {"loved": true}}]}')
    rules = {"all": [{"gt": {HAPPY: 0.6}}]}
    response = post(
        browser, {"action": "write", "name": "Good mood", "rules_json": json.dumps(rules)}
    )
    assert "refusing to overwrite the user&#x27;s own playlist" in response.content.decode()
    assert target.read_text() == '{"all": [{"is": {"loved": true}}]}'


def test_a_playlist_folder_outside_the_library_is_refused_on_the_page(
    mixed, browser, settings, tmp_path_factory
):
    outside = tmp_path_factory.mktemp("elsewhere")
    settings.NOMARR_PLAYLIST_DIR = str(outside)
    rules = {"all": [{"gt": {HAPPY: 0.6}}]}
    response = post(
        browser, {"action": "write", "name": "Good mood", "rules_json": json.dumps(rules)}
    )
    assert "outside the library roots" in response.content.decode()
    assert list(outside.iterdir()) == []


def test_the_export_button_writes_an_m3u8(mixed, browser):
    rules = {"all": [{"gt": {RELAXED: 0.7}}]}
    post(browser, {"action": "m3u", "name": "Calm", "rules_json": json.dumps(rules)})
    text = (mixed.root / "Playlists" / "Calm.m3u8").read_text()
    assert "../Artist/Album/Calm Focus.ogg" in text and "../Artist/Album/Rainy Night.flac" in text


def test_the_push_button_pushes_to_navidrome(mixed, browser, settings):
    with FakeNavidrome({USER: PASSWORD}, songs_for_mixed()) as server:
        settings.NOMARR_NAVIDROME_URL = server.url
        settings.NOMARR_NAVIDROME_USER = USER
        settings.NOMARR_NAVIDROME_PASSWORD = PASSWORD
        rules = {"all": [{"gt": {RELAXED: 0.7}}]}
        response = post(
            browser, {"action": "push", "name": "Calm", "rules_json": json.dumps(rules)}
        )
        assert "Created the Navidrome playlist &#x27;Calm (static)&#x27;" in (
            response.content.decode()
        )
        (playlist,) = server.playlists.values()
        assert playlist.name == "Calm (static)" and len(playlist.songs) == 2
        settings.NOMARR_NAVIDROME_PASSWORD = "wrong"
        response = post(
            browser, {"action": "push", "name": "Calm", "rules_json": json.dumps(rules)}
        )
        assert "refused user" in response.content.decode()


def test_both_pages_are_in_the_apps_layout(mixed, browser):
    for name in (INDEX, CONFIG):
        page = browser.get(reverse(name)).content.decode()
        assert 'id="nav-playlists"' in page and 'id="nav-navidrome"' in page  # the main menu
        assert "css/nomarr.css" in page and "<style>" not in page
        assert 'id="playlists-nav"' in page


def test_the_navidrome_page_is_a_short_guide_with_the_block_folded(mixed, browser):
    page = browser.get(reverse(CONFIG))
    assert page.status_code == 200
    html = page.content.decode()
    guide = html[html.index('id="guide"') : html.index('id="config-details"')]
    for step in ("Paste", "Restart", "full scan", "Navidrome 0.56 or later"):
        assert step in guide
    assert f"[Tags.{HAPPY}]" not in guide  # the block itself is folded away...
    details = html[html.index('id="config-details"') :]
    assert f"[Tags.{HAPPY}]" in details  # ...in <details>, as selectable text
    assert 'data-copy="#navidrome-config"' in html and "playlists/copy.js" in html


def test_the_navidrome_page_shows_and_downloads_the_config(mixed, browser):
    page = browser.get(reverse(CONFIG))
    assert page.status_code == 200
    assert f"[Tags.{HAPPY}]" in page.content.decode()
    download = browser.get(reverse(CONFIG), {"download": "1"})
    assert download["Content-Disposition"] == 'attachment; filename="nomarr-navidrome.toml"'
    text = download.content.decode()
    assert text == navidrome.config_toml()
    assert mood_set_key("regular") in tomllib.loads(text)["Tags"]
