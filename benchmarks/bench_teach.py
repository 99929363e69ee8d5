"""How fast a taught tag learns and scores, against the issue's targets.

    .venv/bin/python benchmarks/bench_teach.py [--examples 1000] [--tracks 200000]

* Training with cross-validation on --examples examples (200-dimensional synthetic
  embeddings, two overlapping clusters, half yes): `teach.learning.fit`, the
  stratified 5-fold CV and the final fit (target <= 10 s).
* Scoring --tracks stored embeddings: on a fresh database (a temporary SQLite file
  unless DATABASE_URL is set) bench_similar.populate writes the LibraryFile and
  TrackEmbedding rows as jobs store them; then `teach.learning.embeddings()` reads the
  space from the table and `probabilities` scores every row (target <= 5 s), and the
  product alone, on the same matrix, for the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_similar import populate, setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--tracks", type=int, default=200_000)
    args = parser.parse_args()
    setup_django()
    from sonic.models import TrackEmbedding
    from teach import learning

    rng = np.random.default_rng(1)
    half = args.examples // 2
    direction = rng.normal(size=200)
    x = rng.normal(size=(args.examples, 200))
    y = np.arange(args.examples) < half
    x[y] += 0.15 * direction
    started = time.perf_counter()
    cv_proba, weights, bias = learning.fit(x, y, learning.FOLDS)
    train_s = time.perf_counter() - started
    accuracy = float(np.mean((cv_proba >= 0.5) == y))
    print(
        f"train: {args.examples} examples, {learning.FOLDS}-fold CV + final fit: {train_s:.2f} s "
        f"(target <= 10 s: {'ok' if train_s <= 10 else 'MISSED'}), CV accuracy {accuracy:.3f}"
    )

    TrackEmbedding.objects.all().delete()
    started = time.perf_counter()
    populate(args.tracks)
    print(f"populate: {args.tracks} tracks written in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    ids, matrix = learning.embeddings()
    read_s = time.perf_counter() - started
    scores = learning.probabilities(matrix, weights[:200], bias)
    score_s = time.perf_counter() - started
    started = time.perf_counter()
    learning.probabilities(matrix, weights[:200], bias)
    product_s = time.perf_counter() - started
    assert len(ids) == len(scores) == args.tracks
    print(
        f"score: {args.tracks} stored embeddings read and scored in {score_s:.2f} s "
        f"(target <= 5 s: {'ok' if score_s <= 5 else 'MISSED'}); reading the table "
        f"{read_s:.2f} s, the product alone {product_s * 1000:.0f} ms "
        f"({score_s / max(product_s, 1e-9):.0f}x the product)"
    )


if __name__ == "__main__":
    main()
