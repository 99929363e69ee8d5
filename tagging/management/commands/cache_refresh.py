"""Make every worker reload the models folder."""

from django.core.management.base import BaseCommand

from tagging import jobs
from tagging.catalog import get_catalog


class Command(BaseCommand):
    help = "Reload models in every worker before its next job."

    def handle(self, *args, **options):
        generation = jobs.refresh_models()
        catalog = get_catalog()
        self.stdout.write(
            f"models generation {generation}: {len(catalog.heads)} heads, "
            f"{len(catalog.skipped)} skipped, model set {catalog.fingerprint}"
        )
