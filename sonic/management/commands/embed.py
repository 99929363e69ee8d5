"""manage.py embed [ROOT]: embeddings for the files that have none of the current model set."""

import time

from django.core.management.base import BaseCommand, CommandError

from library.models import LibraryRoot
from library.roots import sync_settings_roots
from sonic import embedding

BATCH = 20


class Command(BaseCommand):
    help = (
        "Hear the library's files that have no embedding of the current model set (analysed "
        "before sonic, or by another model set) and store their embeddings; no tag is "
        "written. Resumable: what is left is asked of the database each time. The files "
        "are handed to the workers in batches, unless --here."
    )

    def add_arguments(self, parser):
        parser.add_argument("root", nargs="?", help="only this library root (its path)")
        parser.add_argument("--here", action="store_true", help="in this process, not the workers")
        parser.add_argument("--batch", type=int, default=BATCH)
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
        ids = list(embedding.missing(root).values_list("pk", flat=True))
        total = len(ids)
        if not total:
            self.stdout.write("Every file has an embedding of the current model set.")
            return
        batch = max(1, o["batch"])
        if o["here"]:
            done = 0
            for start in range(0, total, batch):
                done += embedding.embed_files(ids[start : start + batch])
                self._bar(min(start + batch, total), total)
            self.stdout.write(f"\nEmbedded {done} of {total} files.")
            return
        from django_q.tasks import async_task

        for start in range(0, total, batch):
            async_task("sonic.tasks.embed_files", ids[start : start + batch], group="sonic-embed")
        self.stdout.write(
            f"Handed {total} files to the workers; waiting (Ctrl-C leaves them queued)."
        )
        left, changed = total, time.monotonic()
        while left:
            now_left = embedding.missing(root).filter(pk__in=ids).count()
            if now_left != left:
                left, changed = now_left, time.monotonic()
            self._bar(total - left, total)
            if left and time.monotonic() - changed > o["patience"]:
                raise CommandError(
                    f"\n{left} files are still without an embedding after {o['patience']} s "
                    "without progress (are the workers running? see their log); run embed again"
                )
            if left:
                time.sleep(2)
        self.stdout.write("\nDone.")

    def _bar(self, done: int, total: int) -> None:
        width = 40
        filled = width * done // total
        self.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
        self.stdout.flush()
