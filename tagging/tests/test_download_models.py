"""Getting Essentia's heads: `manage.py download_models` and the Models page, against a
real HTTP server on this machine that serves the fixture heads in the zoo's layout
(and broken ones), never Essentia's site.

The fixture heads are re-serialised copies, not Essentia's published bytes, so the
mirror here carries its own manifest (sizes and sha256 of the fixtures), as any
mirror of other bytes must; the shipped manifest, which pins the published sizes and
sha256, is tried on them too and refuses them.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.urls import reverse

from tagging import catalog
from tagging.models import WorkerState

pytestmark = pytest.mark.django_db

HEADS = Path(settings.FIXTURE_MODELS_DIR)
BACKBONES = Path(settings.BASE_DIR) / "models"
SHIPPED = Path(settings.BASE_DIR) / "tagging" / "zoo_manifest.json"
MOODS = [
    "danceability-msd-musicnn-1",
    "mood_aggressive-msd-musicnn-1",
    "mood_happy-msd-musicnn-1",
    "mood_party-msd-musicnn-1",
    "mood_relaxed-msd-musicnn-1",
    "mood_sad-msd-musicnn-1",
    "voice_instrumental-msd-musicnn-1",
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """The fixture heads in the zoo's layout (classification-heads/<task>/<stem>.pb) and
    the mirror's manifest: the shipped one's entries for them, with their own sizes and
    sha256."""
    root = tmp_path_factory.mktemp("zoo")
    shipped = json.loads(SHIPPED.read_text())
    heads = []
    for head in shipped["heads"]:
        if not (HEADS / f"{head['stem']}.pb").exists():
            continue
        for f in head["files"]:
            source = HEADS / f["path"].rsplit("/", 1)[-1]
            target = root / "layout" / f["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            f["size"], f["sha256"] = source.stat().st_size, _sha256(source)
        heads.append(head)
    assert len(heads) == 9
    (root / "manifest.json").write_text(json.dumps({**shipped, "heads": heads}))
    return root


class Handler(http.server.BaseHTTPRequestHandler):
    """/good/<path>: the file, with Range; /truncated/: half of it under the full
    Content-Length, then the connection closes; /corrupt/: same size, other bytes;
    /garbage/: a .pb that is no graph, of any size; /missing/: 404."""

    layout: Path
    requests: list[tuple[str, str | None]]

    def log_message(self, *args):
        pass

    def do_GET(self):
        mode, _, rel = self.path.lstrip("/").partition("/")
        self.requests.append((self.path, self.headers.get("Range")))
        path = self.layout / rel
        if mode == "missing" or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if mode == "corrupt" and rel.endswith(".pb"):
            data = bytes(b ^ 0xFF for b in data)
        if mode == "garbage" and rel.endswith(".pb"):
            data = b"not a graph " * 100
        start = 0
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and mode == "good":
            start = int(wanted[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if mode == "truncated" and rel.endswith(".pb"):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data[start:])


@pytest.fixture(scope="module")
def server(mirror):
    handler = type("H", (Handler,), {"layout": mirror / "layout", "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server, mode: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{mode}/"


@pytest.fixture
def models(tmp_path, mirror, server):
    """An empty models folder first in line, the backbones after it; the mirror's
    manifest and the good server. The catalog is read again on the way out."""
    folder = tmp_path / "models"
    folder.mkdir()
    server.RequestHandlerClass.requests.clear()
    with override_settings(
        NOMARR_MODELS_DIRS=[folder, BACKBONES],
        NOMARR_MODELS_DIR=folder,
        NOMARR_MODELS_MANIFEST=mirror / "manifest.json",
        NOMARR_MODELS_URL=url(server, "good"),
    ):
        catalog.refresh_catalog()
        yield folder
    catalog.refresh_catalog()


def download(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("download_models", *args, stdout=out, stderr=out)
    return out.getvalue()


def failure(*args: str) -> str:
    """What the command says (its output and its error) when it fails."""
    from io import StringIO

    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("download_models", *args, stdout=out, stderr=out)
    return f"{out.getvalue()}\n{refused.value}"


def test_the_fixture_heads_downloaded_from_a_local_server_land_and_load(models):
    generation = WorkerState.get().models_generation
    out = download("--all", "--accept-license")
    assert "CC BY-NC-SA 4.0" in out and "installed mood_happy-msd-musicnn-1" in out
    assert "[" + "#" * 30 + "]" in out  # the progress bar, each file to its end
    assert sorted(p.name for p in models.iterdir()) == sorted(
        f"{pb.stem}{ext}" for pb in HEADS.glob("*.pb") for ext in (".pb", ".json")
    )
    for pb in models.glob("*.pb"):
        assert pb.read_bytes() == (HEADS / pb.name).read_bytes()
    assert WorkerState.get().models_generation == generation + 1  # the workers reload
    loaded = {h.stem: h for h in catalog.current_catalog().heads if h.graph is not None}
    assert set(loaded) == {p.stem for p in HEADS.glob("*.pb")}
    assert all(h.graph.parent == models for h in loaded.values())
    assert {h.stem for h in loaded.values() if h.is_mood} == set(MOODS)
    again = download("moods", "--accept-license")
    assert "already installed mood_sad-msd-musicnn-1" in again
    assert "\ninstalled " not in again and "heads installed" not in again


def test_it_shows_the_licence_and_refuses_without_accepting_it(models, server):
    message = failure("moods")
    assert "CC BY-NC-SA 4.0" in message and "--accept-license" in message
    assert list(models.iterdir()) == [] and server.RequestHandlerClass.requests == []
    assert "no head 'mood_glad'" in failure("mood_glad", "--accept-license")
    assert "--list" in failure("--accept-license")


def test_no_network_is_said_plainly_and_leaves_nothing(models):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    with override_settings(NOMARR_MODELS_URL=closed):
        message = failure("mood_happy", "mood_sad", "--accept-license")
    assert "cannot reach 127.0.0.1" in message and "no network?" in message
    assert "mood_sad" not in message  # stopped at the first: the next would fail alike
    assert list(models.iterdir()) == []


def test_it_names_a_file_the_mirror_lacks(models, server):
    with override_settings(NOMARR_MODELS_URL=url(server, "missing")):
        out = failure("mood_happy", "--accept-license")
    assert "mood_happy-msd-musicnn-1.json: not found (HTTP 404)" in out
    assert "1 heads not installed" in out
    assert list(models.iterdir()) == []


def test_a_truncated_download_installs_nothing_and_resumes_where_it_broke_off(models, server):

    with override_settings(NOMARR_MODELS_URL=url(server, "truncated")):
        message = failure("mood_sad", "--accept-license")
    assert "broke off at 41074 of 82149 bytes" in message and "run it again to resume" in message
    assert not (models / "mood_sad-msd-musicnn-1.pb").exists()
    assert [p.name for p in models.glob("*.pb")] == []  # nothing the catalog could see
    assert (models / ".nomarr-zoo-mood_sad-msd-musicnn-1.pb.tmp").stat().st_size == 41074
    download("mood_sad", "--accept-license")
    assert ("/good/classification-heads/mood_sad/mood_sad-msd-musicnn-1.pb", "bytes=41074-") in (
        server.RequestHandlerClass.requests
    )
    pb = models / "mood_sad-msd-musicnn-1.pb"
    assert pb.read_bytes() == (HEADS / pb.name).read_bytes()
    assert sorted(p.name for p in models.iterdir()) == [
        "mood_sad-msd-musicnn-1.json",
        "mood_sad-msd-musicnn-1.pb",
    ]


def test_a_hash_mismatch_is_refused_and_removed(models, server):
    with override_settings(NOMARR_MODELS_URL=url(server, "corrupt")):
        message = failure("mood_party", "--accept-license")
    assert "mood_party-msd-musicnn-1.pb from http://127.0.0.1" in message
    assert "has sha256" in message and "not the published file; removed" in message
    assert list(models.iterdir()) == []


def test_the_shipped_manifest_refuses_bytes_that_are_not_the_published_ones(models, server):
    """The fixture heads are not Essentia's bytes: the shipped manifest refuses
    mood_relaxed by its published size and mood_sad (no size listed) by its pinned
    sha256, and leaves nothing of either behind."""
    with override_settings(NOMARR_MODELS_MANIFEST=SHIPPED):
        said = failure("mood_relaxed", "mood_sad", "--accept-license")
    assert "82149 bytes, the manifest says 82458" in said
    fixture = _sha256(HEADS / "mood_sad-msd-musicnn-1.pb")
    assert (
        f"mood_sad-msd-musicnn-1.pb from {url(server, 'good')} has sha256 {fixture}, the "
        "manifest says a5e908cf7f59e8c379ff7c7d138dd85416985fddaebb5de14ca4193200411f61: "
        "not the published file; removed"
    ) in said
    assert "2 heads not installed" in said
    assert list(models.iterdir()) == []


def test_without_a_known_hash_a_head_must_load_in_essentia(models, server, mirror, tmp_path):
    """A manifest that knows neither size nor sha256 of a head (gender and the genre
    heads in the shipped one) has it checked by its sidecar and by loading its graph."""
    manifest = json.loads((mirror / "manifest.json").read_text())
    for head in manifest["heads"]:
        if head["stem"] in ("mood_happy-msd-musicnn-1", "mood_sad-msd-musicnn-1"):
            for f in head["files"]:
                f["size"] = f["sha256"] = None
    unpinned = tmp_path / "unpinned.json"
    unpinned.write_text(json.dumps(manifest))
    with override_settings(NOMARR_MODELS_MANIFEST=unpinned):
        assert "installed mood_happy-msd-musicnn-1" in download("mood_happy", "--accept-license")
        assert sorted(p.name for p in models.iterdir()) == [
            "mood_happy-msd-musicnn-1.json",
            "mood_happy-msd-musicnn-1.pb",
        ]
        with override_settings(NOMARR_MODELS_URL=url(server, "garbage")):
            said = failure("mood_sad", "--accept-license")
        assert "mood_sad-msd-musicnn-1.pb does not load in Essentia" in said
    assert not (models / "mood_sad-msd-musicnn-1.pb").exists()
    assert not any(p.name.startswith(".nomarr") for p in models.iterdir())


def test_a_local_folder_stands_in_for_offline_installs(models, mirror):
    flat = mirror / "layout" / "classification-heads" / "gender"
    with override_settings(NOMARR_MODELS_URL=str(flat)):
        download("gender", "--accept-license")
    with override_settings(NOMARR_MODELS_URL=(mirror / "layout").as_uri()):
        download("tonal_atonal", "--accept-license")
    assert sorted(p.stem for p in models.glob("*.pb")) == [
        "gender-msd-musicnn-1",
        "tonal_atonal-msd-musicnn-1",
    ]


def test_a_read_only_models_folder_is_refused_before_anything_is_fetched(models, server):
    models.chmod(0o555)
    try:
        message = failure("moods", "--accept-license")
    finally:
        models.chmod(0o755)
    assert f"the models folder {models} is read-only" in message
    assert list(models.iterdir()) == [] and server.RequestHandlerClass.requests == []


def test_a_full_disk_leaves_nothing_half_installed(models, mirror, tmp_path):
    """No small file system to fill here: the child's file-size limit (RLIMIT_FSIZE)
    stops the write of the .pb part-way, as a full disk would (EFBIG, not ENOSPC)."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    data = tmp_path / "data"
    data.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nomarr_site.settings",
        "NOMARR_DATA_DIR": str(data),
        "NOMARR_LOG_FILE": "off",
        "NOMARR_MODELS_DIR": f"{models}:{BACKBONES}",
        "NOMARR_MODELS_MANIFEST": str(mirror / "manifest.json"),
        "NOMARR_MODELS_URL": str(mirror / "layout"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        [sys.executable, "manage.py", "download_models", "mood_happy", "--accept-license"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
        preexec_fn=limit,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert f"no room left in {models} writing mood_happy-msd-musicnn-1.pb" in proc.stderr
    assert list(models.iterdir()) == []


# --- the Models page and the dashboard ---------------------------------------------------------


def person(django_user_model, staff: bool) -> Client:
    user = django_user_model.objects.create_user(f"p-{staff}", password="x" * 20)
    user.is_staff = staff
    user.save()
    client = Client()
    client.force_login(user)
    return client


def test_staff_get_the_mood_models_from_the_models_page(models, django_user_model):
    staff = person(django_user_model, staff=True)
    page = staff.get("/models/").content.decode()
    assert "Get the mood models" in page and "CC BY-NC-SA 4.0" in page
    assert 'name="accept_license"' in page and "mood_happy-msd-musicnn-1" in page
    assert "KB" in page  # the size, about 600 KB for the fixture heads
    refused = staff.post("/models/", {"action": "download"}, follow=True)
    assert "Tick “I accept the licence”" in refused.content.decode()
    assert list(models.iterdir()) == []
    done = staff.post("/models/", {"action": "download", "accept_license": "on"}, follow=True)
    text = done.content.decode()
    assert done.status_code == 200 and "Installed 7 mood heads" in text
    assert sorted(p.stem for p in models.glob("*.pb")) == MOODS
    assert "All of them are installed." in text
    assert text.count("head, mood") == 7  # the catalog lists them


def test_outsiders_cannot_get_the_models(models, django_user_model):
    form = {"action": "download", "accept_license": "on"}
    anonymous = Client().post("/models/", form)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))
    plain = person(django_user_model, staff=False)
    assert plain.post("/models/", form).status_code == 403
    page = plain.get("/models/").content.decode()
    assert "Get the mood models" in page and 'name="accept_license"' not in page
    assert list(models.iterdir()) == []


def test_the_dashboard_says_when_no_mood_head_is_installed(models, admin_client):
    page = admin_client.get("/").content.decode()
    assert "No mood heads are installed" in page and "no <code>MOOD</code> tag" in page
    assert 'href="/models/"' in page
    download("mood_happy", "--accept-license")
    assert "No mood heads are installed" not in admin_client.get("/").content.decode()
