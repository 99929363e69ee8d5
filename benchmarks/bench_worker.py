"""The tagging worker as `serve` runs it: a queue of distinct tracks, read ahead or not.

    .venv/bin/python benchmarks/bench_worker.py [--tracks 10] [--minutes 1.5] [--repeat 2]

Builds distinct MP3 tracks from the fixture clips (bench_pipeline.make_tracks), then,
for each way in turn (NOMARR_READ_AHEAD on: the worker decodes its next job's file
while this job's models run; off: each file opened at its turn, the baseline), on a
fresh SQLite database and a fresh copy of the tracks (the worker writes its tags into
them), queues every track with `manage.py queue` and starts `manage.py workers`
(django-q2's cluster, one worker, the ORM broker), and measures from the Job table:

- start: seconds from starting the workers to the first job finished (loading the
  models and the first track's analysis included; the heads' ONNX twins are made once
  before, by a warm-up `manage.py tag`, as an installation makes them once);
- steady: wall seconds per audio minute from the first job's end to the last's, over
  the tracks after the first (the queue's rate once the models are loaded), and jobs
  a minute;
- CPU seconds per audio minute of the whole worker tree (start-up included);
- the worker's peak resident memory (VmHWM of the cluster's processes: the one that
  loads the models, runs them and reads the next file ahead).

The ways alternate --repeat times, so a change of the machine's load hits both.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

from bench_pipeline import FIXTURE_MODELS, clip_duration, make_tracks  # noqa: E402

from nomarr_site.workers import descendants  # noqa: E402  (imports nothing of Django)

PYTHON = str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else sys.executable


def finished_times(db: Path) -> list[tuple[str, float, float]]:
    """(status, started, finished) of every finished job, in the order they finished."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        rows = conn.execute(
            "SELECT status, started_at, finished_at FROM tagging_job "
            "WHERE finished_at IS NOT NULL ORDER BY finished_at"
        ).fetchall()
    stamp = lambda text: datetime.fromisoformat(text).timestamp()  # noqa: E731
    return [(status, stamp(start), stamp(end)) for status, start, end in rows]


def peak_rss_mb(root: int) -> float:
    """The largest peak resident memory (VmHWM) among root's descendants, in MB: the
    cluster's worker process, the one that loads the models and reads ahead."""
    peak = 0.0
    for pid in descendants(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return peak


def nomarr_env(work: Path, data: Path, db: Path, **more: str) -> dict[str, str]:
    """A Nomarr process's environment: its data folder and SQLite database, the default
    models plus the fixture heads, and the heads' ONNX twins in one cache for every
    run (made once, by the warm-up, as an installation makes them once)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nomarr_site.settings",
        "DATABASE_URL": f"sqlite:///{db}",
        "NOMARR_DATA_DIR": str(data),
        "NOMARR_MODELS_DIR": f"{ROOT / 'models'}:{FIXTURE_MODELS}",
        "NOMARR_ONNX_CACHE": str(work / "onnx-cache"),
        "NOMARR_SECRET_KEY": "benchmark-only-secret-key",
        "NOMARR_LOG_FILE": "off",
        **more,
    }


def one_way(read_ahead: bool, tracks: list[Path], minutes: list[float], work: Path) -> dict:
    run = work / ("ahead" if read_ahead else "no-ahead")
    shutil.rmtree(run, ignore_errors=True)
    library = run / "music"
    library.mkdir(parents=True)
    for track in tracks:
        shutil.copyfile(track, library / track.name)
    db = run / "db.sqlite3"
    env = nomarr_env(
        work,
        run,
        db,
        NOMARR_LIBRARY_ROOTS=str(library),
        NOMARR_LOG_LEVEL="WARNING",
        NOMARR_Q_NAME=f"bench-worker-{os.getpid()}-{int(read_ahead)}",
        NOMARR_READ_AHEAD="true" if read_ahead else "false",
        NOMARR_WORKER_NICE="0",
    )
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], env=env, check=True, cwd=ROOT)
    files = sorted(library.glob("*.mp3"))
    subprocess.run(
        [*manage, "queue", *map(str, files)], env=env, check=True, cwd=ROOT, capture_output=True
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    worker = subprocess.Popen(
        [*manage, "workers"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=(run / "workers.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60 * (10 + sum(minutes) * 2)
        while len(finished_times(db)) < len(files):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"the workers stopped: {(run / 'workers.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        peak = peak_rss_mb(worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)  # the workers command alone: it stops its cluster
        try:
            worker.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = finished_times(db)
    statuses = {status for status, _, _ in done}
    if statuses != {"done"}:
        raise SystemExit(f"jobs ended {statuses}: {(run / 'workers.log').read_text()[-2000:]}")
    # The tracks are queued in name order and run in that order; the first is start-up.
    rest = sum(minutes[1:])
    steady = done[-1][2] - done[0][2]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "start": done[0][2] - started,
        "steady": steady / rest,
        "jobs_min": (len(done) - 1) / steady * 60,
        "cpu": cpu / sum(minutes),
        "peak": peak,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=1.5, help="length of each track")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nomarr-bench-worker-") as tmp:
        work = Path(tmp)
        (work / "tracks").mkdir()
        tracks = [p for p, _ in make_tracks(work / "tracks", args.tracks, args.minutes, args.seed)]
        tracks.sort()
        minutes = [clip_duration(p) / 60 for p in tracks]
        warm = subprocess.run(
            [PYTHON, str(ROOT / "manage.py"), "tag", "--dry-run", str(tracks[0])],
            env=nomarr_env(work, work, work / "warm.sqlite3"),
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if warm.returncode != 0:
            raise SystemExit(f"the warm-up failed: {warm.stderr[-2000:]}")
        print(
            f"worker benchmark: {len(tracks)} distinct tracks, {sum(minutes):.1f} audio minutes, "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
        )
        results: dict[bool, list[dict]] = {True: [], False: []}
        for n in range(args.repeat):
            for ahead in (False, True):
                r = one_way(ahead, tracks, minutes, work)
                results[ahead].append(r)
                print(
                    f"  run {n + 1}, read ahead {'on ' if ahead else 'off'}: first job done "
                    f"{r['start']:.1f} s after start; then {r['steady']:.2f} s wall per audio "
                    f"minute ({r['jobs_min']:.1f} jobs/min); {r['cpu']:.2f} CPU s per audio "
                    f"minute; worker peak RSS {r['peak']:.0f} MB "
                    f"(load average {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
        print("\nsummary (best of the runs; ratio = off / on)")
        for key, what in (
            ("steady", "s wall per audio minute"),
            ("start", "s to the first job"),
            ("cpu", "CPU s per audio minute"),
            ("peak", "MB worker peak RSS"),
        ):
            on = min(r[key] for r in results[True])
            off = min(r[key] for r in results[False])
            print(f"  {what:<26} read ahead on {on:6.2f}   off {off:6.2f}   ratio {off / on:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
