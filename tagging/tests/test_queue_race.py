"""A folder swapped for a symlink out of the library between the check and the queueing.

Every way in checks a path (tagging.boundary) and then queues it; a folder renamed
away and replaced by a symlink to somewhere outside in between must not turn into a
500 or a write outside the library. The paths checked are queued as they were
resolved, and the job checks its file again before it runs: it is refused then, and
the file outside is never touched.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from django.test import Client
from rest_framework_api_key.models import APIKey

from library import autotag
from library.models import LibraryRoot
from library.scanning import scan_root
from tagging import jobs, lidarr, serializers
from tagging.models import Job

pytestmark = pytest.mark.django_db


def swap_out(folder: Path, outside: Path) -> None:
    """Move folder's files outside and leave a symlink to them in its place."""
    shutil.move(folder, outside)
    folder.symlink_to(outside, target_is_directory=True)


@pytest.fixture
def album(library, make_audio, tmp_path_factory):
    folder = library / "Album"
    folder.mkdir()
    make_audio("flac").rename(folder / "01.flac")
    return folder, tmp_path_factory.mktemp("outside") / "Album"


@pytest.mark.parametrize("way_in", ["tag", "lidarr"])
def test_a_folder_swapped_out_after_the_api_checked_it_is_refused_cleanly(
    album, monkeypatch, private_cache, way_in
):
    folder, outside = album
    # The check each way in makes, then the swap: after the check, before the queueing.
    module, name = (serializers, "library_files") if way_in == "tag" else (lidarr, "library_path")
    checked = getattr(module, name)

    def check_then_swap(*args):
        found = checked(*args)
        if not folder.is_symlink():
            swap_out(folder, outside)
        return found

    monkeypatch.setattr(module, name, check_then_swap)
    key = APIKey.objects.create_key(name="race")[1]
    if way_in == "tag":
        url, body = "/api/v1/tag", {"path": str(folder)}
    else:
        url, body = (
            "/api/v1/lidarr",
            {
                "eventType": "Download",
                "trackFiles": [{"path": str(folder / "01.flac")}],
            },
        )
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
        url, json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 202, response.content
    [job] = Job.objects.all()
    before = (outside / "01.flac").read_bytes()
    assert jobs.run(job.pk) == "error"
    job.refresh_from_db()
    assert job.error.startswith("refused: ") and "outside the library" in job.error
    assert (outside / "01.flac").read_bytes() == before


def test_a_folder_swapped_out_after_the_scan_walked_it_is_not_queued(album, library, caplog):
    folder, outside = album
    root = LibraryRoot.objects.create(path=str(library), auto_tag=False)
    assert scan_root(root).seen == 1
    swap_out(folder, outside)
    with caplog.at_level(logging.WARNING, logger="library.autotag"):
        assert autotag.queue_outdated(root) == (0, "")
    assert not Job.objects.exists()
    assert any("not queued" in r.message for r in caplog.records)
