"""End to end in a real headless Chromium against a real `manage.py serve` (daphne and a
qcluster worker): log in, tag a clip from the UI, watch it live, see the scores.

Screenshots of each page land in test-artifacts/screenshots/ to be looked at.
"""

import socket
from pathlib import Path

import pytest
from django.conf import settings

from tagging.models import Job
from tagging.tests.support import ManageProcess

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
# Chromium as root, offline: no sandbox, and none of its background calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(library, tmp_path):
    import requests

    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(base + "/accounts/login/", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    process = ManageProcess(["serve", "--port", str(port)], library, tmp_path / "serve.log")
    process.start(ready=answers)
    yield base
    process.stop()


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM
    # calls are still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: bin/setup installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()


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
