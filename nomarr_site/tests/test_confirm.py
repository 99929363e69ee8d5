"""Destructive buttons ask first, without JavaScript too (nomarr_site/confirm.py): the
POST without confirm=yes answers a page with the question and changes nothing; the
page's own form (the same fields, confirm=yes) does it."""

from __future__ import annotations

import re

import pytest
from rest_framework_api_key.models import APIKey

from library.models import LibraryRoot, Scan
from nomarr_site.workers import worker_id
from tagging.models import Job

pytestmark = pytest.mark.django_db


def confirm_form(page: str) -> tuple[str, dict[str, list[str]]]:
    """The action and fields of the confirmation page's form (what its button posts)."""
    form = page.split('id="confirm"', 1)[1]
    action = re.search(r'<form method="post" action="([^"]+)"', form).group(1)
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form):
        fields.setdefault(name, []).append(value)
    return action, fields


def ask_then_do(client, url: str, data: dict, done) -> str:
    asked = client.post(url, data)
    assert asked.status_code == 200
    page = asked.content.decode()
    assert "Are you sure?" in page and not done()
    action, fields = confirm_form(page)
    assert fields["confirm"] == ["yes"]
    fields.pop("csrfmiddlewaretoken", None)
    assert client.post(action, fields).status_code == 302
    assert done()
    return page.split('id="confirm-question">', 1)[1].split("<", 1)[0]


def test_flush_asks_first_and_then_flushes(admin_client):
    Job.objects.create(path="/music/a.flac", status="done")
    Job.objects.create(path="/music/b.flac", status="error")
    kept = Job.objects.create(path="/music/c.flac")
    question = ask_then_do(
        admin_client,
        "/queue/action/",
        {"action": "flush", "statuses": ["done", "error"]},
        lambda: list(Job.objects.all()) == [kept],
    )
    assert "every finished job" in question


def test_removing_a_job_asks_and_no_leaves_it(admin_client):
    job = Job.objects.create(path="/music/a.flac")
    page = admin_client.post("/queue/action/", {"action": "remove", "job": job.pk})
    assert f"Remove job {job.pk}" in page.content.decode()
    assert 'href="/queue/"' in page.content.decode()  # "No, go back"
    assert Job.objects.filter(pk=job.pk).exists()
    ask_then_do(
        admin_client,
        "/queue/action/",
        {"action": "remove", "job": job.pk},
        lambda: not Job.objects.filter(pk=job.pk).exists(),
    )


def test_pausing_does_not_ask(admin_client):
    assert admin_client.post("/queue/action/", {"action": "pause"}).status_code == 302


def test_cancelling_a_scan_asks_first(admin_client, root_row):
    scan = Scan.objects.create(root=root_row, worker=worker_id())
    question = ask_then_do(
        admin_client,
        f"/library/scans/{root_row.pk}/",
        {"action": "cancel"},
        lambda: Scan.objects.get(pk=scan.pk).cancel_requested,
    )
    assert "Stop the running scan of music" in question


def test_revoking_a_key_asks_first(admin_client):
    api_key, _ = APIKey.objects.create_key(name="lidarr")
    ask_then_do(
        admin_client,
        "/accounts/settings/keys/",
        {"action": "revoke", "prefix": api_key.prefix},
        lambda: APIKey.objects.get(pk=api_key.pk).revoked,
    )


def test_removing_a_root_asks_first(admin_client, tmp_path):
    folder = tmp_path / "more"
    folder.mkdir()
    root = LibraryRoot.objects.create(path=str(folder))
    question = ask_then_do(
        admin_client,
        f"/accounts/settings/roots/{root.pk}/state/",
        {"action": "remove"},
        lambda: not LibraryRoot.objects.filter(pk=root.pk).exists(),
    )
    assert str(folder) in question


def test_the_pages_mark_their_destructive_buttons_for_the_browser(admin_client, root_row):
    Job.objects.create(path="/music/a.flac", status="done")
    APIKey.objects.create_key(name="lidarr")
    queue = admin_client.get("/queue/").content.decode()
    assert 'id="flush"' in queue and "data-confirm=" in queue.split('id="flush"', 1)[1][:200]
    assert 'data-confirm="Remove job' in queue
    assert (
        'value="cancel" class="danger" data-confirm='
        in admin_client.get("/library/scans/").content.decode()
    )
    settings_page = admin_client.get("/accounts/settings/").content.decode()
    assert 'data-confirm="Revoke the key' in settings_page
