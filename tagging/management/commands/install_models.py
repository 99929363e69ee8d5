"""Build the musicnn backbones from the musicnn package's checkpoints into the models folder."""

import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Convert musicnn's checkpoints into Essentia models (msd-musicnn-1, mtt-musicnn-1)."

    def handle(self, *args, **options):
        out_dir = settings.NOMARR_MODELS_DIR
        # TensorFlow and Essentia's bundled TensorFlow abort when loaded in one process,
        # so the conversion always runs in a fresh one.
        proc = subprocess.run(
            [sys.executable, "-m", "tagging.convert", str(out_dir)],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise CommandError(f"model conversion failed:\n{tail}")
        converted = proc.stdout.split()
        if converted:
            self.stdout.write(proc.stdout.strip())
        else:
            self.stdout.write(f"models already installed in {out_dir}")
