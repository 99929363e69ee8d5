"""Re-decide tiers and mood sets from the stored scores; rewrite only the files that change."""

import sys

from django.core.management.base import BaseCommand, CommandError

from library import retier
from library.models import RetierRun


class Command(BaseCommand):
    help = (
        "Re-decide every tagged file's tiers and mood sets from its stored scores (no model "
        "runs) with the current NOMARR_TIER_SCORES, calibration and rules, and rewrite the "
        "tags of the files that change. Carries on an interrupted run unless --restart."
    )

    def add_arguments(self, parser):
        parser.add_argument("--restart", action="store_true", help="start over from the first file")
        parser.add_argument("--status", action="store_true", help="show the last runs and exit")

    def handle(self, *args, **options):
        if options["status"]:
            for run in RetierRun.objects.all()[:10]:
                self.stdout.write(retier.describe(run))
            return
        try:
            run = retier.start(trigger="command", restart=options["restart"])
        except retier.RetierRefused as exc:
            raise CommandError(str(exc)) from exc
        if run.cursor:
            self.stdout.write(f"carrying on retier #{run.pk} after file id {run.cursor}")
        show = self.progress if options["verbosity"] >= 1 else None
        try:
            run = retier.carry_out(run, on_progress=show)
        except KeyboardInterrupt:
            sys.stderr.write("\n")
            raise CommandError("interrupted: run retier again to carry on") from None
        if show:
            sys.stderr.write("\n")
        self.stdout.write(retier.describe(run))
        for problem in run.problems[:20]:
            self.stdout.write(f"  {problem['problem']}: {problem['path']}")
        if run.status != RetierRun.Status.DONE:
            raise CommandError(f"retier #{run.pk} {run.status}")

    def progress(self, run: RetierRun) -> None:
        width = 30
        filled = width * run.checked // run.total if run.total else width
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {run.checked}/{run.total} "
            f"checked, {run.changed} rewritten"
        )
        sys.stderr.flush()
