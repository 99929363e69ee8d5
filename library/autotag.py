"""Auto-tagging: queue the library's files that lack tags of the current model set.

A file needs tagging when its `nom_version` (read from its tags by the scan) is not
the current model set's version, which is `tagging.catalog.current_version()`,
the one source of it, and it was not queued for that version already
(`queued_version`, so a file whose job failed is not queued again on every scan).
Files that could not be read, and files shorter than NOMARR_MIN_DURATION, are left
out. A scan of a root with auto-tag on calls `queue_outdated` at its end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from library.models import LibraryFile, LibraryRoot
from library.signals import autotag_checked
from tagging import boundary, catalog
from tagging.jobs import QUEUE_CHUNK, queue_files

log = logging.getLogger(__name__)

NO_MODELS = "no models installed: nothing queued for tagging"


def queue_outdated(
    root: LibraryRoot, after_chunk: Callable[[int], None] | None = None
) -> tuple[int, str]:
    """Queue the root's files that have no tags of the current model set and were
    not queued for it yet; returns (jobs created, message).

    Files are queued in bulk, QUEUE_CHUNK (tagging.jobs) to a transaction: one
    look-up and one insert of their jobs (`tagging.jobs.queue_files`), their rows
    marked `queued_version`, and one dispatch of the new jobs (past DISPATCH_INLINE
    of them one broker message: a worker sends their run messages; committed with the
    jobs on the ORM broker, after them on Redis). The Job table stays the truth: a scan stopped
    half-way has queued whole chunks, and the next scan queues the rest.
    after_chunk(created) is called after every chunk; the scan uses it to save
    progress and to stop at its cancel flag or time budget."""
    version = catalog.current_version()
    if version is None:
        return 0, NO_MODELS
    todo = (
        LibraryFile.objects.filter(root=root, error="")
        .exclude(nom_version=version)
        .exclude(queued_version=version)
        .filter(Q(duration__isnull=True) | Q(duration__gte=settings.NOMARR_MIN_DURATION))
        .order_by("pk")
        .values_list("pk", "path")
    )
    roots = boundary.library_roots()
    created, last = 0, 0
    while chunk := list(todo.filter(pk__gt=last)[:QUEUE_CHUNK]):
        last = chunk[-1][0]
        paths = []
        for _, path in chunk:
            try:
                paths.append(boundary.inside_library(path, roots))
            except (boundary.OutsideLibrary, boundary.Unresolvable) as exc:
                # A folder became a symlink out since the walk: the next scan tells.
                log.warning("not queued: %s", exc)
        with transaction.atomic():
            made = sum(new for _, new in queue_files(paths, checked=True))
            LibraryFile.objects.filter(pk__in=[pk for pk, _ in chunk]).update(
                queued_version=version
            )
        created += made
        if after_chunk:
            after_chunk(made)
    autotag_checked.send(sender=LibraryRoot, root=root)
    return created, ""
