"""`serve`'s web processes share the socket's connections evenly: a burst of keep-alive
clients is not taken by whichever process the kernel woke first."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from nomarr_site.webserver import SLACK, Board
from nomarr_site.workers import descendants
from tagging.tests.support import ManageProcess, cmdline, free_port, listening, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 40


def established_inodes(port: int) -> set[str]:
    """The socket inodes of the established connections to port (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def connections_of(pid: int, inodes: set[str]) -> int:
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


def test_a_burst_of_keep_alive_clients_is_shared_evenly_by_the_web_processes(library, tmp_path):
    port = free_port()
    serve = ManageProcess(
        ["serve", "--port", str(port), "--no-workers", "--web-processes", "2"],
        library,
        tmp_path / "serve.log",
    )
    clients: list[socket.socket] = []
    try:
        serve.start(ready=lambda: listening(port))
        web = wait_until(lambda: _web_processes(serve.proc.pid), 30, "two web processes")
        assert len(web) == 2
        wait_until(lambda: _both_answer(port, web), 60, "both web processes answering")
        wait_until(lambda: not established_inodes(port), 10, "the probes closed")
        # All at once, as 40 keep-alive clients starting together do; each then asks
        # for a page, so every connection is one a process took and answers.
        clients = [
            socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(CLIENTS)
        ]
        for sock in clients:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for sock in clients:
            assert sock.recv(64).startswith(b"HTTP/1.1 ")

        def shares() -> list[int] | None:
            inodes = established_inodes(port)
            held = [connections_of(pid, inodes) for pid in web]
            return held if sum(held) == CLIENTS else None

        held = wait_until(shares, 10, "every connection held by a web process")
        assert min(held) >= CLIENTS // 2 - 3, held  # 20 each, give or take a few
    finally:
        for sock in clients:
            sock.close()
        serve.stop()


def _both_answer(port: int, web: list[int]) -> bool:
    """Connections opened and kept until each web process holds one and has answered
    on it (a process still starting holds none); then all closed."""
    probes = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            probes.append(sock)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.recv(64)
            inodes = established_inodes(port)
            if all(connections_of(pid, inodes) for pid in web):
                return True
        return False
    finally:
        for sock in probes:
            sock.close()


def _web_processes(pid: int) -> list[int] | None:
    found = [child for child in descendants(pid) if "nomarr_site.webserver" in cmdline(child)]
    return found if len(found) == 2 else None


def test_a_process_takes_a_burst_several_at_a_time_within_the_slack(tmp_path):
    # Two processes' counters in one shared file, as serve makes it.
    shared = tmp_path / "board"
    shared.write_bytes(bytes(16))
    fd = os.open(shared, os.O_RDWR)
    try:
        first, second = Board(fd, 0, 2), Board(fd, 1, 2)
        assert first.room() == SLACK > 1  # both idle: a burst is taken several at once
        first.publish(SLACK)
        assert first.room() == 0 and second.room() == 2 * SLACK  # the first leaves the rest
        second.publish(SLACK + 1)
        assert first.room() == SLACK + 1 and second.room() == SLACK - 1
    finally:
        os.close(fd)
