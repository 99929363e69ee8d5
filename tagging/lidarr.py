"""Lidarr's Webhook connection: what each event asks of Nomarr.

Lidarr names files as it sees them; `map_lidarr_path` turns such a path into
Nomarr's by NOMARR_PATH_MAP. `handle(payload)` takes a webhook payload (parsed JSON),
does what its event asks and returns the answer's body:

* `Test`: nothing;
* `Download` (an import or an upgrade): every `trackFiles[].path` is queued;
* `Retag`: `trackFile.path` and every `trackFiles[].path` are queued with force;
* `Rename`: nothing is queued; each `renamedTrackFiles[]` entry's pending job
  follows the file from `previousPath` to `path` (tagging.jobs.follow_rename);
* any other event: ignored, with a note.

Each file gets its own outcome (`queued`, `already_queued`, `moved`, `merged`,
`running`, `no_pending_job`, or a refusal: `outside_library`, `not_found`,
`invalid`), so one bad file never fails the others. Every path is checked by
tagging.serializers.library_path, as a path in any request is. Only a payload that
is not a webhook at all (not an object, no eventType, a list that is not a list)
is refused as a whole, with a ValidationError, before anything is done, and so is
one that names more than NOMARR_LIDARR_MAX_FILES track files (`TooManyFiles`, 413).
Below that, a payload of thousands of files is answered in seconds: the files are
queued in bulk (tagging.jobs.queue_files) and the library roots read once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings
from rest_framework.exceptions import ValidationError

from nomarr_site.api import OutsideLibraryError, PathNotFound, TooLarge
from tagging import jobs
from tagging.boundary import Roots, library_roots
from tagging.models import Job
from tagging.serializers import library_path

SEPARATORS = ("/", "\\")
QUEUED = {"queued", "already_queued"}
REFUSED = {"outside_library", "not_found", "invalid"}


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
    for outcome, (job, created) in zip(waiting, jobs.queue_files(paths, force=force), strict=True):
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
        files = queue_entries(entries, force=True)
        detail = "retagged files queued with force" if files else "no track files in the payload"
    elif kind == "rename":
        entries = _capped(_entries(payload, "renamedTrackFiles"))
        roots = library_roots()
        files = [rename_entry(e, roots) for e in entries]
        detail = "pending jobs follow the renamed files; nothing new queued"
    else:
        ignored = True
        detail = f"event {event!r} is ignored; Nomarr acts on Download, Retag and Rename"
    return {
        "event": event,
        "detail": detail,
        "ignored": ignored,
        "queued": sum(1 for f in files if f["outcome"] in QUEUED),
        "refused": sum(1 for f in files if f["outcome"] in REFUSED),
        "files": files,
    }
