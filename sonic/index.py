"""The search index: a cache of one embedding space, rebuilt from the table by any process.

Similarity is the cosine of the track-level mean embeddings of one backbone (see
`search_backbone`) under the current model set: the vectors are normalised once,
here, so a search is one matrix product. Exact search with numpy is enough: 200,000
tracks of 200 float32 numbers are 160 MB and a query takes a few milliseconds
(benchmarks/bench_similar.py measures it); no approximate index, so nothing to tune
and no recall to lose.

TrackEmbedding is the truth, and each process keeps its own copy of the index in
step with it, without a signal: a row added or replaced gets a new, higher
generation (sonic.models.Generation), so before each search the index asks the
table for its highest generation and reads only the rows above the one it has
(a Lidarr import of an album reads a dozen rows, not the library). Rows removed
since (a deleted file, a replaced embedding) are found by comparing counts, at
most every RECONCILE_SECONDS, and dropped; meanwhile a search never shows them,
since its results are read back from LibraryFile and each file
once. The index is saved to the cache folder (NOMARR_SONIC_CACHE, by default the
data folder's .cache/sonic) and loaded from there by the next process, then brought
up to date the same way, so a restart reads the table once, not per process start.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Count, Max

from sonic.models import TrackEmbedding

log = logging.getLogger(__name__)

#: Seconds between two checks for removed rows (a count of the space's rows).
RECONCILE_SECONDS = 5.0
#: Rows read from the table at a time while building.
READ_BATCH = 5000
#: Changes after which the saved copy is written again.
SAVE_AFTER = 1000
#: Room kept for new rows beyond those held (a share of them, and at least MIN_ROOM),
#: so that adding an album writes into it instead of copying the whole index.
ROOM_SHARE, MIN_ROOM = 0.25, 4096


def search_backbone() -> str:
    """The backbone whose embeddings are searched (NOMARR_SIMILAR_BACKBONE): by default
    mtt-musicnn-1, whose mean embedding put a track's nearest neighbour in the same
    soundtrack more often than msd-musicnn-1's (benchmarks/bench_retrieval.py); both
    find a clip's variants. The spread is stored, not searched: it added nothing
    measurable."""
    return settings.NOMARR_SIMILAR_BACKBONE


def cache_dir() -> Path:
    """Where the index and the map are saved (NOMARR_SONIC_CACHE)."""
    return Path(settings.NOMARR_SONIC_CACHE)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


@dataclass
class Hit:
    file_id: int
    score: float


class Index:
    """Exact cosine search over the mean embeddings of one backbone and model set."""

    def __init__(self, backbone: str, model_set: str) -> None:
        self.backbone, self.model_set = backbone, model_set
        self.ids = np.zeros(0, dtype=np.int64)  # TrackEmbedding generations, ascending
        self.files = np.zeros(0, dtype=np.int64)  # their LibraryFile ids
        self.matrix = np.zeros((0, 0), dtype=np.float32)
        # ids, files and matrix are the first rows of these, which have room for more.
        self._room = (self.ids, self.files, self.matrix)
        self._reconciled = 0.0
        self._unsaved = 0
        self._lock = threading.Lock()
        self._saving = threading.Event()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """The memory the index holds, its room for new rows included."""
        return sum(part.nbytes for part in self._room)

    def _hold(self, ids: np.ndarray, files: np.ndarray, matrix: np.ndarray) -> None:
        """Hold these rows, in new arrays with room for more."""
        n = len(ids)
        capacity = n + max(MIN_ROOM, int(n * ROOM_SHARE))
        dims = matrix.shape[1] if matrix.ndim == 2 else 0
        room = (
            np.zeros(capacity, dtype=np.int64),
            np.zeros(capacity, dtype=np.int64),
            np.zeros((capacity, dims), dtype=np.float32),
        )
        for part, rows in zip(room, (ids, files, matrix), strict=True):
            part[:n] = rows
        self._room = room
        self.ids, self.files, self.matrix = (part[:n] for part in room)

    def _rows(self):
        return TrackEmbedding.objects.filter(backbone=self.backbone, model_set=self.model_set)

    @property
    def path(self) -> Path:
        return cache_dir() / f"{self.backbone}-{self.model_set}.npz"

    # --- keeping in step with the table -------------------------------------------------

    def sync(self, force_reconcile: bool = False) -> None:
        """Read the rows added since the last sync; drop removed ones (every
        RECONCILE_SECONDS, or now with force_reconcile)."""
        with self._lock:
            last = int(self.ids[-1]) if len(self.ids) else 0
            newest = self._rows().aggregate(m=Max("generation"))["m"] or 0
            if newest > last:
                self._add(self._read(self._rows().filter(generation__gt=last)))
            now = time.monotonic()
            if force_reconcile or now - self._reconciled >= RECONCILE_SECONDS:
                self._reconciled = now
                if self._rows().aggregate(n=Count("id"))["n"] != len(self.ids):
                    keep = self._rows().values_list("generation", flat=True)
                    keep = np.fromiter(keep, dtype=np.int64)
                    mask = np.isin(self.ids, keep)
                    self._unsaved += int((~mask).sum())
                    self._hold(self.ids[mask], self.files[mask], self.matrix[mask])
            if self._unsaved >= SAVE_AFTER and not self._saving.is_set():
                # Written beside the search, not in its way (the rows held now stay as they are).
                self._saving.set()
                rows = (self.ids, self.files, self.matrix)
                threading.Thread(target=self._save_in_background, args=rows, daemon=True).start()

    def _read(self, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids, files, vectors = [], [], []
        query = rows.order_by("generation").values_list("generation", "file_id", "dims", "vector")
        for row_id, file_id, dims, vector in query.iterator(chunk_size=READ_BATCH):
            ids.append(row_id)
            files.append(file_id)
            vectors.append(np.frombuffer(bytes(vector), dtype="<f4", count=dims))
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return (
            np.array(ids, dtype=np.int64),
            np.array(files, dtype=np.int64),
            normalise(np.stack(vectors)),
        )

    def _add(self, part: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        ids, files, matrix = part
        if not len(ids):
            return
        n, k = len(self.ids), len(ids)
        if not n:
            self._hold(ids, files, matrix)
        elif matrix.shape[1] != self.matrix.shape[1]:
            log.warning("%s embeddings changed size; rebuilding the index", self.backbone)
            self._hold(*self._read(self._rows()))
        else:
            if n + k > len(self._room[0]):
                self._hold(self.ids, self.files, self.matrix)  # more room: one copy
            if n + k > len(self._room[0]):
                self._hold(np.concatenate([self.ids, ids]), np.concatenate([self.files, files]),
                           np.concatenate([self.matrix, matrix]))  # fmt: skip
            else:
                for part, rows in zip(self._room, (ids, files, matrix), strict=True):
                    part[n : n + k] = rows
                self.ids, self.files, self.matrix = (part[: n + k] for part in self._room)
        self._unsaved += len(ids)

    # --- surviving restarts -------------------------------------------------------------

    def _save_in_background(self, ids, files, matrix) -> None:
        try:
            self.save(ids, files, matrix)
        finally:
            self._saving.clear()

    def save(self, ids=None, files=None, matrix=None) -> None:
        """Write the index (or these rows of it) to the cache folder, atomically: a
        reader sees the old copy or the new one."""
        if ids is None:
            ids, files, matrix = self.ids, self.files, self.matrix
        folder = cache_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
            with os.fdopen(fd, "wb") as out:
                np.savez(out, ids=ids, files=files, matrix=matrix)
            os.replace(tmp, self.path)
            self._unsaved = 0
        except OSError as exc:  # a cache: the next process reads the table instead
            log.warning("cannot save the similarity index to %s: %s", folder, exc)

    def load(self) -> bool:
        """Take the saved copy, if there is a readable one; whether there was."""
        try:
            with np.load(self.path) as saved:
                ids, files, matrix = saved["ids"], saved["files"], saved["matrix"]
        except (OSError, ValueError, KeyError):
            return False
        if matrix.ndim != 2 or len(ids) != len(files) or len(ids) != len(matrix):
            return False
        self._hold(ids, files, matrix.astype(np.float32, copy=False))
        return True

    # --- searching ----------------------------------------------------------------------

    def search(self, vector: np.ndarray, count: int, exclude: set[int] | None = None) -> list[Hit]:
        """The count files nearest to vector (each file once, best first), without exclude."""
        exclude = exclude or set()
        if not len(self.ids) or count <= 0:
            return []
        query = normalise(np.asarray(vector, dtype=np.float32)[None, :])[0]
        if query.shape[0] != self.matrix.shape[1]:
            return []
        scores = self.matrix @ query
        wanted = min(len(scores), count + len(exclude) + 8)
        while True:
            top = np.argpartition(-scores, wanted - 1)[:wanted] if wanted < len(scores) else None
            order = np.arange(len(scores)) if top is None else top
            order = order[np.argsort(-scores[order], kind="stable")]
            hits, seen = [], set(exclude)
            for position in order:
                file_id = int(self.files[position])
                if file_id in seen:
                    continue
                seen.add(file_id)
                hits.append(Hit(file_id, float(scores[position])))
                if len(hits) == count:
                    return hits
            if top is None:
                return hits
            wanted = min(len(scores), wanted * 4)


_indexes: dict[tuple[str, str], Index] = {}
_indexes_lock = threading.Lock()


def get_index(backbone: str, model_set: str) -> Index:
    """This process's index of the space, loaded or built once, then kept in step."""
    with _indexes_lock:
        index = _indexes.get((backbone, model_set))
        if index is None:
            index = Index(backbone, model_set)
            index.load()
            _indexes[(backbone, model_set)] = index
            for key in [key for key in _indexes if key != (backbone, model_set)]:
                del _indexes[key]  # another model set's index is stale: free it
    index.sync()
    return index
