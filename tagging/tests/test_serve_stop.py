"""Stopping `serve` while a worker is busy: within its grace, nothing left behind."""

import os
import signal
import subprocess
import time

import pytest

from tagging import jobs
from tagging.models import Job, WorkerState
from tagging.tests.support import ManageProcess, free_port, wait_until
from tagging.tests.test_serve import alive

pytestmark = pytest.mark.django_db(transaction=True)


def group_members(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,pgid="], capture_output=True, text=True)
    return [int(pid) for pid, group in (line.split() for line in out.stdout.splitlines())
            if int(group) == pgid and alive(int(pid))]  # fmt: skip


def test_a_busy_worker_is_stopped_within_the_grace_and_its_job_goes_back(
    library, long_track, audio_stream_hash, tmp_path
):
    before = audio_stream_hash(long_track)
    serve = ManageProcess(
        ["serve", "--port", str(free_port())],
        library,
        tmp_path / "serve.log",
        env={"NOMARR_STOP_GRACE": "1", "NOMARR_WEB_PROCESSES": "2"},
    ).start(ready=lambda: WorkerState.objects.workers_alive() > 0)
    children = [int(p) for p in subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(serve.proc.pid)], capture_output=True, text=True
    ).stdout.split()]  # fmt: skip
    assert len(children) == 3  # two web processes and the workers
    job = jobs.queue_paths([long_track])[0]
    wait_until(
        lambda: Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).exists(),
        120,
        "the job to start",
    )
    time.sleep(1)
    started = time.monotonic()
    os.kill(serve.proc.pid, signal.SIGTERM)
    serve.proc.wait(timeout=30)
    took = time.monotonic() - started
    serve.log.close()
    log = (tmp_path / "serve.log").read_text()

    assert serve.proc.returncode == 0, log[-3000:]
    # The 1 s grace, then the kill and the job handed back: well inside Docker's 10 s.
    assert took < 8, log[-3000:]
    assert "still busy after 1 s" in log
    # Nothing of the group outlives serve: not daphne, not qcluster, not its workers.
    assert not [pid for pid in children if alive(pid)]
    assert not [pid for child in children for pid in group_members(child)]
    job.refresh_from_db()
    assert job.status == Job.Status.PENDING
    assert job.worker == ""
    # Nomarr stopped it, so the attempt is given back: its killed worker was gone (not
    # merely sent SIGKILL) when the running jobs were put back.
    assert (job.attempts, job.error) == (0, ""), job.error
    assert audio_stream_hash(long_track) == before
    assert not [p for p in library.rglob(".nomarr-*")]
