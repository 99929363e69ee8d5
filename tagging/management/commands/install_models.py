"""Build the musicnn backbones from the musicnn package's checkpoints into the models folder,
and their ONNX twins (what NOMARR_ENGINE=onnx runs): in the cache folder, or with
--onnx-beside next to the .pb files, where an image built with TensorFlow keeps them
for a run time without it."""

import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tagging.catalog import attach_twins, discover


class Command(BaseCommand):
    help = "Convert musicnn's checkpoints into Essentia models (msd-musicnn-1, mtt-musicnn-1)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--onnx-beside",
            action="store_true",
            help="write the ONNX twins beside the models instead of into NOMARR_ONNX_CACHE",
        )

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
        # The twins (tf2onnx, again in a process of its own); beside the models, an
        # installation without TensorFlow (the image) still runs them on onnxruntime.
        catalog = discover([out_dir], settings.NOMARR_MOOD_HEADS)
        beside = options["onnx_beside"]
        left = attach_twins(catalog, settings.NOMARR_ONNX_CACHE, beside=beside)
        if left:
            self.stdout.write(f"no ONNX twin for {', '.join(left)}: they run on Essentia")
        else:
            where = out_dir if beside else settings.NOMARR_ONNX_CACHE
            self.stdout.write(f"ONNX twins of {len(catalog.backbones)} backbones in {where}")
