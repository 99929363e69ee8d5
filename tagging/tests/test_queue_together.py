"""On SQLite, the requests of a web process that queue at the same time share one
write transaction (tagging.jobs._queue_together): each still gets its own jobs, a path
named by two requests at once gets one job, and one request's failure is its own."""

from __future__ import annotations

import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection
from django_q.models import OrmQ

from tagging import jobs
from tagging.models import Job
from tagging.tests.support import ManageProcess, free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def songs(library: Path, make_audio) -> list[Path]:
    first = make_audio("mp3")
    paths = []
    for n in range(24):
        target = library / f"Album {n % 4}" / f"{n:02d}.mp3"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(first, target)
        paths.append(target)
    return paths


def test_many_requests_at_once_each_get_their_own_jobs_and_a_shared_path_one_job(
    library, songs, key, tmp_path
):
    port = free_port()
    serve = ManageProcess(
        ["serve", "--port", str(port), "--no-workers", "--web-processes", "1"],
        library,
        tmp_path / "serve.log",
    )
    try:
        serve.start(ready=lambda: _answers(port))
        # 48 requests from 24 clients at once: every file twice, in two requests.
        asked = [str(path) for path in songs] * 2

        def post(path: str) -> tuple[str, int, list[dict]]:
            answer = requests.post(
                f"http://127.0.0.1:{port}/api/v1/tag",
                data=json.dumps({"path": path}),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                timeout=60,
            )
            return path, answer.status_code, answer.json()["jobs"]

        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(post, asked))
    finally:
        serve.stop()
    assert {status for _, status, _ in answers} == {202}
    rows = {job.path: job for job in Job.objects.all()}
    assert sorted(rows) == sorted(str(path) for path in songs)  # one job a file
    for path, _, given in answers:
        assert [job["id"] for job in given] == [rows[path].pk]
        assert given[0]["path"] == path
    assert OrmQ.objects.count() == len(songs)  # one run message a job


def _answers(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)  # 503: no workers, as asked
        return True
    except requests.RequestException:
        return False


def test_a_request_that_fails_in_a_shared_transaction_fails_alone(songs):
    assert jobs._takes_turns()
    connection.close()  # the threads open their own
    results: dict[int, object] = {}
    # The first request takes the write turn's in-process lock's place behind ours;
    # the next three then wait together and are written as one batch.
    jobs._SQLITE_WRITER.acquire()
    try:

        def queue(n: int, paths: list[Path], force) -> None:
            try:
                results[n] = [job.path for job, _ in jobs.queue_files(paths, force)]
            except Exception as exc:
                results[n] = exc
            finally:
                connection.close()

        threads = [threading.Thread(target=queue, args=(0, songs[:2], False))]
        threads[0].start()
        wait_until(lambda: jobs._writing, 10, "the first request writing")
        for n, (paths, force) in enumerate(
            [(songs[2:4], False), (songs[4:6], "not a boolean"), (songs[6:8], True)], start=1
        ):
            threads.append(threading.Thread(target=queue, args=(n, paths, force)))
            threads[-1].start()
        wait_until(lambda: len(jobs._waiting) == 3, 10, "three requests waiting together")
    finally:
        jobs._SQLITE_WRITER.release()
    for thread in threads:
        thread.join(30)
    assert results[0] == [str(p) for p in songs[:2]]
    assert results[1] == [str(p) for p in songs[2:4]]
    assert isinstance(results[2], Exception) and "not a boolean" in str(results[2])
    assert results[3] == [str(p) for p in songs[6:8]]
    queued = set(Job.objects.values_list("path", flat=True))
    assert queued == {str(p) for p in songs[:4] + songs[6:8]}
    assert set(Job.objects.filter(force=True).values_list("path", flat=True)) == {
        str(p) for p in songs[6:8]
    }
    assert OrmQ.objects.count() == 6
