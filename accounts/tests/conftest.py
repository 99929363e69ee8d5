"""Fixtures for the accounts tests: a library root, a private cache, a key."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from rest_framework_api_key.models import APIKey


@pytest.fixture
def library(settings, tmp_path: Path) -> Path:
    settings.NOMARR_LIBRARY_ROOTS = [tmp_path.resolve()]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"accounts-test-{uuid.uuid4()}",
        }
    }
    return tmp_path.resolve()


@pytest.fixture
def key() -> str:
    return APIKey.objects.create_key(name="tests")[1]


@pytest.fixture
def song(make_audio, library) -> Path:
    return make_audio("flac").resolve()
