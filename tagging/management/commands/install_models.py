"""Build the musicnn backbones from the musicnn package's checkpoints into the models folder,
each with its ONNX twin beside it (what NOMARR_ENGINE=onnx runs)."""

import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tagging.catalog import attach_twins, discover


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
        # The twins beside the backbones (tf2onnx, again in a process of its own), so an
        # installation without TensorFlow (the image) still runs them on onnxruntime.
        catalog = discover([out_dir], settings.NOMARR_MOOD_HEADS)
        left = attach_twins(catalog, settings.NOMARR_ONNX_CACHE, beside=True)
        if left:
            self.stdout.write(f"no ONNX twin for {', '.join(left)}: they run on Essentia")
        else:
            self.stdout.write(f"ONNX twins of {len(catalog.backbones)} backbones in {out_dir}")
