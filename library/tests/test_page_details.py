"""What the library pages say, where issue 14 found them unclear: search results name
their folder, a scan's note is shown whole, and the genre chart's caption reads right."""

from __future__ import annotations

import pytest

from library.models import Scan
from library.tests.test_pages import tag_file

pytestmark = pytest.mark.django_db


def test_search_results_show_the_folder_so_identical_titles_differ(admin_client, add, scan):
    # The fixture clips all carry the title "Solipsism (fixture)".
    add("Joram/Live/01.flac")
    add("Joram/Studio/01.flac")
    assert scan().status == "done"
    page = admin_client.get("/library/", {"q": "Solipsism"}).content.decode()
    assert "2 files found" in page
    assert "in music/Joram/Live<" in page and "in music/Joram/Studio<" in page


def test_a_scans_note_is_shown_whole(admin_client, root_row):
    note = "found no audio files but the library has 40 here; " + "is the disk mounted? " * 12
    Scan.objects.create(root=root_row, status="failed", message=note.strip())
    page = admin_client.get("/library/scans/").content.decode()
    assert f'<span class="scan-message">{note.strip()}</span>' in page


@pytest.mark.parametrize(
    "genres, caption",
    [
        ([], "No genres yet"),
        (["Pop"], "for the one genre there is"),
        (["Pop", "Ambient"], "for the 2 most common genres"),
    ],
)
def test_the_genre_chart_caption_counts_right(admin_client, add, scan, genres, caption):
    for n, genre in enumerate(genres or [None]):
        common = {"genre": genre} if genre else {}
        tag_file(add(f"{n}.flac"), {"happy": 0.9}, **common)
    scan()
    page = admin_client.get("/library/analytics/").content.decode()
    text = page.split('id="genre-note">', 1)[1].split("</p>", 1)[0]
    assert caption in text and "for the 0 " not in text
