"""The chaos campaign: kill Nomarr's processes the hard way and count what survives.

Not part of the test suite: it takes minutes. Everything is real (`manage.py tag` and
`manage.py serve` with the models a server loads: models/ and the fixture heads) and
runs against a temporary library, database and data folder, on 127.0.0.1 only. Every
loop is bounded by a count and every wait by a deadline. Three campaigns:

1. **Writes.** `--tag-kills` times, `manage.py tag --force` on a fresh copy of a real
   file (the formats in turn) is killed with SIGKILL: most of the time the moment its
   temporary file appears plus a random part of the write's measured length (inside
   the write), every fourth time at a random point of the whole run. Each file is then
   judged from outside Nomarr: *untouched* (the same bytes), *tagged* (Nomarr's version
   tag readable, the audio packets identical by ffmpeg's hash, the user's tags as they
   were), or *damaged*. Temporary files left by the kills are counted, then again after
   the later runs in the same folders, then after a `manage.py scan`.
2. **Workers.** `manage.py serve` with its workers. `--idle-kills` times a worker that
   just finished a job (its pid is the job's `worker`) is killed, then a file is queued
   over the API; `--busy-kills` times the worker running a 3-minute track is killed
   mid-analysis. Figures: jobs done, stuck (not done within `--stuck-after` s: serve is
   then restarted so the next round starts clean), seconds from the kill to the job
   done, attempts used.
3. **The whole group.** `--group-kills` times, with jobs queued and one running, serve
   and every process under it are killed at once, and serve is started again: seconds
   from the restart until every queued job is done. Last, serve is stopped with SIGTERM:
   processes of its group still alive after NOMARR_STOP_GRACE are counted.

    .venv/bin/python benchmarks/chaos.py                     # about 15-25 min on 2 shared cores
    .venv/bin/python benchmarks/chaos.py --tag-kills 50 --idle-kills 10 --busy-kills 10
    .venv/bin/python benchmarks/chaos.py --only writes --tag-kills 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from nomarr_site.atomic import TEMP_PREFIX  # noqa: E402  (no Django: safe before setup)
from nomarr_site.workers import claim_pid, pid_alive  # noqa: E402
from tagging.tests.formats import AUDIO_FORMATS  # noqa: E402

SHARED = BASE_DIR.parent / "shared"
CLIP = SHARED / "fixtures/audio/joram-moments_of_clarity-08-solipsism-59-88.mp3"
FIXTURE_HEADS = SHARED / "fixtures/essentia-models"
PYTHON = (
    str(BASE_DIR / ".venv/bin/python")
    if (BASE_DIR / ".venv/bin/python").exists()
    else (sys.executable)
)
# The same encoders the test fixtures use (one list of formats Nomarr handles).
FORMATS = AUDIO_FORMATS
#: The user's own tags on every file; a write must keep them.
USER_TAGS = {"title": "Solipsism (chaos)", "artist": "Joram", "album": "Moments of Clarity"}


def say(text: str = "") -> None:
    print(text, flush=True)


# --- processes ----------------------------------------------------------------------


def children_of() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process under pid (serve's children lead sessions of their own, so a
    process group does not reach them: the parent links do)."""
    tree, found, todo = children_of(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still alive after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if pid_alive(pid)]
        if not left:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if pid_alive(pid)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- files ---------------------------------------------------------------------------


def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


def audio_hash(path: Path) -> str:
    """sha256 of the audio packets alone (the tests' hash): tags may change, audio never."""
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path),
         "-map", "0:a", "-c", "copy", "-f", "hash", "-hash", "sha256", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else f"unreadable: {done.stderr[-200:]}"


def user_tags(path: Path) -> dict[str, str]:
    """The user's tags, read by ffprobe (not by Nomarr's own reader)."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_entries",
         "format_tags:stream_tags", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        return {}
    data = json.loads(done.stdout or "{}")
    tags = {k.lower(): v for k, v in data.get("format", {}).get("tags", {}).items()}
    for stream in data.get("streams", []):
        tags.update({k.lower(): v for k, v in stream.get("tags", {}).items()})
    return {key: tags.get(key, "") for key in USER_TAGS}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Original:
    path: Path
    sha: str
    audio: str
    tags: dict[str, str]


def make_sources(folder: Path) -> tuple[dict[str, Original], Path]:
    """A 10-s file of each format with the user's tags (long enough to be analysed,
    short enough for many runs), and a 3-minute FLAC (a job that runs for a while)."""
    folder.mkdir(parents=True)
    meta = [arg for key, value in USER_TAGS.items() for arg in ("-metadata", f"{key}={value}")]
    sources = {}
    for fmt, codec in FORMATS.items():
        target = folder / f"source.{fmt}"
        ffmpeg(
            "-i", str(CLIP), "-vn", "-map_metadata", "-1", "-t", "10", *meta, *codec, str(target)
        )
        sources[fmt] = Original(target, sha256(target), audio_hash(target), user_tags(target))
    long_track = folder / "long.flac"
    ffmpeg("-stream_loop", "5", "-i", str(CLIP), "-vn", *meta, "-c:a", "flac", str(long_track))
    return sources, long_track


def temps(folder: Path) -> set[str]:
    try:
        return {name for name in os.listdir(folder) if name.startswith(TEMP_PREFIX)}
    except FileNotFoundError:
        return set()


def all_temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{TEMP_PREFIX}*")]


def verdict(path: Path, original: Original) -> str:
    """untouched, tagged, or "damaged: why" for a file that started as original."""
    from tagging import keys
    from tagging.tagfiles import read_tags

    if not path.exists():
        return "damaged: the file is gone"
    if sha256(path) == original.sha:
        return "untouched"
    try:
        version = read_tags(path, keys.namespace()).get(keys.version_key())
    except Exception as exc:
        return f"damaged: Nomarr cannot read it ({exc})"
    if not version:
        return "damaged: changed, but without Nomarr's version tag"
    if audio_hash(path) != original.audio:
        return "damaged: the audio packets changed"
    if user_tags(path) != original.tags:
        return f"damaged: the user's tags changed ({user_tags(path)})"
    return "tagged"


# --- the sandbox -----------------------------------------------------------------------


class Sandbox:
    """A temporary installation: data folder, SQLite database, library, API key."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.library = (workdir / "library").resolve()
        self.library.mkdir(parents=True)
        data = workdir / "data"
        data.mkdir()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "nomarr_site.settings",
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "NOMARR_DATA_DIR": str(data),
            "NOMARR_LIBRARY_ROOTS": str(self.library),
            "NOMARR_MODELS_DIR": f"{BASE_DIR / 'models'}:{FIXTURE_HEADS}",
            "NOMARR_Q_NAME": f"chaos-{os.getpid()}",
            "NOMARR_LOG_LEVEL": "WARNING",
            "NOMARR_STOP_GRACE": "3",
            "NOMARR_TAG_WAIT": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.logs = workdir / "logs"
        self.logs.mkdir()
        self.manage("migrate", "--verbosity", "0")
        # The driver reads the same database and cache as the processes it kills.
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("NOMARR_", "DJ"))})
        os.environ["DATABASE_URL"] = self.env["DATABASE_URL"]
        import django

        django.setup()
        from rest_framework_api_key.models import APIKey

        from library.models import LibraryRoot
        from library.roots import sync_settings_roots

        self.key = APIKey.objects.create_key(name="chaos")[1]
        # The campaign queues every job itself: the scheduled scan must not add its own.
        sync_settings_roots()
        LibraryRoot.objects.update(auto_tag=False)

    def manage(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = (self.logs / log_name).open("ab")
        return subprocess.Popen(
            [PYTHON, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


# --- 1. kill -9 during writes ----------------------------------------------------------


def run_tag_once(sandbox: Sandbox, target: Path, log: str) -> tuple[float, float, float]:
    """One whole `tag --force` run, watched: (seconds to the temp file appearing,
    seconds it existed, seconds in all)."""
    folder = target.parent
    started = time.monotonic()
    proc = sandbox.popen(["tag", "--force", str(target)], log)
    seen = gone = None
    deadline = started + 900
    while proc.poll() is None and time.monotonic() < deadline:
        now_temps = temps(folder)
        now = time.monotonic()
        if now_temps and seen is None:
            seen = now
        if seen is not None and gone is None and not now_temps:
            gone = now
        time.sleep(0.0005)
    total = time.monotonic() - started
    if proc.poll() is None:
        kill_all([proc.pid])
        raise SystemExit("calibration: `manage.py tag` did not finish in 900 s")
    if proc.returncode != 0 or seen is None:
        raise SystemExit(
            f"calibration: `manage.py tag` exited {proc.returncode}, "
            f"temp file seen: {seen is not None}; see {sandbox.logs / log}"
        )
    return seen - started, (gone or time.monotonic()) - seen, total


@dataclass
class KillFigures:
    kills: int = 0
    in_write: int = 0
    finished_first: int = 0
    verdicts: Counter = field(default_factory=Counter)
    damaged: list[str] = field(default_factory=list)
    temps_left_by_kills: int = 0
    temps_removed_by_later_runs: int = 0


def campaign_writes(sandbox: Sandbox, sources: dict[str, Original], kills: int, rng) -> dict:
    say(f"\n== 1. kill -9 of `manage.py tag --force` during writes ({kills} kills)")
    base = sandbox.library / "writes"
    calibration = base / "calibration" / "song.flac"
    calibration.parent.mkdir(parents=True)
    shutil.copyfile(sources["flac"].path, calibration)
    to_temp, window, total = run_tag_once(sandbox, calibration, "tag-calibration.log")
    say(
        f"calibration (flac, 10 s): temp file after {to_temp:.1f} s, for {window * 1000:.0f} ms; "
        f"run {total:.1f} s"
    )
    figures = KillFigures()
    formats = list(FORMATS)
    for n in range(kills):
        fmt = formats[n % len(formats)]
        folder = base / fmt
        folder.mkdir(exist_ok=True)
        target = folder / f"song-{n:03d}.{fmt}"
        shutil.copyfile(sources[fmt].path, target)
        before = temps(folder)
        anywhere = n % 4 == 3
        proc = sandbox.popen(["tag", "--force", str(target)], f"tag-{n:03d}.log")
        started = time.monotonic()
        deadline = started + max(120.0, total * 4)
        kill_at = started + rng.uniform(0.3, 1.1) * total if anywhere else None
        seen = None
        while proc.poll() is None and time.monotonic() < deadline:
            now = time.monotonic()
            if kill_at is None and seen is None and temps(folder) - before:
                seen = now
                # Somewhere inside the write (a little past its usual end, too).
                kill_at = now + rng.uniform(0.0, window * 1.2)
            if kill_at is not None and now >= kill_at:
                break
            time.sleep(0.0005)
        in_write = bool(temps(folder) - before)
        finished = proc.poll() is not None
        kill_all([proc.pid])
        proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # an ffmpeg it had started, if any
        except (ProcessLookupError, PermissionError):
            pass
        figures.kills += not finished
        figures.finished_first += finished
        figures.in_write += in_write and not finished
        judged = verdict(target, sources[fmt])
        figures.verdicts[judged.split(":")[0]] += 1
        if judged.startswith("damaged"):
            figures.damaged.append(f"{target.name}: {judged}")
        after = temps(folder)
        figures.temps_left_by_kills += len(after - before)
        figures.temps_removed_by_later_runs += len(before - after)
        say(
            f"kill {n + 1:>3}/{kills} {fmt:<4} {'anywhere' if anywhere else 'in write':<8} "
            f"at {time.monotonic() - started:6.2f} s: "
            f"{'finished first' if finished else 'killed'}"
            f"{', temp file present' if in_write and not finished else ''} -> {judged}"
            f"; temps here {len(after)}"
        )
    left = all_temps(base)
    scan = sandbox.manage("scan", timeout=900)
    after_scan = all_temps(base)
    return {
        "calibration": {"to_temp_s": to_temp, "write_ms": window * 1000, "run_s": total},
        "kills": figures.kills,
        "killed_in_write": figures.in_write,
        "finished_before_the_kill": figures.finished_first,
        "verdicts": dict(figures.verdicts),
        "damaged": figures.damaged,
        "temps_left_by_kills": figures.temps_left_by_kills,
        "temps_removed_by_later_runs": figures.temps_removed_by_later_runs,
        "temps_at_end": len(left),
        "temps_after_scan": len(after_scan),
        "scan": (scan.stdout.strip() or scan.stderr.strip()[-300:]),
    }


# --- 2. and 3. workers under serve ----------------------------------------------------------


class Serve:
    """`manage.py serve` with its workers, on a free loopback port."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {sandbox.key}"

    def start(self, wait_workers: bool = True, timeout: float = 180) -> float:
        """Start serve; the seconds until the API answers (and a worker is alive)."""
        from tagging.models import WorkerState

        self.starts += 1
        started = time.monotonic()
        self.proc = self.sandbox.popen(
            ["serve", "--host", "127.0.0.1", "--port", str(self.port)], f"serve-{self.starts}.log"
        )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"serve exited with {self.proc.returncode}; see its log")
            try:
                up = self.session.get(f"{self.base}/api/v1/info", timeout=10).status_code == 200
            except requests.RequestException:
                up = False
            if up and (not wait_workers or WorkerState.objects.workers_alive() > 0):
                return time.monotonic() - started
            time.sleep(0.2)
        raise SystemExit(f"serve did not come up in {timeout:.0f} s")

    def group(self) -> list[int]:
        return [self.proc.pid, *descendants(self.proc.pid)] if self.proc else []

    def stop(self) -> dict:
        """SIGTERM, as `docker stop` sends it: how long serve took, and what outlived it."""
        grace = float(self.sandbox.env["NOMARR_STOP_GRACE"])
        group = self.group()
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace + 30)
        except subprocess.TimeoutExpired:
            pass
        took = time.monotonic() - started
        survivors = wait_gone(group, max(0.0, grace + 1 - took))
        kill_all(survivors)
        return {"stop_s": took, "survivors": len(survivors), "group": len(group)}

    def hard_kill(self) -> int:
        group = self.group()
        kill_all(group)
        left = wait_gone(group, 10)
        self.proc.wait()
        return len(group) - len(left)

    def queue(self, path: Path) -> int:
        answer = self.session.post(
            f"{self.base}/api/v1/tag", json={"path": str(path), "force": True}, timeout=60
        )
        answer.raise_for_status()
        return answer.json()["jobs"][0]["id"]


def job(job_id: int):
    from tagging.models import Job

    return Job.objects.filter(pk=job_id).first()


def wait_for(condition, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None


def finished(job_id: int):
    from tagging.models import Job

    row = job(job_id)
    return row if row is not None and row.status in Job.FINISHED else None


def worker_pid(row) -> int | None:
    return claim_pid(row.worker or "")


@dataclass
class Followed:
    """What became of a job after a kill: seconds until a worker took it (again), and
    until it finished; None for what did not happen before the deadline."""

    picked_up: float | None
    finished: float | None
    status: str
    attempts: int
    error: str
    #: Each change of the job's row seen: "12.3 s running#2@4242" (status#attempts@pid).
    history: list[str] = field(default_factory=list)


def follow(
    job_ids: list[int], since: float, attempts_before: dict[int, int], timeout: float
) -> dict[int, Followed]:
    """Watch jobs together from `since` (a monotonic time) until all are finished or
    timeout: when a worker took each one (again), and when it finished."""
    from tagging.models import Job

    picked: dict[int, float] = {}
    ended: dict[int, Followed] = {}
    history: dict[int, list[str]] = {job_id: [] for job_id in job_ids}
    last: dict[int, tuple] = {}
    deadline = since + timeout
    rows = {}
    while len(ended) < len(job_ids) and time.monotonic() < deadline:
        now = time.monotonic() - since
        rows = Job.objects.in_bulk(job_ids)
        for job_id, row in rows.items():
            if job_id in ended:
                continue
            state = (row.status, row.attempts, row.worker)
            if state != last.get(job_id):
                last[job_id] = state
                pid = row.worker.rpartition(":")[2]
                history[job_id].append(
                    f"{now:.1f} s {row.status}#{row.attempts}{'@' + pid if pid else ''}"
                )
            if job_id not in picked and row.attempts > attempts_before.get(job_id, 0):
                picked[job_id] = now
            if row.status in Job.FINISHED:
                ended[job_id] = Followed(
                    picked.get(job_id), now, row.status, row.attempts, row.error, history[job_id]
                )
        time.sleep(0.1)
    for job_id in job_ids:
        if job_id not in ended:
            row = rows.get(job_id) or job(job_id)
            ended[job_id] = Followed(
                picked.get(job_id), None, row.status, row.attempts, row.error, history[job_id]
            )
    return ended


def seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "never"


@dataclass
class Round:
    kind: str
    followed: Followed | None
    note: str = ""


def campaign_workers(serve: Serve, short: list[Path], long_track: Path, args, rng) -> list[Round]:
    from tagging.models import Job

    say(f"\n== 2. kill -9 of workers under serve ({args.idle_kills} idle, {args.busy_kills} busy)")
    rounds: list[Round] = []

    def restart(why: str) -> None:
        say(f"   serve restarted ({why})")
        stopped = serve.stop()
        if stopped["survivors"]:
            say(f"   {stopped['survivors']} process(es) outlived SIGTERM + grace (killed)")
        serve.start()

    def line(kind: str, n: int, total: int, what: str, after: Followed, note: str = "") -> None:
        outcome = (
            f"{after.status} {after.finished:.1f} s after the kill"
            if after.finished is not None
            else f"STUCK ({after.status})"
        )
        say(
            f"{kind} {n + 1:>2}/{total}: {what}; picked up after {seconds(after.picked_up)}, "
            f"{outcome} (attempts {after.attempts}"
            f"{', ' + after.error[:90] if after.error else ''}){' ' + note if note else ''}"
        )
        if after.attempts > 2 or after.finished is None:
            say(f"          the job's row: {', '.join(after.history)}")

    warm = serve.queue(short[0])
    if not wait_for(lambda: finished(warm), 600):
        raise SystemExit("the first job (loading the models) did not finish in 600 s")
    say(f"warm-up job: {job(warm).status}")
    for n in range(args.idle_kills):
        ran = serve.queue(short[n % len(short)])
        row = wait_for(lambda ran=ran: finished(ran), args.stuck_after)
        if row is None:
            rounds.append(Round("idle", None, "the job before the kill did not finish"))
            restart("a job before the kill did not finish")
            continue
        pid = worker_pid(row)
        wait_for(lambda: not Job.objects.filter(status=Job.Status.RUNNING).exists(), 30)
        if pid is None or not pid_alive(pid):
            say(f"idle {n + 1}: the worker {row.worker!r} is not alive to kill; skipped")
            continue
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        queued = serve.queue(short[(n + 1) % len(short)])
        after = follow([queued], killed, {}, args.stuck_after)[queued]
        rounds.append(Round("idle", after))
        line("idle", n, args.idle_kills, f"killed idle worker {pid}, queued a file", after)
        if after.finished is None:
            restart("stuck")
    for n in range(args.busy_kills):
        ran = serve.queue(long_track)
        row = wait_for(
            lambda ran=ran: (r := job(ran)) and r.status == Job.Status.RUNNING and r, 120
        )
        if not row:
            rounds.append(Round("busy", None, "the job never started"))
            say(f"busy {n + 1}: the job never started (status {job(ran).status})")
            restart("the job never started")
            continue
        time.sleep(rng.uniform(1.0, 6.0))
        row = job(ran)
        pid = worker_pid(row)
        if row.status != Job.Status.RUNNING or pid is None or not pid_alive(pid):
            say(f"busy {n + 1}: the job is {row.status} before the kill; skipped")
            continue
        progress = (row.progress or {}).get("model", "")
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        after = follow([ran], killed, {ran: row.attempts}, args.stuck_after)[ran]
        note = ""
        if after.finished is not None and audio_hash(long_track) != args.long_audio:
            note = "the long track's audio changed!"
        rounds.append(Round("busy", after, note))
        what = f"killed busy worker {pid} (in {progress or 'the analysis'})"
        line("busy", n, args.busy_kills, what, after, note)
        if after.finished is None:
            restart("stuck")
    return rounds


def campaign_group(serve: Serve, short: list[Path], long_track: Path, args, rng) -> list[dict]:
    from tagging.models import Job

    say(f"\n== 3. kill -9 of serve's whole group, then a restart ({args.group_kills} times)")
    results = []
    for n in range(args.group_kills):
        ids = [serve.queue(long_track)] + [serve.queue(path) for path in short[:3]]
        wait_for(lambda: Job.objects.filter(status=Job.Status.RUNNING).exists(), 120)
        time.sleep(rng.uniform(0.5, 4.0))
        before = {i: job(i) for i in ids}
        killed = serve.hard_kill()
        restarted = time.monotonic()
        up = serve.start(wait_workers=False)
        attempts = {i: row.attempts for i, row in before.items()}
        ends = list(follow(ids, restarted, attempts, args.stuck_after).values())
        done = [e.finished for e in ends if e.finished is not None]
        picked = [e.picked_up for e in ends if e.picked_up is not None]
        result = {
            "killed": killed,
            "jobs": len(ids),
            "before": dict(Counter(row.status for row in before.values())),
            "after": dict(Counter(e.status for e in ends)),
            "api_up_s": up,
            "first_picked_up_s": min(picked) if picked else None,
            "all_done_s": max(done) if len(done) == len(ids) else None,
        }
        results.append(result)
        say(
            f"group {n + 1}/{args.group_kills}: {killed} processes killed with jobs "
            f"{result['before']}; restarted: API up after {up:.1f} s, first job picked up "
            f"after {seconds(result['first_picked_up_s'])}, all {len(ids)} finished after "
            f"{seconds(result['all_done_s'])} -> {result['after']}"
        )
        for end in ends:
            if end.attempts > 2 or end.finished is None:
                say(f"          a job's row: {', '.join(end.history)}")
    return results


# --- the report ------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{statistics.median(values):.1f} / {values[-1]:.1f}"


def report(writes: dict | None, rounds: list[Round], groups: list[dict], stop: dict | None) -> None:
    say("\n== Figures")
    if writes:
        v = writes["verdicts"]
        runs = writes["kills"] + writes["finished_before_the_kill"]
        say(
            f"writes: {runs} runs of `tag`, {writes['kills']} killed with -9 "
            f"({writes['killed_in_write']} with the temp file present), "
            f"{writes['finished_before_the_kill']} finished first; the {runs} files: "
            f"damaged {v.get('damaged', 0)}, untouched {v.get('untouched', 0)}, "
            f"tagged whole {v.get('tagged', 0)}"
        )
        say(
            f"        temp files left by kills {writes['temps_left_by_kills']}, removed by later "
            f"runs in the folder {writes['temps_removed_by_later_runs']}, left at the end "
            f"{writes['temps_at_end']}, after a scan {writes['temps_after_scan']}"
        )
        for line in writes["damaged"]:
            say(f"        DAMAGED {line}")
    for kind in ("idle", "busy"):
        mine = [r.followed for r in rounds if r.kind == kind]
        if not mine:
            continue
        ends = [f for f in mine if f is not None]
        done = [f for f in ends if f.finished is not None and f.status == "done"]
        stuck = [f for f in ends if f.finished is None] + [f for f in mine if f is None]
        failed = [f for f in ends if f.finished is not None and f.status != "done"]
        notes = "; ".join(r.note for r in rounds if r.kind == kind and r.note)
        say(
            f"workers, {kind}: {len(mine)} kill -9: jobs done {len(done)}, failed {len(failed)}, "
            f"stuck {len(stuck)}; kill -> picked up median / max "
            f"{spread([f.picked_up for f in ends if f.picked_up is not None])} s, -> done "
            f"{spread([f.finished for f in ends if f.finished is not None])} s; attempts "
            f"{dict(Counter(f.attempts for f in ends))}{'; ' + notes if notes else ''}"
        )
    if groups:
        times = [g["all_done_s"] for g in groups if g["all_done_s"] is not None]
        stuck = sum(1 for g in groups if g["all_done_s"] is None)
        jobs_done = sum(g["after"].get("done", 0) for g in groups)
        jobs = sum(g["jobs"] for g in groups)
        picked = [g["first_picked_up_s"] for g in groups if g["first_picked_up_s"] is not None]
        say(
            f"group: {len(groups)} kill -9 of every process: jobs {jobs}, done {jobs_done}, "
            f"stuck rounds {stuck}; restart -> first job picked up median / max "
            f"{spread(picked)} s, -> all done {spread(times)} s"
        )
    if stop:
        say(
            f"stop: SIGTERM to serve: exited in {stop['stop_s']:.1f} s; processes of its group "
            f"alive after the grace: {stop['survivors']} of {stop['group']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag-kills", type=int, default=20)
    parser.add_argument("--idle-kills", type=int, default=5)
    parser.add_argument("--busy-kills", type=int, default=5)
    parser.add_argument("--group-kills", type=int, default=2)
    parser.add_argument(
        "--stuck-after", type=float, default=240.0, help="seconds before a job counts as stuck"
    )
    parser.add_argument("--only", choices=["writes", "workers", "group"], action="append")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    only = set(args.only or ["writes", "workers", "group"])
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed")
    if not CLIP.is_file():
        raise SystemExit(f"missing the audio fixture {CLIP}")
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="nomarr-chaos-"))
    serve = None
    writes, rounds, groups, stop = None, [], [], None
    began = time.monotonic()
    try:
        say(
            f"chaos campaign in {workdir}: {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f}, seed {args.seed}"
        )
        sandbox = Sandbox(workdir)
        sources, long_source = make_sources(workdir / "sources")
        if "writes" in only:
            writes = campaign_writes(sandbox, sources, args.tag_kills, rng)
        if only & {"workers", "group"}:
            work = sandbox.library / "work"
            work.mkdir()
            short = []
            for n, fmt in enumerate(["flac", "mp3", "m4a", "ogg"]):
                short.append(work / f"short-{n}.{fmt}")
                shutil.copyfile(sources[fmt].path, short[-1])
            long_track = work / "long.flac"
            shutil.copyfile(long_source, long_track)
            args.long_audio = audio_hash(long_track)
            serve = Serve(sandbox)
            say(f"\nserve up in {serve.start():.1f} s on {serve.base}")
            if "workers" in only:
                rounds = campaign_workers(serve, short, long_track, args, rng)
            if "group" in only:
                groups = campaign_group(serve, short, long_track, args, rng)
            stop = serve.stop()
            serve = None
            left = all_temps(sandbox.library / "work")
            if left:
                say(f"temp files left under the workers' files: {len(left)}")
        report(writes, rounds, groups, stop)
        kept = f"; logs in {workdir}/logs" if args.keep else ""
        say(f"\n(the campaign took {(time.monotonic() - began) / 60:.1f} min{kept})")
    finally:
        if serve is not None and serve.proc is not None:
            kill_all(serve.group())
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
