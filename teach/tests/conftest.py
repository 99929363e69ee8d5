"""Real examples for teaching: more variants of the two fixture clips, heard once.

The sonic tests' variants (sonic/tests/conftest.py: another encoder, tempo, pitch,
EQ) and three more of each clip here (a slower tempo, a darker sound, a later cut),
tagged once per session by the real pipeline. A tag is taught from five variants of
each clip (TRAIN) and judged on the other two (HELD_OUT); the library's copies of the
TRAIN variants carry a GENRE (Ambient for Joram, Rock for the MSD clip), written with
mutagen as a tagger would, for the genre suggestions.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import mutagen
import pytest

from sonic.tests.conftest import (  # noqa: F401 (fixtures)
    CLIPS,
    Heard,
    hear,
    heard_variants,
    make_variant,
    sonic_cache,
)
from tagging import catalog

GENRES = {"joram": "Ambient", "msd": "Rock"}

#: Variant name -> (start second, ffmpeg filter, extension, encoder arguments).
EXTRA = {
    "slow": (5, "atempo=0.94", "mp3", ["-c:a", "libmp3lame", "-q:a", "5"]),
    "dark": (5, "lowpass=f=5000,volume=-4dB", "ogg", ["-c:a", "libvorbis", "-q:a", "3"]),
    "later": (9, "anull", "mp3", ["-c:a", "libmp3lame", "-q:a", "3"]),
}  # fmt: skip
#: The variants of each clip a tag is taught from, and those it is judged on.
TRAIN = ["flac", "tempo", "pitch", "slow", "dark"]
HELD_OUT = ["eq", "later"]


def _make(clip: str, variant: str, folder: Path) -> Path:
    start, audio_filter, ext, encoder = EXTRA[variant]
    return make_variant(clip, variant, folder, start, audio_filter, ext, encoder)


@pytest.fixture(scope="session")
def examples(tmp_path_factory: pytest.TempPathFactory) -> list[Heard]:
    """Three more variants of each clip, tagged by the real pipeline once."""
    folder = tmp_path_factory.mktemp("teach-examples")
    return hear(folder, [(clip, variant) for clip in CLIPS for variant in EXTRA], _make)


@pytest.fixture
def teach_library(
    library: Path,
    root_row,
    heard_variants: list[Heard],  # noqa: F811 - the sonic fixture, asked for by name
    examples: list[Heard],
) -> Callable[[], dict[str, object]]:
    """Factory: every variant copied into the library (a GENRE written into the TRAIN
    ones), each file's rows refreshed with its job result (so its embeddings are
    stored); name -> LibraryFile."""
    from library.rows import refresh_file

    def make() -> dict[str, object]:
        files = {}
        for one in [*examples, *heard_variants]:
            target = library / one.path.name
            shutil.copyfile(one.path, target)
            if one.variant in TRAIN:
                audio = mutagen.File(target, easy=True)
                audio["genre"] = [GENRES[one.clip]]
                audio.save()
            files[f"{one.clip}-{one.variant}"] = refresh_file(target, result=one.result)
        return files

    return make


@pytest.fixture
def models_folder(tmp_path: Path, settings):
    """A models folder of the test's own, first in NOMARR_MODELS_DIRS (where a head is
    saved); the process's catalog is read again without it afterwards."""
    folder = tmp_path / "models"
    folder.mkdir()
    before = list(settings.NOMARR_MODELS_DIRS)
    settings.NOMARR_MODELS_DIRS = [folder, *before]
    settings.NOMARR_MODELS_DIR = folder
    yield folder
    settings.NOMARR_MODELS_DIRS = before
    settings.NOMARR_MODELS_DIR = before[0]
    catalog.refresh_catalog()
