"""POST /api/v1/tag under load: latency (p50, p99) and throughput on loopback.

Starts a real server (`manage.py serve --no-workers`, i.e. daphne; daphne directly
if that command is missing) on 127.0.0.1 with a temporary SQLite database and a
temporary library of real audio files (hard links of one real clip), creates an
API key with `create_api_key`, and drives the server with concurrent clients:
threads, each with its own `requests.Session` (keep-alive), spread over several
client processes so the clients' own GIL does not set the pace.

Scenarios, each with a bounded number of requests:

- new paths: every request queues a file that has no live job (a job row and a
  django-q2 run message are inserted: the expensive path);
- repeated path: every request names one file that is already queued (the
  existing job is returned: a read only).

The baseline, measured in the same run, is one client sending requests one after
another. Closed-loop runs send as fast as answers come (so by Little's law the
latency is clients / throughput); open-loop runs offer a fixed request rate shared
by the clients, as Lidarr instances posting imports would. "cpu ms" is the server's
CPU time (all its processes) per request. No worker runs, so jobs stay pending.
Target: p99 < 50 ms at 200 clients.

    .venv/bin/python benchmarks/bench_api.py [--files 2000] [--clients 50,200]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
CLIP = BASE_DIR.parent / "shared/fixtures/audio/joram-moments_of_clarity-08-solipsism-59-88.mp3"
PYTHON = (
    str(BASE_DIR / ".venv/bin/python")
    if (BASE_DIR / ".venv/bin/python").exists()
    else sys.executable
)
TARGET_P99_MS = 50.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_library(root: Path, count: int) -> list[Path]:
    """count real audio files (hard links of the clip, copies if links fail), 100 a folder."""
    first = root / "Artist 000" / "Album" / "000.mp3"
    first.parent.mkdir(parents=True)
    shutil.copyfile(CLIP, first)
    files = [first]
    for n in range(1, count):
        target = root / f"Artist {n // 100:03d}" / "Album" / f"{n:03d}.mp3"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(first, target)
        except OSError:
            shutil.copyfile(first, target)
        files.append(target)
    return files


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.stdout


def start_server(env: dict, port: int) -> subprocess.Popen:
    if (BASE_DIR / "tagging/management/commands/serve.py").exists():
        argv = [PYTHON, "manage.py", "serve", "--no-workers", "--host", "127.0.0.1"]
        argv += ["--port", str(port)]
    else:
        argv = [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        argv += ["nomarr_site.asgi:application"]
    return subprocess.Popen(
        argv,
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_ready(base: str, key: str, server: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            answer = requests.get(f"{base}/api/v1/info", headers=auth(key), timeout=30)
            if answer.status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not answer in time")


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by every process in a process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ...
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


# --- load ----------------------------------------------------------------------------


class Client:
    """One client's keep-alive connection: `requests.Session`, or the standard
    library's http.client (less CPU per request, which matters when the clients
    share the machine with the server)."""

    def __init__(self, url: str, key: str, kind: str):
        self.url, self.kind = urlsplit(url), kind
        self.headers = {**auth(key), "Content-Type": "application/json"}
        self.session = requests.Session() if kind == "requests" else None
        self.conn: http.client.HTTPConnection | None = None
        if self.session is None:
            # Connect now, before the clock starts: 200 clients connecting at once
            # would measure the server's listen backlog, not the API.
            self.conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=60)
            self.conn.connect()

    def post(self, body: dict) -> int:
        data = json.dumps(body).encode()
        if self.session is not None:
            return self.session.post(self.url.geturl(), data=data, headers=self.headers).status_code
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=60)
            try:
                self.conn.request("POST", self.url.path, body=data, headers=self.headers)
                answer = self.conn.getresponse()
                answer.read()
                return answer.status
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _client_process(url, key, work, threads, barrier, results, interval, offset, kind) -> None:
    """One client process: `threads` threads share out `work` (a list of paths).

    interval 0: each client sends its next request as soon as the last is answered
    (closed loop). Otherwise each client sends one request every `interval` seconds
    on a fixed schedule (open loop), and a latency counts from the scheduled time,
    so a slow answer that delays the next request is not hidden."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    chunks = [work[i::threads] for i in range(threads)]
    times: list[float] = []

    def client(n: int, paths: list[str]) -> None:
        mine, seen = [], Counter()
        try:
            connection = Client(url, key, kind)
        finally:
            barrier_local.wait()
        begin = time.perf_counter() + (offset + n / threads) * interval
        for k, path in enumerate(paths):
            started = time.perf_counter()
            if interval:
                started = begin + k * interval
                time.sleep(max(0.0, started - time.perf_counter()))
            try:
                seen[connection.post({"path": path})] += 1
            except (requests.RequestException, http.client.HTTPException, OSError) as exc:
                seen[type(exc).__name__] += 1
                continue
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            statuses.update(seen)

    barrier_local = threading.Barrier(threads + 1)
    pool = [threading.Thread(target=client, args=(n, c)) for n, c in enumerate(chunks)]
    for thread in pool:
        thread.start()
    barrier.wait()  # every process ready: go together
    times.append(time.time())
    barrier_local.wait()
    for thread in pool:
        thread.join()
    times.append(time.time())
    results.put((latencies, dict(statuses), times[0], times[1]))


CLIENT_KIND = "http.client"


def load(base: str, key: str, paths: list[str], clients: int, rate: float = 0.0) -> dict:
    """Send one POST /tag per path from `clients` concurrent clients; the figures.

    rate 0: closed loop (as fast as answers come); else open loop at `rate` requests
    a second in all, shared evenly by the clients."""
    interval = clients / rate if rate else 0.0
    processes = max(1, min(clients, os.cpu_count() or 1, 8))
    per_process = [
        clients // processes + (1 if i < clients % processes else 0) for i in range(processes)
    ]
    work = [paths[i::processes] for i in range(processes)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(
            target=_client_process,
            args=(
                f"{base}/api/v1/tag",
                key,
                work[i],
                per_process[i],
                barrier,
                results,
                interval,
                i / processes / max(1, per_process[i]),
                CLIENT_KIND,
            ),
        )
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    gathered = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    latencies = sorted(x for lat, _, _, _ in gathered for x in lat)
    statuses: Counter = Counter()
    for _, seen, _, _ in gathered:
        statuses.update(seen)
    elapsed = max(end for *_, end in gathered) - min(start for *_, start, _ in gathered)
    return {
        "rate": rate,
        "clients": clients,
        "requests": len(paths),
        "statuses": dict(statuses),
        "throughput": len(latencies) / elapsed if elapsed else 0.0,
        "p50": percentile(latencies, 50),
        "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] * 1000 if latencies else float("nan"),
        "mean": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index] * 1000


def flush(base: str, key: str) -> None:
    answer = requests.post(
        f"{base}/api/v1/admin/queue/flush",
        json={"statuses": ["pending"]},
        headers=auth(key),
        timeout=120,
    )
    answer.raise_for_status()


def row(name: str, figures: dict) -> str:
    statuses = ",".join(f"{k}x{v}" for k, v in sorted(figures["statuses"].items(), key=str))
    mode = f"{figures['rate']:.0f}/s" if figures["rate"] else "closed"
    return (
        f"{name:<15} {figures['clients']:>7} {mode:>7} {figures['requests']:>8} "
        f"{figures['throughput']:>7.0f} {figures['p50']:>8.1f} {figures['p90']:>8.1f} "
        f"{figures['p99']:>8.1f} {figures['max']:>8.1f} {figures['server_cpu']:>7.2f}  {statuses}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="audio files in the library")
    parser.add_argument("--clients", default="50,200", help="concurrent clients, comma-separated")
    parser.add_argument("--baseline", type=int, default=300, help="requests of the 1-client run")
    parser.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="offered requests a second of the open-loop runs (0: skip them)",
    )
    parser.add_argument(
        "--hold-db",
        action="store_true",
        help="keep one extra connection to the database open during the run, as a "
        "worker process would: then a request closing its connection does not "
        "checkpoint and delete SQLite's WAL",
    )
    parser.add_argument(
        "--client",
        choices=["http.client", "requests"],
        default="http.client",
        help="HTTP client of the load threads (both keep their connection open)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    global CLIENT_KIND
    CLIENT_KIND = args.client
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    if not CLIP.is_file():
        raise SystemExit(f"missing the audio fixture {CLIP}")

    workdir = Path(tempfile.mkdtemp(prefix="nomarr-bench-api-"))
    server = held = None
    try:
        library = workdir / "library"
        files = make_library(library, args.files)
        database = workdir / "db.sqlite3"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "nomarr_site.settings",
            "DATABASE_URL": f"sqlite:///{database}",
            "NOMARR_LIBRARY_ROOTS": str(library.resolve()),
            "NOMARR_CACHE_DIR": str(workdir / "cache"),
            "NOMARR_SECRET_KEY": "benchmark-only-secret-key",
            "NOMARR_LOG_LEVEL": "WARNING",
            "NOMARR_TAG_WAIT": "0",
        }
        manage(env, "migrate", "--verbosity", "0")
        key = manage(env, "create_api_key", "bench").strip().splitlines()[-1]
        if args.hold_db:
            held = sqlite3.connect(database)
            held.execute("SELECT count(*) FROM tagging_job").fetchall()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(env, port)
        wait_ready(base, key, server)

        paths = [str(f.resolve()) for f in files]
        print(
            f"POST /api/v1/tag on {base} (daphne, SQLite{', db held open' if held else ''}), "
            f"{len(paths)} real files, {os.cpu_count()} CPUs shared by server and clients "
            f"({args.client}; load average before: {os.getloadavg()[0]:.1f}); no worker running"
        )
        header = (
            f"{'scenario':<15} {'clients':>7} {'load':>7} {'requests':>8} {'req/s':>7} "
            f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu ms':>7}  statuses"
        )
        print(header)
        print("-" * len(header))
        # Warm up: a few requests so every code path is imported and compiled.
        load(base, key, paths[:20], 1)
        flush(base, key)
        figures = []

        def measure(name: str, work: list[str], n: int, rate: float = 0.0) -> None:
            cpu = group_cpu_seconds(server.pid)
            result = load(base, key, work, n, rate)
            result["server_cpu"] = (group_cpu_seconds(server.pid) - cpu) / len(work) * 1000
            figures.append((name, result))
            print(row(*figures[-1]), flush=True)

        measure("new (baseline)", paths[: args.baseline], 1)
        measure("repeated (base)", [paths[0]] * args.baseline, 1)
        for n in clients:
            flush(base, key)
            measure("new paths", paths, n)
            measure("repeated path", [paths[0]] * len(paths), n)
            if args.rate:
                flush(base, key)
                measure("new paths", paths, n, args.rate)
        jobs = requests.get(f"{base}/api/v1/list?limit=1", headers=auth(key), timeout=60).json()
        print(f"jobs queued after the last run: {jobs['count']} (expected {len(paths)})")
        for name, fig in figures:
            if fig["clients"] == 200:
                verdict = "meets" if fig["p99"] < TARGET_P99_MS else "misses"
                mode = f"at {fig['rate']:.0f} req/s offered" if fig["rate"] else "closed loop"
                print(
                    f"{name}, 200 clients, {mode}: p99 {fig['p99']:.1f} ms {verdict} the "
                    f"{TARGET_P99_MS:.0f} ms target"
                )
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        if held is not None:
            held.close()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
