"""Helpers for tests that run real Nomarr processes against the test database."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tagging.models import WorkerState


def database_url() -> str:
    """The test database, as a URL another process can open."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def cmdline(pid: int) -> str:
    """A process's command line, its arguments joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class ManageProcess:
    """A real `manage.py <command>` on the test database, in its own process group."""

    def __init__(self, argv: list[str], library: Path, log: Path, env: dict | None = None):
        self.argv, self.library, self.log_path, self.proc = argv, library, log, None
        self.extra_env = env or {}

    def start(self, ready=None) -> "ManageProcess":
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "nomarr_site.test_settings",
            "DATABASE_URL": database_url(),
            "NOMARR_LIBRARY_ROOTS": str(self.library),
            "NOMARR_Q_NAME": settings.Q_CLUSTER["name"],
            **self.extra_env,
            "PYTHONUNBUFFERED": "1",
        }
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", *self.argv],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ready = ready or (lambda: WorkerState.objects.workers_alive() > 0)
        wait_until(lambda: ready() or self.proc.poll() is not None, 60, " ".join(self.argv))
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def without_dac_override() -> tuple[str, ...]:
    """A command prefix under which root obeys file modes (no CAP_DAC_OVERRIDE /
    CAP_DAC_READ_SEARCH), so chmod 000 really locks it out; () when not root."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("tests run as root and setpriv (util-linux) is missing to drop its override")
    return (setpriv, "--bounding-set", "-dac_override,-dac_read_search")


def websocket_headers(user=None) -> list[tuple[bytes, bytes]]:
    """Headers a browser on this site sends when opening a websocket (with the
    session cookie of user, if given)."""
    from django.test import Client

    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers
