"""Fixtures for the accounts tests: a library root, a private cache, a key."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def library(make_library, private_cache) -> Path:
    """tmp_path is the one library root (so `make_audio` copies are inside it)."""
    return make_library("")


@pytest.fixture
def song(make_audio, library) -> Path:
    return make_audio("flac").resolve()
