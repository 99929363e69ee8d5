"""The library boundary holds on every way in: nothing outside the library is ever written.

Each way Nomarr is given paths (the Tag now page, the file page's Re-tag, the API, Lidarr's
webhook, `manage.py queue`, scans, the playlist folder, and a job whose folder changed
after it was queued) is tried with the four ways out:

* a symlink inside the library that points to a file outside,
* `..` climbing out of a root,
* a look-alike prefix (`.../musicals` next to the root `.../music`),
* a symlink loop.

After each, every job that was queued is run for real (the same `jobs.run` a worker
runs, with the real models), and the files outside the library have the bytes they had.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework_api_key.models import APIKey

from library.models import LibraryFile, LibraryRoot
from library.scanning import scan_root
from playlists import files as playlist_files
from tagging import boundary, jobs
from tagging.models import Job

pytestmark = pytest.mark.django_db

ESCAPES = ["outside_symlink", "dot_dot", "look_alike", "symlink_loop"]


@dataclass
class World:
    """A library root with a good song, and files outside it that must never change."""

    root: Path
    song: Path  # root/Album/good.flac, inside
    outside: Path  # tmp/outside/victim.flac
    look_alike: Path  # tmp/musicals/victim.flac (the root is tmp/music)
    paths: dict[str, Path]  # escape -> a path inside the library's text that leads out
    before: dict[Path, str]

    def outside_files(self) -> list[Path]:
        return sorted(p for top in (self.outside.parent, self.look_alike.parent) for p in
                      top.rglob("*") if p.is_file())  # fmt: skip

    def assert_outside_unchanged(self) -> None:
        assert {p: _sha256(p) for p in self.outside_files()} == self.before
        for job in Job.objects.all():
            assert boundary.within(job.path, self.root), f"job {job.pk} names {job.path}"

    def run_every_job(self) -> list[Job]:
        """Run each pending job as a worker does; the jobs afterwards."""
        for pk in Job.objects.filter(status=Job.Status.PENDING).values_list("pk", flat=True):
            jobs.run(pk)
        return list(Job.objects.order_by("pk"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def world(tmp_path, make_library, make_audio, private_cache) -> World:
    root = make_library("music", auto_tag=True)
    outside_dir, look_alike_dir = tmp_path / "outside", tmp_path / "musicals"
    outside_dir.mkdir()
    look_alike_dir.mkdir()
    outside = Path(shutil.move(make_audio("flac", "victim"), outside_dir / "victim.flac"))
    look_alike = look_alike_dir / "victim.flac"
    shutil.copyfile(outside, look_alike)
    (root / "Album").mkdir()
    song = Path(shutil.move(make_audio("flac", "good"), root / "Album" / "good.flac"))
    # A folder of the library holding one good song and one way out of each kind.
    (root / "Album" / "link.flac").symlink_to(outside)
    (root / "Album" / "musicals.flac").symlink_to(look_alike)
    (root / "Album" / "loop.flac").symlink_to(root / "Album" / "loop2.flac")
    (root / "Album" / "loop2.flac").symlink_to(root / "Album" / "loop.flac")
    (root / "escape").symlink_to(outside_dir, target_is_directory=True)
    paths = {
        "outside_symlink": root / "Album" / "link.flac",
        "dot_dot": Path(f"{root}/../outside/victim.flac"),
        "look_alike": look_alike,
        "symlink_loop": root / "Album" / "loop.flac",
    }
    w = World(root, song, outside, look_alike, paths, {})
    w.before = {p: _sha256(p) for p in w.outside_files()}
    return w


@pytest.fixture
def user_client(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_user("ann", password="x" * 20))
    return client


@pytest.fixture
def key_client() -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {APIKey.objects.create_key(name='lidarr')[1]}")


# --- the rule -----------------------------------------------------------------------


@pytest.mark.parametrize("escape", ESCAPES)
def test_the_boundary_refuses_every_way_out(world, escape):
    with pytest.raises((boundary.OutsideLibrary, boundary.Unresolvable)):
        boundary.resolve_in_library(world.paths[escape])
    with pytest.raises((boundary.OutsideLibrary, boundary.Unresolvable)):
        jobs.queue_file(world.paths[escape])
    assert boundary.resolve_in_library(world.song) == world.song
    assert not Job.objects.exists()


def test_a_folder_gives_its_own_files_and_refuses_each_way_out(world):
    found = boundary.library_files([world.root])
    assert found.files == [world.song]
    refused = {Path(r.path).name: r.reason for r in found.refused}
    assert refused == {"link.flac": "outside_library", "musicals.flac": "outside_library"}
    # The loop is no file, and the symlinked folder is not descended: neither is found.
    assert not any("escape" in r.path or "loop" in r.path for r in found.refused)


def test_queue_paths_queues_only_what_is_inside(world):
    queued = jobs.queue_paths([world.root / "Album", *world.paths.values()])
    assert [job.path for job in queued] == [str(world.song)]
    world.assert_outside_unchanged()


# --- every way in -------------------------------------------------------------------


@pytest.mark.parametrize("escape", ESCAPES)
def test_the_tag_now_page_refuses_each_way_out(world, user_client, escape):
    response = user_client.post("/tag/", {"path": str(world.paths[escape])})
    assert response.status_code == 400
    assert b'id="tag-error"' in response.content
    assert not Job.objects.exists()
    world.assert_outside_unchanged()


def test_the_tag_now_page_tags_a_folder_but_not_its_symlinks_out(world, user_client):
    response = user_client.post("/tag/", {"path": str(world.root / "Album")}, follow=True)
    page = response.content.decode()
    assert "not queued" in page and "link.flac" in page and "musicals.flac" in page
    done = world.run_every_job()
    assert [(job.path, job.status) for job in done] == [(str(world.song), "done")]
    world.assert_outside_unchanged()


def test_the_retag_button_refuses_a_file_swapped_for_a_symlink_out(world, user_client):
    scan_root(LibraryRoot.objects.get(path=str(world.root)))
    row = LibraryFile.objects.get(path=str(world.song))
    Job.objects.all().delete()  # the scan's auto-tag queued it; the button is tried here
    world.song.unlink()
    world.song.symlink_to(world.outside)
    response = user_client.post(f"/library/file/{row.pk}/retag/", follow=True)
    assert b"outside the library" in response.content
    assert not Job.objects.exists()
    world.assert_outside_unchanged()


@pytest.mark.parametrize("escape", ESCAPES)
def test_the_api_refuses_each_way_out(world, key_client, escape):
    response = key_client.post(
        "/api/v1/tag", {"path": str(world.paths[escape])}, content_type="application/json"
    )
    assert response.status_code in (403, 404), response.content
    assert response.json()["error"] in ("outside_library", "path_not_found")
    assert not Job.objects.exists()
    world.assert_outside_unchanged()


def test_the_api_tags_a_folder_and_lists_the_symlinks_out_it_refused(world, key_client):
    response = key_client.post(
        "/api/v1/tag", {"path": str(world.root / "Album")}, content_type="application/json"
    )
    body = response.json()
    assert response.status_code == 202, body
    assert [job["path"] for job in body["jobs"]] == [str(world.song)]
    assert {Path(r["path"]).name for r in body["refused"]} == {"link.flac", "musicals.flac"}
    assert [job.status for job in world.run_every_job()] == ["done"]
    world.assert_outside_unchanged()


def test_the_lidarr_webhook_refuses_each_way_out(world, key_client):
    payload = {
        "eventType": "Download",
        "trackFiles": [{"path": str(path)} for path in world.paths.values()],
    }
    response = key_client.post(
        "/api/v1/lidarr", json.dumps(payload), content_type="application/json"
    )
    # Nothing could be queued: 422, so that Lidarr's own log shows it (tagging/lidarr.py).
    assert response.status_code == 422, response.content
    outcomes = [entry["outcome"] for entry in response.json()["files"]]
    assert outcomes == ["outside_library", "outside_library", "outside_library", "not_found"]
    assert not Job.objects.exists()
    world.assert_outside_unchanged()


@pytest.mark.parametrize("escape", ESCAPES)
def test_the_queue_command_refuses_each_way_out(world, escape, capsys):
    with pytest.raises(CommandError, match="refused"):
        call_command("queue", str(world.paths[escape]))
    assert "refused" in capsys.readouterr().err
    assert not Job.objects.exists()
    world.assert_outside_unchanged()


def test_the_queue_command_queues_a_folder_but_not_its_symlinks_out(world, capsys):
    with pytest.raises(CommandError, match="2 path"):
        call_command("queue", str(world.root / "Album"))
    err = capsys.readouterr().err
    assert "link.flac" in err and "musicals.flac" in err
    assert [job.status for job in world.run_every_job()] == ["done"]
    world.assert_outside_unchanged()


def test_a_scan_never_follows_a_way_out(world):
    scan = scan_root(LibraryRoot.objects.get(path=str(world.root)))
    assert scan.status == "done", scan.message
    problems = " ".join(str(p) for p in scan.problems)
    assert "outside the library" in problems and "symlink loop" in problems
    assert list(LibraryFile.objects.values_list("path", flat=True)) == [str(world.song)]
    assert [job.status for job in world.run_every_job()] == ["done"]  # auto-tag is on
    world.assert_outside_unchanged()


@pytest.mark.parametrize("escape", ESCAPES)
def test_the_playlist_folder_cannot_lead_out(world, settings, escape):
    folder = world.paths[escape]
    if escape == "outside_symlink":
        folder = world.root / "escape"  # a folder this time: the symlink to outside/
    elif escape != "symlink_loop":
        folder = folder.parent
    settings.NOMARR_PLAYLIST_DIR = str(folder)
    with pytest.raises(playlist_files.PlaylistFileError):
        playlist_files.write_smart_playlist({"name": "Escape", "all": []})
    world.assert_outside_unchanged()
    assert not any(p.suffix == ".nsp" for p in world.outside_files())


def test_a_job_whose_folder_became_a_symlink_out_is_refused_when_it_runs(world):
    job, _ = jobs.queue_file(world.song)
    # After queueing, the album folder is swapped for a symlink to the outside folder,
    # which holds a file of the same name.
    album = world.song.parent
    shutil.rmtree(album)
    shutil.copyfile(world.outside, world.outside.parent / "good.flac")
    world.before[world.outside.parent / "good.flac"] = _sha256(world.outside.parent / "good.flac")
    album.symlink_to(world.outside.parent, target_is_directory=True)
    jobs.run(job.pk)
    job.refresh_from_db()
    assert job.status == "error" and "outside the library" in job.error
    assert {p: _sha256(p) for p in world.outside_files()} == world.before


def test_nothing_written_when_a_root_is_disabled_after_queueing(world):
    job, _ = jobs.queue_file(world.song)
    before = _sha256(world.song)
    LibraryRoot.objects.filter(path=str(world.root)).update(enabled=False)
    jobs.run(job.pk)
    job.refresh_from_db()
    assert job.status == "error" and "outside the library" in job.error
    assert _sha256(world.song) == before
    assert os.path.isfile(world.song)
