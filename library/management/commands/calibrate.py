"""Measure the library's score distribution per label and calibrate tiers on it."""

from django.core.management.base import BaseCommand, CommandError

from library import calibration


class Command(BaseCommand):
    help = (
        "Measure each label's score distribution in the library (p5, p50, p95) and make it "
        "the calibration tiers are decided on when NOMARR_TIER_SCORES=calibrated (then run "
        "`manage.py retier`). --show prints the distribution and its drift only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--show", action="store_true", help="measure and show, save nothing")

    def handle(self, *args, **options):
        in_use = calibration.current()
        if options["show"]:
            measured = calibration.latest_measure(max_age=0)
        else:
            try:
                measured = calibration.calibrate()
            except calibration.CalibrationError as exc:
                raise CommandError(str(exc)) from exc
        if measured is None:
            raise CommandError("no file of the library has scores yet")
        view = calibration.drift(measured, in_use)
        self.stdout.write(
            f"{'label':58} {'n':>6} {'p5':>6} {'p50':>6} {'p95':>6}  drift p5/p50/p95"
        )
        for row in view["heads"]:
            changes = "/".join(
                "-" if d is None else f"{d:+.3f}"
                for d in (row.drift_p5, row.drift_p50, row.drift_p95)
            )
            s = row.stats
            self.stdout.write(
                f"{row.label.key:58} {s['n']:>6} {s['p5']:>6.3f} {s['p50']:>6.3f} "
                f"{s['p95']:>6.3f}  {changes}"
            )
        what = "measured" if options["show"] else f"calibration #{measured.pk} saved"
        self.stdout.write(
            f"{what}: {measured.files} files, {len(measured.labels)} labels; largest drift "
            f"since the previous calibration {view['largest_drift']:.3f}"
        )
