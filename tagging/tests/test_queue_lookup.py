"""Queueing finds a path's live job by the path, however long the queue is.

Asked for paths and statuses at once, SQLite's planner (no statistics) walked the
status index, every pending job, for each look-up: a first scan of a big library or a
busy API slowed down as its own queue grew. These tests read the plans of the queries
queueing really runs, on a queue of thousands of pending jobs, and what the jobs are.
"""

from __future__ import annotations

import pytest
from django.db import connection

from tagging import jobs
from tagging.models import Job

pytestmark = pytest.mark.django_db

QUEUED = 3000


@pytest.fixture
def long_queue(library):
    """QUEUED pending jobs and as many finished ones, under the library."""
    Job.objects.bulk_create(Job(path=str(library / f"queued-{n}.flac")) for n in range(QUEUED))
    Job.objects.bulk_create(
        Job(path=str(library / f"old-{n}.flac"), status=Job.Status.DONE) for n in range(QUEUED)
    )
    return library


class JobLookups:
    """The look-ups of the job table run while it is on, with their parameters bound
    as they ran (the plan of the same SQL with the values written in differs)."""

    def __init__(self):
        self.seen: list[tuple[str, tuple]] = []

    def __call__(self, execute, sql, params, many, context):
        if sql.startswith("SELECT") and '"tagging_job"' in sql.split("WHERE")[0]:
            self.seen.append((sql, tuple(params or ())))
        return execute(sql, params, many, context)


def plan(sql: str, params: tuple) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return " | ".join(str(row[-1]) for row in cursor.fetchall())


def test_it_finds_live_jobs_by_path_not_by_walking_the_queue(long_queue):
    if connection.vendor != "sqlite":
        pytest.skip("the plan read here is SQLite's")
    library = long_queue
    named = [str(library / f"queued-{n}.flac") for n in (5, 500)] + [
        str(library / f"new-{n}.flac") for n in range(5)
    ]
    lookups = JobLookups()
    with connection.execute_wrapper(lookups):
        answers = jobs.queue_files([library / name for name in named], checked=True)
    assert lookups.seen, "queueing looked nothing up"
    for sql, params in lookups.seen:
        steps = plan(sql, params)
        assert "status" not in steps, f"{sql[:100]}... walks the queue by status: {steps}"
    # What the user gets: the queued two are found, the five new ones created.
    assert [created for _, created in answers] == [False, False] + [True] * 5
    assert Job.objects.filter(status=Job.Status.PENDING).count() == QUEUED + 5


def test_a_forced_request_in_a_shared_batch_makes_the_waiting_job_forced(long_queue):
    library = long_queue
    waiting = str(library / "queued-7.flac")
    new = str(library / "new.flac")
    written, new_ids = jobs._queue_requests([([waiting, new], False), ([new, waiting], True)])
    first, second = written
    assert first[new][1] is True and second[new][1] is False  # created once, by the first
    assert first[new][0] is second[new][0]
    assert second[waiting][1] is False
    assert Job.objects.get(path=waiting, status=Job.Status.PENDING).force is True
    assert Job.objects.get(path=new).force is True  # the forced second request's too
    assert new_ids == [Job.objects.get(path=new).pk]


def test_a_renamed_file_finds_its_waiting_job_in_a_long_queue(long_queue):
    library = long_queue
    old = library / "queued-42.flac"
    lookups = JobLookups()
    with connection.execute_wrapper(lookups):
        result = jobs.follow_rename([old, library / "never-queued.flac"], library / "renamed.flac")
    if connection.vendor == "sqlite":
        for sql, params in lookups.seen:
            assert "status" not in plan(sql, params), sql
    assert result.outcome == "moved"
    assert Job.objects.get(pk=result.job.pk).path == str(library / "renamed.flac")
