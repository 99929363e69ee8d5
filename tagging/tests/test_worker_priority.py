"""The tagging workers run at a lower CPU priority than the web server
(NOMARR_WORKER_NICE), so pages and the API stay quick while analysis takes the cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django_q.models import Schedule
from django_q.status import Stat

from nomarr_site.workers import descendants
from tagging.tests.support import ManageProcess, cmdline, free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def autogroups() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def autogroup_nice(pid: int) -> int | None:
    """Reads "/autogroup-85 nice 0" as 0; None for a process in the kernel's default group
    (a session never started by setsid, e.g. a container's first), which reads empty
    and has no niceness of its own."""
    text = Path(f"/proc/{pid}/autogroup").read_text().split()
    return int(text[-1]) if text else None


def test_the_workers_run_niced_and_the_web_server_does_not(tmp_path):
    Schedule.objects.all().delete()
    music = tmp_path / "music"
    music.mkdir()
    ours = os.nice(0)
    serve = ManageProcess(
        ["serve", "--port", str(free_port()), "--web-processes", "2"],
        music,
        tmp_path / "serve.log",
        env={"NOMARR_WORKER_NICE": "7"},
    )

    def cluster() -> Stat | None:
        family = set(descendants(serve.proc.pid))
        return next((s for s in Stat.get_all() if s.sentinel in family and s.workers), None)

    serve.start(ready=lambda: cluster() is not None)
    try:
        stat = wait_until(cluster, 30, "the cluster's workers")
        family = descendants(serve.proc.pid)
        web = [pid for pid in family if "nomarr_site.webserver" in cmdline(pid)]
        # `manage.py workers` and the cluster's processes forked from it.
        cluster_pids = [pid for pid in family if "manage.py workers" in cmdline(pid)]
        assert len(web) == 2 and len(cluster_pids) >= 4  # + sentinel, monitor, pusher, worker
        assert stat.sentinel in cluster_pids and set(stat.workers) <= set(cluster_pids)
        for pid in cluster_pids:
            assert os.getpriority(os.PRIO_PROCESS, pid) == max(7, ours), cmdline(pid)
        for pid in [serve.proc.pid, *web]:
            assert os.getpriority(os.PRIO_PROCESS, pid) == ours
        if autogroups():  # the workers' session is niced too, the web processes' not
            assert autogroup_nice(cluster_pids[0]) == 7
            assert all(autogroup_nice(pid) in (0, None) for pid in web)
    finally:
        serve.stop()


def test_a_niceness_out_of_range_is_refused_naming_the_variable(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nomarr_site.test_settings",
        "NOMARR_WORKER_NICE": "25",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "workers"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "NOMARR_WORKER_NICE" in result.stderr and "at most 19" in result.stderr
