"""A scan handed to the workers waits for one, however long the tagging queue before it.

`start_scan` claims the root in the request and sends the scan to the workers. A
scan that waited behind a long queue for more than STALE_AFTER used to be marked
abandoned by the next start, and never ran; a message lost with a dead cluster
left it waiting for good. The Scan table is the truth, as the Job table is for jobs.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker

from library import tasks
from library.models import Scan
from library.scanning import STALE_AFTER, ScanRefused, cancel_scans
from tagging.tests.support import ManageProcess, wait_until


@pytest.mark.django_db
def test_a_scan_waiting_for_a_worker_is_not_abandoned_by_the_next_start(add, root_row):
    add("a.flac")
    waiting = tasks.start_scan(root_row)
    long_ago = timezone.now() - timedelta(seconds=STALE_AFTER + 60)
    Scan.objects.filter(pk=waiting.pk).update(started_at=long_ago, updated_at=long_ago)

    with pytest.raises(ScanRefused, match="waiting for a worker"):
        tasks.start_scan(root_row)
    waiting.refresh_from_db()
    assert waiting.status == "running"
    # Its message comes at last: it runs, once.
    assert tasks.run_started_scan(waiting.pk) == f"scan #{waiting.pk} done"
    assert "no longer running" in tasks.run_started_scan(waiting.pk)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.seen) == ("done", 1)


@pytest.mark.django_db
def test_a_waiting_scan_that_is_cancelled_ends_at_once(add, root_row):
    add("a.flac")
    waiting = tasks.start_scan(root_row)
    assert cancel_scans(root_row) == 1
    waiting.refresh_from_db()
    assert (waiting.status, waiting.finished_at is not None) == ("cancelled", True)
    assert tasks.start_scan(root_row).status == "running"  # the root is free again


@pytest.mark.django_db(transaction=True)
def test_workers_that_start_run_a_scan_whose_message_was_lost(add, library, root_row, tmp_path):
    add("a.flac")
    waiting = tasks.start_scan(root_row)
    get_broker().purge_queue()  # what a cluster killed with the message leaves (Redis)

    workers = ManageProcess(["workers"], library, tmp_path / "workers.log").start()
    try:
        scan = wait_until(
            lambda: Scan.objects.filter(pk=waiting.pk).exclude(status="running").first(),
            60,
            "the scan to run",
        )
    finally:
        workers.stop()
    assert (scan.status, scan.seen) == ("done", 1), scan.message
