"""End to end in headless Chromium against a real `manage.py serve`: log in, scan the
library from the scans page and watch the scan finish live, browse to a file and see
its score bars, read its tags, open analytics (charts drawn) and the settings page
(a new API key shown once). Screenshots land in test-artifacts/screenshots/.
"""

import shutil

import pytest

from library.models import LibraryFile, LibraryRoot, Scan
from library.scanning import claim_scan, run_scan
from library.tests.test_pages import tag_file
from tagging.keys import version_key
from tagging.tests.browser import SHOTS

pytestmark = pytest.mark.django_db(transaction=True)

SONGS = [  # path, scores, then artist, album, title, genre and date
    ("Bright Band/Sunny Days/01 Joy.flac", {"happy": 0.92, "party": 0.85, "rock": 0.6},
     "Bright Band", "Sunny Days", "Joy", "Pop", "2011"),
    ("Bright Band/Sunny Days/02 Dance.flac", {"happy": 0.78, "party": 0.95, "danceable": 0.9},
     "Bright Band", "Sunny Days", "Dance All Night", "Pop", "2012"),
    ("Grey Skies/Rain/01 Rain.flac", {"happy": 0.1, "sad": 0.95, "relaxed": 0.8, "rock": 0.2},
     "Grey Skies", "Rain", "Falling Rain", "Ambient", "1998"),
    ("Grey Skies/Rain/02 Storm.flac", {"happy": 0.2, "sad": 0.7, "aggressive": 0.85, "rock": 0.9},
     "Grey Skies", "Rain", "Storm", "Rock", "1998"),
]  # fmt: skip


@pytest.fixture
def tagged_library(library, make_audio):
    """Four real FLAC files carrying the tags Nomarr's pipeline writes (written by its
    writer, with the current model set's version, so the scan queues nothing)."""
    clip = make_audio("flac")
    for relative, scores, artist, album, title, genre, date in SONGS:
        target = library / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, target)
        tag_file(target, scores, artist=artist, album=album, title=title, genre=genre, date=date)
    return library


def test_a_person_scans_browses_and_reads_analytics_in_the_browser(
    server,
    browser_page,
    tagged_library,
    django_user_model,
):
    django_user_model.objects.create_user("ann", password="a long secret phrase", is_staff=True)
    page = browser_page
    page.goto(server + "/library/scans/")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "a long secret phrase")
    page.click("main form button[type=submit]")
    page.wait_for_url(server + "/library/scans/")

    # The scan runs in the worker; its progress and end arrive over the websocket.
    page.click("#scan-roots button[value=scan]")
    page.wait_for_url(server + "/library/scans/")
    assert "handed to the workers" in page.inner_text(".messages")
    page.wait_for_selector("#scan-history td.status-done", timeout=30_000)
    scan = Scan.objects.get()
    assert (scan.status, scan.seen, scan.new, scan.queued) == ("done", 4, 4, 0)
    assert scan.trigger == "web"  # library.tasks.run_started_scan ran it, in the worker
    row = page.inner_text(f"#scan-row-{scan.pk}")
    assert "done" in row and "4" in row
    page.screenshot(path=SHOTS / "library-scans.png", full_page=True)

    # A scan that is running shows its counters live, and can be cancelled.
    running = claim_scan(LibraryRoot.objects.get())
    Scan.objects.filter(pk=running.pk).update(seen=3, read=2, new=1)
    page.wait_for_selector(f"#scan-{running.pk} .scan-seen:text('3')")
    page.screenshot(path=SHOTS / "library-scan-running.png", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())  # "Stop the running scan of ...?"
    page.click("#scan-roots button[value=cancel]")
    page.wait_for_selector(f"#scan-{running.pk} >> text=cancelling")
    # The scanner reads the flag once a second; four files take less: it ends "done".
    finished = run_scan(running)
    page.wait_for_selector(f"#scan-row-{running.pk} td.status-{finished.status}")
    assert page.locator("#no-scan-running").is_visible()

    page.click("nav >> text=Library")
    page.wait_for_selector("#folders")
    page.screenshot(path=SHOTS / "library.png", full_page=True)
    page.click("#folders >> text=Bright Band")
    page.wait_for_selector("#folders >> text=Sunny Days")
    page.click("#folders >> text=Sunny Days")
    page.wait_for_selector("#files >> text=Joy")
    page.click("#files >> text=Joy")
    page.wait_for_selector("#scores")
    models = page.locator("#scores h3.model").all_inner_texts()
    assert "mood_happy-msd-musicnn-1" in models and "msd-musicnn-1" in models
    happy = page.locator("#scores table.scores").nth(models.index("mood_happy-msd-musicnn-1"))
    assert "0.920" in happy.inner_text() and "high" in happy.inner_text()
    width = happy.locator(".bar > span").first.evaluate("e => e.getBoundingClientRect().width")
    track = happy.locator(".bar").first.evaluate("e => e.getBoundingClientRect().width")
    assert width == pytest.approx(0.92 * track, rel=0.02)
    page.click("#show-tags")
    page.wait_for_selector("#raw-tags table")
    assert version_key() in page.inner_text("#raw-tags")
    page.screenshot(path=SHOTS / "library-file.png", full_page=True)

    page.goto(server + "/library/")
    page.select_option("#id_mood", "happy")
    page.select_option("#id_tier", "high")
    page.wait_for_url("**tier=high**")
    page.wait_for_function("document.querySelectorAll('#files tr').length === 2")
    assert page.locator("#files tr td:first-child > a").all_inner_texts() == ["Joy"]
    page.screenshot(path=SHOTS / "library-search.png", full_page=True)

    page.click("nav >> text=Analytics")
    page.wait_for_selector("#correlation")
    page.wait_for_load_state("load")  # Chart.js and the page's script are deferred
    drawn = page.evaluate(
        "() => ['frequencies', 'tiers', 'genre', 'year'].map("
        "id => !!Chart.getChart(document.getElementById('chart-' + id)))"
    )
    assert drawn == [True, True, True, True]
    page.screenshot(path=SHOTS / "analytics.png", full_page=True)

    page.click("nav >> text=Settings")
    page.fill("#api-keys input[name=name]", "lidarr")
    page.click("#api-keys button:text('Create key')")
    key = page.inner_text("#new-key code")
    assert len(key) > 30 and "." in key
    page.screenshot(path=SHOTS / "settings-new-key.png", full_page=True)
    page.goto(server + "/accounts/settings/")
    assert key not in page.content() and key.split(".")[0] in page.inner_text("#api-keys")
    page.screenshot(path=SHOTS / "settings.png", full_page=True)
    assert LibraryFile.objects.count() == 4
