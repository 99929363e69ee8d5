"""The library's rows: writing what a scan read, and bringing one file up to date.

A LibraryFile row holds a file's stat, fingerprint and common tags as columns; its
TagValue rows hold every tag value, parsed as a number where it is one. Two
writers keep them:

* `write_batch` writes one batch of a scan (library/scanning.py) in one
  transaction. Its fast paths are raw SQL, on purpose: `update_rows` is one
  executemany UPDATE (bulk_update's CASE WHEN statements grow with rows times
  fields and are many times slower), and `insert_tags` is COPY on PostgreSQL and
  one executemany INSERT elsewhere (a tagged file has 150+ values; model instances
  would cost more than the database does). A re-read file whose tags did not
  change (same digest) keeps its TagValue rows.
* `refresh_file` brings one file's rows up to date at once. A tagging job sends
  `tagging.signals.file_tagged` after it wrote a file, and `refresh_on_tag`
  (connected in library/apps.py) refreshes it: a failure is logged, never raised,
  since the next scan catches up.
* `apply_rewrites` is the retier's (library/retier.py): files whose Nomarr tags it
  just rewrote, whose other tags and audio it left alone. It reads no file: only the
  rewritten keys' TagValue rows that differ from the values written are replaced, and
  the files' stat and tags_digest set, for a whole batch at once.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from library import metadata
from library.models import LibraryFile, LibraryRoot, TagValue
from library.roots import root_for, sync_settings_roots
from library.signals import file_refreshed
from tagging import keys

log = logging.getLogger(__name__)


@dataclass
class Row:
    """What a scan compares a file against: the stored state of its row."""

    id: int
    root_id: int
    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    fingerprint: str
    error: str
    tags_digest: str


#: The LibraryFile fields that make a Row, in its order (for values_list).
ROW_FIELDS = (
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


# --- writing a scan's batch --------------------------------------------------------

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
    return [tag_row(file_id, key, value) for key, value in info.tags]


def tag_row(file_id: int, key: str, value: str) -> tuple:
    """(file_id, key, value, number): one TagValue row, as insert_tags takes it."""
    return (file_id, key[:255], value[: TagValue.VALUE_LENGTH], tag_number(key, value))


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
    updates: list[tuple[Row, metadata.FileInfo, bool]],
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


# --- one file, now -----------------------------------------------------------------


def refresh_file(path: str | os.PathLike, **tagged) -> LibraryFile | None:
    """Bring one file's rows up to date at once (after a job wrote its tags).

    Inside the transaction, `library.signals.file_refreshed` is sent with the row and
    the `tagged` keywords (the job's `result`), so what the apps above store with it
    commits with the rows.

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
    info = metadata.read_file(real, st, keys.namespace())
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
                file_refreshed.send(sender=LibraryFile, file=row, **tagged)
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


@dataclass(frozen=True)
class Rewrite:
    """A file whose Nomarr tags were just rewritten, as it is now: the values of the
    keys that were rewritten ([] where a key is gone), its stat after the write and
    the tags_digest of its tags (library.metadata.FileInfo.tags_digest, read by the
    writer). Every other tag, and the audio, are as the row has them."""

    file_id: int
    values: dict[str, list[str]]
    size: int
    mtime_ns: int
    ctime_ns: int
    tags_digest: str


#: The LibraryFile fields a Rewrite sets.
REWRITE_FIELDS = ["size", "mtime_ns", "ctime_ns", "tags_digest", "read_at"]


def apply_rewrites(files: list[Rewrite]) -> int:
    """Bring the rows of files whose tags were just rewritten up to date without
    reading the files: per rewritten key whose stored values differ from those
    written, its TagValue rows are replaced; every file's stat and digest are set.
    One transaction, a few statements for all of them (deletes by id, one insert,
    one executemany UPDATE); the TagValue rows replaced.

    No `file_refreshed` is sent: that carries a tagging job's result, and a rewrite
    has none (the scores, the model set and the audio are as they were)."""
    if not files:
        return 0
    wanted = {key[:255] for rewrite in files for key in rewrite.values}
    stored: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
    # By file only, the keys picked here: with `key IN (...)` too, SQLite's planner
    # takes the (key, number) index and reads those keys' rows of the whole library,
    # every batch (33 ms a batch at 1,000 files, growing with the library; 7 ms so).
    found = TagValue.objects.filter(file_id__in=[rewrite.file_id for rewrite in files])
    now = timezone.now()
    with transaction.atomic():
        for pk, file_id, key, value in found.order_by("id").values_list(
            "id", "file_id", "key", "value"
        ):
            if key in wanted:
                stored[file_id, key].append((pk, value))
        gone: list[int] = []
        new: list[tuple] = []
        for rewrite in files:
            for key, values in rewrite.values.items():
                rows = [tag_row(rewrite.file_id, key, value) for value in values]
                old = stored.get((rewrite.file_id, key[:255]), [])
                if [value for _, value in old] != [row[2] for row in rows]:
                    gone.extend(pk for pk, _ in old)
                    new.extend(rows)
        if gone:
            TagValue.objects.filter(pk__in=gone).delete()
        insert_tags(new)
        update_rows(
            [
                LibraryFile(
                    pk=rewrite.file_id,
                    size=rewrite.size,
                    mtime_ns=rewrite.mtime_ns,
                    ctime_ns=rewrite.ctime_ns,
                    tags_digest=rewrite.tags_digest,
                    read_at=now,
                )
                for rewrite in files
            ],
            REWRITE_FIELDS,
        )
    return len(new)


def refresh_quietly(path: str | os.PathLike, **tagged) -> None:
    """refresh_file for the tagging job: a failure is logged, never raised (the next
    scan catches up)."""
    try:
        refresh_file(path, **tagged)
    except Exception:  # the job's result must not depend on the library
        log.exception("library refresh of %s failed; the next scan will catch up", path)


def refresh_on_tag(sender, path: str, **kwargs) -> None:
    """The receiver of tagging.signals.file_tagged: the tagged file's rows, now."""
    kwargs.pop("signal", None)  # Django's own keyword, not the job's
    refresh_quietly(path, **kwargs)
