"""The playlists pages in a real headless Chromium at phone width: the app's layout,
nothing wider than the screen, and the Navidrome block copied with one click (or, with
JavaScript off, selectable in its <details>). Screenshots land in
test-artifacts/screenshots/ to be looked at."""

from __future__ import annotations

import pytest
from django.test import Client

from playlists import navidrome
from tagging.tests.browser import SHOTS

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}


def test_the_pages_fit_a_phone_and_the_block_is_copied(
    mixed, chromium, live_server, django_user_model
):
    user = django_user_model.objects.create_user("pat", password="a long secret phrase")
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    context_cookies = [{"name": "sessionid", "value": session, "url": live_server.url}]
    context = chromium.new_context(viewport=PHONE)
    context.add_cookies(context_cookies)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    for path, shot in (
        ("/playlists/", "playlists-phone"),
        ("/playlists/navidrome/", "navidrome-phone"),
    ):
        page.goto(live_server.url + path)
        assert page.locator("#menu-button").is_visible()  # the layout's phone menu
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=SHOTS / f"{shot}.png", full_page=True)
    page.goto(live_server.url + "/playlists/?preset=focus")  # a template, previewed
    assert page.locator("#preview-tracks").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=SHOTS / "playlists-phone-preview.png", full_page=True)
    page.locator("#preview").screenshot(path=SHOTS / "playlists-phone-preview-card.png")
    page.goto(live_server.url + "/playlists/navidrome/")
    assert not page.locator("#navidrome-config").is_visible()  # folded away
    page.click("#copy-config")
    page.wait_for_function("document.querySelector('#copy-config').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == navidrome.config_toml()
    page.click("#config-details summary")
    assert page.locator("#navidrome-config").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=SHOTS / "navidrome-phone-open.png", full_page=True)

    # Without JavaScript the block is there to select, and no button that could not work.
    context = chromium.new_context(viewport=PHONE, java_script_enabled=False)
    context.add_cookies(context_cookies)
    page = context.new_page()
    page.goto(live_server.url + "/playlists/navidrome/")
    assert not page.locator("#copy-config").is_visible()
    page.click("#config-details summary")
    assert page.locator("#navidrome-config").inner_text().strip() == navidrome.config_toml().strip()
