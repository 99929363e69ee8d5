"""A real little library for the playlist tests.

Each track is a real audio clip (conftest `make_audio`) that gets the tags the real
pipeline would write for chosen scores: the key set, tiers and mood sets come from
`tagging.pipeline.describe` on the installed model catalog (the msd/mtt backbones and
the nine Essentia heads), so they are exactly what tagging writes, without running
the models. `tagging.writers.write_tags` writes them and the library scanner reads
the files into LibraryFile/TagValue rows.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import mutagen
import numpy as np
import pytest
from django.conf import settings
from mutagen.id3 import ID3, TIT2, TPE1, UFID, Encoding
from mutagen.mp4 import MP4

from library.models import LibraryFile, LibraryRoot
from library.scanning import scan_root
from playlists import presets
from tagging.catalog import discover
from tagging.keys import label_keys, namespace, score_key
from tagging.pipeline import describe
from tagging.writers import write_tags


@pytest.fixture(scope="session")
def catalog():
    found = discover(settings.NOMARR_MODELS_DIRS, settings.NOMARR_MOOD_HEADS)
    stems = {head.stem for head in found.heads}
    if "mood_happy-msd-musicnn-1" not in stems or "msd-musicnn-1" not in stems:
        pytest.skip("the msd-musicnn-1 backbone and the Essentia fixture heads are needed")
    return found


def nomarr_tags(catalog, scores: dict[str, float]) -> tuple[dict[str, list[str]], list[str]]:
    """What the pipeline writes when the models hear `scores` ({score key: p}).

    Two-class heads get q = 1 - p for the other label; unnamed labels get 0.5 on
    two-class heads and 0.02 on the backbones' 50 tags."""
    head_scores = []
    for head in catalog.heads:
        keys = label_keys(head.stem, head.labels)
        mean = np.full(len(keys), 0.5 if head.is_two_class else 0.02, dtype=np.float32)
        for index, key in enumerate(keys):
            if key in scores:
                mean[index] = scores[key]
                if head.is_two_class:
                    mean[1 - index] = 1 - scores[key]
        head_scores.append((head, mean))
    analysis = describe(head_scores, namespace(), catalog.fingerprint)
    return analysis.tags, analysis.moods


def set_standard_tags(path: Path, title: str, artist: str, mbid: str = "") -> None:
    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    if isinstance(tags, ID3):
        tags.setall("TIT2", [TIT2(encoding=Encoding.UTF8, text=[title])])
        tags.setall("TPE1", [TPE1(encoding=Encoding.UTF8, text=[artist])])
        if mbid:
            tags.setall("UFID", [UFID(owner="http://musicbrainz.org", data=mbid.encode())])
        audio.save(v2_version=4)
    elif isinstance(audio, MP4):
        tags["©nam"], tags["©ART"] = [title], [artist]
        if mbid:
            from mutagen.mp4 import AtomDataType, MP4FreeForm

            tags["----:com.apple.iTunes:MusicBrainz Track Id"] = [
                MP4FreeForm(mbid.encode(), dataformat=AtomDataType.UTF8)
            ]
        audio.save()
    else:
        tags["TITLE"], tags["ARTIST"] = [title], [artist]
        if mbid:
            tags["MUSICBRAINZ_TRACKID"] = [mbid]
        audio.save()


@dataclass
class Library:
    root: Path
    row: LibraryRoot
    make_audio: object
    catalog: object

    def add(
        self,
        fmt: str,
        title: str,
        scores: dict[str, float] | None = None,
        artist: str = "Tester",
        mbid: str = "",
        folder: str = "Artist/Album",
    ) -> Path:
        """A real `fmt` clip at <root>/<folder>/<title>.<fmt>, tagged as if the models
        heard `scores` (None: no Nomarr tags at all)."""
        source = self.make_audio(fmt, name=f"src-{title}")
        target = self.root / folder / f"{title}.{fmt}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
        set_standard_tags(target, title, artist, mbid)
        if scores is not None:
            tags, moods = nomarr_tags(self.catalog, scores)
            write_tags(target, tags, namespace(), moods)
        return target

    def scan(self) -> None:
        scan = scan_root(self.row)
        assert scan.status == "done", scan.message

    def file(self, title: str) -> LibraryFile:
        return LibraryFile.objects.get(title=title)


@pytest.fixture
def library(settings, make_library, make_audio, catalog, db) -> Library:
    """An empty library root (tmp_path/music, auto-tag off) with NOMARR_PLAYLIST_DIR inside it."""
    root = make_library(auto_tag=False)
    settings.NOMARR_PLAYLIST_DIR = str(root / "Playlists")
    row = LibraryRoot.objects.get(path=str(root))
    return Library(root=root, row=row, make_audio=make_audio, catalog=catalog)


# The presets' own score keys (playlists/presets.py), so the two never drift apart.
HAPPY = presets.HAPPY.key
SAD = presets.SAD.key
RELAXED = presets.RELAXED.key
AGGRESSIVE = presets.AGGRESSIVE.key
PARTY = presets.PARTY.key
DANCEABLE = presets.DANCEABLE.key
INSTRUMENTAL = presets.INSTRUMENTAL.key
SLOW = score_key("mtt-musicnn-1", "slow")
CHILL = score_key("msd-musicnn-1", "chill")

#: title -> (format, scores, MusicBrainz recording id)
MIXED = {
    "Sunny Day": (
        "mp3",
        {HAPPY: 0.9, DANCEABLE: 0.85, PARTY: 0.8, RELAXED: 0.3, AGGRESSIVE: 0.1, SAD: 0.05,
         INSTRUMENTAL: 0.2},
        "11111111-1111-1111-1111-111111111111",
    ),
    "Rainy Night": (
        "flac",
        {SAD: 0.88, RELAXED: 0.75, HAPPY: 0.1, DANCEABLE: 0.2, AGGRESSIVE: 0.05,
         INSTRUMENTAL: 0.85, SLOW: 0.5},
        "",
    ),
    "Calm Focus": (
        "ogg",
        {RELAXED: 0.82, INSTRUMENTAL: 0.9, AGGRESSIVE: 0.1, HAPPY: 0.55, DANCEABLE: 0.3,
         CHILL: 0.4},
        "33333333-3333-3333-3333-333333333333",
    ),
    "Rage": (
        "m4a",
        {AGGRESSIVE: 0.93, DANCEABLE: 0.7, RELAXED: 0.05, HAPPY: 0.3, SAD: 0.2},
        "",
    ),
    "Middle": ("opus", {}, ""),
}  # fmt: skip


@pytest.fixture
def mixed(library) -> Library:
    """Five tagged tracks with distinct moods (see MIXED), scanned."""
    for title, (fmt, scores, mbid) in MIXED.items():
        library.add(fmt, title, scores, mbid=mbid)
    library.scan()
    return library
