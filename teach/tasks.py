"""Writing a taught tag into every analysed file in the background (django-q2).

`start_writing` is the one way to start it (the page's Write button): it checks the
classifier is current, claims the tag (`writing` = waiting; refused while a write is
waiting or running, unless that one has shown no sign of life for STALE_SECONDS: its
worker died) and hands the tag's id to the workers. `write_tag` takes the claim over
(waiting -> running, once) and writes (teach.learning.apply), noting its progress on
the row. The TaughtTag row is the truth; the message only carries its id, so a
message delivered twice does nothing the second time. A write that stopped halfway
is simply started again: files already holding the values are not rewritten.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from teach import learning
from teach.models import TaughtTag

log = logging.getLogger(__name__)

#: Seconds without progress after which a waiting or running write counts as dead.
STALE_SECONDS = 600
#: Files between two progress notes on the row.
PROGRESS_EVERY = 25

Writing = TaughtTag.Writing


def start_writing(tag: TaughtTag) -> None:
    """Claim tag for a background write and hand it to the workers.

    Raises TeachError: not trained in the current space, or a write is under way."""
    learning.current_coefficients(tag)
    stale = timezone.now() - timedelta(seconds=STALE_SECONDS)
    busy = Q(writing__in=[Writing.WAITING, Writing.RUNNING]) & Q(writing_at__gt=stale)
    claimed = (
        TaughtTag.objects.filter(pk=tag.pk)
        .exclude(busy)
        .update(
            writing=Writing.WAITING,
            writing_done=0,
            writing_total=0,
            writing_failed=0,
            writing_message="",
            writing_at=timezone.now(),
        )
    )
    if claimed != 1:
        raise learning.TeachError(f"{tag.name} is being written already; wait for it to finish")
    async_task("teach.tasks.write_tag", tag.pk, task_name=f"write {tag.name}", group="teach")


def write_tag(tag_id: int) -> str:
    """The worker's part: take the claim over and write the tag into every analysed file."""
    taken = TaughtTag.objects.filter(pk=tag_id, writing=Writing.WAITING).update(
        writing=Writing.RUNNING, writing_at=timezone.now()
    )
    if taken != 1:
        return f"taught tag #{tag_id} is not waiting to be written; nothing done"
    tag = TaughtTag.objects.get(pk=tag_id)

    def progress(done: int, total: int) -> None:
        if done == total or done % PROGRESS_EVERY == 0:
            TaughtTag.objects.filter(pk=tag_id).update(
                writing_done=done, writing_total=total, writing_at=timezone.now()
            )

    try:
        written = learning.apply(tag, progress)
    except learning.TeachError as exc:
        TaughtTag.objects.filter(pk=tag_id).update(writing=Writing.FAILED, writing_message=str(exc))
        return f"{tag.name}: {exc}"
    except Exception as exc:
        log.exception("writing %s failed", tag.name)
        TaughtTag.objects.filter(pk=tag_id).update(
            writing=Writing.FAILED, writing_message=f"stopped: {exc}"
        )
        raise
    message = ""
    if written.failed:
        path, why = written.failed[0]
        message = f"{len(written.failed)} files could not be written, e.g. {path}: {why}"
    TaughtTag.objects.filter(pk=tag_id).update(
        writing=Writing.DONE,
        writing_failed=len(written.failed),
        writing_message=message,
        writing_at=timezone.now(),
    )
    return f"{tag.name} written into {written.written} files"
