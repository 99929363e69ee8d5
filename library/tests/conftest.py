"""Small real libraries in a temporary folder, built from the fixture clips.

`library` (the empty root) and `root_row` (its row) come from the root conftest.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from library.models import Scan
from library.scanning import scan_root
from library.tests.helpers import FORMATS


@pytest.fixture
def add(library, audio_sources):
    """add("Artist/Album/01.flac") -> a copy of the fixture clip of that format."""

    def make(relative: str, fmt: str | None = None) -> Path:
        target = library / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(audio_sources[fmt or target.suffix[1:]], target)
        target.chmod(0o644)
        return target

    return make


@pytest.fixture
def seven(add) -> list[Path]:
    """One file per format in nested folders."""
    return [
        add(f"Joram/Moments of Clarity/{n:02d} Solipsism.{fmt}") for n, fmt in enumerate(FORMATS)
    ]


@pytest.fixture
def scan(root_row):
    """scan(full=False) -> the finished Scan row of a new scan of the library."""

    def run(full: bool = False, **kwargs) -> Scan:
        root_row.refresh_from_db()
        return scan_root(root_row, full=full, **kwargs)

    return run
