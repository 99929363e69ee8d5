"""`manage.py serve` runs the web processes and the workers, and stops them together."""

import base64
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings

from tagging.models import WorkerState
from tagging.tests.support import database_url, free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0]
    return state != "Z"


def websocket_first_message(port: int, path: str, cookie: str) -> str:
    """Open a websocket as a browser does (the handshake by hand) and read the first
    text frame the server sends."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: http://localhost:{port}\r\nCookie: {cookie}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request.encode())
        stream = sock.makefile("rb")
        status = stream.readline()
        assert b" 101 " in status, status
        while stream.readline() not in (b"\r\n", b""):
            pass
        head = stream.read(2)
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack(">H", stream.read(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", stream.read(8))[0]
        return stream.read(length).decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_serve_starts_web_and_workers_and_they_stop_with_it(
    tmp_path, sig, client, django_user_model
):
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nomarr_site.test_settings",
        "DATABASE_URL": database_url(),
        "NOMARR_Q_NAME": settings.Q_CLUSTER["name"],
        "NOMARR_PORT": str(port),
        "NOMARR_WEB_PROCESSES": "2",
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def answers():
            try:
                return requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=5).ok
            except requests.RequestException:
                return False

        wait_until(answers, 60, "the web server")
        wait_until(lambda: WorkerState.objects.workers_alive() > 0, 60, "the workers")
        children = children_of(proc.pid)
        assert len(children) == 3  # two web processes on one socket, and the workers
        assert "(2 web processes, workers)" in (tmp_path / "serve.log").read_text()
        # Live pages work whichever process a connection lands on (no Redis here: each
        # websocket watches the database).
        client.force_login(django_user_model.objects.create_user("watcher", password="x"))
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        for _ in range(4):
            assert 'id="count-pending"' in websocket_first_message(port, "/ws/dashboard/", cookie)
        # The first start creates an admin and says its password once.
        assert "Created the first user: admin / " in (tmp_path / "serve.log").read_text()
        started = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=60)
        wait_until(lambda: not any(alive(pid) for pid in children), 60, "children to stop")
        assert time.monotonic() - started < 30
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
