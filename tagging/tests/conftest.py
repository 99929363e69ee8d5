"""Fixtures for tests that run real workers and servers (in the root conftest's `library`)."""

import signal
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from tagging.tests.support import ManageProcess


@pytest.fixture
def cluster(library, tmp_path):
    started = []

    def start() -> ManageProcess:
        # `workers`: django-q2's cluster under Nomarr's watchdog, as `serve` runs it.
        started.append(ManageProcess(["workers"], library, tmp_path / "workers.log").start())
        return started[-1]

    yield start
    for one in started:
        one.stop(signal.SIGKILL)


JORAM = Path(settings.SHARED_DIR) / "fixtures/audio/joram-moments_of_clarity-08-solipsism-59-88.mp3"


@pytest.fixture
def long_track(library):
    """A 3-minute FLAC (the real clip six times), so a job runs for seconds."""
    path = library / "long.flac"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-stream_loop", "5", "-i", str(JORAM), "-c:a", "flac", str(path)],
        check=True,
    )
    return path
