"""Real embeddings for the sonic tests: variants of the two fixture clips, heard once.

Each clip is cut to 10 s and varied the ways a library holds one recording twice:
another encoder, a tempo change, a pitch change, an EQ. The session fixture runs
the real pipeline (tagging.pipeline.tag_file, which writes the tags as a job does)
on every variant once and keeps the files and their results in a temporary folder;
`sonic_library` copies them into a test's library and refreshes each file's rows
with its result, the call a tagging job's `file_tagged` makes, so the embeddings
are stored by the real receivers.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tagging import pipeline

CLIPS = {
    "joram": ("joram-moments_of_clarity-08-solipsism-59-88.mp3", "Joram", "Moments of Clarity"),
    "msd": ("TRWJAZW128F42760DD_test.mp3", "MSD Artist", "MSD Album"),
}

#: Variant name -> (extension, ffmpeg filter, encoder arguments).
VARIANTS = {
    "flac": ("flac", "anull", ["-c:a", "flac"]),
    "tempo": ("mp3", "atempo=1.08", ["-c:a", "libmp3lame", "-q:a", "4"]),
    "pitch": (
        "ogg",
        "aresample=44100,asetrate=44100*1.06,aresample=44100",
        ["-c:a", "libvorbis", "-q:a", "3"],
    ),
    "eq": (
        "opus",
        "equalizer=f=100:t=q:w=1:g=8,equalizer=f=6000:t=q:w=1:g=-10",
        ["-c:a", "libopus", "-b:a", "64k", "-ar", "48000"],
    ),
}


@dataclass
class Heard:
    clip: str
    variant: str
    path: Path  # the tagged variant (read-only: tests copy it)
    result: pipeline.FileResult


def make_variant(
    clip: str,
    variant: str,
    folder: Path,
    start: float,
    audio_filter: str,
    ext: str,
    encoder: list[str],
) -> Path:
    """A 10-s cut of a fixture clip from start, through an ffmpeg filter and encoder."""
    name, artist, album = CLIPS[clip]
    target = folder / f"{clip}-{variant}.{ext}"
    source = Path(settings.SHARED_DIR) / "fixtures" / "audio" / name
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-nostdin", "-y", "-ss", str(start), "-t", "10",
            "-i", str(source), "-vn", "-map_metadata", "-1", "-ar", "44100", "-af", audio_filter,
            "-metadata", f"artist={artist}", "-metadata", f"album={album}",
            "-metadata", f"title={clip} {variant}", *encoder, str(target),
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return target


def hear(folder: Path, pairs: list[tuple[str, str]], make: Callable[..., Path]) -> list[Heard]:
    """Each (clip, variant) made by make(clip, variant, folder), then tagged by the real
    pipeline once."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    with ThreadPoolExecutor(max_workers=4) as pool:
        paths = list(pool.map(lambda pair: make(*pair, folder), pairs))
    heard = []
    for (clip, variant), path in zip(pairs, paths, strict=True):
        result = pipeline.tag_file(path)
        assert result.status == "tagged", (path, result.error)
        heard.append(Heard(clip, variant, path, result))
    return heard


def _make(clip: str, variant: str, folder: Path) -> Path:
    ext, audio_filter, encoder = VARIANTS[variant]
    return make_variant(clip, variant, folder, 5, audio_filter, ext, encoder)


@pytest.fixture(scope="session")
def heard_variants(tmp_path_factory: pytest.TempPathFactory) -> list[Heard]:
    """Every variant of both clips, tagged by the real pipeline once per test session."""
    folder = tmp_path_factory.mktemp("sonic-variants")
    return hear(folder, [(clip, variant) for clip in CLIPS for variant in VARIANTS], _make)


@pytest.fixture(autouse=True)
def sonic_cache(tmp_path: Path, settings):
    """Each test its own index cache folder and a fresh in-process index: a test's
    database starts empty, so another test's index would be a wrong cache."""
    from sonic import index

    settings.NOMARR_SONIC_CACHE = tmp_path / "sonic-cache"
    index._indexes.clear()
    yield
    index._indexes.clear()


@pytest.fixture
def listener(client, django_user_model):
    """A client logged in as a plain user (no staff rights)."""
    client.force_login(django_user_model.objects.create_user("listener", password="x"))
    return client


@pytest.fixture
def sonic_library(
    library: Path, root_row, heard_variants: list[Heard]
) -> Callable[..., dict[str, object]]:
    """Factory: the variants (all, or those named clip-variant) copied into the library,
    each file's rows refreshed with its job result; name -> LibraryFile."""
    from library.rows import refresh_file

    def make(*names: str) -> dict[str, object]:
        files = {}
        for one in heard_variants:
            name = f"{one.clip}-{one.variant}"
            if names and name not in names:
                continue
            target = library / one.path.name
            shutil.copyfile(one.path, target)
            files[name] = refresh_file(target, result=one.result)
        return files

    return make
