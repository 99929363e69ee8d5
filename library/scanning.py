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

Concurrency and control
-----------------------
Starting a scan inserts a running Scan row; a partial unique constraint allows one
running scan per root, so a second start is refused (ScanRefused) by the database,
whichever process tries. A scan whose process died is reaped at the next start (dead
pid on this host, or no heartbeat for STALE_AFTER seconds). Progress is saved about
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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from library import metadata
from library.models import LibraryFile, LibraryRoot, Scan, TagValue
from library.roots import library_roots, root_for, sync_settings_roots

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
    """A scan of this root is already running."""


class _Stop(Exception):
    def __init__(self, status: str, message: str = ""):
        super().__init__(message)
        self.status, self.message = status, message


def worker_id() -> str:
    from tagging.jobs import worker_id as job_worker_id

    return job_worker_id()


def audio_extensions() -> frozenset[str]:
    from tagging.pipeline import AUDIO_EXTENSIONS

    return AUDIO_EXTENSIONS


def temp_prefix() -> str:
    from tagging.writers import TEMP_PREFIX

    return TEMP_PREFIX


# --- starting, cancelling --------------------------------------------------------


def start_scan(root: LibraryRoot, full: bool = False, trigger: str = "command") -> Scan:
    """Claim the root: a new running Scan row, or ScanRefused if one is running."""
    _reap_stale(root)
    try:
        with transaction.atomic():
            return Scan.objects.create(root=root, full=full, trigger=trigger, worker=worker_id())
    except IntegrityError:
        running = Scan.objects.filter(root=root, status=Status.RUNNING).first()
        detail = (
            f" (scan #{running.pk}, started {running.started_at:%Y-%m-%d %H:%M:%S}, "
            f"by {running.worker})"
            if running
            else ""
        )
        raise ScanRefused(f"a scan of {root.path} is already running{detail}") from None


def cancel_scans(root: LibraryRoot | None = None) -> int:
    """Ask running scans (of root, or all) to stop; they stop within about a second."""
    running = Scan.objects.filter(status=Status.RUNNING)
    if root is not None:
        running = running.filter(root=root)
    return running.update(cancel_requested=True)


def _reap_stale(root: LibraryRoot) -> None:
    from tagging.jobs import _pid_alive

    host = worker_id().rpartition(":")[0]
    cutoff = timezone.now() - timedelta(seconds=STALE_AFTER)
    for scan in Scan.objects.filter(root=root, status=Status.RUNNING):
        name, _, pid = scan.worker.rpartition(":")
        dead = name == host and pid.isdigit() and not _pid_alive(int(pid))
        if dead or scan.updated_at < cutoff:
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
    """Start and run one scan of root (ScanRefused if one is running)."""
    scan = start_scan(root, full, trigger)
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


@dataclass
class _Row:
    id: int
    root_id: int
    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    fingerprint: str
    error: str
    tags_digest: str


_ROW_FIELDS = (
    "id",
    "root_id",
    "path",
    "size",
    "mtime_ns",
    "ctime_ns",
    "fingerprint",
    "error",
    "tags_digest",
)


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
        self.namespace = settings.NOMARR_NAMESPACE
        self.ignored = _ignore_matcher(self.root)
        self.extensions = audio_extensions()
        self.temp_prefix = temp_prefix()
        self.deadline = time.monotonic() + time_budget if time_budget else None
        self.on_progress = on_progress
        self.counts = dict.fromkeys(Scan.COUNTERS, 0)
        self.problems: list[dict[str, str]] = []
        self.batch: list[tuple] = []
        self.deferred: list[tuple[str, os.stat_result]] = []
        self.missing: dict[int, _Row] = {}
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
        inside = root_path.rstrip("/") + "/"
        self.other_roots = {str(p) for p in self.all_roots if str(p).startswith(inside)}
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
        if any(Path(real).is_relative_to(root) for root in self.all_roots):
            self.counts["skipped"] += 1
        else:
            self.problem(entry.path, f"symlink to {real}, outside the library", "skipped")

    def rows_in(self, folder: str) -> dict[str, _Row]:
        rows = LibraryFile.objects.filter(folder=folder).values_list(*_ROW_FIELDS)
        return {os.path.basename(r[2]): _Row(*r) for r in rows}

    def visit_file(self, entry: os.DirEntry, existing: dict[str, _Row]) -> None:
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
        updates: list[tuple[_Row, metadata.FileInfo, bool]] = []
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
        if renames:
            follow_renames(renames)

    # -- moves and removals --

    def collect_gone_folders(self) -> None:
        """Rows in folders the walk never entered (deleted, renamed, now ignored)."""
        known = set(
            LibraryFile.objects.filter(root=self.root).values_list("folder", flat=True).distinct()
        )
        gone = [
            folder
            for folder in known - self.visited
            if not any(folder == u or folder.startswith(u.rstrip("/") + "/") for u in self.unlisted)
        ]
        for start in range(0, len(gone), 500):
            chunk = gone[start : start + 500]
            rows = LibraryFile.objects.filter(root=self.root, folder__in=chunk)
            for values in rows.values_list(*_ROW_FIELDS):
                self.missing[values[0]] = _Row(*values)

    def take_missing(self, fingerprint: str, size: int, mtime_ns: int | None) -> _Row | None:
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

        return queue_outdated(self.root, after_chunk=count)[1]


# --- writing rows ----------------------------------------------------------------

_INFO_FIELDS = (
    "size",
    "mtime_ns",
    "ctime_ns",
    "fingerprint",
    "format",
    "duration",
    "bitrate",
    "sample_rate",
    "channels",
    "nom_version",
    "error",
    "tags_digest",
)
UPDATE_FIELDS = [
    "root",
    "path",
    "folder",
    *_INFO_FIELDS,
    *metadata.columns([]).keys(),
    "read_at",
]
MOVE_FIELDS = ["root", "path", "folder", "size", "mtime_ns", "ctime_ns"]


def _apply(row: LibraryFile, info: metadata.FileInfo, root: LibraryRoot, now) -> LibraryFile:
    row.root = root
    row.path = info.path
    row.folder = info.folder
    for name in _INFO_FIELDS:
        setattr(row, name, getattr(info, name))
    for name, value in (info.columns or metadata.columns([])).items():
        setattr(row, name, value)
    row.read_at = now
    return row


def tag_rows(file_id: int, info: metadata.FileInfo) -> list[tuple]:
    """(file_id, key, value, number) for each of the file's tag values."""
    limit = TagValue.VALUE_LENGTH
    return [(file_id, key[:255], value[:limit], tag_number(key, value)) for key, value in info.tags]


def insert_tags(rows: list[tuple]) -> None:
    """Insert TagValue rows: COPY on PostgreSQL, one executemany elsewhere (a tagged
    file has 150+ values; model instances would cost more than the database does)."""
    if not rows:
        return
    meta = TagValue._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in TAG_COLUMNS)
    table = quote(meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            sql = f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s)"  # noqa: S608
            cursor.executemany(sql, rows)


TAG_COLUMNS = ("file", "key", "value", "number")


def tag_number(key: str, value: str) -> float | None:
    found = metadata.number(value)
    if found is None and key in ("tracknumber", "discnumber"):
        found = metadata._leading_int([value])
    elif found is None and key in ("date", "originaldate"):
        found = metadata._year([value])
    return None if found is None else float(found)


def update_rows(rows: list[LibraryFile], fields: list[str]) -> None:
    """UPDATE each row by id, as one executemany (bulk_update's CASE WHEN statements
    grow with rows times fields and are many times slower)."""
    meta = LibraryFile._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
    # Only quoted column and table names of our own model go into the text; values are params.
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    sql = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"  # noqa: S608
    params = [
        [field.get_db_prep_save(getattr(row, field.attname), connection) for field in columns]
        + [row.pk]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def write_batch(
    root: LibraryRoot,
    creates: list[metadata.FileInfo],
    updates: list[tuple[_Row, metadata.FileInfo, bool]],
    moves: list[tuple[int, str, os.stat_result]],
) -> None:
    """One transaction: new rows, re-read rows, moved rows. A re-read row's TagValues
    are replaced only if its tags differ from the stored ones (by digest)."""
    now = timezone.now()
    with transaction.atomic():
        tags: list[tuple] = []
        if creates:
            rows = [_apply(LibraryFile(), info, root, now) for info in creates]
            try:
                with transaction.atomic():
                    LibraryFile.objects.bulk_create(rows)
            except IntegrityError:
                # A path got its row meanwhile (a job's refresh): place them one by one.
                rows = [_upsert(info, root, now) for info in creates]
            for row, info in zip(rows, creates, strict=True):
                tags.extend(tag_rows(row.pk, info))
        if updates:
            rows = [_apply(LibraryFile(pk=old.id), info, root, now) for old, info, _ in updates]
            update_rows(rows, UPDATE_FIELDS)
            # Changed content is queued again if it needs tags; a plain re-read is not.
            reset = [old.id for old, _, reset_queue in updates if reset_queue]
            if reset:
                LibraryFile.objects.filter(pk__in=reset).update(queued_version="")
            retag = [
                (old.id, info) for old, info, _ in updates if old.tags_digest != info.tags_digest
            ]
            if retag:
                TagValue.objects.filter(file_id__in=[row_id for row_id, _ in retag]).delete()
                for row_id, info in retag:
                    tags.extend(tag_rows(row_id, info))
        if moves:
            rows = []
            for row_id, path, st in moves:
                row = LibraryFile(pk=row_id, root=root, path=path, folder=os.path.dirname(path))
                row.size, row.mtime_ns, row.ctime_ns = st.st_size, st.st_mtime_ns, st.st_ctime_ns
                rows.append(row)
            update_rows(rows, MOVE_FIELDS)
        if tags:
            insert_tags(tags)


def _upsert(info: metadata.FileInfo, root: LibraryRoot, now) -> LibraryFile:
    row = LibraryFile.objects.filter(path=info.path).first() or LibraryFile()
    _apply(row, info, root, now)
    row.save()
    TagValue.objects.filter(file=row).delete()
    return row


def follow_renames(renames: list[tuple[str, str]]) -> None:
    """Point pending tagging jobs of moved files at their new paths (a job already
    pending for the new path makes the old one redundant: it is removed)."""
    from tagging.models import Job

    for old, new in renames:
        pending = Job.objects.filter(path=old, status=Job.Status.PENDING)
        try:
            with transaction.atomic():
                pending.update(path=new)
        except IntegrityError:
            pending.delete()


# --- auto-tag --------------------------------------------------------------------


def current_version() -> tuple[str | None, str]:
    """(the model set's version, "") or (None, why nothing can be tagged)."""
    from tagging.catalog import discover

    catalog = discover(settings.NOMARR_MODELS_DIRS, settings.NOMARR_MOOD_HEADS)
    if not catalog.heads:
        return None, "no models installed: nothing queued for tagging"
    return catalog.fingerprint, ""


def queue_outdated(root: LibraryRoot, after_chunk=None) -> tuple[int, str]:
    """Queue the root's files that have no tags of the current model set and were
    not queued for it yet; returns (jobs created, message).

    Each job costs a broker message (about 10 ms with the ORM broker on SQLite), so a
    big first scan spends most of its time here: after_chunk(created) is called after
    every QUEUE_CHUNK files, and the scan uses it to save progress and to stop at its
    cancel flag or time budget (what is left is queued by the next scan)."""
    from tagging.jobs import queue_file

    version, message = current_version()
    if version is None:
        return 0, message
    todo = (
        LibraryFile.objects.filter(root=root, error="")
        .exclude(nom_version=version)
        .exclude(queued_version=version)
        .filter(Q(duration__isnull=True) | Q(duration__gte=settings.NOMARR_MIN_DURATION))
        .order_by("pk")
        .values_list("pk", "path")
    )
    created, last = 0, 0
    while chunk := list(todo.filter(pk__gt=last)[:QUEUE_CHUNK]):
        last = chunk[-1][0]
        made = 0
        with transaction.atomic():
            for _, path in chunk:
                made += queue_file(Path(path))[1]
            LibraryFile.objects.filter(pk__in=[pk for pk, _ in chunk]).update(
                queued_version=version
            )
        created += made
        if after_chunk:
            after_chunk(made)
    return created, ""


QUEUE_CHUNK = 100


# --- one file, now -----------------------------------------------------------------


def refresh_file(path: str | os.PathLike) -> LibraryFile | None:
    """Bring one file's rows up to date at once (after a job wrote its tags).

    Returns the row, or None when the path is outside the library or gone (its row
    is then removed). A file with no row yet takes over the row of a vanished file
    with the same audio (a rename the library has not seen yet)."""
    real = os.path.realpath(os.fspath(path))
    sync_settings_roots()
    root = root_for(real)
    if root is None:
        return None
    try:
        st = os.stat(real)
    except FileNotFoundError:
        LibraryFile.objects.filter(path=real).delete()
        return None
    info = metadata.read_file(real, st, settings.NOMARR_NAMESPACE)
    now = timezone.now()
    for attempt in range(2):
        try:
            with transaction.atomic():
                row = LibraryFile.objects.filter(path=real).first() or _vanished_twin(info)
                if row is None:
                    row = LibraryFile()
                _apply(row, info, root, now)
                row.save()
                TagValue.objects.filter(file=row).delete()
                insert_tags(tag_rows(row.pk, info))
                return row
        except IntegrityError:  # a scan inserted the same path meanwhile
            if attempt:
                raise
    return None


def _vanished_twin(info: metadata.FileInfo) -> LibraryFile | None:
    if not info.fingerprint:
        return None
    for row in LibraryFile.objects.filter(fingerprint=info.fingerprint).exclude(path=info.path):
        if not os.path.lexists(row.path):
            return row
    return None


def refresh_quietly(path: str | os.PathLike) -> None:
    """refresh_file for the tagging job: a failure is logged, never raised (the next
    scan catches up)."""
    try:
        refresh_file(path)
    except Exception:  # the job's result must not depend on the library
        log.exception("library refresh of %s failed; the next scan will catch up", path)


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
