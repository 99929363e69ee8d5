"""Library roots on the Settings page (staff), and the one rule for NOMARR_LIBRARY_ROOTS:
the roots it names follow it, a folder that does not exist never becomes a root, and a
scan of several roots reports each."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from library.models import LibraryRoot
from library.roots import library_roots, sync_settings_roots

pytestmark = pytest.mark.django_db

ADD = "/accounts/settings/roots/add/"


def state(root: LibraryRoot) -> str:
    return f"/accounts/settings/roots/{root.pk}/state/"


@pytest.fixture
def spare(tmp_path) -> Path:
    folder = tmp_path / "more music"
    folder.mkdir()
    return folder


def test_staff_add_a_root_and_are_offered_a_scan(admin_client, library, spare):
    answer = admin_client.post(ADD, {"path": f"{spare}/", "auto_tag": "on"}, follow=True)
    root = LibraryRoot.objects.get(path=str(spare))
    assert root.enabled and root.auto_tag and not root.from_settings
    page = answer.content.decode()
    assert f"{spare} added as a library root" in page
    assert f'action="/library/scans/{root.pk}/"' in page and 'id="scan-added"' in page
    assert spare in library_roots()
    # The offered scan really starts one (handed to the workers).
    admin_client.post(f"/library/scans/{root.pk}/", {"action": "scan"})
    assert root.scans.filter(trigger="web").exists()


@pytest.mark.parametrize(
    "given, refusal",
    [
        ("relative/folder", "absolute path"),
        ("{tmp}/nowhere", "does not exist"),
        ("{tmp}/a-file", "is not a folder"),
        ("{library}", "already a library root"),
        ("{library}/Jazz", "is inside the library root"),
        ("{tmp}", "holds the library root"),
    ],
)
def test_it_refuses_a_folder_that_cannot_be_a_root(admin_client, library, tmp_path, given, refusal):
    (tmp_path / "a-file").write_text("x")
    (library / "Jazz").mkdir()
    path = given.format(tmp=tmp_path, library=library)
    answer = admin_client.post(ADD, {"path": path})
    assert answer.status_code == 400
    assert refusal in answer.content.decode().split('id="add-root-error">', 1)[1].split("<")[0]
    assert list(LibraryRoot.objects.values_list("path", flat=True)) == [str(library)]


def test_staff_disable_enable_and_remove_a_root(admin_client, library, spare):
    root = LibraryRoot.objects.create(path=str(spare))
    admin_client.post(state(root), {"action": "disable"})
    assert not LibraryRoot.objects.get(pk=root.pk).enabled and spare not in library_roots()
    admin_client.post(state(root), {"action": "enable"})
    assert LibraryRoot.objects.get(pk=root.pk).enabled and spare in library_roots()
    admin_client.post(state(root), {"action": "remove", "confirm": "yes"})
    assert not LibraryRoot.objects.filter(pk=root.pk).exists()
    assert spare.is_dir()  # the folder itself is left alone


def test_a_root_the_variable_names_is_disabled_not_removed(admin_client, library):
    sync_settings_roots()
    root = LibraryRoot.objects.get(path=str(library))
    page = admin_client.get("/accounts/settings/").content.decode()
    assert "(from NOMARR_LIBRARY_ROOTS)" in page and "take it out of NOMARR_LIBRARY_ROOTS" in page
    answer = admin_client.post(state(root), {"action": "remove", "confirm": "yes"}, follow=True)
    assert "remove it there and restart" in answer.content.decode()
    assert LibraryRoot.objects.filter(pk=root.pk).exists()


def test_a_root_removed_from_the_variable_is_disabled_and_labelled(admin_client, library, settings):
    sync_settings_roots()
    settings.NOMARR_LIBRARY_ROOTS = []
    page = admin_client.get("/accounts/settings/").content.decode()
    root = LibraryRoot.objects.get(path=str(library))
    assert not root.enabled and library not in library_roots()
    assert "(removed from NOMARR_LIBRARY_ROOTS)" in page
    # Enabled again on the page, it is the page's own root: the next sync leaves it on.
    admin_client.post(state(root), {"action": "enable"})
    sync_settings_roots()
    root.refresh_from_db()
    assert root.enabled and not root.from_settings


def test_a_typo_in_the_variable_never_becomes_a_root(admin_client, library, settings, tmp_path):
    typo = tmp_path / "msuic"
    settings.NOMARR_LIBRARY_ROOTS = [library, typo]
    page = admin_client.get("/accounts/settings/").content.decode()
    assert f"NOMARR_LIBRARY_ROOTS names <code>{typo}</code>, which is not a root" in page
    assert not LibraryRoot.objects.filter(path=str(typo)).exists()
    assert library_roots() == [library]
    # `manage.py scan` says so and scans the real root: no exit 1 for the typo.
    out, err = StringIO(), StringIO()
    call_command("scan", stdout=out, stderr=err)
    assert f"NOMARR_LIBRARY_ROOTS names {typo}: {typo} does not exist" in err.getvalue()
    assert f"of {library}: done" in out.getvalue()


def test_a_scan_of_several_roots_reports_each(library, spare):
    gone = spare.parent / "unplugged"
    gone.mkdir()
    sync_settings_roots()
    LibraryRoot.objects.create(path=str(spare))
    LibraryRoot.objects.create(path=str(gone))
    gone.rmdir()  # a disk unmounted after its root was added
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 3 scan"):
        call_command("scan", stdout=out, stderr=StringIO())
    summary = out.getvalue().splitlines()[-1]
    assert summary.startswith("3 roots: ")
    assert f"{library}: done" in summary and f"{spare}: done" in summary
    assert f"{gone}: failed" in summary


def test_outsiders_cannot_add_or_change_roots(library, spare, django_user_model):
    sync_settings_roots()
    root = LibraryRoot.objects.get()
    plain = Client()
    plain.force_login(django_user_model.objects.create_user("ann", password="x" * 20))
    for client, expected in ((Client(), 302), (plain, 403)):
        assert client.post(ADD, {"path": str(spare)}).status_code == expected
        assert client.post(state(root), {"action": "disable"}).status_code == expected
        assert client.post(state(root), {"action": "remove", "confirm": "yes"}).status_code == (
            expected
        )
    assert list(LibraryRoot.objects.values_list("path", "enabled")) == [(str(library), True)]
    page = plain.get("/accounts/settings/").content.decode()
    assert 'id="add-root"' not in page and "Only staff may change the roots" in page
