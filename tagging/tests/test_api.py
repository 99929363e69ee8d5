"""The HTTP API under /api/v1/, spoken to over real HTTP (a live server, `requests`).

No worker cluster runs here: queued jobs stay pending (their "run" message sits in
django-q2's ORM queue). Where a test needs a worker, it registers a cluster
heartbeat in the cache, as a real cluster does, and runs `jobs.run` in a thread.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ
from rest_framework.test import APIClient

from tagging import jobs
from tagging.models import Job, WorkerState

live = pytest.mark.django_db(transaction=True)


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture
def library(make_library, private_cache) -> Path:
    """tmp_path is the one library root; the cache is private to the test, so a
    cluster some other process runs cannot count as a worker here."""
    return make_library("")


@pytest.fixture
def outside(tmp_path_factory, audio_sources) -> Path:
    """A real audio file outside the library."""
    folder = tmp_path_factory.mktemp("outside")
    target = folder / "secret.flac"
    shutil.copyfile(audio_sources["flac"], target)
    return target


class Api:
    """requests against the live server, with the key in an Authorization header."""

    def __init__(self, base: str, key: str | None):
        self.base = f"{base}/api/v1/"
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def post(self, name: str, body=None, **kwargs) -> requests.Response:
        if body is not None:
            kwargs["json"] = body
        return self.session.post(self.base + name, timeout=30, **kwargs)

    def get(self, name: str, **kwargs) -> requests.Response:
        return self.session.get(self.base + name, timeout=30, **kwargs)


@pytest.fixture
def api(live_server, key, library) -> Api:
    return Api(live_server.url, key)


def put(make_audio, fmt: str, relative: str) -> Path:
    """A real audio file at library/relative.fmt (folders made as needed)."""
    target = make_audio(fmt, name=f"_{uuid.uuid4().hex}")
    final = target.parent / f"{relative}.{fmt}"
    final.parent.mkdir(parents=True, exist_ok=True)
    target.rename(final)
    return final.resolve()


def short_clip(make_audio, relative: str = "short") -> Path:
    """A real 2 s FLAC: the tagger skips it as too short, without running a model."""
    source = make_audio("flac", name=f"_{uuid.uuid4().hex}")
    target = source.with_name(f"{relative}.flac")
    ffmpeg = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(source)]
    subprocess.run(
        [*ffmpeg, "-t", "2", "-c:a", "flac", str(target)],
        check=True,
        timeout=60,
    )
    source.unlink()
    return target.resolve()


def assert_error(response: requests.Response, status: int, error: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error, body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.fixture
def cluster_heartbeat():
    """Make WorkerState.objects.workers_alive() see one cluster, the way a real one reports itself:
    a signed Stat in the shared cache."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.signing import SignedPackage
    from django_q.status import Stat, Status

    stat = Stat.__new__(Stat)
    Status.__init__(stat, os.getpid(), f"api-test-{uuid.uuid4().hex[:8]}")
    stat.status = Conf.IDLE
    stat.broker = broker = get_broker()
    broker.set_stat(stat.key, SignedPackage.dumps(stat, True), 120)
    assert WorkerState.objects.workers_alive() == 1


@contextmanager
def worker_thread():
    """Run pending jobs with the real jobs.run until the block ends."""
    stop, failures = threading.Event(), []

    def loop():
        try:
            while not stop.is_set():
                pending = Job.objects.filter(status=Job.Status.PENDING)
                for job_id in pending.values_list("pk", flat=True):
                    jobs.run(job_id)
                time.sleep(0.05)
        except Exception as exc:  # reported by the test
            failures.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
    assert not failures, failures


# --- POST /tag ----------------------------------------------------------------------


@live
def test_it_queues_a_file_and_answers_202_with_the_job(api, make_audio):
    song = put(make_audio, "flac", "Artist/Album/01 - Song")
    response = api.post("tag", {"path": str(song)})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["finished"] is False and body["refused"] == []
    [job] = body["jobs"]
    assert job["path"] == str(song) and job["status"] == "pending" and job["force"] is False
    assert Job.objects.get(pk=job["id"]).path == str(song)
    # The run message went to the workers' queue (django-q2's ORM broker).
    assert OrmQ.objects.count() == 1


@live
def test_a_folder_queues_one_job_per_audio_file(api, make_audio, library):
    first = put(make_audio, "flac", "Album/01")
    second = put(make_audio, "mp3", "Album/CD2/02")
    (library / "Album" / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (library / "Album" / "notes.txt").write_text("liner notes")
    response = api.post("tag", {"path": str(library / "Album"), "force": True})
    assert response.status_code == 202, response.text
    queued = response.json()["jobs"]
    assert [j["path"] for j in queued] == [str(first), str(second)]
    assert all(j["force"] for j in queued)
    assert Job.objects.count() == 2


@live
def test_queueing_a_path_again_returns_its_live_job(api, make_audio):
    song = put(make_audio, "opus", "again")
    first = api.post("tag", {"path": str(song)}).json()["jobs"][0]
    second = api.post("tag", {"path": str(song), "force": True}).json()["jobs"][0]
    assert first["id"] == second["id"]
    assert Job.objects.count() == 1


@live
def test_it_refuses_a_path_outside_the_library(api, outside):
    body = assert_error(api.post("tag", {"path": str(outside)}), 403, "outside_library")
    assert body["path"] == str(outside)
    assert not Job.objects.exists()


@live
def test_it_refuses_a_path_that_climbs_out_with_dotdot(api, library, outside):
    sneaky = f"{library}/../{outside.parent.name}/{outside.name}"
    assert_error(api.post("tag", {"path": sneaky}), 403, "outside_library")
    assert not Job.objects.exists()


@live
def test_it_refuses_a_symlink_pointing_outside_the_library(api, library, outside, make_audio):
    link = library / "innocent.flac"
    link.symlink_to(outside)
    assert_error(api.post("tag", {"path": str(link)}), 403, "outside_library")
    folder_link = library / "folder-link"
    folder_link.symlink_to(outside.parent, target_is_directory=True)
    assert_error(api.post("tag", {"path": str(folder_link)}), 403, "outside_library")
    # In a folder, the symlinked file is refused and the real one queued.
    album = library / "Album"
    album.mkdir()
    (album / "evil.flac").symlink_to(outside)
    real = put(make_audio, "flac", "Album/real")
    response = api.post("tag", {"path": str(album)})
    assert response.status_code == 202, response.text
    body = response.json()
    assert [j["path"] for j in body["jobs"]] == [str(real)]
    assert [(r["path"], r["reason"]) for r in body["refused"]] == [
        (str(album / "evil.flac"), "outside_library")
    ]
    assert list(Job.objects.values_list("path", flat=True)) == [str(real)]


@live
def test_a_missing_path_is_404(api, library):
    body = assert_error(
        api.post("tag", {"path": str(library / "nope.flac")}), 404, "path_not_found"
    )
    assert "nope.flac" in body["detail"]


@live
def test_an_empty_folder_queues_nothing(api, library):
    (library / "empty").mkdir()
    response = api.post("tag", {"path": str(library / "empty")})
    assert response.status_code == 200
    assert response.json()["jobs"] == [] and "no audio files" in response.json()["detail"]


@live
def test_malformed_json_is_400(api):
    response = api.post(
        "tag", data=b'{"path": "/x", ', headers={"Content-Type": "application/json"}
    )
    assert "JSON parse error" in assert_error(response, 400, "malformed_request")["detail"]
    deep = b"[" * 100_000 + b"]" * 100_000
    response = api.post("tag", data=deep, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "malformed_request")
    response = api.post("tag", data=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "malformed_request")


@live
def test_wrong_types_and_missing_fields_are_400(api, make_audio):
    song = str(put(make_audio, "flac", "typed"))
    cases = [
        ({}, "path"),
        ({"force": True}, "path"),
        ({"path": 12}, "path"),
        ({"path": None}, "path"),
        ({"path": [song]}, "path"),
        ({"path": ""}, "path"),
        ({"path": "Music/relative.flac"}, "path"),
        ({"path": "/music/a\x00b.flac"}, "path"),
        ({"path": song, "force": "yes"}, "force"),
        ({"path": song, "force": 1}, "force"),
        ({"path": song, "wait": "5"}, "wait"),
        ({"path": song, "wait": True}, "wait"),
        ({"path": song, "wait": -1}, "wait"),
        ([song], "non_field_errors"),
        ("just a string", "non_field_errors"),
    ]
    for body, field in cases:
        answer = assert_error(api.post("tag", body), 400, "invalid_request")
        assert field in answer["fields"], (body, answer)
    assert not Job.objects.exists()


@live
def test_waiting_with_no_worker_is_503_and_the_jobs_stay_queued(api, make_audio):
    song = put(make_audio, "flac", "waiting")
    started = time.monotonic()
    body = assert_error(
        api.post("tag", {"path": str(song), "wait": 30}), 503, "no_worker_available"
    )
    assert time.monotonic() - started < 5
    assert [j["path"] for j in body["jobs"]] == [str(song)]
    assert Job.objects.get().status == "pending"


@live
def test_the_default_wait_comes_from_the_settings(api, make_audio, settings):
    settings.NOMARR_TAG_WAIT = 30
    song = put(make_audio, "flac", "default-wait")
    assert_error(api.post("tag", {"path": str(song)}), 503, "no_worker_available")
    # wait 0 in the request answers at once, whatever the default.
    response = api.post("tag", {"path": str(song), "wait": 0})
    assert response.status_code == 202


@live
def test_it_waits_for_a_worker_and_answers_200_with_the_result(api, make_audio, cluster_heartbeat):
    clip = short_clip(make_audio)
    with worker_thread():
        response = api.post("tag", {"path": str(clip), "wait": 20})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["finished"] is True and 0 < body["waited"] < 20
    [job] = body["jobs"]
    assert job["status"] == "done"
    assert job["result"]["status"] == "skipped" and "shorter" in job["result"]["reason"]


@live
def test_the_wait_is_capped_by_the_maximum(api, make_audio, cluster_heartbeat, settings):
    settings.NOMARR_TAG_MAX_WAIT = 0.3
    song = put(make_audio, "flac", "capped")
    started = time.monotonic()
    response = api.post("tag", {"path": str(song), "wait": 600})
    assert response.status_code == 202
    assert time.monotonic() - started < 5
    assert 0.25 <= response.json()["waited"] < 2


@live
def test_it_does_not_wait_while_the_workers_are_paused(api, make_audio, cluster_heartbeat):
    jobs.set_paused(True)
    song = put(make_audio, "flac", "paused")
    response = api.post("tag", {"path": str(song), "wait": 30})
    assert response.status_code == 202
    assert "paused" in response.json()["detail"]


# --- GET /list, /status, /info --------------------------------------------------------------


@live
def test_list_pages_the_jobs_newest_first_with_counts(api, make_audio):
    made = [jobs.queue_file(put(make_audio, "flac", f"list-{n}"))[0] for n in range(5)]
    Job.objects.filter(pk__in=[made[0].pk, made[1].pk]).update(status="done")
    Job.objects.filter(pk=made[2].pk).update(status="error", error="boom")
    response = api.get("list", params={"limit": 2, "offset": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5 and body["limit"] == 2 and body["offset"] == 1
    assert body["next_offset"] == 3
    assert [j["id"] for j in body["jobs"]] == [made[3].pk, made[2].pk]
    assert body["counts"] == {"pending": 2, "running": 0, "done": 2, "error": 1}
    done = api.get("list", params={"status": "done,error"}).json()
    assert [j["id"] for j in done["jobs"]] == [made[2].pk, made[1].pk, made[0].pk]
    assert done["count"] == 3 and done["next_offset"] is None


@live
def test_list_refuses_bad_parameters(api):
    for params, field in [
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"limit": 10_000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"status": "finished"}, "status"),
    ]:
        body = assert_error(api.get("list", params=params), 400, "invalid_request")
        assert field in body["fields"]


@live
def test_status_answers_the_job_with_its_result(api, make_audio):
    job, _ = jobs.queue_file(put(make_audio, "flac", "status"))
    Job.objects.filter(pk=job.pk).update(status="done", result={"status": "tagged", "tags": {}})
    response = api.get(f"status/{job.pk}")
    assert response.status_code == 200
    assert response.json()["result"] == {"status": "tagged", "tags": {}}
    assert_error(api.get(f"status/{job.pk + 1000}"), 404, "job_not_found")
    assert_error(api.get("status/not-a-number"), 404, "not_found")


@live
def test_info_reports_version_models_queue_and_workers(api, make_audio):
    jobs.queue_file(put(make_audio, "flac", "info"))
    response = api.get("info")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == "0.1.0"
    models = body["models"]
    assert models["fingerprint"].startswith("nomarr1-")
    assert {b["name"] for b in models["backbones"]} >= {"msd-musicnn-1"}
    assert any(h["mood"] for h in models["heads"])
    assert all({"path", "reason"} <= set(s) for s in models["skipped"])
    assert body["queue"]["pending"] == 1
    assert body["worker"] == {"paused": False, "workers_alive": 0, "models_generation": 0}


# --- admin ------------------------------------------------------------------------


@live
def test_remove_deletes_a_job_but_not_a_running_one(api, make_audio):
    waiting, _ = jobs.queue_file(put(make_audio, "flac", "remove-me"))
    busy, _ = jobs.queue_file(put(make_audio, "flac", "busy"))
    assert jobs.claim(busy.pk)
    response = api.post("admin/queue/remove", {"id": waiting.pk})
    assert response.status_code == 200 and response.json() == {"removed": waiting.pk}
    assert_error(api.post("admin/queue/remove", {"id": waiting.pk}), 404, "job_not_found")
    assert_error(api.post("admin/queue/remove", {"id": busy.pk}), 409, "conflict")
    assert_error(api.post("admin/queue/remove", {"id": str(busy.pk)}), 400, "invalid_request")
    assert list(Job.objects.values_list("pk", flat=True)) == [busy.pk]


@live
def test_flush_deletes_by_status_and_refuses_running_jobs(api, make_audio):
    made = [jobs.queue_file(put(make_audio, "flac", f"flush-{n}"))[0] for n in range(3)]
    Job.objects.filter(pk=made[0].pk).update(status="done")
    body = assert_error(api.post("admin/queue/flush", {"statuses": ["running"]}), 409, "conflict")
    assert "running" in body["detail"]
    for bad in [{"statuses": ["finished"]}, {"statuses": "done"}, {"statuses": []}, {}]:
        assert_error(api.post("admin/queue/flush", bad), 400, "invalid_request")
    assert_error(api.post("admin/queue/flush", {"statuses": [1]}), 400, "invalid_request")
    response = api.post("admin/queue/flush", {"statuses": ["done", "pending"]})
    assert response.status_code == 200 and response.json() == {"deleted": 3}


@live
def test_cleanup_deletes_old_finished_jobs(api, make_audio):
    old, _ = jobs.queue_file(put(make_audio, "flac", "old"))
    new, _ = jobs.queue_file(put(make_audio, "flac", "new"))
    now = timezone.now()
    Job.objects.filter(pk=old.pk).update(status="done", finished_at=now - timedelta(hours=48))
    Job.objects.filter(pk=new.pk).update(status="done", finished_at=now)
    assert_error(api.post("admin/queue/cleanup", {"hours": "24"}), 400, "invalid_request")
    response = api.post("admin/queue/cleanup", {"hours": 24})
    assert response.status_code == 200 and response.json() == {"deleted": 1}
    assert list(Job.objects.values_list("pk", flat=True)) == [new.pk]


@live
def test_reset_puts_back_stuck_and_failed_jobs(api, make_audio):
    failed, _ = jobs.queue_file(put(make_audio, "flac", "failed"))
    stuck, _ = jobs.queue_file(put(make_audio, "flac", "stuck"))
    Job.objects.filter(pk=failed.pk).update(status="error", error="boom")
    gone = subprocess.Popen(["true"])
    gone.wait()
    Job.objects.filter(pk=stuck.pk).update(
        status="running", worker=f"{jobs.worker_id().rpartition(':')[0]}:{gone.pid}"
    )
    body = assert_error(api.post("admin/queue/reset", {}), 400, "invalid_request")
    assert "stuck" in body["detail"]
    assert_error(api.post("admin/queue/reset", {"stuck": "yes"}), 400, "invalid_request")
    response = api.post("admin/queue/reset", {"stuck": True, "errors": True})
    assert response.status_code == 200 and response.json() == {"stuck": 1, "errors": 1}
    assert set(Job.objects.values_list("status", flat=True)) == {"pending"}


@live
def test_pause_and_resume_the_workers(api):
    response = api.post("admin/worker/pause")
    assert response.status_code == 200 and response.json()["paused"] is True
    assert WorkerState.get().paused
    response = api.post("admin/worker/resume")
    assert response.status_code == 200 and response.json()["paused"] is False
    assert not WorkerState.get().paused


@live
def test_models_refresh_makes_workers_reload(api):
    response = api.post("admin/models/refresh")
    assert response.status_code == 200
    body = response.json()
    assert body["models_generation"] == 1 and body["fingerprint"].startswith("nomarr1-")
    assert WorkerState.get().models_generation == 1


@pytest.mark.django_db
def test_admin_endpoints_need_a_key_or_a_staff_login(library):
    user = get_user_model().objects.create_user("listener", password="pw-for-tests")
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/v1/list").status_code == 200
    response = client.post("/api/v1/admin/worker/pause", format="json")
    assert response.status_code == 403 and response.json()["error"] == "permission_denied"
    user.is_staff = True
    user.save()
    client.force_login(user)
    assert client.post("/api/v1/admin/worker/pause", format="json").status_code == 200


# --- errors, schema -----------------------------------------------------------------------


@live
def test_every_error_is_json(api, live_server):
    assert_error(api.get("no/such/endpoint"), 404, "not_found")
    assert_error(api.get("tag"), 405, "method_not_allowed")
    response = api.post("tag", data={"path": "/x"})  # a form, not JSON
    assert_error(response, 415, "unsupported_media_type")
    anonymous = Api(live_server.url, None)
    response = anonymous.post("tag", {"path": "/x"})
    assert_error(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="nomarr"'


@pytest.mark.django_db
def test_an_unexpected_failure_is_a_json_500(library, key):
    table = Job._meta.db_table
    with connection.cursor() as cursor:  # a real failure: the queue's table is gone
        cursor.execute(f"DROP TABLE {table}")  # (the test's transaction brings it back)
    client = APIClient()
    response = client.get("/api/v1/list", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert table not in response.content.decode()


@live
def test_the_schema_documents_every_endpoint(live_server, library):
    response = requests.get(f"{live_server.url}/api/v1/schema/?format=json", timeout=30)
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    expected = {
        "/api/v1/tag": {"200", "202", "400", "401", "403", "404", "413", "503"},
        "/api/v1/list": {"200", "400", "401"},
        "/api/v1/status/{job_id}": {"200", "401", "404"},
        "/api/v1/info": {"200", "401"},
        "/api/v1/lidarr": {"200", "202", "400", "401", "413", "422"},
        "/api/v1/admin/queue/remove": {"200", "400", "401", "403", "404", "409"},
        "/api/v1/admin/queue/flush": {"200", "400", "401", "403", "409"},
        "/api/v1/admin/queue/cleanup": {"200", "400", "401", "403"},
        "/api/v1/admin/queue/reset": {"200", "400", "401", "403"},
        "/api/v1/admin/worker/pause": {"200", "401", "403"},
        "/api/v1/admin/worker/resume": {"200", "401", "403"},
        "/api/v1/admin/models/refresh": {"200", "401", "403"},
        # The sonic app's endpoints (sonic/api.py) share the API and its schema.
        # 503: NOMARR_SIMILAR_BACKBONE names no installed backbone.
        "/api/v1/similar": {"200", "400", "401", "403", "404", "503"},
        "/api/v1/mix": {"200", "400", "401", "403", "404", "409", "503"},
        "/api/v1/path": {"200", "400", "401", "403", "404", "409", "503"},
    }
    assert set(paths) == set(expected)
    for path, codes in expected.items():
        [operation] = paths[path].values()
        assert set(operation["responses"]) == codes, path
        assert {"bearerAuth": []} in operation["security"], path
    schemes = schema["components"]["securitySchemes"]
    assert {"bearerAuth", "apiKeyHeader", "basicAuth", "cookieAuth"} <= set(schemes)
    docs = requests.get(f"{live_server.url}/api/v1/docs/", timeout=30)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # The docs pages load their scripts from Nomarr itself, not a CDN (users may be offline).
    assert "cdn" not in docs.text.lower() and "/static/drf_spectacular_sidecar/" in docs.text
    bundle = re.search(r'src="(/static/drf_spectacular_sidecar/[^"]+\.js)"', docs.text).group(1)
    assert requests.get(live_server.url + bundle, timeout=30).status_code == 200
    redoc = requests.get(f"{live_server.url}/api/v1/redoc/", timeout=30)
    assert redoc.status_code == 200 and "cdn" not in redoc.text.lower()


@live
def test_every_job_answer_has_the_fields_the_schema_documents(api, make_audio, settings):
    settings.TIME_ZONE = "America/New_York"  # jobs' times are written in UTC all the same
    queued = api.post("tag", {"path": str(put(make_audio, "flac", "documented"))}).json()
    [created] = queued["jobs"]
    assert jobs.claim(created["id"])
    Job.objects.filter(pk=created["id"]).update(
        status="done", finished_at=timezone.now(), result={"status": "tagged"}, progress={"done": 1}
    )
    detail = api.get(f"status/{created['id']}").json()
    [listed] = api.get("list").json()["jobs"]
    components = api.get("schema/?format=json").json()["components"]["schemas"]
    assert list(created) == list(detail) == list(components["JobDetail"]["properties"])
    assert list(listed) == list(components["Job"]["properties"])
    assert detail["status"] == "done" and detail["result"] == {"status": "tagged"}
    assert listed == {key: value for key, value in detail.items() if key != "result"}
    for job in (created, detail):
        assert job["created_at"].endswith("Z"), job
    assert detail["started_at"].endswith("Z") and detail["finished_at"].endswith("Z")
