"""The library map: every analysed track as a point in two dimensions.

The points are the first two principal components of the searched embeddings
(PCA by SVD of the centred, normalised vectors: 200,000 tracks take a few seconds,
so a worker computes it, `sonic.tasks.build_map`, never a request). The result is
cached in the cache folder, keyed by the index's size and newest row, and kept
until the embeddings change; a request while none matches shows the last one and
asks for a new one. Colours are looked up per request from the library's rows: a
mood word (in the file's regular mood set or not), a mood word's tier (the
strongest tier its models gave the file: high, medium, low, none), the genre, the
decade.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from django.core.cache import cache

from library import analytics
from library.models import LibraryFile, TagValue
from sonic import index as sonic_index
from sonic import similar
from tagging import keys

log = logging.getLogger(__name__)

#: Points drawn at most (a random sample of a larger library, the same each time).
MAX_POINTS = 20000
#: Distinct genres coloured; the rest are "other".
TOP_GENRES = 12
BUILD_FLAG = "sonic-map-building"


def _key(found: sonic_index.Index) -> str:
    newest = int(found.ids[-1]) if len(found.ids) else 0
    return f"{found.backbone}-{found.model_set}-{len(found)}-{newest}"


def _path() -> Path:
    return sonic_index.cache_dir() / "map.npz"


def build() -> int:
    """Compute and cache the map of the current index; how many points it has."""
    try:
        found = similar.index()
    except similar.SonicError:
        return 0
    files, matrix = found.sample(MAX_POINTS)
    centred = matrix - matrix.mean(axis=0)
    if len(files) >= 2:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
    else:
        xy = np.zeros((len(files), 2), dtype=np.float32)
    folder = sonic_index.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    with os.fdopen(fd, "wb") as out:
        np.savez(out, key=np.array(_key(found)), files=files, xy=xy.astype(np.float32))
    os.replace(tmp, _path())
    cache.delete(BUILD_FLAG)
    return len(files)


def _load() -> tuple[str, np.ndarray, np.ndarray] | None:
    try:
        with np.load(_path()) as saved:
            return str(saved["key"]), saved["files"], saved["xy"]
    except (OSError, ValueError, KeyError):
        return None


def state() -> str:
    """ "empty" (nothing analysed), "ready", "stale" (an older map) or "missing"."""
    try:
        found = similar.index()
    except similar.SonicError:
        return "empty"
    saved = _load()
    if saved is None:
        return "missing"
    return "ready" if saved[0] == _key(found) else "stale"


def request_build() -> None:
    """Ask a worker for a new map (once, until it is done)."""
    if cache.add(BUILD_FLAG, True, timeout=600):
        from django_q.tasks import async_task

        async_task("sonic.tasks.build_map", group="sonic-map")


def colour_choices() -> list[tuple[str, str]]:
    """(value, label) of every colouring: none, genre, decade, each mood word, each
    mood word's tier."""
    words = analytics.mood_words()
    moods = [(f"mood:{w}", f"mood: {w}") for w in words]
    tiers = [(f"tier:{w}", f"tier of {w}") for w, labels in words.items() if labels]
    return [("", "none"), ("genre", "genre"), ("year", "decade"), *moods, *tiers]


def _tiers(word: str, file_ids: list[int]) -> dict[int, str]:
    """Each file's strongest tier for the mood word (over the models that score it)."""
    tier_keys = [label.tier_key for label in analytics.mood_words().get(word, [])]
    rank = {tier: at for at, tier in enumerate(keys.TIERS)}
    strongest: dict[int, str] = {}
    rows = TagValue.objects.filter(key__in=tier_keys, value__in=keys.TIERS)
    for at in range(0, len(file_ids), 500):
        chosen = rows.filter(file_id__in=file_ids[at : at + 500])
        for file_id, tier in chosen.values_list("file_id", "value"):
            if file_id not in strongest or rank[tier] < rank[strongest[file_id]]:
                strongest[file_id] = tier
    return {fid: strongest.get(fid, "untiered") for fid in file_ids}


def points(colour: str = "") -> dict | None:
    """The cached map's points [{x, y, id, label, group}], None when there is none yet;
    a stale one is given (and a new one asked for)."""
    if state() == "stale":
        request_build()
    saved = _load()
    if saved is None:
        return None
    _, files, xy = saved
    rows = LibraryFile.objects.in_bulk([int(f) for f in files])
    groups: dict[int, str] = {}
    if colour.startswith("mood:"):
        word = colour[5:]
        moods = analytics.moods_by_file(list(rows))
        groups = {fid: (word if word in moods.get(fid, []) else "other") for fid in rows}
    elif colour.startswith("tier:"):
        groups = _tiers(colour[5:], list(rows))
    elif colour == "genre":
        common = Counter(r.genre for r in rows.values() if r.genre).most_common(TOP_GENRES)
        top = {name for name, _ in common}
        groups = {fid: (r.genre if r.genre in top else "other") for fid, r in rows.items()}
    elif colour == "year":
        groups = {
            fid: (f"{r.year // 10 * 10}s" if r.year else "unknown") for fid, r in rows.items()
        }
    result = []
    for (x, y), fid in zip(xy.tolist(), files.tolist(), strict=True):
        row = rows.get(fid)
        if row is None:
            continue
        label = " - ".join(p for p in (row.artist, row.title) if p) or Path(row.path).name
        result.append(
            {
                "x": round(x, 4),
                "y": round(y, 4),
                "id": fid,
                "label": label,
                "group": groups.get(fid, ""),
            }
        )
    present = {p["group"] for p in result}
    if colour.startswith("tier:"):  # strongest first
        return {"points": result, "groups": [t for t in (*keys.TIERS, "untiered") if t in present]}
    return {"points": result, "groups": sorted(present)}
