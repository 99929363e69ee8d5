"""Re-decide tiers and mood sets from the stored scores, and rewrite only what changed.

After a change of the calibration (library/calibration.py), of NOMARR_TIER_SCORES or
of the rules (tagging/keys.py's cascade and mood sets, NOMARR_MOOD_HEADS,
NOMARR_WRITE_MOOD), `manage.py retier` or the staff button on the calibration page
goes through every file tagged by the current model set, in id order:

* its stored scores (TagValue rows) are decided again by tagging.pipeline.decide,
  the rule the pipeline uses for new files, with the bounds
  tagging.pipeline.tier_calibration gives; no model runs;
* a file whose tier keys, mood sets and MOOD come out as stored is not touched;
* for one that changes, the file's Nomarr tags are rewritten with the new tiers and
  mood sets by tagging.writers.write_tags (atomic, audio untouched; only if the file
  is as the library last read it), and its library rows follow from the values
  written, a batch at once (library/rows.py apply_rewrites: no file is read again).

A RetierRun row is the run: its `cursor` (the last file id done) and counters are
saved after each batch, so a run that stopped (its time budget, a crash, Ctrl+C)
carries on from there when started again, unless the rule changed meanwhile (then it
starts over). One run at a time (the database refuses a second running row); a run
whose process is gone is taken over.

The batches overlap: while the writers write one batch, this process decides the next
and hands its writes over, and only then saves the first (its rows, the run's cursor).
A batch whose writes were not saved when the run stopped (Ctrl+C, a failure, taken
over) still gets the rows of the files it wrote (`_Retier.salvage`), without moving the
cursor: run again, those files are found as decided (unchanged).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from library import calibration, retier_writes
from library.models import LibraryFile, RetierRun, TagValue
from library.rows import Rewrite, apply_rewrites
from nomarr_site.workers import claim_is_dead, worker_id
from tagging import keys, pipeline
from tagging.catalog import get_catalog

log = logging.getLogger(__name__)

Status = RetierRun.Status
#: Files decided per batch (one query for their tags; the run is saved after each, in
#: the transaction that refreshes the rows of the files it rewrote).
BATCH = 50
#: Files written at once: a write waits on the disk (its fsync) part of its time.
WRITERS = 4
#: Files a writer is handed at once (it syncs their folders once, at the end).
CHUNK = 8
#: Seconds a stopping run waits for the writes already running, to save their rows.
SALVAGE_WAIT = 30
#: Files left from which the writes run in processes of their own (starting them costs
#: a few tenths of a second each), not threads.
PROCESSES_FROM = 200
#: Seconds without a heartbeat after which a running run counts as abandoned.
STALE_AFTER = 120
PROBLEMS_KEPT = 50
MOOD = "mood"  # the standard MOOD tag as the library stores it

Progress = Callable[[RetierRun], None]


class RetierRefused(Exception):
    """A retier is running already."""


def current_rule() -> tuple[str, int | None, str]:
    """(NOMARR_TIER_SCORES, the calibration in use's id, a fingerprint of everything
    that decides the tiers): a run is resumed only under the rule it began with."""
    mode = settings.NOMARR_TIER_SCORES
    in_use = calibration.current() if mode == "calibrated" else None
    parts = [
        mode,
        in_use.pk if in_use else None,
        keys.TIER_CASCADE,
        keys.MOOD_SETS,
        keys.CONTRADICTIONS,
        list(settings.NOMARR_MOOD_HEADS),
        settings.NOMARR_WRITE_MOOD,
        keys.namespace(),
        get_catalog().fingerprint,
    ]
    digest = hashlib.sha256(json.dumps(parts, default=list).encode()).hexdigest()[:16]
    return mode, in_use.pk if in_use else None, digest


def _files():
    return LibraryFile.objects.filter(nom_version=get_catalog().fingerprint)


def unfinished() -> RetierRun | None:
    """The run that did not finish: running (maybe abandoned) or interrupted."""
    return RetierRun.objects.filter(status__in=[Status.RUNNING, Status.INTERRUPTED]).first()


def _held(run: RetierRun, waiting: bool) -> bool:
    """Whether a running run is someone else's: held by a live process, or waiting for
    a worker when a worker is what we would wait for too (this process takes it over)."""
    if not run.worker:
        return waiting
    return not claim_is_dead(run.worker, run.updated_at, STALE_AFTER)


def start(trigger: str = "command", restart: bool = False, waiting: bool = False) -> RetierRun:
    """Claim a run: the unfinished one carried on (same rule, not `restart`), else a new
    one. `waiting`: for a worker to take (the button), else held by this process.

    Raises:
        RetierRefused: a run is running in a live process or waits for a worker.
    """
    holder = "" if waiting else worker_id()
    mode, calibration_id, rule = current_rule()
    now = timezone.now()
    old = unfinished()
    if old is not None and old.status == Status.RUNNING and _held(old, waiting):
        where = f"in {old.worker}" if old.worker else "waiting for a worker"
        raise RetierRefused(f"retier #{old.pk} is running ({where}, {old.percent} %)")
    if old is not None and (restart or old.rule != rule):
        why = "started over" if restart else "the tier rule changed: started over"
        RetierRun.objects.filter(pk=old.pk, status=old.status).update(
            status=Status.CANCELLED, message=why, finished_at=now, updated_at=now
        )
        old = None
    try:
        with transaction.atomic():
            if old is not None:
                taken = RetierRun.objects.filter(
                    pk=old.pk, status=old.status, worker=old.worker, updated_at=old.updated_at
                ).update(status=Status.RUNNING, worker=holder, updated_at=now, message="")
                if taken != 1:
                    raise RetierRefused(f"retier #{old.pk} was taken by another process")
                return RetierRun.objects.get(pk=old.pk)
            return RetierRun.objects.create(
                trigger=trigger,
                tier_scores=mode,
                calibration_id=calibration_id,
                rule=rule,
                worker=holder,
                total=_files().count(),
            )
    except IntegrityError as exc:  # another process claimed one meanwhile
        raise RetierRefused("a retier is running") from exc


def start_in_background(trigger: str = "web", restart: bool = False) -> RetierRun:
    """Claim a run (`start`, waiting) and hand it to the workers."""
    run = start(trigger=trigger, restart=restart, waiting=True)
    _dispatch(run)
    return run


def _dispatch(run: RetierRun) -> None:
    async_task("library.retier.run_task", run.pk, task_name=f"retier #{run.pk}", group="retier")


def dispatch_waiting(**kwargs) -> int:
    """The receiver of tagging.signals.workers_started: a run that waits for a worker
    is handed over again (the old workers' messages are lost)."""
    waiting = RetierRun.objects.filter(status=Status.RUNNING, worker="")
    for run in waiting:
        _dispatch(run)
    return len(waiting)


def run_task(run_id: int) -> str:
    """The worker's task: take the waiting run and carry it out, within a time budget
    (then it waits again and is handed over again, to go on from its cursor)."""
    me = worker_id()
    if (
        RetierRun.objects.filter(pk=run_id, status=Status.RUNNING, worker="").update(
            worker=me, updated_at=timezone.now()
        )
        != 1
    ):
        return "not waiting (taken by another process, or finished)"
    run = RetierRun.objects.get(pk=run_id)
    budget = max(60.0, settings.NOMARR_JOB_TIMEOUT * 0.8)
    run = carry_out(run, time_budget=budget)
    if run.status == Status.INTERRUPTED and run.message.startswith("time budget"):
        RetierRun.objects.filter(pk=run.pk, status=Status.INTERRUPTED).update(
            status=Status.RUNNING, worker="", updated_at=timezone.now()
        )
        _dispatch(run)
    return f"retier #{run.pk}: {run.status}"


def carry_out(
    run: RetierRun, time_budget: float | None = None, on_progress: Progress | None = None
) -> RetierRun:
    """Go through the files after the run's cursor; the finished (or stopped) run.

    KeyboardInterrupt (Ctrl+C) stops it as interrupted, resumable."""
    me = run.worker
    deadline = None if time_budget is None else time.monotonic() + time_budget

    def spent() -> bool:
        return deadline is not None and time.monotonic() > deadline

    retier = _Retier(run)
    batch: _Batch | None = None
    ahead: _Batch | None = None
    try:
        if spent():
            return retier.stop(Status.INTERRUPTED, "time budget spent: carried on next")
        batch = retier.prepare()
        while True:
            # The next batch is decided and its writes start while this one's are done.
            ahead = None if batch.last or spent() else retier.prepare()
            ours = retier.commit(batch, me)
            batch = None
            if not ours:
                retier.salvage(ahead)
                run.refresh_from_db()
                return run  # taken over, or cancelled: someone else says what it is
            if on_progress:
                on_progress(retier.run)
            if ahead is None:
                if retier.finished:
                    return retier.stop(Status.DONE, retier.summary())
                return retier.stop(Status.INTERRUPTED, "time budget spent: carried on next")
            batch, ahead = ahead, None
    except KeyboardInterrupt:
        retier.salvage(batch, ahead)
        retier.stop(Status.INTERRUPTED, "interrupted: run retier again to carry on")
        raise
    except Exception as exc:
        log.exception("retier #%s failed", run.pk)
        retier.salvage(batch, ahead)
        return retier.stop(Status.FAILED, f"failed: {exc}")
    finally:
        retier.close()


@dataclass
class _Batch:
    """BATCH files decided, their writes handed to the writers; saved by commit."""

    last: bool  # no file after these
    cursor: int
    checked: int = 0
    unchanged: int = 0
    jobs: list[retier_writes.Write] = field(default_factory=list)
    rewritten: list[tuple[int, dict[str, list[str]]]] = field(default_factory=list)
    # Per CHUNK jobs, their results (retier_writes.write_all).
    writes: list[Future[list[tuple[str, retier_writes.Written | None]]]] = field(
        default_factory=list
    )
    saved: bool = False


class _Retier:
    def __init__(self, run: RetierRun) -> None:
        self.run = run
        self.catalog = get_catalog()
        self.heads = self.catalog.heads
        self.namespace = keys.namespace()
        self.bounds = pipeline.tier_calibration()
        self.write_mood = bool(settings.NOMARR_WRITE_MOOD)
        self._kinds: dict[str, str] = {}
        self._pool: Executor | None = None
        self.after = run.cursor  # the last file decided (the run's cursor: the last saved)
        self.finished = False

    def pool(self) -> Executor:
        """Where the writes run: WRITERS spawned processes (mutagen is pure Python, so
        threads would share one core) for a run with many files left, else WRITERS
        threads (which still overlap the writes' waits on the disk). A daemonic process
        (a django-q2 worker) may start no process: threads there."""
        if self._pool is None:
            left = self.run.total - self.run.checked
            if left >= PROCESSES_FROM and not multiprocessing.current_process().daemon:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(WRITERS, mp_context=context)
            else:
                self._pool = ThreadPoolExecutor(WRITERS)
            kind = "processes" if isinstance(self._pool, ProcessPoolExecutor) else "threads"
            log.info(
                "retier #%s: %s files left, written in %d %s", self.run.pk, left, WRITERS, kind
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def progress(self) -> dict:
        fields = {name: getattr(self.run, name) for name in RetierRun.COUNTERS}
        return {**fields, "cursor": self.run.cursor, "problems": self.run.problems}

    def summary(self) -> str:
        run = self.run
        return f"{run.changed} file(s) rewritten, {run.unchanged} unchanged, {run.errors} error(s)"

    def stop(self, status: str, message: str) -> RetierRun:
        now = timezone.now()
        fields = {**self.progress(), "status": status, "message": message, "updated_at": now}
        if status != Status.INTERRUPTED:
            fields["finished_at"] = now
        RetierRun.objects.filter(pk=self.run.pk, status=Status.RUNNING).update(**fields)
        self.run.refresh_from_db()
        return self.run

    def problem(self, path: str, what: str) -> None:
        self.run.errors += 1
        if len(self.run.problems) < PROBLEMS_KEPT:
            self.run.problems.append({"path": path, "problem": what})

    def kind(self, key: str) -> str:
        """What a key names (keys.parse, remembered: every file has the same keys)."""
        found = self._kinds.get(key)
        if found is None:
            parsed = keys.parse(key, self.namespace)
            found = self._kinds[key] = parsed.kind if parsed else ""
        return found

    def prepare(self) -> _Batch:
        """Decide the next BATCH files from their rows and hand the writes of those
        that change to the writers (not waiting for them)."""
        after = _files().filter(pk__gt=self.after).order_by("pk")
        files = list(after.values_list("pk", "path", "size", "mtime_ns")[:BATCH])
        values: dict[int, dict[str, list[str]]] = defaultdict(dict)
        scores: dict[int, dict[str, float]] = defaultdict(dict)
        rows = TagValue.objects.filter(
            Q(key__startswith=keys.prefix(self.namespace)) | Q(key=MOOD),
            file_id__in=[pk for pk, *_ in files],
        )
        kinds = self._kinds
        for file_id, key, value, number in rows.order_by("id").values_list(
            "file_id", "key", "value", "number"
        ):
            values[file_id].setdefault(key, []).append(value)
            if number is not None and (kinds[key] if key in kinds else self.kind(key)) == "score":
                scores[file_id][key] = number
        batch = _Batch(last=len(files) < BATCH, cursor=self.after)
        for pk, path, size, mtime_ns in files:
            batch.checked += 1
            decided = self.decide(path, (size, mtime_ns), values.get(pk, {}), scores.get(pk, {}))
            if decided is None:
                batch.unchanged += 1
            else:
                batch.jobs.append(decided[0])
                batch.rewritten.append((pk, decided[1]))
            batch.cursor = pk
        self.after = batch.cursor
        if batch.jobs:
            pool = self.pool()
            batch.writes = [
                pool.submit(retier_writes.write_all, batch.jobs[i : i + CHUNK])
                for i in range(0, len(batch.jobs), CHUNK)
            ]
        return batch

    def commit(self, batch: _Batch, holder: str) -> bool:
        """Wait for the batch's writes, then save, in one transaction, the rows of the
        files written (from the values written) and the run's progress; whether the
        run is still ours."""
        done = [result for write in batch.writes for result in write.result()]
        with transaction.atomic():
            rewrites = []
            for job, (pk, changed), (problem, written) in zip(
                batch.jobs, batch.rewritten, done, strict=True
            ):
                if written is None:
                    self.problem(job[0], problem)
                else:
                    rewrites.append(Rewrite(pk, changed, *written))
                    self.run.changed += 1
            self.run.checked += batch.checked
            self.run.unchanged += batch.unchanged
            self.run.cursor = batch.cursor
            apply_rewrites(rewrites)
            ours = RetierRun.objects.filter(
                pk=self.run.pk, status=Status.RUNNING, worker=holder
            ).update(updated_at=timezone.now(), **self.progress())
        batch.saved = True
        self.finished = batch.last
        return bool(ours)

    def salvage(self, *batches: _Batch | None) -> None:
        """The rows of the files that batches not saved did write (the writes not
        started are called off; those running are waited for, SALVAGE_WAIT s at
        most); the run's cursor and counters stay, so a run carried on decides those
        files again, and finds them as decided. Never raises: the run is stopping."""
        for batch in batches:
            if batch is None or batch.saved:
                continue
            try:
                for write in batch.writes:
                    write.cancel()
                futures.wait(batch.writes, timeout=SALVAGE_WAIT)
                rewrites = []
                for i, write in enumerate(batch.writes):
                    if not write.done() or write.cancelled() or write.exception() is not None:
                        continue
                    for (pk, changed), (_, written) in zip(
                        batch.rewritten[i * CHUNK : (i + 1) * CHUNK], write.result(), strict=True
                    ):
                        if written is not None:
                            rewrites.append(Rewrite(pk, changed, *written))
                apply_rewrites(rewrites)
                batch.saved = True
            except BaseException:  # stopping anyway (a second Ctrl+C too): the next scan catches up
                log.exception("retier #%s: the rows of a batch written were not saved", self.run.pk)

    def decide(
        self,
        path: str,
        read_as: tuple[int, int],
        stored: dict[str, list[str]],
        scores: dict[str, float],
    ) -> tuple[retier_writes.Write, dict[str, list[str]]] | None:
        """The write a file needs (its tags as the rows hold them, and with the tiers
        and mood sets decided again) and the values of the keys it rewrites ([] for a
        key it removes), or None when they come out as stored."""
        decision = pipeline.decide(self.heads, scores, self.namespace, self.bounds)
        decided = decision.tags(self.namespace)
        wanted = {**decided, MOOD: decision.moods} if self.write_mood else decided
        if all(sorted(stored.get(key, [])) == sorted(v) for key, v in wanted.items()):
            return None
        # Every other key stays as it is (a tier this rule does not decide, too).
        tags = {key: v for key, v in stored.items() if key != MOOD and key not in decided}
        tags.update(decided)
        moods = decision.moods if self.write_mood else None
        changed = dict(decided)
        if moods is not None:
            changed[MOOD] = [mood for mood in moods if mood]  # the library keeps no empty MOOD
        return (path, read_as, tags, moods, self.namespace), changed


def describe(run: RetierRun) -> str:
    """One line for the command line and the log."""
    counts = ", ".join(f"{name} {value}" for name, value in run.counts().items())
    note = f" ({run.message})" if run.message else ""
    return f"retier #{run.pk} ({run.tier_scores} scores): {run.status}{note}; {counts}"
