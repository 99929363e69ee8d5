"""The API under load: POST /api/v1/tag from 200 clients, and Lidarr's album import.

    .venv/bin/python benchmarks/bench_api.py        # SQLite and PostgreSQL; 1 and 2 web processes
    .venv/bin/python benchmarks/bench_api.py --databases sqlite --web-processes 2 --files 1000
    .venv/bin/python benchmarks/bench_api.py --databases postgres --pool 0,20  # pool off, on

For each database (a temporary SQLite file; a temporary database on the PostgreSQL
server of --postgres, dropped afterwards) and each web process count, on a fresh
database and a fresh library of real audio files (hard links of one 29-s clip), it
starts `manage.py serve --web-processes N` with its worker (`manage.py workers`, the
ORM broker unless --redis), creates an API key with `create_api_key`, and measures:

- the worker alone: jobs finished a minute with the API idle, after its first job (a
  folder of files queued first, so the worker always has work);
- one client sending POST /api/v1/tag requests one after another (new paths);
- 200 closed-loop clients, every request a new path: req/s, p50/p99 latency (and p99
  without each client's first request, the wave the start sends all at once), errors
  (any answer but 202, and failed connections), the server's CPU ms a request, the
  load generator's own CPU ms a request, and the worker's jobs a minute during the
  load (against the idle rate). The clients (--client asyncio, the default) are
  coroutines in one process, each with a raw keep-alive HTTP/1.1 connection, sending
  its next request when its last is answered; --client http.client or requests runs
  them as threads spread over client processes (more CPU taken from the server);
- Lidarr's Download webhook for a 30-track album, one call after another: latency.

On PostgreSQL each run is made for every NOMARR_DB_POOL of --pool (0: a new connection
per request; N: a pool of at most N connections in each web process). One web process
without a pool is how `serve` ran before NOMARR_WEB_PROCESSES and NOMARR_DB_POOL: the
baseline, in the same run. Targets (issue 15): >= 2x the single process's req/s (92 req/s on this
2-core machine) with p99 <= 1 s and no errors at 200 clients; an album answered in
< 100 ms. The clients share the machine's CPUs with the server and the worker, so the
figures are a floor for a server whose clients are elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
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
TARGET_RATIO = 2.0
TARGET_P99_MS = 1000.0
TARGET_ALBUM_MS = 100.0
TODAY_REQ_S = 92.0
ALBUM = 30


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


def web_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by the web processes among pid's descendants
    (serve starts each child in a session of its own: a process group would miss them;
    the worker's analysis is not counted)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                web = b"nomarr_site.asgi:application" in (entry / "cmdline").read_bytes()
            except OSError:
                continue
            # fields after "(comm)": state ppid pgrp ... utime(11) stime(12)
            cpu = (int(fields[11]) + int(fields[12])) / ticks
            stats[int(entry.name)] = (int(fields[1]), cpu, web)
    family, grew = {pid}, True
    while grew:
        more = {p for p, (ppid, _, _) in stats.items() if ppid in family} - family
        family |= more
        grew = bool(more)
    return sum(cpu for p, (_, cpu, web) in stats.items() if p in family and web)


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


CLIENT_KIND = "asyncio"
TRACE = ""  # --trace: where the asyncio clients write each request's latency


class Refused(Exception):
    """An answer that is not HTTP/1.1 as the raw client reads it."""


async def _read_answer(reader) -> int:
    """Read one HTTP/1.1 answer off a keep-alive connection; its status code.
    Minimal parsing: the status line, Content-Length or chunked, nothing else."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = None, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        raise Refused("answer without a length on a keep-alive connection")
    return status


def _async_client_process(url, key, paths, clients, results, interval, trace_to="") -> None:
    """All `clients` closed-loop (or open-loop, interval > 0) clients in one process:
    asyncio, one raw keep-alive HTTP/1.1 connection each, opened before the clock
    starts. Much less CPU a request than threads with http.client, which matters
    because the clients share the machine's CPUs with the server. Every answer's
    status is counted (only 202 is a success); latency from send (or from the
    scheduled time, open loop) to the answer's last byte."""
    parts = urlsplit(url)
    host, port, target = parts.hostname, parts.port, parts.path
    prefix = (
        f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    chunks = [paths[i::clients] for i in range(clients)]

    async def main():
        conns = [await asyncio.open_connection(host, port) for _ in range(clients)]
        latencies: list[float] = []
        later: list[float] = []  # every request but each client's first
        trace: list[tuple[float, float, int]] = []
        statuses: Counter = Counter()
        start_cpu = resource.getrusage(resource.RUSAGE_SELF)
        begin = time.perf_counter()
        wall_start = time.time()

        async def client(n: int, reader, writer, mine: list[str]) -> None:
            first = begin + (n / clients) * interval
            for k, path in enumerate(mine):
                started = time.perf_counter()
                if interval:
                    started = first + k * interval
                    await asyncio.sleep(max(0.0, started - time.perf_counter()))
                body = json.dumps({"path": path}).encode()
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    writer.write(b"%s%d\r\n\r\n%s" % (prefix, len(body), body))
                    statuses[await _read_answer(reader)] += 1
                except (OSError, asyncio.IncompleteReadError, Refused, ValueError) as exc:
                    statuses[type(exc).__name__] += 1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    continue
                latencies.append(time.perf_counter() - started)
                if k:
                    later.append(latencies[-1])
                trace.append((wall_start + started - begin, latencies[-1], n))
            if writer is not None:
                writer.close()

        await asyncio.gather(*(client(n, r, w, chunks[n]) for n, (r, w) in enumerate(conns)))
        wall_end = time.time()
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        used = (cpu.ru_utime - start_cpu.ru_utime) + (cpu.ru_stime - start_cpu.ru_stime)
        if trace_to:  # send time (Unix time), latency (s), client
            Path(trace_to).write_text("".join(f"{t:.3f} {lat:.4f} {n}\n" for t, lat, n in trace))
        return latencies, dict(statuses), wall_start, wall_end, used, later

    results.put(asyncio.run(main()))


def load(base: str, key: str, paths: list[str], clients: int, rate: float = 0.0) -> dict:
    """Send one POST /tag per path from `clients` concurrent clients; the figures.

    rate 0: closed loop (as fast as answers come); else open loop at `rate` requests
    a second in all, shared evenly by the clients."""
    interval = clients / rate if rate else 0.0
    if CLIENT_KIND == "asyncio":
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(
            target=_async_client_process,
            args=(f"{base}/api/v1/tag", key, paths, clients, queue, interval, TRACE),
        )
        proc.start()
        lat, seen, start, end, client_cpu, later = _result_of(queue, [proc])
        proc.join()
        gathered = [(lat, seen, start, end)]
        figures = _figures(gathered, rate, clients, paths, client_cpu)
        # The start sends every client's first request at once: the last of those wait
        # for all of them before, and for cold lanes. p99 without that wave too.
        figures["p99_later"] = percentile(sorted(later), 99)
        return figures
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
    gathered = [_result_of(results, procs) for _ in procs]
    for proc in procs:
        proc.join()
    return _figures(gathered, rate, clients, paths, None)


def _result_of(queue, procs, timeout: float = 600):
    """The next result a client process puts on queue; SystemExit if they all died
    without one (instead of waiting the whole timeout)."""
    import queue as queues

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return queue.get(timeout=1)
        except queues.Empty:
            if not any(proc.is_alive() for proc in procs):
                try:
                    return queue.get(timeout=1)
                except queues.Empty:
                    raise SystemExit("the load's client processes died") from None
    raise SystemExit("the load's clients did not finish in time")


def _figures(gathered, rate, clients, paths, client_cpu) -> dict:
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
        # The load generator's own CPU ms a request (asyncio client only), taken from
        # the same 2 CPUs as the server's.
        "client_cpu": client_cpu / len(paths) * 1000 if client_cpu is not None else None,
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index] * 1000


def start_server(env: dict, port: int, processes: int, log: Path) -> subprocess.Popen:
    argv = [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--web-processes", str(processes)]
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def wait_ready(base: str, key: str, server: subprocess.Popen, timeout: float = 180) -> None:
    """The API answers and a worker is alive (GET /health is 200)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            if requests.get(f"{base}/health", timeout=30).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server (or its worker) did not come up in time")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def done_count(base: str, key: str) -> int:
    answer = requests.get(f"{base}/api/v1/list?limit=1&status=done", headers=auth(key), timeout=60)
    answer.raise_for_status()
    return answer.json()["count"]


def worker_rate(base: str, key: str, seconds: float) -> float:
    """Jobs the worker finishes a minute over the next `seconds`."""
    before, started = done_count(base, key), time.monotonic()
    time.sleep(seconds)
    return (done_count(base, key) - before) / (time.monotonic() - started) * 60


def post_tag(base: str, key: str, path: str) -> None:
    requests.post(f"{base}/api/v1/tag", json={"path": path}, headers=auth(key), timeout=120)


def album_calls(base: str, key: str, tracks: list[str], calls: int) -> dict:
    """Lidarr's Download webhook for a 30-track album, `calls` times one after another."""
    latencies, statuses = [], Counter()
    with requests.Session() as session:
        for n in range(calls):
            body = {
                "eventType": "Download",
                "artist": {"id": n, "name": f"Artist {n}", "path": "/music"},
                "trackFiles": [
                    {"id": i, "path": p, "quality": "MP3-320", "size": 1}
                    for i, p in enumerate(tracks[n * ALBUM : (n + 1) * ALBUM])
                ],
                "isUpgrade": False,
            }
            started = time.perf_counter()
            try:
                answer = session.post(f"{base}/api/v1/lidarr", json=body, auth=("lidarr", key))
            except requests.ConnectionError as exc:
                statuses[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[answer.status_code] += 1
    latencies.sort()
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] * 1000 if latencies else float("nan"),
        "statuses": dict(statuses),
    }


def errors_of(statuses: dict) -> int:
    return sum(v for k, v in statuses.items() if k != 202)


def postgres_database(server: str, name: str, drop: bool = False) -> str:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not drop:
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def one_run(args, database: str, processes: int, pool: int, nice: int, workdir: Path) -> dict:
    """Everything measured for one database, web process count, pool size and worker
    niceness."""
    run_dir = workdir / f"{database}-{processes}-{pool}-{nice}"
    library = run_dir / "library"
    extra = args.album_calls * ALBUM
    files = make_library(library, args.files + args.baseline + 100 + extra)
    pg_name = f"nomarr_bench_api_{os.getpid()}_{processes}_{pool}_{nice}"
    if database == "sqlite":
        url = f"sqlite:///{run_dir / 'db.sqlite3'}"
    else:
        url = postgres_database(args.postgres, pg_name)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nomarr_site.settings",
        "DATABASE_URL": url,
        "NOMARR_LIBRARY_ROOTS": str(library.resolve()),
        "NOMARR_DATA_DIR": str(run_dir),
        "NOMARR_CACHE_DIR": str(run_dir / "cache"),
        "NOMARR_SECRET_KEY": "benchmark-only-secret-key",
        "NOMARR_LOG_LEVEL": "WARNING",
        "NOMARR_TAG_WAIT": "0",
        "NOMARR_Q_NAME": f"bench-api-{os.getpid()}-{database}-{processes}-{pool}",
        "NOMARR_DB_POOL": str(pool),
        "NOMARR_WORKER_NICE": str(nice),
    }
    if args.redis:
        env["NOMARR_REDIS_URL"] = args.redis
    server = None
    try:
        manage(env, "migrate", "--verbosity", "0")
        key = manage(env, "create_api_key", "bench").strip().splitlines()[-1]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(env, port, processes, run_dir / "serve.log")
        wait_ready(base, key, server)
        paths = [str(f.resolve()) for f in files]
        # The worker's own work: its first folder (100 files) queued before anything.
        post_tag(base, key, str(Path(paths[0]).parent))
        paths = paths[100:]
        load(base, key, paths[:10], 1)  # warm-up: every code path imported
        deadline = time.monotonic() + 600
        while done_count(base, key) == 0 and time.monotonic() < deadline:
            time.sleep(1)  # the worker's first job: models loaded, running
        baseline_paths, paths = paths[10 : 10 + args.baseline], paths[10 + args.baseline :]
        album_paths, paths = paths[:extra], paths[extra:]
        idle = worker_rate(base, key, args.worker_window)
        figures = {
            "database": database,
            "processes": processes,
            "pool": pool,
            "nice": nice,
            "idle_jobs_min": idle,
        }
        figures["baseline"] = load(base, key, baseline_paths, 1)
        before, started = done_count(base, key), time.monotonic()
        cpu = web_cpu_seconds(server.pid)
        figures["load"] = load(base, key, paths[: args.files], args.clients)
        figures["load"]["server_cpu"] = (web_cpu_seconds(server.pid) - cpu) / args.files * 1000
        figures["loaded_jobs_min"] = (
            (done_count(base, key) - before) / (time.monotonic() - started) * 60
        )
        figures["album"] = album_calls(base, key, album_paths, args.album_calls)
        return figures
    finally:
        if server is not None:
            stop_server(server)
        if database != "sqlite":
            postgres_database(args.postgres, pg_name, drop=True)
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)


def report(runs: list[dict]) -> None:
    header = (
        f"{'database':<10} {'web':>3} {'pool':>4} {'nice':>4} {'scenario':<22} {'req/s':>7} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6} {'cpu ms':>7}  worker jobs/min"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        for name, fig in (("1 client, new paths", r["baseline"]), ("200 clients, new", r["load"])):
            worker = (
                f"{r['loaded_jobs_min']:.1f} (idle {r['idle_jobs_min']:.1f})"
                if fig is r["load"]
                else ""
            )
            cpu = f"{fig['server_cpu']:7.2f}" if "server_cpu" in fig else f"{'':>7}"
            if fig.get("client_cpu") is not None and fig is r["load"]:
                worker += f"  clients' own cpu {fig['client_cpu']:.2f} ms/req"
            if "p99_later" in fig and fig is r["load"]:
                worker += f"  p99 without the first wave {fig['p99_later']:.0f} ms"
            print(
                f"{r['database']:<10} {r['processes']:>3} {r['pool']:>4} {r['nice']:>4} {name:<22} "
                f"{fig['throughput']:>7.0f} "
                f"{fig['p50']:>8.1f} {fig['p99']:>8.1f} {fig['max']:>8.1f} "
                f"{errors_of(fig['statuses']):>6} {cpu}  {worker}  statuses {fig['statuses']}"
            )
        a = r["album"]
        print(
            f"{r['database']:<10} {r['processes']:>3} {r['pool']:>4} {r['nice']:>4} "
            f"{'Lidarr album (30)':<22} {'':>7} "
            f"{a['p50']:>8.1f} {a['p99']:>8.1f} {a['max']:>8.1f} "
            f"{sum(v for k, v in a['statuses'].items() if k != 202):>6}  statuses {a['statuses']}"
        )
    print("\nverdicts")
    for database in dict.fromkeys(r["database"] for r in runs):
        mine = [r for r in runs if r["database"] == database]
        for r in mine:
            single = next(
                (
                    s
                    for s in mine
                    if s["processes"] == 1 and not s["pool"] and s["nice"] == r["nice"]
                ),
                None,
            )
            fig = r["load"]
            base = single["load"]["throughput"] if single else TODAY_REQ_S
            ratio = fig["throughput"] / base if base else float("nan")
            errors = errors_of(fig["statuses"])
            ok = ratio >= TARGET_RATIO and fig["p99"] <= TARGET_P99_MS and errors == 0
            against = (
                "1 process without a pool in this run"
                if single
                else f"today's {TODAY_REQ_S:.0f} req/s"
            )
            pooled = f", pool {r['pool']}" if r["pool"] else ""
            pooled += f", workers at nice {r['nice']}"
            print(
                f"  {database}, {r['processes']} web process(es){pooled}, "
                f"{fig['clients']} clients: "
                f"{fig['throughput']:.0f} req/s = {ratio:.2f}x {against}, "
                f"p99 {fig['p99']:.0f} ms, {errors} errors; worker {r['loaded_jobs_min']:.1f} "
                f"jobs/min under load vs {r['idle_jobs_min']:.1f} idle: "
                f"{'meets' if ok else 'misses'} the target "
                f"(>= {TARGET_RATIO:g}x, p99 <= {TARGET_P99_MS:.0f} ms, no errors)"
            )
            a = r["album"]
            verdict = "meets" if a["p99"] < TARGET_ALBUM_MS else "misses"
            print(
                f"    Lidarr album of {ALBUM} tracks: p50 {a['p50']:.0f} ms, p99 {a['p99']:.0f} "
                f"ms: {verdict} the {TARGET_ALBUM_MS:.0f} ms target"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="requests of the 200-client run")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--baseline", type=int, default=200, help="requests of the 1-client run")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--web-processes", default="1,2", help="comma-separated counts")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="", help="NOMARR_REDIS_URL for the runs")
    parser.add_argument(
        "--pool",
        default="0,20",
        help="comma-separated NOMARR_DB_POOL sizes for the PostgreSQL runs (0: no pool)",
    )
    parser.add_argument(
        "--worker-nice",
        default="10",
        help="comma-separated NOMARR_WORKER_NICE values (serve's default: 10; 0: the "
        "workers at the web server's priority)",
    )
    parser.add_argument("--album-calls", type=int, default=20)
    parser.add_argument(
        "--worker-window", type=float, default=30.0, help="seconds of the idle-worker rate"
    )
    parser.add_argument(
        "--client",
        choices=["asyncio", "http.client", "requests"],
        default="asyncio",
        help="the load's clients: one asyncio process with raw keep-alive HTTP/1.1 "
        "connections (least CPU), or threads with http.client or requests (all keep "
        "their connection open)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--trace",
        default="",
        help="file for each request of the last asyncio run: send time, latency, client",
    )
    args = parser.parse_args()
    global CLIENT_KIND, TRACE
    CLIENT_KIND = args.client
    TRACE = args.trace
    if not CLIP.is_file():
        raise SystemExit(f"missing the audio fixture {CLIP}")
    workdir = Path(tempfile.mkdtemp(prefix="nomarr-bench-api-"))
    print(
        f"POST /api/v1/tag and Lidarr's webhook; {os.cpu_count()} CPUs shared by server, "
        f"worker and clients ({args.client}); load average before: {os.getloadavg()[0]:.1f}"
    )
    runs = []
    try:
        for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
            pools = [int(n) for n in args.pool.split(",") if n.strip()]
            nices = [int(n) for n in args.worker_nice.split(",") if n.strip()]
            for processes, pool, nice in [
                (processes, pool, nice)
                for nice in nices
                for pool in (pools if database == "postgres" else [0])
                for processes in [int(n) for n in args.web_processes.split(",") if n.strip()]
            ]:
                runs.append(one_run(args, database, processes, pool, nice, workdir))
                r = runs[-1]
                print(
                    f"  done: {database}, {processes} web process(es), pool {pool}, "
                    f"nice {nice}: "
                    f"{r['load']['throughput']:.0f} req/s, p99 {r['load']['p99']:.0f} ms "
                    f"(load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    report(runs)


if __name__ == "__main__":
    main()
