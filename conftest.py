"""Shared pytest fixtures: real audio files in every format Nomarr tags.

The clips are converted once per test session from the shared fixture MP3 with
ffmpeg and given "foreign" tags (tags that belong to the user, not to Nomarr)
and embedded cover art, so tests can check that Nomarr never touches them.
Tests get a private copy through ``make_audio`` because tagging modifies files.

Libraries are made here too, in one way: ``make_library`` (a root folder named in the
settings, optionally with its LibraryRoot row) and the default ``library`` built from it.
"""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tagging.tests.formats import AUDIO_FORMATS

if TYPE_CHECKING:
    from library.models import LibraryRoot

SHARED_DIR = Path(__file__).resolve().parent.parent / "shared"
SOURCE_CLIP = SHARED_DIR / "fixtures" / "audio" / "joram-moments_of_clarity-08-solipsism-59-88.mp3"

#: The user's own tags every fixture file carries (besides cover art).
FOREIGN_TAGS = {
    "title": "Solipsism (fixture)",
    "artist": "Joram",
    "album": "Moments of Clarity",
    # A custom tag, and one whose name starts with "nom" but not "nom_":
    # both belong to the user and must survive Nomarr's writes.
    "custom_foreign": "keep me",
    "nomad_rating": "5",
}


def _tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG built by hand, so no imaging library is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x40\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


COVER_PNG = _tiny_png()


def _convert(fmt: str, target: Path) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-v", "error", "-nostdin", "-y",
            "-i", str(SOURCE_CLIP),
            "-vn", "-map_metadata", "-1", "-t", "30",
            "-metadata", f"title={FOREIGN_TAGS['title']}",
            "-metadata", f"artist={FOREIGN_TAGS['artist']}",
            "-metadata", f"album={FOREIGN_TAGS['album']}",
            *AUDIO_FORMATS[fmt],
            str(target),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip


def _add_foreign_tags(fmt: str, path: Path) -> None:
    """Add tags ffmpeg cannot write (custom keys, cover art) with mutagen.

    WAV and AIFF get their tags as an ID3 chunk; the RIFF INFO / AIFF NAME
    chunks ffmpeg wrote stay too, as extra foreign metadata.
    """
    import mutagen
    from mutagen.flac import Picture
    from mutagen.id3 import APIC, TALB, TIT2, TPE1, TXXX, Encoding, PictureType
    from mutagen.mp4 import AtomDataType, MP4Cover, MP4FreeForm

    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    if fmt in ("mp3", "wav", "aiff"):
        tags.setall("TIT2", [TIT2(encoding=Encoding.UTF8, text=[FOREIGN_TAGS["title"]])])
        tags.setall("TPE1", [TPE1(encoding=Encoding.UTF8, text=[FOREIGN_TAGS["artist"]])])
        tags.setall("TALB", [TALB(encoding=Encoding.UTF8, text=[FOREIGN_TAGS["album"]])])
        for key in ("custom_foreign", "nomad_rating"):
            tags.add(TXXX(encoding=Encoding.UTF8, desc=key.upper(), text=[FOREIGN_TAGS[key]]))
        tags.add(
            APIC(
                encoding=Encoding.UTF8,
                mime="image/png",
                type=PictureType.COVER_FRONT,
                desc="cover",
                data=COVER_PNG,
            )
        )
        audio.save(v2_version=4)
        return

    picture = Picture()
    picture.type = 3  # front cover
    picture.mime = "image/png"
    picture.desc = "cover"
    picture.width = picture.height = 2
    picture.depth = 24
    picture.data = COVER_PNG
    if fmt == "flac":
        tags["CUSTOM_FOREIGN"] = [FOREIGN_TAGS["custom_foreign"]]
        tags["NOMAD_RATING"] = [FOREIGN_TAGS["nomad_rating"]]
        audio.add_picture(picture)
    elif fmt in ("ogg", "opus"):
        tags["CUSTOM_FOREIGN"] = [FOREIGN_TAGS["custom_foreign"]]
        tags["NOMAD_RATING"] = [FOREIGN_TAGS["nomad_rating"]]
        tags["METADATA_BLOCK_PICTURE"] = [base64.b64encode(picture.write()).decode("ascii")]
    elif fmt == "m4a":
        for key in ("custom_foreign", "nomad_rating"):
            tags[f"----:com.apple.iTunes:{key.upper()}"] = [
                MP4FreeForm(FOREIGN_TAGS[key].encode(), dataformat=AtomDataType.UTF8)
            ]
        tags["covr"] = [MP4Cover(COVER_PNG, imageformat=MP4Cover.FORMAT_PNG)]
    else:  # pragma: no cover
        raise ValueError(fmt)
    audio.save()


@pytest.fixture(scope="session")
def audio_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tagged file per format (read-only for tests: use ``make_audio``)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    if not SOURCE_CLIP.is_file():
        pytest.skip(f"shared audio fixture missing: {SOURCE_CLIP}")
    folder = tmp_path_factory.mktemp("audio-sources")
    targets = {fmt: folder / f"source.{fmt}" for fmt in AUDIO_FORMATS}
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        list(pool.map(lambda item: _convert(*item), targets.items()))
    for fmt, path in targets.items():
        _add_foreign_tags(fmt, path)
    return targets


@pytest.fixture
def make_audio(audio_sources: dict[str, Path], tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_audio("flac")`` -> a private, writable copy in tmp_path."""

    def make(fmt: str, name: str = "song") -> Path:
        if fmt not in audio_sources:
            raise ValueError(f"unknown audio format {fmt!r}; known: {sorted(audio_sources)}")
        target = tmp_path / f"{name}.{fmt}"
        shutil.copyfile(audio_sources[fmt], target)
        target.chmod(0o644)
        return target

    return make


def _audio_stream_hash(path: Path) -> str:
    """sha256 of the audio packets only (independent of tags), via ffmpeg."""
    result = subprocess.run(
        [
            "ffmpeg", "-v", "error", "-nostdin", "-i", str(path),
            "-map", "0:a", "-c", "copy", "-f", "hash", "-hash", "sha256", "-",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    return result.stdout.strip()


@pytest.fixture(scope="session")
def audio_stream_hash() -> Callable[[Path], str]:
    """Return a function hashing a file's audio packets, to prove that writing
    tags left the audio byte-for-byte unchanged."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    return _audio_stream_hash


def _root_row(root: Path, auto_tag: bool) -> LibraryRoot:
    """The LibraryRoot row of a settings root (made as a scan makes it), auto-tag as given."""
    from library.models import LibraryRoot
    from library.roots import sync_settings_roots

    sync_settings_roots()
    row = LibraryRoot.objects.get(path=str(root))
    row.auto_tag = auto_tag
    row.save()
    return row


@pytest.fixture
def make_library(tmp_path: Path, settings) -> Callable[..., Path]:
    """Factory: ``make_library()`` -> an empty library root, a real (resolved) folder.

    Each call adds a root to ``NOMARR_LIBRARY_ROOTS``, as a user's settings name them.
    ``folder`` is where, under tmp_path: ``""`` makes tmp_path itself the root, so every
    ``make_audio`` copy lies inside the library. ``auto_tag=True`` or ``False`` also gives
    the root its LibraryRoot row (a database test), with auto-tag on or off; by default
    the row is left to whatever first needs it, as in a fresh install.
    """
    roots: list[Path] = []

    def make(folder: str = "music", auto_tag: bool | None = None) -> Path:
        root = (tmp_path / folder).resolve()
        root.mkdir(parents=True, exist_ok=True)
        roots.append(root)
        settings.NOMARR_LIBRARY_ROOTS = list(roots)
        if auto_tag is not None:
            _root_row(root, auto_tag)
        return root

    return make


@pytest.fixture
def library(make_library: Callable[..., Path]) -> Path:
    """The one library root, tmp_path/music, empty; a test that needs another kind asks
    ``make_library`` (in its own ``library`` fixture when a whole module does)."""
    return make_library()


@pytest.fixture
def root_row(library: Path) -> LibraryRoot:
    """The default library's LibraryRoot row, auto-tag off unless a test turns it on."""
    return _root_row(library, auto_tag=False)


@pytest.fixture
def key() -> str:
    """A new API key's secret (a module that needs a key of another name defines its own)."""
    from rest_framework_api_key.models import APIKey

    return APIKey.objects.create_key(name="tests")[1]


@pytest.fixture
def private_cache(settings) -> None:
    """A cache of this test's own, so worker heartbeats from a cluster some other process
    runs (another test run, a developer's server) cannot count as workers here."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-{uuid.uuid4()}",
        }
    }


# The browser tests' fixtures (a headless Chromium, a page of it, a real `serve`), for
# every app's end-to-end tests.
from tagging.tests.browser import browser_page, chromium, server  # noqa: E402, F401
