"""Helpers shared by the library tests."""

from __future__ import annotations

from pathlib import Path

from tagging.tests.support import database_url

FORMATS = ["mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"]
#: The user's tags every fixture clip carries (see the project's conftest.py).
TITLE, ARTIST, ALBUM = "Solipsism (fixture)", "Joram", "Moments of Clarity"


def manage(*args: str, library: Path, prefix: tuple[str, ...] = (), timeout: float = 60):
    """Run manage.py in another process on the test database; returns the CompletedProcess."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nomarr_site.test_settings",
        "DATABASE_URL": database_url(),
        "NOMARR_LIBRARY_ROOTS": str(library),
        "NOMARR_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [*prefix, sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
