"""A job cannot run forever: NOMARR_MAX_ATTEMPTS attempts, then it fails with the reason.

django-q2's timeout is a SystemExit, so a job that hit it was never recorded and
ran again without end; a job whose worker died was put back without limit.
"""

import subprocess
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from nomarr_site.workers import worker_id
from tagging import jobs
from tagging.models import Job
from tagging.tests.support import ManageProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dead_worker() -> str:
    """The claim of a worker process of this host that has ended."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return f"{worker_id().rpartition(':')[0]}:{gone.pid}"


def running_job(path, worker: str, attempts: int, minutes_ago: float = 0) -> Job:
    started = timezone.now() - timedelta(minutes=minutes_ago)
    return Job.objects.create(
        path=str(path), status="running", worker=worker, attempts=attempts, started_at=started
    )


def test_a_job_that_times_out_fails_after_its_last_attempt_with_the_reason(
    library, long_track, tmp_path, admin_user
):
    workers = ManageProcess(
        ["workers"],
        library,
        tmp_path / "workers.log",
        env={"NOMARR_JOB_TIMEOUT": "2", "NOMARR_MAX_ATTEMPTS": "2"},
    ).start()
    try:
        job, _ = jobs.queue_file(long_track)
        job = wait_until(
            lambda: Job.objects.filter(pk=job.pk, status__in=Job.FINISHED).first(),
            120,
            "the job to fail",
        )
    finally:
        workers.stop()
    assert (job.status, job.attempts) == ("error", 2)
    assert job.error == "timed out after 2 s, 2 attempts"
    client = Client()
    client.force_login(admin_user)
    assert "timed out after 2 s, 2 attempts" in client.get("/").content.decode()


def test_a_job_whose_worker_died_on_its_last_attempt_fails_with_the_reason(
    library, dead_worker, settings
):
    settings.NOMARR_MAX_ATTEMPTS = 3
    job = running_job(library / "a.flac", dead_worker, attempts=3)
    assert jobs.reset_stuck() == 1
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("error", 3)
    assert job.error == "the worker died (killed or crashed), 3 attempts"
    assert job.finished_at is not None


def test_an_earlier_attempt_puts_the_job_back_with_its_reason(library, dead_worker, settings):
    settings.NOMARR_MAX_ATTEMPTS = 3
    died = running_job(library / "a.flac", dead_worker, attempts=1)
    overdue = settings.NOMARR_JOB_TIMEOUT / 60 + 5
    slow = running_job(library / "b.flac", "elsewhere:1", attempts=2, minutes_ago=overdue)
    assert jobs.reset_stuck() == 2
    died.refresh_from_db()
    slow.refresh_from_db()
    assert (died.status, died.attempts, died.worker) == ("pending", 1, "")
    assert died.error == "attempt 1: the worker died (killed or crashed); queued again"
    # A worker on another host is only known by the timeout.
    assert (slow.status, slow.attempts) == ("pending", 2)
    assert slow.error == f"attempt 2: timed out after {settings.NOMARR_JOB_TIMEOUT} s; queued again"


def test_a_job_nomarr_stopped_itself_gets_its_attempt_back(library, dead_worker, settings):
    settings.NOMARR_MAX_ATTEMPTS = 1
    job = running_job(library / "a.flac", dead_worker, attempts=1)
    assert jobs.reset_stuck(interrupted=True) == 1
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == ("pending", 0, "")


def test_retrying_a_failed_job_gives_it_its_attempts_afresh(library, dead_worker, settings):
    settings.NOMARR_MAX_ATTEMPTS = 1
    job = running_job(library / "a.flac", dead_worker, attempts=1)
    jobs.reset_stuck()
    job.refresh_from_db()
    assert job.status == "error"
    assert jobs.reset_errors() == 1
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == ("pending", 0, "")
