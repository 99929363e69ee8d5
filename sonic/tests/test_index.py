"""The index is a cache of the table: kept in step incrementally, saved, rebuilt by any process."""

import numpy as np
import pytest

from library.models import LibraryFile
from sonic import index as sonic_index
from sonic import similar
from sonic.models import Generation, TrackEmbedding
from sonic.storage import current_model_set, pack, store
from tagging.pipeline import Embedding

pytestmark = pytest.mark.django_db


def add_files(root_row, vectors, start=0):
    files = []
    for n, vector in enumerate(vectors, start):
        file = LibraryFile.objects.create(
            root=root_row, path=f"{root_row.path}/{n}.flac", folder=root_row.path, size=1,
            mtime_ns=1, artist=f"artist {n}", duration=200.0,
        )  # fmt: skip
        heard = Embedding(np.asarray(vector, np.float32), np.ones(len(vector), np.float32), 3)
        store(file, current_model_set(), {"msd-musicnn-1": heard, "mtt-musicnn-1": heard})
        files.append(file)
    return files


def test_a_new_track_is_found_at_once_without_a_rebuild(root_row):
    rng = np.random.default_rng(0)
    files = add_files(root_row, rng.normal(size=(50, 200)))
    found = similar.index()
    [twin] = add_files(root_row, [files[7].embeddings.get(backbone="msd-musicnn-1").mean], 50)
    assert similar.similar(files[7], 1)[0].file == twin
    assert similar.index() is found  # kept in step, not rebuilt
    assert len(found) == 51


def test_a_deleted_file_leaves_the_index(root_row, monkeypatch):
    monkeypatch.setattr(sonic_index, "RECONCILE_RANGE", 4)  # 20 rows: 5 ranges, 1 looked into
    files = add_files(root_row, np.random.default_rng(1).normal(size=(20, 200)))
    found = similar.index()
    gone = similar.similar(files[0], 1)[0].file.pk
    LibraryFile.objects.filter(pk=gone).delete()
    assert gone not in {m.file.pk for m in similar.similar(files[0], 19)}
    found.sync(force_reconcile=True)
    assert len(found) == 19 and set(found.files.tolist()) == {f.pk for f in files} - {gone}


def test_a_replaced_embedding_replaces_the_indexed_one(root_row):
    files = add_files(root_row, np.eye(200)[:3])
    assert similar.similar(files[0], 1)[0].score < 0.5
    heard = Embedding(np.eye(200, dtype=np.float32)[1], np.ones(200, np.float32), 3)
    store(files[0], current_model_set(), {"msd-musicnn-1": heard, "mtt-musicnn-1": heard})
    similar.index().sync(force_reconcile=True)
    match = similar.similar(files[0], 1)[0]
    assert match.file == files[1] and match.score == pytest.approx(1.0)
    assert len(similar.index()) == 3


def test_another_process_loads_the_saved_index_and_catches_up(root_row):
    files = add_files(root_row, np.random.default_rng(2).normal(size=(30, 200)))
    similar.index().save()
    add_files(root_row, np.random.default_rng(3).normal(size=(5, 200)), 30)
    sonic_index._indexes.clear()  # a fresh process
    fresh = sonic_index.Index(*similar.space())
    assert fresh.load() and len(fresh) == 30
    fresh.sync()
    assert len(fresh) == 35
    assert TrackEmbedding.objects.filter(backbone="msd-musicnn-1").count() == 35
    assert similar.similar(files[3], 1)[0].score < 1


def test_a_broken_saved_index_is_rebuilt_from_the_table(root_row, settings):
    add_files(root_row, np.random.default_rng(4).normal(size=(10, 200)))
    folder = sonic_index.cache_dir()
    folder.mkdir(parents=True)
    saved = sonic_index.Index(*similar.space()).path
    assert saved.parent == folder
    saved.write_bytes(b"not an index")
    assert len(similar.index()) == 10


def test_near_identical_tracks_are_listed_as_possible_duplicates(root_row):
    vectors = np.random.default_rng(5).normal(size=(10, 200))
    files = add_files(root_row, [*vectors, vectors[4] + 0.001])
    pairs = similar.duplicates()
    assert len(pairs) == 1 and {f.pk for f in pairs[0].files} == {files[4].pk, files[10].pk}
    LibraryFile.objects.filter(pk=files[10].pk).update(duration=260.0)
    assert similar.duplicates() == []  # the same sound, but not the same length


def test_a_large_index_searches_its_projection_and_gives_exact_cosines(root_row):
    # More rows than CANDIDATES: the search ranks by the projection, then re-ranks exactly.
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(40, 200)) * np.linspace(3, 0.2, 200)  # real spectra fall off
    vectors = centres[np.arange(1200) % 40] + rng.normal(size=(1200, 200)) * 0.4
    root = root_row
    files = LibraryFile.objects.bulk_create(
        LibraryFile(root=root, path=f"{root.path}/{n}.flac", folder=root.path, size=1, mtime_ns=1)
        for n in range(len(vectors))
    )
    first = Generation.take(len(files))
    TrackEmbedding.objects.bulk_create(
        TrackEmbedding(file=file, backbone=sonic_index.search_backbone(),
                       model_set=current_model_set(), dims=200, generation=first + n,
                       vector=pack(vector, np.ones(200)))
        for n, (file, vector) in enumerate(zip(files, vectors, strict=True))
    )  # fmt: skip
    found = similar.index()
    assert len(found) == 1200 > sonic_index.CANDIDATES
    exact = sonic_index.normalise(vectors)
    ids = np.array([f.pk for f in files])
    hits = 0
    for n in range(0, 1200, 40):
        scores = exact @ exact[n]
        scores[n] = -2
        truth = set(ids[np.argsort(-scores)[:10]].tolist())
        matches = similar.similar(files[n], 10)
        hits += len(truth & {m.file.pk for m in matches})
        by_id = dict(zip(ids.tolist(), scores.tolist(), strict=True))
        assert all(abs(m.score - by_id[m.file.pk]) < 2e-3 for m in matches)
    assert hits / (10 * 30) >= 0.95
