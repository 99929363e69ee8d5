"""The library pages on a real scanned library of real files carrying Nomarr's tags."""

from __future__ import annotations

import re
from pathlib import Path

import mutagen
import numpy as np
import pytest
from django.test import Client
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from library.models import LibraryFile, Scan
from library.scanning import claim_scan
from tagging import writers
from tagging.catalog import get_catalog, is_negation
from tagging.keys import namespace, score_key, version_key
from tagging.models import Job
from tagging.pipeline import describe

pytestmark = pytest.mark.django_db

HAPPY = score_key("mood_happy-msd-musicnn-1", "happy")


def nomarr_tags(scores: dict[str, float], default: float = 0.5) -> tuple[dict, list[str]]:
    """The tags the pipeline writes when each head scores so: scores maps a label
    (happy, party, rock) to its score; a two-class head's other label gets 1 - p."""
    catalog = get_catalog()
    head_scores = []
    for head in catalog.heads:
        if head.is_two_class:
            positive = 1 if is_negation(head.labels[0]) else 0
            p = scores.get(head.labels[positive], default)
            mean = np.zeros(2)
            mean[positive], mean[1 - positive] = p, 1 - p
        else:
            mean = np.array([scores.get(label, 0.1) for label in head.labels])
        head_scores.append((head, mean))
    analysis = describe(head_scores, namespace(), catalog.fingerprint)
    return analysis.tags, analysis.moods


def tag_file(path: Path, scores: dict[str, float], **common: str) -> Path:
    """Give a FLAC file common tags (artist, album, title, genre, date) and Nomarr's tags,
    written by Nomarr's own writer."""
    if common:
        audio = mutagen.File(path)
        for key, value in common.items():
            audio[key] = [str(value)]
        audio.save()
    tags, moods = nomarr_tags(scores)
    writers.write_tags(path, tags, namespace(), moods)
    return path


@pytest.fixture
def songs(add, scan) -> dict[str, LibraryFile]:
    """Three tagged files in two albums, scanned."""
    paths = {
        "joy": tag_file(
            add("Bright Band/Sunny Days/01 Joy.flac"),
            {"happy": 0.92, "party": 0.85, "sad": 0.05},
            artist="Bright Band", album="Sunny Days", title="Joy", genre="Pop", date="2011",
        ),
        "dance": tag_file(
            add("Bright Band/Sunny Days/02 Dance.flac"),
            {"happy": 0.65, "party": 0.9},
            artist="Bright Band", album="Sunny Days", title="Dance All Night", genre="Pop",
        ),
        "rain": tag_file(
            add("Grey Skies/Rain/01 Rain.flac"),
            {"happy": 0.1, "sad": 0.95, "relaxed": 0.8},
            artist="Grey Skies", album="Rain", title="Falling Rain", genre="Ambient", date="1998",
        ),
    }  # fmt: skip
    assert scan().status == "done"
    return {name: LibraryFile.objects.get(path=str(path)) for name, path in paths.items()}


def queued_tasks() -> list[dict]:
    """The django-q2 tasks waiting in the broker (the ORM's or Redis), taken off it."""
    broker = get_broker()
    if not broker.queue_size():
        return []
    return [SignedPackage.loads(payload) for _, payload in broker.dequeue()]


def titles(response) -> set[str]:
    return set(re.findall(r'href="/library/file/\d+/">([^<]+)</a>', response.content.decode()))


def test_the_library_page_browses_roots_and_folders(admin_client, songs, library):
    page = admin_client.get("/library/")
    assert page.status_code == 200
    assert str(library).encode() in page.content
    # The one root is opened at once: its top folders, with their file counts.
    assert b'Bright Band</a> <span class="muted">2 files' in page.content
    assert b'Grey Skies</a> <span class="muted">1 file<' in page.content
    root = songs["joy"].root
    album = admin_client.get("/library/", {"root": root.pk, "folder": songs["joy"].folder})
    assert titles(album) == {"Joy", "Dance All Night"}
    assert b"Sunny Days" in album.content and b">Grey Skies<" not in album.content
    # A folder outside the root falls back to the root.
    outside = admin_client.get("/library/", {"root": root.pk, "folder": "/etc"})
    assert b"Bright Band</a>" in outside.content and b"/etc" not in outside.content


def test_search_finds_files_by_artist_album_or_title(admin_client, songs):
    assert titles(admin_client.get("/library/", {"q": "bright"})) == {"Joy", "Dance All Night"}
    assert titles(admin_client.get("/library/", {"q": "rain"})) == {"Falling Rain"}
    assert titles(admin_client.get("/library/", {"q": "sunny night"})) == {"Dance All Night"}
    assert titles(admin_client.get("/library/", {"q": "nothing like this"})) == set()


def test_the_mood_filter_uses_tiers_and_mood_sets(admin_client, songs):
    def found(mood, tier):
        return titles(admin_client.get("/library/", {"mood": mood, "tier": tier}))

    assert found("happy", "high") == {"Joy"}
    assert found("happy", "low") == {"Dance All Night"}  # 0.65: low
    assert found("happy", "none") == {"Falling Rain"}
    assert found("party", "high") == {"Joy", "Dance All Night"}
    assert found("sad", "strict") == {"Falling Rain"}
    assert found("happy", "loose") == {"Joy", "Dance All Night"}
    # A mood without a tier means "in mood_regular"; a tier without a mood is refused.
    assert found("relaxed", "") == {"Falling Rain"}
    assert admin_client.get("/library/", {"tier": "high"}).status_code == 400
    # Combined with a search.
    both = admin_client.get("/library/", {"q": "bright", "mood": "happy", "tier": "high"})
    assert titles(both) == {"Joy"}


def test_htmx_gets_only_the_results_region(admin_client, songs):
    response = admin_client.get(
        "/library/", {"q": "rain"}, headers={"HX-Request": "true", "HX-Target": "results"}
    )
    text = response.content.decode()
    assert text.lstrip().startswith('<div id="results">') and "<html" not in text
    assert titles(response) == {"Falling Rain"}
    refused = admin_client.get(
        "/library/", {"tier": "high"}, headers={"HX-Request": "true", "HX-Target": "results"}
    )
    assert refused.status_code == 200 and b"Pick the mood the tier is for" in refused.content


def test_pages_of_fifty(admin_client, add, scan, audio_sources):
    for n in range(52):
        add(f"Many/{n:02d}.flac")
    scan()
    folder = str(Path(LibraryFile.objects.first().folder))
    first = admin_client.get("/library/", {"folder": folder})
    assert first.content.count(b'href="/library/file/') == 50
    assert b"page 1 of 2" in first.content
    second = admin_client.get("/library/", {"folder": folder, "page": 2})
    assert second.content.count(b'href="/library/file/') == 2


def test_a_file_page_shows_its_scores_as_bars_grouped_by_model(admin_client, songs):
    joy = songs["joy"]
    page = admin_client.get(f"/library/file/{joy.pk}/")
    text = page.content.decode()
    assert page.status_code == 200
    models = re.findall(r'<h3 class="model">([^<]+)</h3>', text)
    assert "mood_happy-msd-musicnn-1" in models and "msd-musicnn-1" in models
    assert len(models) == len(get_catalog().heads)
    happy = text.index('<h3 class="model">mood_happy-msd-musicnn-1</h3>')
    section = text[happy : text.index("</table>", happy)]
    assert f'<td title="{HAPPY}">happy</td>' in section
    assert 'style="width: 92.0%"' in section and "0.920" in section and ">high<" in section
    assert 'style="width: 8.0%"' in section  # non_happy
    assert "Bright Band" in text and "Sunny Days" in text and "2011" in text
    assert re.search(r"mood_strict</th><td>[^<]*happy", text)


def test_show_tags_reads_the_file_now(admin_client, songs):
    joy = songs["joy"]
    Path(joy.path).chmod(0o644)
    writers.write_tags(
        Path(joy.path), {version_key(): ["changed-since-scan"]}, namespace(), ["calm"]
    )
    partial = admin_client.get(f"/library/file/{joy.pk}/tags/", headers={"HX-Request": "true"})
    text = partial.content.decode()
    assert 'id="raw-tags"' in text
    assert "<html" not in text
    assert "changed-since-scan" in text and "calm" in text
    assert HAPPY not in text  # gone from the file
    # Without JavaScript: the whole file page, with the tags.
    page = admin_client.get(f"/library/file/{joy.pk}/tags/")
    assert b"<html" in page.content and b"changed-since-scan" in page.content
    Path(joy.path).unlink()
    gone = admin_client.get(f"/library/file/{joy.pk}/tags/", headers={"HX-Request": "true"})
    assert b'class="error"' in gone.content


def test_retag_queues_a_forced_job_and_opens_it(admin_client, songs):
    joy = songs["joy"]
    response = admin_client.post(f"/library/file/{joy.pk}/retag/")
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.force and job.path == joy.path and job.status == "pending"
    assert admin_client.get(f"/library/file/{joy.pk}/retag/").status_code == 405


def test_starting_a_scan_from_the_page_hands_it_to_the_workers(admin_client, root_row, add):
    add("a.flac")
    page = admin_client.get("/library/scans/")
    assert page.status_code == 200 and b'ws-connect="/ws/scans/"' in page.content
    response = admin_client.post(f"/library/scans/{root_row.pk}/", {"action": "full"}, follow=True)
    assert b"handed to the workers" in response.content
    claimed = Scan.objects.get()  # claimed in the request, run by a worker
    assert (claimed.status, claimed.full, claimed.trigger) == ("running", True, "web")
    [task] = queued_tasks()
    assert task["func"] == "library.tasks.run_started_scan" and task["args"] == (claimed.pk,)


def test_a_running_scan_refuses_another_and_can_be_cancelled(admin_client, root_row):
    running = claim_scan(root_row)
    refused = admin_client.post(f"/library/scans/{root_row.pk}/", {"action": "scan"}, follow=True)
    assert b"already running" in refused.content and queued_tasks() == []
    admin_client.post(f"/library/scans/{root_row.pk}/", {"action": "cancel", "confirm": "yes"})
    running.refresh_from_db()
    assert running.cancel_requested
    page = admin_client.get("/library/scans/")
    assert f'id="scan-{running.pk}"'.encode() in page.content and b"cancelling" in page.content


def test_scan_history_shows_the_last_scans_with_their_counts(admin_client, scan, add):
    add("a.flac")
    add("b.flac")
    first = scan()
    add("c.flac")
    second = scan()
    page = admin_client.get("/library/scans/").content.decode()
    assert f'id="scan-row-{first.pk}"' in page and f'id="scan-row-{second.pk}"' in page
    row = page[page.index(f'id="scan-row-{second.pk}"') :]
    cells = re.findall(r"<td>(\d+)</td>", row[: row.index("</tr>")])
    assert cells[1:4] == ["3", "1", "1"]  # seen, read, new


def test_library_pages_are_for_every_person_logged_in(django_user_model, songs):
    client = Client()
    client.force_login(django_user_model.objects.create_user("bob", password="x" * 20))
    for url in ["/library/", "/library/scans/", "/library/analytics/"]:
        assert client.get(url).status_code == 200, url
    assert client.get(f"/library/file/{songs['joy'].pk}/").status_code == 200
    assert client.get("/library/file/999999/").status_code == 404
