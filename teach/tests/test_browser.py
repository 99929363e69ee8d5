"""In a real headless Chromium against a live server, at a phone's width (390 px): staff
mark tracks yes and no on their file pages and in search results (htmx regions), train,
see the preview, and queue the write, which the page follows until it is done.
Screenshots land in test-artifacts/screenshots/."""

import pytest

from sonic.index import search_backbone
from sonic.tests.test_browser import log_in
from tagging import keys, tagfiles
from tagging.tests.browser import SHOTS
from teach import learning, tasks
from teach.models import TaughtTag
from teach.tests.conftest import HELD_OUT, TRAIN

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_mark_train_and_write_a_tag_in_the_browser(
    live_server,
    browser_page,
    teach_library,
    django_user_model,
):
    files = teach_library()
    django_user_model.objects.create_user("ann", password="a long secret phrase", is_staff=True)
    TaughtTag.objects.create(name="dreamy")
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    first = files["joram-flac"]
    log_in(page, live_server.url, f"/library/file/{first.pk}/")

    # The file page's Teach region (htmx): yes, and the region says so without a reload.
    region = f"#teach-mark-{first.pk}"
    page.wait_for_selector(f"{region} button[value=yes]")
    page.click(f"{region} button[value=yes]")
    page.wait_for_selector(f"{region} .tag-mark")
    assert "dreamy: yes" in page.inner_text(region)
    page.screenshot(path=SHOTS / "teach-file.png", full_page=True)

    # Search results: each row's compact region, loaded when it shows.
    page.goto(live_server.url + "/library/?q=msd")
    for variant in TRAIN:
        row = files[f"msd-{variant}"].pk
        page.locator(f"a[href='/library/file/{row}/']").scroll_into_view_if_needed()
        page.locator(f"#teach-mark-{row} button[value=no]").click()
        page.wait_for_selector(f"#teach-mark-{row} .tag-mark")
    page.goto(live_server.url + "/library/?q=joram")
    for variant in TRAIN[1:]:
        row = files[f"joram-{variant}"].pk
        page.locator(f"a[href='/library/file/{row}/']").scroll_into_view_if_needed()
        page.locator(f"#teach-mark-{row} button[value=yes]").click()
        page.wait_for_selector(f"#teach-mark-{row} .tag-mark")

    page.goto(live_server.url + "/teach/tag/dreamy/")
    assert f"{len(TRAIN)} yes · {len(TRAIN)} no" in page.inner_text("#state h2")
    page.click("#train")
    page.wait_for_selector("#preview")
    assert "Cross-validated accuracy: 1.00" in page.inner_text("#accuracy")
    assert page.inner_text("#most tr:nth-child(2)").count("joram") == 1
    width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=SHOTS / "teach-preview.png", full_page=True)
    assert width <= 400, f"the preview is {width} px wide at 390 px"

    # Queued for the workers; the page follows the write (htmx, every 2 s) while the
    # worker's task runs (here, in this process: starting a cluster costs ~25 s).
    page.click("#apply")
    page.wait_for_selector(".messages")
    assert "dreamy is being written" in page.inner_text(".messages")
    assert "waiting for a worker" in page.inner_text("#writing")
    tag = TaughtTag.objects.get(name="dreamy")
    assert tasks.write_tag(tag.pk) == f"dreamy written into {len(files)} files"
    page.wait_for_selector("#writing strong:text-is('written')", timeout=30_000)
    assert f"{len(files)} of {len(files)} files" in page.inner_text("#writing")
    key = learning.score_key("dreamy", search_backbone())
    for variant in HELD_OUT:
        score = float(tagfiles.read_tags(files[f"joram-{variant}"].path, keys.namespace())[key][0])
        assert score > 0.8
