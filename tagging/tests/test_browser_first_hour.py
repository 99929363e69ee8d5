"""The first hour, end to end in headless Chromium against a real `manage.py serve`:
log in, add a library root on the Settings page and scan it, see a file's tags, reach
the playlists pages from the nav, flush the queue (after saying yes), and the phone
layout (390 px: the menu folds behind a button, nothing scrolls sideways), with and
without JavaScript.

Screenshots land in test-artifacts/screenshots/ (the README's first-hour walkthrough
shows a few of them, shrunk, from docs/screenshots/).
"""

import shutil

import pytest

from library.models import LibraryFile, LibraryRoot, Scan
from library.tests.test_pages import tag_file
from tagging.models import Job
from tagging.tests.browser import SHOTS

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def new_music(tmp_path, make_audio):
    """A folder outside the library (the settings name another): two FLAC files carrying
    Nomarr's tags, as if tagged before, so the scan queues nothing."""
    folder = tmp_path / "new music"
    clip = make_audio("flac")
    for relative, title, scores in [
        ("Bright Band/Sunny Days/01 Joy.flac", "Joy", {"happy": 0.92, "party": 0.85}),
        ("Grey Skies/Rain/01 Rain.flac", "Falling Rain", {"sad": 0.95, "relaxed": 0.8}),
    ]:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, target)
        tag_file(target, scores, artist=relative.split("/")[0], title=title, genre="Pop")
    return folder


@pytest.fixture
def playlist_dir(library, monkeypatch):
    """Where the server writes playlists (set before it starts: ask for it first)."""
    monkeypatch.setenv("NOMARR_PLAYLIST_DIR", str(library / "Playlists"))


def log_in(page, base: str, django_user_model) -> None:
    django_user_model.objects.create_user("ann", password="a long secret phrase", is_staff=True)
    page.goto(base + "/")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "a long secret phrase")
    page.screenshot(path=SHOTS / "first-hour-1-login.png")
    page.click("main form button[type=submit]")
    page.wait_for_url(base + "/")


def test_the_first_hour_add_a_root_scan_it_see_tags_and_reach_playlists(
    playlist_dir,
    server,
    browser_page,
    new_music,
    django_user_model,
):
    page = browser_page
    log_in(page, server, django_user_model)

    # Settings: add the folder as a root; a scan is offered right away.
    page.click("nav >> text=Settings")
    page.fill("#add-root input[name=path]", str(new_music))
    page.locator("#library-roots").screenshot(path=SHOTS / "first-hour-2-add-root.png")
    page.click("#add-root button[type=submit]")
    page.wait_for_selector("#added-root")
    assert "added as a library root" in page.inner_text(".messages")
    root = LibraryRoot.objects.get(path=str(new_music))
    page.click("#scan-added")
    page.wait_for_url(server + "/library/scans/")
    page.wait_for_selector("#scan-history td.status-done >> nth=0", timeout=30_000)
    scan = Scan.objects.get(root=root)
    assert (scan.status, scan.new, scan.queued) == ("done", 2, 0)
    page.screenshot(path=SHOTS / "first-hour-3-scan.png")

    # Its files, with Nomarr's tags.
    page.goto(server + f"/library/?root={root.pk}")
    page.click("#folders >> text=Bright Band")
    page.click("#folders >> text=Sunny Days")
    page.click("#files >> text=Joy")
    page.wait_for_selector("#scores")
    assert "0.920" in page.inner_text("#scores")
    page.evaluate("document.getElementById('moods').scrollIntoView()")
    page.screenshot(path=SHOTS / "first-hour-4-tags.png")

    # The playlists pages, from the nav, in the same layout.
    page.click("#nav-playlists")
    page.wait_for_url(server + "/playlists/")
    assert page.locator("#nav-navidrome").is_visible()
    page.screenshot(path=SHOTS / "first-hour-5-playlists.png")
    page.click("#nav-navidrome")
    page.wait_for_url(server + "/playlists/navidrome/")
    assert page.locator("#nav-playlists").is_visible()
    page.screenshot(path=SHOTS / "first-hour-6-navidrome.png")
    assert page.get_attribute("#nav-api", "href") == "/api/v1/docs/"

    # Flush asks first: "no" keeps the jobs, "yes" flushes them.
    done = Job.objects.create(path=str(new_music / "x.flac"), status="done")
    page.goto(server + "/queue/")
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.click("#flush button")
    page.wait_for_timeout(300)
    assert Job.objects.filter(pk=done.pk).exists() and "every finished job" in questions[0]
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#flush button")
    page.wait_for_selector(".messages >> text=jobs removed")
    assert not Job.objects.filter(pk=done.pk).exists()

    # The phone: the menu folds behind its button and no page scrolls sideways.
    page.set_viewport_size(PHONE)
    file_page = f"/library/file/{LibraryFile.objects.get(title='Joy').pk}/"
    for path in [
        "/",
        "/queue/",
        "/library/",
        file_page,
        "/library/scans/",
        "/library/analytics/",
        "/playlists/",
        "/playlists/navidrome/",
        "/accounts/settings/",
        "/models/",
    ]:
        page.goto(server + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
        assert not page.locator("#menu").is_visible(), path
    page.goto(server + "/library/scans/")
    page.screenshot(path=SHOTS / "phone-scans.png", full_page=True)
    page.click("#menu-button")
    assert page.locator("#nav-playlists").is_visible()
    page.screenshot(path=SHOTS / "phone-menu.png")
    page.click("#menu >> text=Queue")
    page.wait_for_url(server + "/queue/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # Without JavaScript: the menu still opens, and flush asks on a page of its own.
    bare = page.context.browser.new_context(java_script_enabled=False, viewport=PHONE).new_page()
    bare.goto(server + "/accounts/login/")
    bare.fill("input[name=username]", "ann")
    bare.fill("input[name=password]", "a long secret phrase")
    bare.click("main form button[type=submit]")
    bare.wait_for_url(server + "/")
    bare.click("#menu-button")
    bare.click("#menu >> text=Queue")
    done = Job.objects.create(path=str(new_music / "y.flac"), status="done")
    bare.goto(server + "/queue/")
    bare.click("#flush button")
    bare.wait_for_selector("#confirm-question")
    assert Job.objects.filter(pk=done.pk).exists()
    bare.screenshot(path=SHOTS / "phone-confirm-flush.png")
    bare.click("#confirm button[type=submit]")
    bare.wait_for_selector(".messages >> text=jobs removed")
    assert not Job.objects.filter(pk=done.pk).exists()
