"""List the models Nomarr loads, and the ones it skipped with the reason."""

from django.core.management.base import BaseCommand

from tagging.catalog import get_catalog


class Command(BaseCommand):
    help = "List loaded backbones and heads, and skipped model files with why."

    def handle(self, *args, **options):
        catalog = get_catalog()
        self.stdout.write(f"model set {catalog.fingerprint}")
        if not catalog.backbones:
            self.stdout.write("no models loaded: run `python manage.py install_models`")
        for backbone in catalog.backbones:
            self.stdout.write(f"backbone {backbone.stem} ({backbone.algorithm}) {backbone.graph}")
            for head in backbone.heads:
                kind = "predictions" if head.graph is None else "head"
                mood = ", mood" if head.is_mood else ""
                self.stdout.write(
                    f"  {kind} {head.stem}: {len(head.labels)} labels{mood}"
                    f" [{', '.join(head.labels[:4])}{', ...' if len(head.labels) > 4 else ''}]"
                )
        for path, reason in catalog.skipped:
            self.stdout.write(f"skipped {path}: {reason}")
