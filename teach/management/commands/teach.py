"""Teach a tag from the command line: make it, take examples, train, write, save as a head."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from teach import examples, genres, heads, learning
from teach.models import TaughtTag


class Command(BaseCommand):
    help = (
        "Teach a tag by example from the stored embeddings (no model runs): "
        "new NAME, add NAME --yes|--no SOURCE WHERE [VALUE], train NAME, apply NAME, "
        "save-head NAME, list, genres [--write] [--write-genre]."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "action", choices=["new", "add", "train", "apply", "save-head", "list", "genres"]
        )
        parser.add_argument("name", nargs="?", default="")
        parser.add_argument(
            "source", nargs="?", default="", help=f"for add: one of {', '.join(examples.SOURCES)}"
        )
        parser.add_argument("where", nargs="?", default="", help="folder, playlist, tag key, ...")
        parser.add_argument("value", nargs="?", default="", help="for add tag: the value")
        side = parser.add_mutually_exclusive_group()
        side.add_argument("--yes", action="store_true", help="add as examples of the tag")
        side.add_argument("--no", action="store_true", help="add as examples of what it is not")
        parser.add_argument(
            "--write", action="store_true", help="genres: write nom_genre_suggested"
        )
        parser.add_argument(
            "--write-genre",
            action="store_true",
            help="genres: write nom_genre_suggested, and the suggestion into GENRE of the "
            "files that have none (a genre a file has stays)",
        )

    def handle(self, *args, **options) -> None:
        action, name = options["action"], options["name"]
        try:
            if action == "list":
                for tag in TaughtTag.objects.all():
                    accuracy = f"{tag.cv_accuracy:.2f}" if tag.cv_accuracy is not None else "-"
                    self.stdout.write(
                        f"{tag.name}\t{tag.examples.count()} examples\taccuracy {accuracy}"
                    )
                return
            if action == "genres":
                self._genres(options["write"] or options["write_genre"], options["write_genre"])
                return
            if action == "new":
                tag = TaughtTag.objects.create(name=learning.check_name(name))
                self.stdout.write(f"made {tag.name}")
                return
            tag = TaughtTag.objects.filter(name=name).first()
            if tag is None:
                raise CommandError(f"no taught tag {name!r} (manage.py teach new {name})")
            if action == "add":
                if not (options["yes"] or options["no"]):
                    raise CommandError("say --yes or --no")
                added = examples.add_from(
                    tag, options["source"], options["yes"], options["where"], options["value"]
                )
                self.stdout.write(added.summary(options["yes"]))
            elif action == "train":
                self._train(tag)
            elif action == "apply":
                written = learning.apply(
                    tag, progress=lambda done, total: self._progress(done, total)
                )
                self.stdout.write(f"\n{tag.name} written into {written.written} files")
                for path, why in written.failed:
                    self.stderr.write(f"failed {path}: {why}")
            elif action == "save-head":
                self.stdout.write(f"saved {heads.save_head(tag)}")
        except (learning.TeachError, examples.ExampleError) as exc:
            raise CommandError(str(exc)) from None

    def _progress(self, done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            self.stdout.write(f"\r{done}/{total} files", ending="")

    def _train(self, tag: TaughtTag) -> None:
        preview = learning.train(tag)
        self.stdout.write(
            f"cross-validated accuracy {preview.accuracy:.3f} (balanced "
            f"{preview.balanced_accuracy:.3f}, {preview.folds} folds) from {preview.positives} "
            f"yes and {preview.negatives} no, in {preview.seconds:.1f} s; "
            f"{preview.likely} of {preview.scored} analysed files score 0.5 or more"
        )
        for line in preview.advice:
            self.stdout.write(f"  {line}")
        for title, rows in (("most confident", preview.most), ("least confident", preview.least)):
            self.stdout.write(title + ":")
            for scored in rows:
                self.stdout.write(f"  {scored.score:.3f}  {scored.file.path}")
        self.stdout.write(f"nothing written yet: manage.py teach apply {tag.name}")

    def _genres(self, write: bool, into_genre: bool = False) -> None:
        found = genres.learn()
        self.stdout.write(
            f"cross-validated accuracy {found.accuracy:.3f} (balanced "
            f"{found.balanced_accuracy:.3f}) over {len(found.genres)} genres; "
            f"{len(found.suggested)} analysed files without a genre"
        )
        for file, genre, confidence in found.sample(10):
            self.stdout.write(f"  {genre} ({confidence:.2f})  {file.path}")
        if write:
            written = genres.write(found, genre=into_genre)
            self.stdout.write(f"{genres.suggested_key()} written into {written.written} files")
            if into_genre:
                self.stdout.write(
                    f"GENRE written into {written.filled} files (those with a genre keep theirs)"
                )
            for path, why in written.failed:
                self.stderr.write(f"failed {path}: {why}")
