"""Embeddings for files analysed before sonic existed, or by another model set.

`missing()` is the truth of what is left (the files with no embedding of the current
model set). Hearing one is an EmbedRequest row (sonic.models): `request()` makes
them, `dispatch()` hands their ids to the workers in batches (django-q2 carries
them, nothing more), and `run()`, the workers' task, claims each request
atomically, hears the file with the models (tagging.pipeline.analyse: decoded once,
each backbone once, no tag written) and stores its embeddings. A request whose file
got a current embedding meanwhile (its tagging job ran) is done without hearing it.

Requests come from `manage.py embed [ROOT]` and from the auto-tag path: at the end
of a scan of a root with auto-tag on (`library.signals.autotag_checked`),
`embed_after_scan` requests the root's files that carry the current model set's
tags but no current embedding (files that still need tags get their embeddings
from their tagging job). When workers start (`tagging.signals.workers_started`),
`redispatch` takes back the requests a dead worker held and sends every pending
one again: messages may have died with the old cluster; the table says what is left.
A second `manage.py embed` sends its open requests again too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from library.models import LibraryFile, LibraryRoot
from nomarr_site.workers import claim_is_dead, worker_id
from sonic.models import EmbedRequest
from sonic.storage import current_model_set, store
from tagging import pipeline
from tagging.boundary import OutsideLibrary, inside_library
from tagging.catalog import current_catalog, current_version, embedding_version

log = logging.getLogger(__name__)

#: Files per message to the workers (each takes seconds to hear).
BATCH = 20
OPEN = (EmbedRequest.Status.PENDING, EmbedRequest.Status.RUNNING)


def missing(root: LibraryRoot | None = None) -> QuerySet[LibraryFile]:
    """The library's readable files without an embedding of the current backbones."""
    files = LibraryFile.objects.filter(error="")
    if root is not None:
        files = files.filter(root=root)
    model_set = current_model_set() or ""
    # Every backbone's embedding is stored at once (sonic.storage.store): a file with
    # one of the current model set was heard by it, whichever backbone is searched
    # (so a mistyped NOMARR_SIMILAR_BACKBONE never has the library heard again).
    done = LibraryFile.objects.filter(embeddings__model_set=model_set)
    return files.exclude(pk__in=done.values("pk")).order_by("pk")


def request(file_ids: Iterable[int]) -> list[int]:
    """Requests to hear these files with the current model set: new ones made, old
    ones (done, failed, or of another model set) opened again, open ones kept (a dead
    worker's taken back); the ids of the requests now open for them."""
    take_back_dead_claims()
    file_ids = list(file_ids)
    model_set = current_model_set() or ""
    if not file_ids or not model_set:
        return []
    for start in range(0, len(file_ids), 500):
        chunk = file_ids[start : start + 500]
        EmbedRequest.objects.bulk_create(
            [EmbedRequest(file_id=pk, model_set=model_set) for pk in chunk],
            ignore_conflicts=True,
        )
        stale = EmbedRequest.objects.filter(file_id__in=chunk).exclude(
            status__in=OPEN, model_set=model_set
        )
        stale.update(
            status=EmbedRequest.Status.PENDING, model_set=model_set, worker="", error="",
            claimed_at=None, finished_at=None,
        )  # fmt: skip
    opened = EmbedRequest.objects.filter(status__in=OPEN)
    ids: list[int] = []
    for start in range(0, len(file_ids), 500):
        ids += opened.filter(file_id__in=file_ids[start : start + 500]).values_list("pk", flat=True)
    return sorted(ids)


def dispatch(request_ids: Iterable[int], batch: int = BATCH) -> int:
    """Hand these requests to the workers, batch ids to a message; how many messages."""
    from django_q.tasks import async_task

    ids = list(request_ids)
    batch = max(1, batch)
    for start in range(0, len(ids), batch):
        async_task("sonic.tasks.embed_requests", ids[start : start + batch], group="sonic-embed")
    return -(-len(ids) // batch)


def run(request_ids: Iterable[int]) -> int:
    """Claim each pending request, hear its file and store the embeddings (the
    workers' task); how many files were heard. A request claimed by another worker,
    or no longer pending, is left to it: sending a batch twice hears each file once.
    Past half of NOMARR_JOB_TIMEOUT (long tracks), the rest of the batch goes back to
    the workers as a message of its own, before django-q2's timeout stops this one."""
    heard = 0
    me = worker_id()
    catalog = None
    ids = list(request_ids)
    deadline = time.monotonic() + settings.NOMARR_JOB_TIMEOUT / 2
    for at, pk in enumerate(ids):
        if at and time.monotonic() > deadline:
            dispatch(ids[at:])
            break
        claim = EmbedRequest.objects.filter(pk=pk, status=EmbedRequest.Status.PENDING)
        if not claim.update(
            status=EmbedRequest.Status.RUNNING, worker=me, claimed_at=timezone.now()
        ):
            continue
        claimed = EmbedRequest.objects.select_related("file").get(pk=pk)
        catalog = catalog or current_catalog()
        status, error = EmbedRequest.Status.DONE, ""
        if claimed.model_set != embedding_version(catalog):
            status, error = (
                EmbedRequest.Status.ERROR,
                "the model set changed since it was asked for",
            )
        elif not missing().filter(pk=claimed.file_id).exists():
            pass  # its tagging job stored a current embedding meanwhile
        else:
            try:
                path = inside_library(claimed.file.path)
                analysis = pipeline.analyse(path, catalog)
            except (OutsideLibrary, OSError, pipeline.AnalysisError) as exc:
                log.warning("cannot embed %s: %s", claimed.file.path, exc)
                status, error = EmbedRequest.Status.ERROR, str(exc)[:2000]
            else:
                store(claimed.file, embedding_version(catalog) or "", analysis.embeddings)
                heard += 1
        EmbedRequest.objects.filter(pk=pk, status=EmbedRequest.Status.RUNNING, worker=me).update(
            status=status, error=error, finished_at=timezone.now()
        )
    return heard


def embed_after_scan(sender, root: LibraryRoot, **kwargs) -> int:
    """The receiver of library.signals.autotag_checked: request and dispatch the
    root's files tagged by the current model set that have no current embedding and
    were not asked for under it yet (one that could not be heard is not asked for
    on every scan); how many."""
    try:
        return _embed_tagged(root)
    except Exception:  # a scan's outcome never depends on a listener; the next scan asks again
        log.exception("could not request embeddings for %s", root)
        return 0


def _embed_tagged(root: LibraryRoot) -> int:
    version, tagged_with = current_model_set(), current_version()
    if not version or not tagged_with:
        return 0
    files = (
        missing(root)
        .filter(nom_version=tagged_with)  # files a tagging job would not hear anyway
        .exclude(embed_request__model_set=version)  # asked for once: `embed` asks again
        .values_list("pk", flat=True)
    )
    ids = request(files.iterator(chunk_size=2000))
    if ids:
        dispatch(ids)
        log.info("%s: %d tagged files without an embedding handed to the workers", root, len(ids))
    return len(ids)


def take_back_dead_claims() -> int:
    """Requests held by a worker that is gone (or that has held one for longer than a
    job may take) go back to pending; how many."""
    taken = 0
    for held in EmbedRequest.objects.filter(status=EmbedRequest.Status.RUNNING):
        if claim_is_dead(held.worker, held.claimed_at, settings.NOMARR_JOB_TIMEOUT):
            taken += EmbedRequest.objects.filter(
                pk=held.pk, status=EmbedRequest.Status.RUNNING, worker=held.worker
            ).update(status=EmbedRequest.Status.PENDING, worker="", claimed_at=None)
    return taken


def redispatch(**kwargs) -> int:
    """The receiver of tagging.signals.workers_started: dead claims taken back (see
    take_back_dead_claims), and every pending request sent again; how many."""
    take_back_dead_claims()
    pending = list(
        EmbedRequest.objects.filter(status=EmbedRequest.Status.PENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if pending:
        dispatch(pending)
    return len(pending)
