"""In a real headless Chromium against a live server: a person opens a file, sees the
tracks that sound like it, builds an instant mix from it and writes it into the
playlist folder, and opens a track from the library map, coloured by a mood word's
tier; on a 390 px phone the mix, path and map pages fit the screen. Screenshots
land in test-artifacts/screenshots/.
"""

import pytest

from sonic import libmap
from tagging.tests.browser import SHOTS

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(page, base: str, path: str) -> None:
    page.goto(base + path)
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "a long secret phrase")
    page.click("main form button[type=submit]")
    page.wait_for_url(base + path)


def test_a_person_sees_similar_tracks_builds_a_mix_and_opens_a_point_of_the_map(
    live_server,
    browser_page,
    sonic_library,
    django_user_model,
    library,
    settings,
):
    files = sonic_library()
    settings.NOMARR_PLAYLIST_DIR = str(library / "Playlists")
    django_user_model.objects.create_user("ann", password="a long secret phrase")
    page, seed = browser_page, files["joram-flac"]
    log_in(page, live_server.url, f"/library/file/{seed.pk}/")

    # The file page fetches its similar tracks (htmx): the other joram variants first.
    page.wait_for_selector("#similar-tracks")
    rows = page.locator("#similar-tracks tbody tr").all_inner_texts()
    assert len(rows) == len(files) - 1
    assert all("joram" in row for row in rows[:3]) and "msd" in rows[-1]
    page.screenshot(path=SHOTS / "sonic-similar.png", full_page=True)

    page.click("text=Instant mix from this track")
    page.wait_for_selector("#mix-form")
    assert page.input_value("textarea[name=seed]") == str(seed.pk)
    page.fill("input[name=count]", "4")
    page.fill("input[name=artist_gap]", "0")
    page.fill("input[name=per_album]", "0")
    page.fill("input[name=min_duration]", "")
    page.fill("input[name=name]", "Like Joram")
    page.click("#mix-form button:text-is('Preview')")
    page.wait_for_selector("#result")
    assert page.inner_text("#result h2") == "4 tracks"
    mixed = page.locator("#result tbody tr").all_inner_texts()
    assert len(mixed) == 4 and all("joram" in row for row in mixed)
    page.screenshot(path=SHOTS / "sonic-mix.png", full_page=True)
    # Writing is a POST of the previewed mix, with the page's CSRF token.
    page.click("#deliver-form button:text-is('Write into the playlist folder')")
    page.wait_for_selector(".messages")
    assert "Wrote" in page.inner_text(".messages")
    written = (library / "Playlists" / "Like Joram.m3u8").read_text()
    assert sum(line.endswith((".flac", ".mp3", ".ogg", ".opus")) for line in written.split()) == 4
    assert "joram-flac.flac" in written and "msd-" not in written

    # The map, drawn by Chart.js once a worker computed it, coloured by a tier.
    libmap.build()
    word = next(value[5:] for value, _ in libmap.colour_choices() if value.startswith("tier:"))
    page.goto(f"{live_server.url}/sonic/map/?colour=tier:{word}")
    page.wait_for_function("window.Chart && Chart.getChart('map')")
    legend = page.evaluate("Chart.getChart('map').data.datasets.map(d => d.label)")
    assert legend and set(legend) <= {"high", "medium", "low", "none"}
    page.screenshot(path=SHOTS / "sonic-map.png")
    point = page.evaluate(
        """() => {
            const chart = Chart.getChart('map'), box = chart.canvas.getBoundingClientRect();
            const p = chart.getDatasetMeta(0).data[0], id = chart.data.datasets[0].data[0].id;
            return {x: box.left + p.x, y: box.top + p.y, id: id};
        }"""
    )
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url(f"{live_server.url}/library/file/{point['id']}/")


def test_the_mix_path_and_map_pages_fit_a_390_px_phone(
    live_server,
    browser_page,
    sonic_library,
    django_user_model,
):
    files = sonic_library()
    libmap.build()
    django_user_model.objects.create_user("ann", password="a long secret phrase")
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    seed, end = files["joram-flac"].pk, files["msd-flac"].pk
    log_in(page, live_server.url, "/sonic/map/")
    for name, path, ready in (
        ("mix", f"/sonic/mix/?seed={seed}&count=8&artist_gap=0&per_album=0&min_duration=",
         "#result tbody tr"),
        ("path", f"/sonic/path/?start={seed}&end={end}&steps=5", "#result tbody tr"),
        ("map", "/sonic/map/", "#map"),
    ):  # fmt: skip
        page.goto(live_server.url + path)
        page.wait_for_selector(ready)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        page.screenshot(path=SHOTS / f"sonic-{name}-phone.png", full_page=True)
