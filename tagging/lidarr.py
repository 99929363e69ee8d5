"""Lidarr's Webhook connection: what each event asks of Nomarr.

Lidarr names files as it sees them; `map_lidarr_path` turns such a path into
Nomarr's by NOMARR_PATH_MAP. `handle(payload)` takes a webhook payload (parsed JSON),
does what its event asks and returns the answer's body:

* `Test`: nothing;
* `Download` (an import or an upgrade): every `trackFiles[].path` is queued;
* `Retag`: `trackFile.path` and every `trackFiles[].path` are queued again, without
  force: Lidarr fires it after writing its own tags on every import, and the job's
  version check skips a file whose Nomarr tags survived (one Lidarr scrubbed is
  tagged again), so an import is not analysed twice;
* `Rename`: nothing is queued; each `renamedTrackFiles[]` entry's pending job
  follows the file from `previousPath` to `path` (tagging.jobs.follow_rename);
* any other event: ignored, with a note.

Each file gets its own outcome (`queued`, `already_queued`, `moved`, `merged`,
`running`, `no_pending_job`, or a refusal: `outside_library`, `not_found`,
`invalid`), so one bad file never fails the others. Every path is checked by
tagging.serializers.library_path, as a path in any request is, once: the real paths
it gives are queued as they are (`queue_files(checked=True)`).

A Download or Retag whose files were all refused has tagged nothing: it is answered
422 (`paths_refused`, with the fix in its detail), which Lidarr logs as a warning
("Unable to send OnReleaseImport notification"), and logged here too. Every refused
path is remembered for the dashboard (`recent_refusals`) until a call queues all it
names. Only a payload that
is not a webhook at all (not an object, no eventType, a list that is not a list)
is refused as a whole, with a ValidationError, before anything is done, and so is
one that names more than NOMARR_LIDARR_MAX_FILES track files (`TooManyFiles`, 413).
Below that, a payload of thousands of files is answered in seconds: the files are
queued in bulk (tagging.jobs.queue_files) and the library roots read once.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from nomarr_site.api import OutsideLibraryError, PathNotFound, TooLarge
from tagging import jobs
from tagging.boundary import Roots, library_roots
from tagging.models import Job
from tagging.serializers import library_path

log = logging.getLogger(__name__)

SEPARATORS = ("/", "\\")
QUEUED = {"queued", "already_queued"}
REFUSED = {"outside_library", "not_found", "invalid"}
#: The answer's `error` when every file of a Download or Retag was refused (422).
ALL_REFUSED = "paths_refused"
PATH_MAP_FIX = (
    "if Lidarr sees the music under another path than Nomarr, set NOMARR_PATH_MAP="
    "<Lidarr's folder>=<Nomarr's folder> (e.g. /music=/srv/music)"
)


# --- paths ------------------------------------------------------------------------


def _path_map() -> list[tuple[str, str, bool]]:
    """(Lidarr prefix without its trailing separator, Nomarr prefix, is Windows),
    longest Lidarr prefix first."""
    pairs = []
    for lidarr, local in settings.NOMARR_PATH_MAP:
        lidarr, local = str(lidarr), str(local)
        windows = "\\" in lidarr or bool(re.match(r"^[A-Za-z]:", lidarr))
        trimmed = lidarr.rstrip("/\\")
        if trimmed or lidarr:  # "/" trims to "": it matches every absolute path
            pairs.append((trimmed, local.rstrip("/") or "/", windows))
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)


def map_lidarr_path(path: str) -> str:
    """Lidarr's path for a file as Nomarr sees it, by NOMARR_PATH_MAP.

    The longest matching Lidarr prefix wins, and it must end at a path separator
    (/music does not match /musicals). A Windows prefix (C:\\... or with
    backslashes) matches regardless of case, and the backslashes of the rest of the
    path become slashes. A path no prefix matches is kept as it is."""
    for lidarr, local, windows in _path_map():
        head, rest = path[: len(lidarr)], path[len(lidarr) :]
        same = head.lower() == lidarr.lower() if windows else head == lidarr
        if not same or (rest and not rest.startswith(SEPARATORS)):
            continue
        if windows:
            rest = rest.replace("\\", "/")
        if local == "/":
            return rest or "/"
        return local + rest
    return path


# --- one track file -----------------------------------------------------------------


def _local(entry, key: str = "path") -> tuple[str | None, dict | None]:
    """(Nomarr's path for entry[key], None) or (None, the outcome saying why not)."""
    raw = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(raw, str) or not raw:
        return None, {
            "path": raw if isinstance(raw, str) else None,
            "outcome": "invalid",
            "detail": f"track file without a '{key}' string",
        }
    return map_lidarr_path(raw), None


def _job(job: Job | None) -> dict | None:
    return {"id": job.pk, "status": job.status} if job is not None else None


# What library_path raises for a path it refuses.
REFUSALS = (ValidationError, OutsideLibraryError, PathNotFound)


def _refusal(exc: Exception, local: str, missing: str) -> dict:
    """The outcome for library_path's refusal of local; missing words a 404."""
    if isinstance(exc, OutsideLibraryError):
        return {"outcome": "outside_library", "detail": str(exc.detail)}
    if isinstance(exc, PathNotFound):
        return {"outcome": "not_found", "detail": missing}
    return {"outcome": "invalid", "detail": f"not an absolute path: {local!r}"}


def _unreadable(exc: Exception, local: str) -> str:
    """Why a file to queue cannot be read: it is not there, or the OSError says."""
    cause = exc.__cause__
    if cause is None or isinstance(cause, FileNotFoundError):
        return f"no such file: {local}"
    return f"not a readable file: {cause}"


def _checked(entry, roots: Roots) -> tuple[dict, Path | None]:
    """One track file of a Download or Retag event, checked: (its outcome so far, the
    real path to queue), or (its refusal, None)."""
    local, invalid = _local(entry)
    if invalid:
        return invalid, None
    outcome = {"path": entry["path"], "local_path": local}
    try:
        resolved = library_path(local, roots)
    except REFUSALS as exc:
        return {**outcome, **_refusal(exc, local, _unreadable(exc, local))}, None
    if resolved.is_dir():
        return {**outcome, "outcome": "not_found", "detail": f"not a readable file: {local}"}, None
    return outcome, resolved


def queue_entries(entries: list, force: bool) -> list[dict]:
    """Queue the track files of a Download or Retag event, in bulk; their outcomes."""
    roots = library_roots()
    outcomes, waiting, paths = [], [], []
    for entry in entries:
        outcome, resolved = _checked(entry, roots)
        outcomes.append(outcome)
        if resolved is not None:
            waiting.append(outcome)
            paths.append(resolved)
    queued = jobs.queue_files(paths, force=force, checked=True)
    for outcome, (job, created) in zip(waiting, queued, strict=True):
        outcome.update(outcome="queued" if created else "already_queued", job=_job(job))
    return outcomes


def rename_entry(entry, roots: Roots | None = None) -> dict:
    """Follow one track file of a Rename event from previousPath to path; its outcome."""
    new_local, invalid = _local(entry)
    if invalid:
        return invalid
    old_local, invalid = _local(entry, "previousPath")
    if invalid:
        return {**invalid, "path": entry["path"]}
    outcome = {
        "path": entry["path"],
        "previous_path": entry["previousPath"],
        "local_path": new_local,
    }
    try:
        new = library_path(new_local, roots)
    except REFUSALS as exc:
        return {**outcome, **_refusal(exc, new_local, f"no such file: {new_local}")}
    # The old file is gone: its job may name it as Lidarr spelled it or as it resolved
    # (as far as it resolves: realpath stops at a symlink loop instead of raising).
    old_paths = {os.path.normpath(old_local)}
    if os.path.isabs(old_local):
        try:
            old_paths.add(os.path.realpath(old_local))
        except ValueError:  # a NUL or a lone surrogate: no file can have that name
            pass
    followed = jobs.follow_rename(old_paths, new)
    if followed.outcome == "no_pending_job":
        return {**outcome, "outcome": "no_pending_job", "detail": "nothing queued for the old path"}
    if followed.outcome == "merged":
        return {
            **outcome,
            "outcome": "merged",
            "detail": f"job {followed.removed} removed; the new path already has a job",
            "job": _job(followed.job),
        }
    if followed.outcome == "running":
        return {
            **outcome,
            "outcome": "running",
            "detail": f"job {followed.job.pk} already started on the old path; "
            "tag the new path again",
            "job": _job(followed.job),
        }
    return {**outcome, "outcome": "moved", "job": _job(followed.job)}


# --- one event ------------------------------------------------------------------------


class TooManyFiles(TooLarge):
    default_detail = "the payload names too many track files"
    code = "too_many_files"


def _capped(entries: list) -> list:
    """entries, if there are at most NOMARR_LIDARR_MAX_FILES of them; TooManyFiles if not."""
    cap = settings.NOMARR_LIDARR_MAX_FILES
    if len(entries) > cap:
        raise TooManyFiles(
            f"the payload names {len(entries)} track files; at most {cap} are taken in one "
            "call (NOMARR_LIDARR_MAX_FILES). Nothing was queued."
        )
    return entries


def _entries(payload: dict, key: str) -> list:
    value = payload.get(key)
    if value is None:
        return []
    if key == "trackFile":
        value = [value]
    if not isinstance(value, list):
        raise ValidationError({key: ["must be a list of track files"]})
    return value


def handle(payload) -> dict:
    """Do what a webhook payload asks; the answer's body (LidarrResponseSerializer).

    Raises ValidationError, having done nothing, for a payload that is not a webhook,
    and TooManyFiles for one that names more than NOMARR_LIDARR_MAX_FILES files."""
    if not isinstance(payload, dict):
        raise ValidationError("expected a JSON object (Lidarr's webhook payload)")
    event = payload.get("eventType")
    if not isinstance(event, str) or not event.strip():
        raise ValidationError({"eventType": ["required: a string such as Download or Test"]})
    kind = event.strip().lower()
    files: list[dict] = []
    ignored = False
    if kind == "test":
        detail = "test received; nothing done"
    elif kind == "download":
        files = queue_entries(_capped(_entries(payload, "trackFiles")), force=False)
        detail = "imported files queued" if files else "no trackFiles in the payload"
    elif kind == "retag":
        entries = _capped(_entries(payload, "trackFile") + _entries(payload, "trackFiles"))
        files = queue_entries(entries, force=False)
        detail = (
            "retagged files queued (files whose Nomarr tags survived are skipped)"
            if files
            else "no track files in the payload"
        )
    elif kind == "rename":
        entries = _capped(_entries(payload, "renamedTrackFiles"))
        roots = library_roots()
        files = [rename_entry(e, roots) for e in entries]
        detail = "pending jobs follow the renamed files; nothing new queued"
    else:
        ignored = True
        detail = f"event {event!r} is ignored; Nomarr acts on Download, Retag and Rename"
    body = {
        "event": event,
        "detail": detail,
        "ignored": ignored,
        "queued": sum(1 for f in files if f["outcome"] in QUEUED),
        "refused": sum(1 for f in files if f["outcome"] in REFUSED),
        "files": files,
    }
    if kind in ("download", "retag") and files:
        _report_refusals(body)
    return body


def status_code(body: dict) -> int:
    """The HTTP status of handle()'s answer: 422 when nothing of a Download or Retag
    could be queued (Lidarr logs any status from 400 up), 202 when something has a
    job, else 200."""
    if body.get("error") == ALL_REFUSED:
        return 422
    return 202 if body["queued"] else 200


# --- refusals, for Lidarr's log and the dashboard ---------------------------------------

REFUSALS_KEY = "nomarr:lidarr:refused"
#: Refused paths the dashboard shows (the latest), and how long they are kept.
REFUSALS_KEPT = 10
REFUSALS_SECONDS = 30 * 24 * 3600


def _report_refusals(body: dict) -> None:
    """Log the refused files of a Download or Retag, keep them for the dashboard, and
    mark an answer with nothing queued as refused (ALL_REFUSED, the fix in its detail).
    A call that queued every file it named clears the dashboard's list: paths map."""
    refused = [f for f in body["files"] if f["outcome"] in REFUSED]
    if not refused:
        cache.delete(REFUSALS_KEY)
        return
    first = refused[0]
    why = f"{first['path']!r}: {first.get('detail', first['outcome'])}"
    log.warning(
        "Lidarr %s: %d of %d track files refused, e.g. %s; %s",
        body["event"],
        len(refused),
        len(body["files"]),
        why,
        PATH_MAP_FIX,
    )
    now = timezone.now().isoformat(timespec="seconds")
    kept = [
        {
            "path": f["path"],
            "local_path": f.get("local_path"),
            "outcome": f["outcome"],
            "detail": f.get("detail", ""),
            "at": now,
        }
        for f in refused[:REFUSALS_KEPT]
    ]
    paths = {f["path"] for f in kept}
    older = [f for f in cache.get(REFUSALS_KEY, []) if f.get("path") not in paths]
    cache.set(REFUSALS_KEY, (kept + older)[:REFUSALS_KEPT], REFUSALS_SECONDS)
    if body["queued"] == 0:
        mapping = ", ".join(f"{a}={b}" for a, b in settings.NOMARR_PATH_MAP) or "unset"
        body["error"] = ALL_REFUSED
        body["detail"] = (
            f"nothing queued: all {len(refused)} track files were refused, e.g. {why}. "
            f"{PATH_MAP_FIX[0].upper()}{PATH_MAP_FIX[1:]}; NOMARR_PATH_MAP is now {mapping}."
        )


def recent_refusals() -> list[dict]:
    """The latest track files Lidarr named that Nomarr refused (newest first), for the
    dashboard; empty once a later call queued everything it named."""
    return list(cache.get(REFUSALS_KEY, []))
