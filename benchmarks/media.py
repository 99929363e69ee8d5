"""What the benchmark scripts share about their audio files.

The scripts run as `.venv/bin/python benchmarks/<script>.py`, so this folder is on
their path: `from media import duration`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"


def duration(path: Path) -> float:
    """The file's length in seconds, as ffprobe reads it (CalledProcessError if it cannot)."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())
