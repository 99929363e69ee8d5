"""Library scans: walk a root, keep the LibraryFile/TagValue rows current, tag what is new.

How a scan stays cheap
----------------------
* The walk is os.scandir plus one stat per audio file. A file whose size and mtime
  match its row is not opened at all, so a rescan of an unchanged library reads no
  file content (the Scan row's `read` stays 0). --full re-reads everything.
* Rows are fetched one folder at a time (one indexed query per folder), so memory
  stays flat whatever the library's size.
* Writes go in batches of BATCH files, one transaction each: bulk_create for new
  rows, one executemany UPDATE for re-read and moved rows, and the tag values as one
  executemany INSERT (COPY on PostgreSQL). A re-read file whose tags did not change
  (same digest) keeps its TagValue rows.

Moves, removals, new files
--------------------------
Rows whose file is gone are only known once the whole root has been walked, so on
every scan but the first, files without a row wait until the walk ends. Then each is
matched against the rows whose file disappeared: same size and mtime (a rename) costs
one 64 KiB read for the fingerprint and no tag read; otherwise the file is read and
its fingerprint looked up. A match keeps the old row (its id, history and
`queued_version`) under the new path. What stays unmatched is removed. Moves are
recognised within a root; a file moved to another root is removed and found new
there (its Nomarr tags travel inside the file, so it is not re-analysed).

Where the rest lives
--------------------
Writing a batch's rows, and refreshing one file after a tagging job, is
library/rows.py; queueing what needs tags at the end of a scan is
library/autotag.py; starting a scan in the background is library/tasks.py
`start_scan`. Pending tagging jobs of moved files follow them
(`tagging.jobs.follow_rename`).

Concurrency and control
-----------------------
Starting a scan inserts a running Scan row; a partial unique constraint allows one
running scan per root, so a second start is refused (ScanRefused) by the database,
whichever process tries. A scan whose process died is reaped at the next start (dead
pid on this host, or no heartbeat for STALE_AFTER seconds); one that still waits for
a worker to take it over is nobody's yet, and is not reaped. Progress is saved about
once a second; the cancel flag is read at the same time.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import re
import stat
import time
from collections import defaultdict
from pathlib import Path

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from library import autotag, metadata
from library.models import LibraryFile, LibraryRoot, Scan
from library.roots import library_roots, sync_settings_roots
from library.rows import ROW_FIELDS, Row, write_batch
from nomarr_site.atomic import is_temp_name, remove_abandoned
from nomarr_site.workers import claim_is_dead, process_gone, worker_id
from tagging import boundary, jobs, keys
from tagging.tagfiles import AUDIO_EXTENSIONS, TEMP_PREFIX

log = logging.getLogger(__name__)

#: Files per write transaction.
BATCH = 250
#: Seconds between progress saves (and cancel checks).
PROGRESS_EVERY = 1.0
#: A running scan without a heartbeat for this long is taken for dead.
STALE_AFTER = 600
#: Problems kept on the Scan row (the counters count them all).
MAX_PROBLEMS = 200
#: Longer paths cannot be indexed on every database; they are reported instead.
MAX_PATH_BYTES = 2048
#: SQLite page cache of the scanning connection, in KiB.
SQLITE_CACHE_KB = 64 * 1024

Status = Scan.Status


class ScanRefused(Exception):
    """A scan of this root cannot start: one is running (or, started from the pages or
    the admin, the root is disabled)."""


class _Stop(Exception):
    def __init__(self, status: str, message: str = ""):
        super().__init__(message)
        self.status, self.message = status, message


# --- starting, cancelling --------------------------------------------------------


def claim_scan(
    root: LibraryRoot, full: bool = False, trigger: str = "command", waiting: bool = False
) -> Scan:
    """Claim the root: a new running Scan row, or ScanRefused if one is running.

    The claim is this process's, or with `waiting` nobody's yet: a scan handed to the
    workers (`library.tasks.start_scan`) waits, however long the queue before it,
    until a worker takes it over. It is never reaped meanwhile; workers that start
    hand it over again (its message may have died with the old ones)."""
    _reap_stale(root)
    try:
        with transaction.atomic():
            return Scan.objects.create(
                root=root, full=full, trigger=trigger, worker="" if waiting else worker_id()
            )
    except IntegrityError:
        running = Scan.objects.filter(root=root, status=Status.RUNNING).first()
        detail = (
            f" (scan #{running.pk}, started {running.started_at:%Y-%m-%d %H:%M:%S}, "
            f"{f'by {running.worker}' if running.worker else 'waiting for a worker'})"
            if running
            else ""
        )
        raise ScanRefused(f"a scan of {root.path} is already running{detail}") from None


def take_over(scan_id: int) -> Scan | None:
    """Make this process the holder of a scan claimed elsewhere (a worker running a
    scan that `library.tasks.start_scan` claimed in the web server).

    Returns the scan, or None when it no longer waits (another worker took it, it was
    cancelled or it ended); a scan cancelled before it started is marked cancelled."""
    now = timezone.now()
    waiting = Scan.objects.filter(pk=scan_id, status=Status.RUNNING, worker="")
    if waiting.filter(cancel_requested=False).update(
        worker=worker_id(), started_at=now, updated_at=now
    ):
        return Scan.objects.select_related("root").get(pk=scan_id)
    waiting.update(status=Status.CANCELLED, message="cancelled", finished_at=now, updated_at=now)
    return None


def cancel_scans(root: LibraryRoot | None = None) -> int:
    """Ask running scans (of root, or all) to stop; they stop within about a second."""
    scans = Scan.objects.all() if root is None else Scan.objects.filter(root=root)
    return scans.cancel()


def _reap_stale(root: LibraryRoot) -> None:
    # A scan waiting for a worker (no claimant yet) is not stale, however long it waits.
    for scan in Scan.objects.filter(root=root, status=Status.RUNNING).exclude(worker=""):
        if claim_is_dead(scan.worker, scan.updated_at, STALE_AFTER):
            dead = process_gone(scan.worker)
            why = "its process died" if dead else f"no progress for {STALE_AFTER} s"
            Scan.objects.filter(pk=scan.pk, status=Status.RUNNING).update(
                status=Status.FAILED, finished_at=timezone.now(), message=f"abandoned: {why}"
            )
            log.warning("scan #%s of %s abandoned: %s", scan.pk, root.path, why)


def scan_root(
    root: LibraryRoot,
    full: bool = False,
    trigger: str = "command",
    time_budget: float | None = None,
    on_progress=None,
) -> Scan:
    """Start and run one scan of root here (ScanRefused if one is running)."""
    scan = claim_scan(root, full, trigger)
    return run_scan(scan, time_budget=time_budget, on_progress=on_progress)


def run_scan(scan: Scan, time_budget: float | None = None, on_progress=None) -> Scan:
    """Run a claimed scan to its end; the row says how it went. Never raises for
    problems in the library; an internal failure marks the scan failed."""
    scanner = _Scanner(scan, time_budget, on_progress)
    status = Status.DONE
    try:
        message = scanner.run()
    except _Stop as stop:
        status, message = stop.status, stop.message
    except Exception as exc:  # the Scan row records any failure
        log.exception("scan #%s of %s failed", scan.pk, scan.root.path)
        status, message = Status.FAILED, f"internal error: {type(exc).__name__}: {exc}"
    scanner.finish(status, message)
    scan.refresh_from_db()
    return scan


# --- the scanner -----------------------------------------------------------------


def _ignore_matcher(root: LibraryRoot):
    patterns = root.patterns()
    if not patterns:
        return None
    regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    prefix = len(root.path.rstrip("/")) + 1

    def ignored(path: str) -> bool:
        return bool(regex.match(path) or regex.match(path[prefix:]))

    return ignored


def _printable(path: str) -> str:
    """A path for reports, with undecodable bytes shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _valid_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Scanner:
    def __init__(self, scan: Scan, time_budget: float | None, on_progress):
        self.scan = scan
        self.root = scan.root
        self.root_path = self.root.path.rstrip("/") or "/"
        self.full = scan.full
        self.namespace = keys.namespace()
        self.ignored = _ignore_matcher(self.root)
        self.extensions = AUDIO_EXTENSIONS
        self.temp_prefix = TEMP_PREFIX
        self.deadline = time.monotonic() + time_budget if time_budget else None
        self.on_progress = on_progress
        self.counts = dict.fromkeys(Scan.COUNTERS, 0)
        self.problems: list[dict[str, str]] = []
        self.batch: list[tuple] = []
        self.deferred: list[tuple[str, os.stat_result]] = []
        self.missing: dict[int, Row] = {}
        self.visited: set[str] = set()
        self.unlisted: list[str] = []
        self.other_roots: set[str] = set()
        self.first_scan = False
        self.all_roots: list[Path] = []
        self.by_fingerprint: dict[str, list[int]] = {}
        self.next_save = time.monotonic() + PROGRESS_EVERY

    # -- bookkeeping --

    def problem(self, path: str, what: str, counter: str = "errors") -> None:
        self.counts[counter] += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append({"path": _printable(path), "problem": what})

    def tick(self) -> None:
        now = time.monotonic()
        if now < self.next_save:
            return
        self.next_save = now + PROGRESS_EVERY
        self.save_progress()
        if self.deadline is not None and now > self.deadline:
            raise _Stop(Status.INTERRUPTED, "stopped at its time budget; the next scan carries on")

    def save_progress(self) -> None:
        flag = Scan.objects.filter(pk=self.scan.pk).values_list("cancel_requested", flat=True)
        if flag.first():
            raise _Stop(Status.CANCELLED, "cancelled")
        updated = Scan.objects.filter(pk=self.scan.pk, status=Status.RUNNING).update(
            **self.counts, problems=self.problems, updated_at=timezone.now()
        )
        if not updated:
            raise _Stop(Status.FAILED, "the scan lost its claim (reaped as stale)")
        if self.on_progress:
            self.on_progress(self.counts)

    def finish(self, status: str, message: str) -> None:
        Scan.objects.filter(pk=self.scan.pk, status=Status.RUNNING).update(
            **self.counts,
            problems=self.problems,
            status=status,
            message=message,
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
        if self.on_progress:
            self.on_progress(self.counts)

    # -- the walk --

    def run(self) -> str:
        """Walk, place, remove, queue; returns a note for the Scan row."""
        root_path = self.root_path
        if not os.path.isdir(root_path):
            raise _Stop(Status.FAILED, f"the root folder is missing: {root_path}")
        self.all_roots = library_roots()
        self.other_roots = {
            str(p) for p in self.all_roots if str(p) != root_path and boundary.within(p, root_path)
        }
        self.first_scan = not LibraryFile.objects.filter(root=self.root).exists()
        if connection.vendor == "sqlite":
            # A bigger page cache for this connection: the tag indexes outgrow the
            # default 2 MB at once, and every miss is a read from the OS.
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KB}")
        self.walk(root_path)
        self.flush()
        self.collect_gone_folders()
        if self.counts["seen"] == 0 and self.missing:
            # An unmounted disk looks like an empty folder: never empty the library for it.
            raise _Stop(
                Status.FAILED,
                f"found no audio files but the library has {len(self.missing)} here; "
                "nothing removed (is the disk mounted?)",
            )
        self.place_deferred()
        self.remove_missing()
        return self.queue_outdated()

    def walk(self, top: str) -> None:
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except PermissionError:
                self.unlisted.append(folder)
                self.problem(folder, "permission denied: folder cannot be listed")
                continue
            except OSError as exc:
                self.unlisted.append(folder)
                self.problem(folder, f"folder cannot be listed: {exc.strerror or exc}")
                continue
            self.visited.add(folder)
            if not entries:
                self.problem(folder, "empty folder", "empty_folders")
            existing = self.rows_in(folder)
            subfolders = []
            for entry in entries:
                kind = self.classify(entry)
                if kind == "dir":
                    subfolders.append(entry.path)
                elif kind == "audio":
                    self.visit_file(entry, existing)
            for row in existing.values():
                self.missing[row.id] = row
            # Popped from the end: reversed keeps the walk in name order.
            stack.extend(reversed(subfolders))

    def classify(self, entry: os.DirEntry) -> str | None:
        name = entry.name
        if name.startswith(self.temp_prefix):
            # Ours, never music; a killed writer's leftover goes (a live writer's stays).
            if is_temp_name(name) and remove_abandoned(Path(entry.path)):
                log.info("removed a temporary file a killed writer left: %s", entry.path)
            return None
        if not _valid_name(name):
            self.problem(entry.path, "name is not valid UTF-8; skipped")
            return None
        try:
            if entry.is_symlink():
                self.check_link(entry)
                return None
            if entry.is_dir(follow_symlinks=False):
                if entry.path in self.other_roots:
                    return None
                if self.ignored and self.ignored(entry.path):
                    self.counts["skipped"] += 1
                    return None
                return "dir"
        except OSError as exc:
            self.problem(entry.path, f"cannot inspect: {exc.strerror or exc}")
            return None
        if os.path.splitext(name)[1].lower() not in self.extensions:
            return None
        if self.ignored and self.ignored(entry.path):
            self.counts["skipped"] += 1
            return None
        return "audio"

    def check_link(self, entry: os.DirEntry) -> None:
        """Symlinks are never followed (their targets are scanned where they lie);
        loops, broken links and links out of the library are reported."""
        try:
            is_dir = stat.S_ISDIR(os.stat(entry.path).st_mode)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.problem(entry.path, "symlink loop")
            elif exc.errno == errno.ENOENT:
                self.problem(entry.path, "broken symlink")
            else:
                self.problem(entry.path, f"cannot follow symlink: {exc.strerror or exc}")
            return
        audio = os.path.splitext(entry.name)[1].lower() in self.extensions
        if not (is_dir or audio):
            return
        real = os.path.realpath(entry.path)
        if boundary.containing_root(real, self.all_roots) is not None:
            self.counts["skipped"] += 1
        else:
            self.problem(entry.path, f"symlink to {real}, outside the library", "skipped")

    def rows_in(self, folder: str) -> dict[str, Row]:
        rows = LibraryFile.objects.filter(folder=folder).values_list(*ROW_FIELDS)
        return {os.path.basename(r[2]): Row(*r) for r in rows}

    def visit_file(self, entry: os.DirEntry, existing: dict[str, Row]) -> None:
        path = entry.path
        if len(os.fsencode(path)) > MAX_PATH_BYTES:
            self.problem(path, f"path longer than {MAX_PATH_BYTES} bytes; skipped")
            return
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # gone since the listing: simply not there
                self.problem(path, f"cannot stat: {exc.strerror or exc}")
            return
        self.counts["seen"] += 1
        row = existing.pop(entry.name, None)
        if row is None:
            if self.first_scan:
                self.add(("new", path, st, None))
            else:
                self.deferred.append((path, st))
        else:
            stat_changed = row.size != st.st_size or row.mtime_ns != st.st_mtime_ns
            # A file that could not be read is retried when its mode or owner changed.
            retry = bool(row.error) and row.ctime_ns != st.st_ctime_ns
            if stat_changed or retry or row.root_id != self.root.pk:
                self.add(("changed", path, st, row))
            elif self.full:
                self.add(("reread", path, st, row))
            elif row.error:
                # Still unreadable: reported on every scan, not read again.
                self.problem(path, row.error)
        self.tick()

    # -- reading and writing --

    def add(self, item: tuple) -> None:
        self.batch.append(item)
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        batch, self.batch = self.batch, []
        if not batch:
            return
        creates: list[metadata.FileInfo] = []
        updates: list[tuple[Row, metadata.FileInfo, bool]] = []
        moves: list[tuple[int, str, os.stat_result]] = []
        renames: list[tuple[str, str]] = []
        for kind, path, st, row in batch:
            if kind == "move":
                moves.append((row.id, path, st))
                renames.append((row.path, path))
                continue
            info = metadata.read_file(path, st, self.namespace)
            if info.gone:  # deleted since the listing: the next scan sees it gone
                continue
            self.counts["read"] += 1
            if info.error:
                self.problem(path, info.error)
            if kind == "new":
                moved = self.take_missing(info.fingerprint, info.size, None)
                if moved is not None:
                    self.counts["moved"] += 1
                    updates.append((moved, info, False))
                    renames.append((moved.path, path))
                else:
                    self.counts["new"] += 1
                    creates.append(info)
            else:
                if kind == "changed":
                    self.counts["changed"] += 1
                updates.append((row, info, kind == "changed"))
            self.tick()
        write_batch(self.root, creates, updates, moves)
        for old, new in renames:  # pending tagging jobs follow their files
            jobs.follow_rename([old], new)

    # -- moves and removals --

    def collect_gone_folders(self) -> None:
        """Rows in folders the walk never entered (deleted, renamed, now ignored)."""
        known = set(
            LibraryFile.objects.filter(root=self.root).values_list("folder", flat=True).distinct()
        )
        gone = [
            folder
            for folder in known - self.visited
            if not any(boundary.within(folder, unlisted) for unlisted in self.unlisted)
        ]
        for start in range(0, len(gone), 500):
            chunk = gone[start : start + 500]
            rows = LibraryFile.objects.filter(root=self.root, folder__in=chunk)
            for values in rows.values_list(*ROW_FIELDS):
                self.missing[values[0]] = Row(*values)

    def take_missing(self, fingerprint: str, size: int, mtime_ns: int | None) -> Row | None:
        """The missing row with this fingerprint (and stat, if given), taken off the list."""
        if not fingerprint:
            return None
        for row_id in self.by_fingerprint.get(fingerprint, ()):
            row = self.missing.get(row_id)
            if row is None:
                continue
            if mtime_ns is not None and (row.size, row.mtime_ns) != (size, mtime_ns):
                continue
            del self.missing[row_id]
            return row
        return None

    def place_deferred(self) -> None:
        """New files of a rescan: moves of missing rows, or really new."""
        self.by_fingerprint = defaultdict(list)
        by_stat: dict[tuple[int, int], list[int]] = defaultdict(list)
        for row in self.missing.values():
            if row.fingerprint:
                self.by_fingerprint[row.fingerprint].append(row.id)
                by_stat[(row.size, row.mtime_ns)].append(row.id)
        deferred, self.deferred = self.deferred, []
        for path, st in deferred:
            if (st.st_size, st.st_mtime_ns) in by_stat and self.missing:
                try:
                    fp = metadata.fingerprint(path)
                except OSError:
                    fp = ""
                row = self.take_missing(fp, st.st_size, st.st_mtime_ns)
                if row is not None:
                    self.counts["moved"] += 1
                    self.add(("move", path, st, row))
                    continue
            self.add(("new", path, st, None))
        self.flush()

    def remove_missing(self) -> None:
        ids = list(self.missing)
        for start in range(0, len(ids), 500):
            with transaction.atomic():
                LibraryFile.objects.filter(pk__in=ids[start : start + 500]).delete()
        self.counts["removed"] += len(ids)
        self.missing = {}

    # -- auto-tag --

    def queue_outdated(self) -> str:
        if not self.root.auto_tag:
            return ""

        def count(made: int) -> None:
            self.counts["queued"] += made
            self.tick()

        return autotag.queue_outdated(self.root, after_chunk=count)[1]


# --- every root ----------------------------------------------------------------------


def scannable_roots(selector: str | None = None) -> list[LibraryRoot]:
    """Enabled roots (after seeding from the settings); selector picks one by path or name."""
    sync_settings_roots()
    roots = list(LibraryRoot.objects.filter(enabled=True))
    if selector is None:
        return roots
    wanted = LibraryRoot.normalise(selector) if os.path.isabs(selector) else None
    found = [r for r in LibraryRoot.objects.all() if r.path == wanted or r.name == selector]
    return found
