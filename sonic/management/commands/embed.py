"""manage.py embed [ROOT]: embeddings for the files that have none of the current model set."""

import time

from django.core.management.base import BaseCommand, CommandError

from library.models import LibraryRoot
from library.roots import sync_settings_roots
from sonic import embedding
from sonic.models import EmbedRequest


def count(ids: list[int], **where) -> int:
    """How many of these requests match, asked 500 ids at a time (SQLite's limit on
    a query's parameters is far below a library's size)."""
    rows = EmbedRequest.objects.filter(**where)
    return sum(rows.filter(pk__in=ids[at : at + 500]).count() for at in range(0, len(ids), 500))


def failures(ids: list[int], most: int) -> list[EmbedRequest]:
    """Up to `most` of these requests that failed, oldest first (never another run's)."""
    found: list[EmbedRequest] = []
    for at in range(0, len(ids), 500):
        rows = EmbedRequest.objects.filter(
            status=EmbedRequest.Status.ERROR, pk__in=ids[at : at + 500]
        ).select_related("file")
        found += rows.order_by("pk")[: most - len(found)]
        if len(found) >= most:
            break
    return found


class Command(BaseCommand):
    help = (
        "Hear the library's files that have no embedding of the current model set (analysed "
        "before sonic, or by another model set) and store their embeddings; no tag is "
        "written. Each file is an embed request in the database, handed to the workers in "
        "batches (or heard here with --here); resumable: what is left is asked of the "
        "database each time."
    )

    def add_arguments(self, parser):
        parser.add_argument("root", nargs="?", help="only this library root (its path)")
        parser.add_argument("--here", action="store_true", help="in this process, not the workers")
        parser.add_argument("--batch", type=int, default=embedding.BATCH)
        parser.add_argument(
            "--patience", type=int, default=600, help="seconds to wait without progress"
        )

    def handle(self, *args, **o):
        root = None
        if o["root"]:
            sync_settings_roots()
            root = LibraryRoot.objects.filter(path=LibraryRoot.normalise(o["root"])).first()
            if root is None:
                raise CommandError(f"{o['root']} is not a library root")
        ids = embedding.request(embedding.missing(root).values_list("pk", flat=True))
        total = len(ids)
        if not total:
            self.stdout.write("Every file has an embedding of the current model set.")
            return
        batch = max(1, o["batch"])
        if o["here"]:
            for start in range(0, total, batch):
                embedding.run(ids[start : start + batch])
                self._bar(min(start + batch, total), total)
        else:
            embedding.dispatch(ids, batch)
            self.stdout.write(
                f"Handed {total} files to the workers; waiting (Ctrl-C leaves them queued)."
            )
            self._wait(ids, o["patience"])
        done = count(ids, status=EmbedRequest.Status.DONE)
        self.stdout.write(f"\nEmbedded {done} of {total} files.")
        failed = count(ids, status=EmbedRequest.Status.ERROR)
        if failed:
            shown = failures(ids, 20)
            for one in shown:
                self.stdout.write(f"  could not hear {one.file.path}: {one.error}")
            if failed > len(shown):
                self.stdout.write(f"  ... and {failed - len(shown)} more")
            raise CommandError(
                f"{failed} of {total} files could not be heard (listed above); "
                "run embed again once they are fixed"
            )

    def _wait(self, ids: list[int], patience: int) -> None:
        total = len(ids)
        left, changed = total, time.monotonic()
        while left:
            now_left = count(ids, status__in=embedding.OPEN)
            if now_left != left:
                left, changed = now_left, time.monotonic()
            self._bar(total - left, total)
            if left and time.monotonic() - changed > patience:
                raise CommandError(
                    f"\n{left} files are still waiting to be heard after {patience} s without "
                    "progress (are the workers running? see their log); run embed again"
                )
            if left:
                time.sleep(2)

    def _bar(self, done: int, total: int) -> None:
        width = 40
        filled = width * done // total
        self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
        self.stdout.flush()
