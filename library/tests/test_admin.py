"""The admin: roots are edited there (settings roots show up), scans started and cancelled."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_q.models import OrmQ

from library.models import LibraryFile, LibraryRoot, Scan

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    boss = get_user_model().objects.create_superuser("boss", password="pw-for-tests")
    client = Client()
    client.force_login(boss)
    return client


def test_settings_roots_show_up_and_a_root_can_be_added(client, library, tmp_path):
    page = client.get("/admin/library/libraryroot/")
    assert page.status_code == 200 and str(library) in page.content.decode()
    more = tmp_path / "more"
    more.mkdir()
    response = client.post(
        "/admin/library/libraryroot/add/",
        {"path": str(more), "name": "", "enabled": "on", "auto_tag": "on", "ignore_patterns": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert LibraryRoot.objects.get(path=str(more)).name == "more"
    response = client.post(
        "/admin/library/libraryroot/add/",
        {"path": str(tmp_path / "missing"), "enabled": "on", "ignore_patterns": ""},
    )
    assert response.status_code == 200 and "is not a folder" in response.content.decode()


def test_scan_now_hands_the_scan_to_the_workers_and_cancel_flags_it(client, library, add):
    add("a.flac")
    client.get("/admin/library/libraryroot/")
    root = LibraryRoot.objects.get()
    response = client.post(
        "/admin/library/libraryroot/",
        {"action": "scan_now", "_selected_action": [root.pk]},
    )
    assert response.status_code == 302
    assert OrmQ.objects.count() == 1
    running = Scan.objects.get(root=root, status=Scan.Status.RUNNING, trigger="admin")
    client.post("/admin/library/scan/", {"action": "cancel", "_selected_action": [running.pk]})
    assert Scan.objects.get(pk=running.pk).cancel_requested


def test_files_scans_and_their_tags_can_be_browsed(client, scan, add):
    add("a.flac")
    done = scan()
    row = LibraryFile.objects.get()
    assert client.get("/admin/library/libraryfile/").status_code == 200
    page = client.get(f"/admin/library/libraryfile/{row.pk}/change/")
    assert page.status_code == 200 and "Solipsism" in page.content.decode()
    assert client.get(f"/admin/library/scan/{done.pk}/change/").status_code == 200
    assert client.get("/admin/library/scan/").status_code == 200
