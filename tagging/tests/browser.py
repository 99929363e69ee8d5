"""The end-to-end tests' one way to a real headless Chromium and a real `manage.py serve`.

The root conftest.py registers the fixtures (`chromium`, `browser_page`, `server`), so
every app's browser tests share them; screenshots land in SHOTS to be looked at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from tagging.tests.support import free_port

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


@pytest.fixture
def chromium(monkeypatch):
    """A launched headless Chromium (Debian's, which bin/setup installs)."""
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM
    # calls are still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: bin/setup installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    """A desktop-sized page of that Chromium."""
    return chromium.new_page(viewport={"width": 1280, "height": 900})


@pytest.fixture
def server(library, tmp_path):
    """A real `manage.py serve` (daphne and a worker) on a free port; its base URL."""
    import requests

    from tagging.tests.support import ManageProcess

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
