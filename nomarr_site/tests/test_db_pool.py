"""The web processes' database connections: a pool on PostgreSQL (NOMARR_DB_POOL), no
persistent connections piling up, and the workers untouched by either.

The serve test needs PostgreSQL: marked `scaleout`, which bin/test runs again on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path

import pytest
import requests
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async
from django.db import connection
from rest_framework_api_key.models import APIKey

from nomarr_site.asgi import Bounded
from nomarr_site.tests.test_setting_errors import check
from tagging.models import Job
from tagging.tests.support import ManageProcess, free_port, wait_until


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("twenty", "NOMARR_DB_POOL must be an integer, got 'twenty'"),
        ("-1", "NOMARR_DB_POOL must be at least 0, got '-1'"),
    ],
)
def test_a_bad_pool_size_is_refused_naming_its_variable(tmp_path, value, message):
    proc = check(tmp_path, NOMARR_DB_POOL=value)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_requests_run_in_a_few_threads_made_once_not_one_each():
    """Django runs a request's sync code in a new thread unless a context gives it one:
    the lanes do, so a process's threads (and their connections) stay `limit`."""
    seen: list[str] = []

    async def django_like(scope, receive, send):
        async with ThreadSensitiveContext():  # as Django's ASGIHandler does
            seen.append(await sync_to_async(lambda: threading.current_thread().name)())

    bounded = Bounded(django_like, 3)

    async def many():
        await asyncio.gather(*(bounded({"type": "http"}, None, None) for _ in range(30)))

    async_to_sync(many)()
    assert len(seen) == 30
    assert {name.rsplit("_", 1)[0] for name in seen} <= {f"web-lane-{n}" for n in range(3)}


def sessions_opened() -> int:
    """Connections PostgreSQL has accepted to the test database so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def post_from_clients(url: str, key: str, paths: list[str], clients: int, each: int) -> Counter:
    """`clients` threads, each sending `each` POST /tag requests on its keep-alive
    connection; the answers' statuses."""
    seen: Counter = Counter()
    lock = threading.Lock()

    def client(n: int) -> None:
        mine: Counter = Counter()
        with requests.Session() as session:
            for k in range(each):
                path = paths[(n + k) % len(paths)]
                try:
                    answer = session.post(
                        url,
                        json={"path": path},
                        headers={"Authorization": f"Bearer {key}"},
                        timeout=60,
                    )
                    mine[answer.status_code] += 1
                except requests.RequestException as exc:
                    mine[type(exc).__name__] += 1
        with lock:
            seen.update(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


def start_serve(tmp_path, library, env: dict, workers: bool = True) -> tuple[ManageProcess, str]:
    """`manage.py serve` with two web processes on the test database; its address."""
    port = free_port()
    argv = ["serve", "--host", "127.0.0.1", "--port", str(port), "--web-processes", "2"]
    serve = ManageProcess(
        argv + ([] if workers else ["--no-workers"]),
        library,
        tmp_path / "serve.log",
        env={"NOMARR_TAG_WAIT": "0", **env},
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{base}/accounts/login/", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    serve.start(ready=answers if not workers else None)
    wait_until(answers, 60, "the web server")
    return serve, base


def burst(base: str, key: str, songs: list[str]) -> tuple[Counter, int]:
    """80 POST /tag requests from 8 clients after a warm-up: their statuses, and the
    connections PostgreSQL accepted meanwhile."""
    warm = post_from_clients(f"{base}/api/v1/tag", key, songs, clients=4, each=2)
    assert warm == Counter({202: 8}), warm
    before = sessions_opened()
    statuses = post_from_clients(f"{base}/api/v1/tag", key, songs, clients=8, each=10)
    return statuses, sessions_opened() - before


def needs_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("counts PostgreSQL's connections (bin/test runs this on PostgreSQL)")


def songs_in(library: Path, make_audio) -> list[str]:
    return [str(make_audio("mp3", f"song{n}").rename(library / f"song{n}.mp3")) for n in (1, 2)]


@pytest.mark.scaleout
@pytest.mark.django_db(transaction=True)
def test_serve_with_the_pool_reuses_connections_and_a_worker_still_tags(
    tmp_path, make_audio, library
):
    needs_postgresql()
    songs = songs_in(library, make_audio)
    key = APIKey.objects.create_key(name="pool")[1]
    serve, base = start_serve(tmp_path, library, {"NOMARR_DB_POOL": "4"})
    try:
        statuses, opened = burst(base, key, songs)
        # Every request answered (a request for a file whose job waits gets it back).
        assert statuses == Counter({202: 80}), statuses
        # Without a pool each of the 80 requests opened a connection of its own; with
        # it, two web processes keep at most 4 each.
        assert opened <= 12, f"{opened} connections opened for 80 requests"
        # The workers (no pool: they fork) still run the jobs.
        wait_until(lambda: Job.objects.filter(status="done").exists(), 120, "a job done")
        assert Job.objects.filter(path__in=songs, status="done").exists()
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        serve.stop()


@pytest.mark.scaleout
@pytest.mark.django_db(transaction=True)
def test_kept_connections_are_one_a_lane_not_one_a_request(tmp_path, make_audio, library):
    """NOMARR_DB_CONN_MAX_AGE without the pool once meant a connection per request
    thread, left open, until PostgreSQL refused more (500s)."""
    needs_postgresql()
    songs = songs_in(library, make_audio)
    key = APIKey.objects.create_key(name="lanes")[1]
    env = {"NOMARR_DB_POOL": "0", "NOMARR_DB_CONN_MAX_AGE": "60", "NOMARR_WEB_CONCURRENCY": "3"}
    serve, base = start_serve(tmp_path, library, env, workers=False)
    try:
        statuses, opened = burst(base, key, songs)
        assert statuses == Counter({202: 80}), statuses
        assert opened <= 6, f"{opened} connections opened for 80 requests"  # 2 processes x 3
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        serve.stop()


def end_other_sessions() -> int:
    """Ends every other connection to the test database, as a restart of PostgreSQL
    would (the server says so on each, then closes it); how many it ended."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.scaleout
@pytest.mark.django_db(transaction=True)
def test_a_pooled_connection_the_database_ended_is_replaced_not_handed_to_a_request(
    tmp_path, make_audio, library
):
    """The pool asks the server only when a connection has something to read or was not
    asked for a while (webserver.check_pooled), not each time it is taken: a connection
    the database ended meanwhile must still never reach a request."""
    needs_postgresql()
    songs = songs_in(library, make_audio)
    key = APIKey.objects.create_key(name="ended")[1]
    serve, base = start_serve(tmp_path, library, {"NOMARR_DB_POOL": "4"}, workers=False)
    try:
        statuses, _ = burst(base, key, songs)  # the pools hold open connections now
        assert statuses == Counter({202: 80}), statuses
        assert end_other_sessions() >= 2  # both web processes' pooled connections
        wait_until(lambda: end_other_sessions() == 0, 10, "the ended sessions gone")
        after = post_from_clients(f"{base}/api/v1/tag", key, songs, clients=8, each=5)
        assert after == Counter({202: 40}), after
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        serve.stop()
