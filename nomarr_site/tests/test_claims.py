"""A claim names its process unambiguously: a reused pid does not keep a dead claim alive.

A job's claim used to be `host:pid`. After a container restart the host name is the
same and an unrelated process can get the dead worker's pid: its claim looked alive
for ever and its job was never put back. The claim now carries the process's start
time and the machine's boot (nomarr_site/workers.py). Real processes throughout; the
pid is really given again (the kernel's ns_last_pid, which needs root, as the
suite's machine and the Docker image run).
"""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from nomarr_site.workers import claim_is_dead, claim_pid, pid_alive, process_gone, worker_id
from tagging import jobs
from tagging.models import Job

pytestmark = pytest.mark.django_db

NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")
#: Prints the process's own claim, then waits until its stdin closes.
CLAIMANT = "from nomarr_site.workers import worker_id; print(worker_id(), flush=True); input()"


def claimant() -> tuple[subprocess.Popen, str]:
    """A real process that claims as a worker does: (the process, its claim)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLAIMANT],
        cwd=settings.BASE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def end(proc: subprocess.Popen) -> None:
    proc.communicate("\n", timeout=30)


@pytest.fixture
def reused_pid():
    """(the claim of a process that ended, a newer process that got its pid, its claim)."""
    try:
        NS_LAST_PID.write_text(NS_LAST_PID.read_text())
    except OSError as exc:
        pytest.skip(f"the kernel will not give a chosen pid here: {exc}")
    for _ in range(20):  # another process of the machine may take the pid first
        old, old_claim = claimant()
        end(old)
        NS_LAST_PID.write_text(str(old.pid - 1))
        new, new_claim = claimant()
        if new.pid == old.pid:
            break
        end(new)
    else:
        pytest.fail("could not get a pid given again in 20 tries")
    yield old_claim, new, new_claim
    if new.poll() is None:
        end(new)


def running(worker: str, path: str) -> Job:
    return Job.objects.create(path=path, status="running", worker=worker, started_at=timezone.now())


def test_a_claim_whose_pid_now_runs_a_newer_process_is_dead(reused_pid, library):
    old_claim, new, new_claim = reused_pid
    assert claim_pid(old_claim) == claim_pid(new_claim) == new.pid and pid_alive(new.pid)
    assert old_claim != new_claim

    assert process_gone(old_claim)
    assert claim_is_dead(old_claim, timezone.now(), timeout=3600)
    assert not process_gone(new_claim)
    assert not claim_is_dead(new_claim, timezone.now(), timeout=3600)
    # The reaper puts back the dead claim's job, and leaves the living one's alone.
    orphan = running(old_claim, str(library / "orphan.flac"))
    held = running(new_claim, str(library / "held.flac"))
    assert jobs.reset_stuck() == 1
    orphan.refresh_from_db()
    held.refresh_from_db()
    assert (orphan.status, orphan.worker, held.status) == ("pending", "", "running")

    end(new)
    assert process_gone(new_claim)


def test_an_old_host_pid_claim_is_still_read_by_its_pid():
    proc, claim = claimant()
    old_style = f"{socket.gethostname()}:{proc.pid}"
    assert claim_pid(old_style) == proc.pid
    assert not process_gone(old_style)
    end(proc)
    assert process_gone(old_style) and process_gone(claim)


def test_a_claim_from_another_boot_is_dead_though_pid_and_start_time_match():
    proc, claim = claimant()
    try:
        host, mark, pid = claim.split(":")
        boot, started = mark.split(".")
        earlier = f"{host}:{'0' * 8 if boot != '0' * 8 else '1' * 8}.{started}:{pid}"
        assert not process_gone(claim)
        assert process_gone(earlier)
    finally:
        end(proc)


def test_a_claim_of_another_host_is_never_known_gone():
    proc, claim = claimant()
    _, mark, pid = claim.split(":")
    end(proc)
    elsewhere = f"not-{socket.gethostname()}:{mark}:{pid}"
    assert claim_pid(elsewhere) is None and not process_gone(elsewhere)
    assert claim_is_dead(elsewhere, timezone.now(), timeout=3600) is False
    assert not process_gone("") and not process_gone("garbage")


def test_this_process_claims_with_its_start_time():
    host, mark, pid = worker_id().split(":")
    assert host == socket.gethostname() and pid.isdigit() and claim_pid(worker_id()) == int(pid)
    assert not process_gone(worker_id())
    assert mark.count(".") == 1 and mark.rpartition(".")[2].isdigit()
