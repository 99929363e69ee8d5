"""Scan the library now, cancel a running scan, or list past scans."""

import sys

from django.core.management.base import BaseCommand, CommandError

from library import scanning
from library.models import Scan
from library.roots import missing_settings_roots

SUMMARY = "seen {seen}, read {read}, new {new}, changed {changed}, moved {moved}, " \
    "removed {removed}, errors {errors}, skipped {skipped}, empty folders {empty_folders}, " \
    "queued {queued}"  # fmt: skip


class Command(BaseCommand):
    help = (
        "Scan the library roots (or ROOT, a root's path or name): new, changed, moved and "
        "removed files; new files are queued for tagging where the root has auto-tag on."
    )

    def add_arguments(self, parser):
        parser.add_argument("root", nargs="?", help="a root's path or name (default: every root)")
        parser.add_argument("--full", action="store_true", help="re-read every file")
        parser.add_argument("--cancel", action="store_true", help="stop running scans")
        parser.add_argument(
            "--history", type=int, nargs="?", const=20, metavar="N", help="list the last N scans"
        )

    def handle(self, *args, **options):
        selector = options["root"]
        roots = scanning.scannable_roots(selector)
        if selector and not roots:
            raise CommandError(
                f"{selector} is not a library root (see the Settings page or NOMARR_LIBRARY_ROOTS)"
            )
        if options["cancel"]:
            n = sum(scanning.cancel_scans(root) for root in roots)
            self.stdout.write(f"{n} running scan(s) asked to stop")
            return
        if options["history"] is not None:
            scans = Scan.objects.select_related("root")
            if selector:
                scans = scans.filter(root__in=roots)
            for scan in scans[: options["history"]]:
                self.stdout.write(self.describe(scan))
            return
        for path, why in missing_settings_roots():
            # A typo in the variable is not a root: said every time, never a failure.
            self.stderr.write(f"NOMARR_LIBRARY_ROOTS names {path}: {why}; not a root, skipped")
        if not roots:
            raise CommandError(
                "no library roots: add one on the Settings page, or set NOMARR_LIBRARY_ROOTS"
            )
        outcomes: list[str] = []
        failed = 0
        for root in roots:
            if not root.enabled:
                self.stderr.write(f"{root.path}: disabled, scanning it anyway")
            progress = self.progress_printer(root) if options["verbosity"] >= 2 else None
            try:
                scan = scanning.scan_root(root, full=options["full"], on_progress=progress)
            except scanning.ScanRefused as exc:
                self.stderr.write(f"{root.path}: refused: {exc}")
                outcomes.append(f"{root.path}: refused")
                failed += 1
                continue
            self.stdout.write(self.describe(scan))
            for problem in scan.problems[:50]:
                self.stdout.write(f"  {problem['problem']}: {problem['path']}")
            if len(scan.problems) > 50:
                self.stdout.write(f"  ... and {len(scan.problems) - 50} more (see the admin)")
            outcomes.append(f"{root.path}: {scan.status}")
            if scan.status == Scan.Status.FAILED:
                failed += 1
        if len(roots) > 1:
            self.stdout.write(f"{len(roots)} roots: " + "; ".join(outcomes))
        if failed:
            raise CommandError(f"{failed} of {len(roots)} scan(s) refused or failed")

    def describe(self, scan: Scan) -> str:
        took = f" in {scan.seconds:.1f} s" if scan.seconds is not None else ""
        note = f" ({scan.message})" if scan.message else ""
        return f"scan #{scan.pk} of {scan.root.path}: {scan.status}{took}{note}; " + SUMMARY.format(
            **scan.counts()
        )

    def progress_printer(self, root):
        def show(counts: dict[str, int]) -> None:
            sys.stderr.write(f"\r{root.name}: " + SUMMARY.format(**counts) + "   ")
            sys.stderr.flush()

        return show
