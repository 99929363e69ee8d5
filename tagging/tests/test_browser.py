"""End to end in a real headless Chromium against a real `manage.py serve` (daphne and a
qcluster worker): log in, tag a clip from the UI, watch it live, see the scores.

Screenshots of each page land in test-artifacts/screenshots/ to be looked at.
"""

import pytest

from tagging.models import Job
from tagging.tests.browser import SHOTS

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_person_tags_a_clip_from_the_browser_and_watches_it_live(
    server, browser_page, long_track, django_user_model
):
    django_user_model.objects.create_user("ann", password="a long secret phrase")
    page = browser_page
    page.goto(server + "/")
    assert "/accounts/login/" in page.url
    page.screenshot(path=SHOTS / "login.png")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "a long secret phrase")
    page.click("main form button[type=submit]")
    page.wait_for_url(server + "/")
    page.wait_for_selector("#workers")
    page.screenshot(path=SHOTS / "dashboard.png")

    page.goto(server + "/tag/")
    page.fill("input[name=path]", str(long_track))
    page.screenshot(path=SHOTS / "tag-now.png")
    page.click("main form button[type=submit]")
    page.wait_for_url(server + "/jobs/*/")
    # Progress arrives over the websocket while the worker runs the models...
    page.wait_for_selector("#job-progress", timeout=90_000)
    page.screenshot(path=SHOTS / "job-progress.png")
    # ...then the scores, without reloading the page.
    page.wait_for_selector("#scores", timeout=180_000)
    assert page.inner_text("#job-status") == "done"
    assert "mood_happy-msd-musicnn-1" in page.inner_text("#scores")
    page.screenshot(path=SHOTS / "job-done.png", full_page=True)
    assert Job.objects.get().status == "done"

    page.goto(server + "/queue/")
    assert str(long_track) in page.inner_text("table")
    page.screenshot(path=SHOTS / "queue.png")
    page.goto(server + "/models/")
    page.screenshot(path=SHOTS / "models.png")


def test_the_anonymous_browser_is_sent_to_login_everywhere(server, browser_page):
    for path in ["/", "/tag/", "/queue/", "/models/", "/jobs/1/"]:
        browser_page.goto(server + path)
        assert "/accounts/login/" in browser_page.url, path
