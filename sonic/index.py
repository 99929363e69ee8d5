"""The search index: a cache of one embedding space, rebuilt from the table by any process.

Similarity is the cosine of the track-level mean embeddings of one backbone (see
`search_backbone`) under the current model set. The index keeps each vector
normalised, as float16 (`full`: 200 numbers, 400 bytes a track), and, for the
search, its projection on the REDUCED_DIMS principal directions of the table
(`reduced`, float32: the top eigenvectors of the vectors' second moment, fitted on
the rows held, so a dot product there is the best REDUCED_DIMS-number estimate of
the cosine). A search is one matrix product with the reduced vectors (a third of
the exact product's memory traffic), then the best candidates (at least
CANDIDATES, more for a long list) re-ranked exactly with the full vectors: the
scores it gives are exact cosines, and what it can miss is a track the reduced
space ranks below all the candidates. benchmarks/bench_similar.py measures that
recall@10 against exact full-dimension float32 search (>= 0.95 is the target; it
prints the figure); an index of CANDIDATES tracks or fewer is searched exactly.

TrackEmbedding is the truth, and each process keeps its own copy of the index in
step with it, without a signal: a row added or replaced gets a new, higher
generation (sonic.models.Generation), so before each search the index asks the
table for its highest generation and reads only the rows above the one it has
(a Lidarr import of an album reads a dozen rows, not the library). Rows removed
since (a deleted file, a replaced embedding) are found by comparing the count and
the sum of the generations in each range of RECONCILE_RANGE generations, at most
every RECONCILE_SECONDS (at once when the highest generation went down): only the
ranges that differ are read, their removed rows dropped and rows the index lacks
read; meanwhile a search never shows a removed file, since its
results are read back from LibraryFile, and each file once. The projection is
fitted again when the index has grown to REFIT_GROWTH times the rows it was fitted
on. The index is saved to the cache folder (NOMARR_SONIC_CACHE, by default the
data folder's .cache/sonic) and loaded from there by the next process, then
brought up to date the same way, so a restart reads the table once, not per
process start.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Count, F, Max, Sum
from threadpoolctl import ThreadpoolController

from sonic.models import TrackEmbedding

log = logging.getLogger(__name__)

#: Seconds between two checks for removed rows (a count of the space's rows).
RECONCILE_SECONDS = 5.0
#: Width of the generation ranges compared with the table to find removed rows.
RECONCILE_RANGE = 4096
#: Rows read from the table at a time while building.
READ_BATCH = 5000
#: Changes after which the saved copy is written again.
SAVE_AFTER = 1000
#: Room kept for new rows beyond those held (a share of them, and at least MIN_ROOM),
#: so that adding an album writes into it instead of copying the whole index.
ROOM_SHARE, MIN_ROOM = 0.25, 4096
#: Numbers per track in the searched projection, and the fewest candidates re-ranked
#: exactly (8 times the rows asked for when that is more).
REDUCED_DIMS, CANDIDATES = 64, 256
#: The projection is fitted again once the index holds this many times the rows it
#: was fitted on.
REFIT_GROWTH = 2.0
#: Rows converted to float32 at a time (fitting, projecting, comparing all pairs).
TILE = 8192
#: The saved copy's layout; a copy of another layout is not read (rebuilt instead).
FORMAT = 2


_blas = ThreadpoolController()
#: One search at a time changes BLAS's thread count (a process-wide setting), so two
#: searching threads never restore each other's.
_blas_lock = threading.Lock()


def _one_thread_product(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """matrix @ vector on one BLAS thread: a matrix-vector product is bound by memory,
    and BLAS's threads only wait for each other on a busy machine (four times slower
    at a load of 5 on 2 cores, benchmarks/bench_similar.py's machine)."""
    with _blas_lock, _blas.limit(limits=1, user_api="blas"):
        return matrix @ vector


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


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float16)


class Index:
    """Cosine search over the mean embeddings of one backbone and model set."""

    def __init__(self, backbone: str, model_set: str) -> None:
        self.backbone, self.model_set = backbone, model_set
        self.ids = np.zeros(0, dtype=np.int64)  # TrackEmbedding generations, ascending
        self.files = np.zeros(0, dtype=np.int64)  # their LibraryFile ids
        self.full = np.zeros((0, 0), dtype=np.float16)  # the normalised vectors
        self.reduced = np.zeros((0, 0), dtype=np.float32)  # full @ basis
        self.basis = np.zeros((0, 0), dtype=np.float32)  # dims x REDUCED_DIMS
        self.fitted_on = 0  # rows the basis was fitted on
        # ids, files, full and reduced are the first rows of these, which have room for more.
        self._room = (self.ids, self.files, self.full, self.reduced)
        self._reconciled = 0.0
        self._unsaved = 0
        self._lock = threading.Lock()
        self._saving = threading.Event()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dims(self) -> int:
        return self.full.shape[1] if self.full.ndim == 2 else 0

    @property
    def nbytes(self) -> int:
        """The memory the index holds, its room for new rows included."""
        return sum(part.nbytes for part in self._room) + self.basis.nbytes

    def rows(self, positions: np.ndarray | slice) -> np.ndarray:
        """The full normalised vectors at these positions, as float32."""
        return self.full[positions].astype(np.float32)

    def sample(self, most: int) -> tuple[np.ndarray, np.ndarray]:
        """(file ids, float32 vectors) of up to `most` rows, a random sample of a larger
        index (the same each time for the same rows)."""
        with self._lock:
            files, full = self.files, self.full
        pick = np.arange(len(files))
        if len(files) > most:
            pick = np.sort(np.random.default_rng(0).choice(len(files), most, replace=False))
        return files[pick], full[pick].astype(np.float32)

    # --- holding rows -------------------------------------------------------------------

    def _hold(
        self,
        ids: np.ndarray,
        files: np.ndarray,
        full: np.ndarray,
        reduced: np.ndarray | None = None,
    ) -> None:
        """Hold these rows, in new arrays with room for more: with their projection on
        the basis held when given (rows left after a removal), else projected on a
        basis fitted on them."""
        n = len(ids)
        dims = full.shape[1] if full.ndim == 2 else 0
        capacity = n + max(MIN_ROOM, int(n * ROOM_SHARE))
        room = (
            np.zeros(capacity, dtype=np.int64),
            np.zeros(capacity, dtype=np.int64),
            np.zeros((capacity, dims), dtype=np.float16),
            np.zeros((capacity, min(dims, REDUCED_DIMS)), dtype=np.float32),
        )
        for part, rows in zip(room[:3], (ids, files, full), strict=True):
            part[:n] = rows
        self._room = room
        self.ids, self.files, self.full, self.reduced = (part[:n] for part in room)
        if reduced is None or reduced.shape[1] != room[3].shape[1]:
            self._fit()
        else:
            room[3][:n] = reduced

    def _fit(self) -> None:
        """Fit the basis on the rows held and project them all on it."""
        n, dims = len(self.ids), self.dims
        self.fitted_on = n
        if not n:
            self.basis = np.eye(dims, min(dims, REDUCED_DIMS), dtype=np.float32)
            return
        moment = np.zeros((dims, dims), dtype=np.float64)
        for start in range(0, n, TILE):
            tile = self.rows(slice(start, start + TILE))
            moment += tile.T @ tile
        _, vectors = np.linalg.eigh(moment)  # ascending eigenvalues
        self.basis = np.ascontiguousarray(vectors[:, ::-1][:, :REDUCED_DIMS], dtype=np.float32)
        self._project(0, n)

    def _project(self, start: int, stop: int) -> None:
        for first in range(start, stop, TILE):
            last = min(stop, first + TILE)
            self._room[3][first:last] = self.rows(slice(first, last)) @ self.basis

    def _rows(self):
        return TrackEmbedding.objects.filter(backbone=self.backbone, model_set=self.model_set)

    @property
    def path(self) -> Path:
        return cache_dir() / f"{self.backbone}-{self.model_set}-v{FORMAT}.npz"

    # --- keeping in step with the table -------------------------------------------------

    def sync(self, force_reconcile: bool = False) -> None:
        """Read the rows added since the last sync; drop removed ones (every
        RECONCILE_SECONDS, at once when the newest row went, or now with
        force_reconcile)."""
        with self._lock:
            last = int(self.ids[-1]) if len(self.ids) else 0
            newest = self._rows().aggregate(m=Max("generation"))["m"] or 0
            if newest > last:
                self._add(self._read(self._rows().filter(generation__gt=last)))
            now = time.monotonic()
            if force_reconcile or newest < last or now - self._reconciled >= RECONCILE_SECONDS:
                self._reconciled = now
                self._reconcile()
            if self._unsaved >= SAVE_AFTER and not self._saving.is_set():
                # Written beside the search, not in its way (the rows held now stay as they are).
                self._saving.set()
                rows = (self.ids, self.files, self.full, self.basis, self.fitted_on)
                threading.Thread(target=self._save_in_background, args=rows, daemon=True).start()

    def _reconcile(self) -> None:
        """Drop the rows the table no longer has and read those it has that the index
        lacks, looking only into the generation ranges (RECONCILE_RANGE wide) whose
        count or sum differ from the index's: a deleted file reads one range, not the
        table."""
        # Count("*") and the generations: read from the space's index alone.
        whole = self._rows().aggregate(n=Count("*"), s=Sum("generation"))
        if whole["n"] == len(self.ids) and int(whole["s"] or 0) == int(self.ids.sum()):
            return
        width = RECONCILE_RANGE
        ranges = (
            self._rows()
            .annotate(bucket=F("generation") / width)
            .values("bucket")
            .annotate(n=Count("*"), s=Sum("generation"))
        )
        table = {int(r["bucket"]): (int(r["n"]), int(r["s"])) for r in ranges}
        held_ranges, at, counts = np.unique(
            self.ids // width, return_index=True, return_counts=True
        )
        sums = np.add.reduceat(self.ids, at) if len(at) else np.zeros(0, np.int64)
        held = {
            int(r): (int(n), int(total))
            for r, n, total in zip(held_ranges, counts, sums, strict=True)
        }
        differ = sorted(r for r in table.keys() | held.keys() if table.get(r) != held.get(r))
        if not differ:
            return
        if len(differ) > 8:  # another table than the one held: read it all
            self._unsaved += len(self.ids)
            self._hold(*self._read(self._rows()))
            return
        keep = np.zeros(0, np.int64)
        for r in differ:
            inside = self._rows().filter(generation__gte=r * width, generation__lt=(r + 1) * width)
            keep = np.concatenate(
                [keep, np.fromiter(inside.values_list("generation", flat=True), np.int64)]
            )
        looked = np.isin(self.ids // width, differ)
        mask = ~looked | np.isin(self.ids, keep)
        lacking = np.setdiff1d(keep, self.ids[mask])
        self._unsaved += int((~mask).sum()) + len(lacking)
        if not mask.all():
            self._hold(self.ids[mask], self.files[mask], self.full[mask], self.reduced[mask])
        if len(lacking):
            ids, files, full = self._read(self._rows().filter(generation__in=lacking.tolist()))
            ids = np.concatenate([self.ids, ids])
            order = np.argsort(ids, kind="stable")
            files, full = np.concatenate([self.files, files]), np.concatenate([self.full, full])
            self._hold(ids[order], files[order], full[order])

    def _read(self, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids, files, vectors = [], [], []
        query = rows.order_by("generation").values_list("generation", "file_id", "dims", "vector")
        for row_id, file_id, dims, vector in query.iterator(chunk_size=READ_BATCH):
            ids.append(row_id)
            files.append(file_id)
            vectors.append(np.frombuffer(bytes(vector), dtype="<f4", count=dims))
        if not ids:
            return _empty()
        return (
            np.array(ids, dtype=np.int64),
            np.array(files, dtype=np.int64),
            normalise(np.stack(vectors)).astype(np.float16),
        )

    def _add(self, part: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        ids, files, full = part
        if not len(ids):
            return
        n, k = len(self.ids), len(ids)
        if not n:
            self._hold(ids, files, full)
        elif full.shape[1] != self.dims:
            log.warning("%s embeddings changed size; rebuilding the index", self.backbone)
            self._hold(*self._read(self._rows()))
        elif n + k > len(self._room[0]) or n + k >= REFIT_GROWTH * self.fitted_on:
            # Out of room (one copy), or grown enough to fit the projection again.
            reduced = None
            if n + k < REFIT_GROWTH * self.fitted_on:
                reduced = np.concatenate([self.reduced, full.astype(np.float32) @ self.basis])
            self._hold(np.concatenate([self.ids, ids]), np.concatenate([self.files, files]),
                       np.concatenate([self.full, full]), reduced)  # fmt: skip
        else:
            for part_room, rows in zip(self._room[:3], (ids, files, full), strict=True):
                part_room[n : n + k] = rows
            self.ids, self.files, self.full, self.reduced = (
                part_room[: n + k] for part_room in self._room
            )
            self._project(n, n + k)
        self._unsaved += k

    # --- surviving restarts -------------------------------------------------------------

    def _save_in_background(self, *rows) -> None:
        try:
            self.save(*rows)
        finally:
            self._saving.clear()

    def save(self, ids=None, files=None, full=None, basis=None, fitted_on=None) -> None:
        """Write the index (or these rows of it) to the cache folder, atomically: a
        reader sees the old copy or the new one."""
        if ids is None:
            ids, files, full, basis, fitted_on = (
                self.ids, self.files, self.full, self.basis, self.fitted_on
            )  # fmt: skip
        folder = cache_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
            with os.fdopen(fd, "wb") as out:
                np.savez(out, ids=ids, files=files, full=full, basis=basis, fitted_on=fitted_on)
            os.replace(tmp, self.path)
            self._unsaved = 0
        except OSError as exc:  # a cache: the next process reads the table instead
            log.warning("cannot save the similarity index to %s: %s", folder, exc)

    def load(self) -> bool:
        """Take the saved copy, if there is a readable one; whether there was."""
        try:
            with np.load(self.path) as saved:
                ids, files, full = saved["ids"], saved["files"], saved["full"]
                basis, fitted_on = saved["basis"], int(saved["fitted_on"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if full.ndim != 2 or len(ids) != len(files) or len(ids) != len(full):
            return False
        if basis.ndim != 2 or basis.shape[0] != full.shape[1]:
            return False
        n = len(ids)
        capacity = n + max(MIN_ROOM, int(n * ROOM_SHARE))
        room = (
            np.zeros(capacity, dtype=np.int64),
            np.zeros(capacity, dtype=np.int64),
            np.zeros((capacity, full.shape[1]), dtype=np.float16),
            np.zeros((capacity, basis.shape[1]), dtype=np.float32),
        )
        for part, rows in zip(room[:3], (ids, files, full), strict=True):
            part[:n] = rows
        self._room = room
        self.ids, self.files, self.full, self.reduced = (part[:n] for part in room)
        self.basis, self.fitted_on = basis.astype(np.float32), fitted_on
        self._project(0, n)
        return True

    # --- searching ----------------------------------------------------------------------

    def position_of(self, file_id: int) -> int | None:
        """Where the file's vector is held (None when it is not)."""
        found = np.flatnonzero(self.files == file_id)
        return int(found[-1]) if len(found) else None

    def search(self, vector: np.ndarray, count: int, exclude: set[int] | None = None) -> list[Hit]:
        """The count files nearest to vector (each file once, best first), without exclude."""
        exclude = exclude or set()
        with self._lock:  # one consistent set of rows, whatever a sync does meanwhile
            files, full, reduced, basis = self.files, self.full, self.reduced, self.basis
        if not len(files) or count <= 0:
            return []
        query = normalise(np.asarray(vector, dtype=np.float32)[None, :])[0]
        if query.shape[0] != full.shape[1]:
            return []
        approximate = _one_thread_product(reduced, query @ basis)
        wanted = min(len(approximate), count + len(exclude) + 8)
        while True:
            candidates = min(len(approximate), max(CANDIDATES, 8 * wanted))
            if candidates < len(approximate):
                picked = np.argpartition(-approximate, candidates - 1)[:candidates]
            else:
                picked = np.arange(len(approximate))
            scores = full[picked].astype(np.float32) @ query
            order = np.argsort(-scores, kind="stable")
            hits, seen = [], set(exclude)
            for at in order:
                file_id = int(files[picked[at]])
                if file_id in seen:
                    continue
                seen.add(file_id)
                hits.append(Hit(file_id, float(scores[at])))
                if len(hits) == count:
                    return hits
            if candidates == len(approximate):
                return hits
            wanted = min(len(approximate), wanted * 4)

    def pairs_above(self, threshold: float) -> Iterator[tuple[float, int, int]]:
        """(cosine, file, other file) of every two rows of different files at least
        threshold alike, compared exactly, tile against tile."""
        with self._lock:
            files, full = self.files, self.full
        n = len(files)
        for start in range(0, n, TILE):
            left = full[start : start + TILE].astype(np.float32)
            for other in range(start, n, TILE):
                right = left if other == start else full[other : other + TILE].astype(np.float32)
                scores = left @ right.T
                rows, cols = np.nonzero(scores >= threshold)
                for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
                    i, j = start + row, other + col
                    if i < j and files[i] != files[j]:
                        yield float(scores[row, col]), int(files[i]), int(files[j])


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


def forget() -> None:
    """Drop this process's indexes (the next search loads or builds one): for a
    database that was replaced under the process, as a restored backup or a test's."""
    with _indexes_lock:
        _indexes.clear()
