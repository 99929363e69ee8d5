"""Genre suggestions: learned from the library's own GENRE values, for files without one.

The same learning as a taught tag (teach/learning.py), with one class per genre: a
class-balanced multinomial logistic regression on the stored mean embeddings of the
files that have a genre (their first value), cross-validated first. The genres with
fewer than MIN_PER_SIDE analysed files are left out. The suggestion is written as
`nom_genre_suggested` into the analysed files that have no genre, and into GENRE
only when asked (`write(..., genre=True)`: the page's "GENRE too" button, which asks
first, or `manage.py teach genres --write-genre`), and then only in a file that has
no GENRE when it is written: a genre the user gave is never overwritten. A re-tag
keeps the suggestion (tagging.keys.is_kept_on_retag).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from library.models import LibraryFile
from tagging import keys
from teach.learning import (
    FOLDS,
    MIN_PER_SIDE,
    C,
    TeachError,
    Written,
    embeddings,
    write_into,
)

_SPLIT = re.compile(r"\s*[;/,|]\s*")


def suggested_key() -> str:
    """`nom_genre_suggested`."""
    return keys.suggestion_key("genre")


def first_genre(text: str) -> str:
    return next((part for part in _SPLIT.split(text.strip()) if part), "")


@dataclass
class Suggestions:
    genres: list[tuple[str, int]]  # the genres learned, with their analysed files
    left_out: list[tuple[str, int]]  # genres with too few files
    accuracy: float
    balanced_accuracy: float
    folds: int
    seconds: float
    file_ids: np.ndarray = field(repr=False)  # the files without a genre
    suggested: list[str] = field(repr=False)  # their suggestion, in that order
    confidence: np.ndarray = field(repr=False)

    def sample(self, count: int = 20) -> list[tuple[LibraryFile, str, float]]:
        order = np.argsort(-self.confidence, kind="stable")[:count]
        files = LibraryFile.objects.in_bulk([int(self.file_ids[i]) for i in order])
        return [
            (files[int(self.file_ids[i])], self.suggested[i], float(self.confidence[i]))
            for i in order
        ]


def learn() -> Suggestions:
    """Learn the library's genres and suggest one for each analysed file without one."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    started = time.perf_counter()
    ids, matrix = embeddings()
    if not len(ids):
        raise TeachError("no file is analysed yet")
    genre_of = dict(LibraryFile.objects.filter(pk__in=ids.tolist()).values_list("pk", "genre"))
    genres = np.array([first_genre(genre_of.get(int(i), "") or "") for i in ids], dtype=object)
    has = genres != ""
    counts = Counter(genres[has].tolist())
    kept = sorted(g for g, n in counts.items() if n >= MIN_PER_SIDE)
    left_out = sorted((g, n) for g, n in counts.items() if n < MIN_PER_SIDE)
    if len(kept) < 2:
        have = ", ".join(f"{g}: {n}" for g, n in sorted(counts.items())[:8]) or "none"
        raise TeachError(
            f"too few genres to learn from: it takes at least two genres with {MIN_PER_SIDE} "
            f"analysed files each; the analysed files have {have}"
        )
    train = has & np.isin(genres, kept)
    x, y = matrix[train].astype(np.float64), genres[train].astype(str)
    folds = min(FOLDS, min(counts[g] for g in kept))

    def model():
        return make_pipeline(
            StandardScaler(), LogisticRegression(class_weight="balanced", C=C, max_iter=2000)
        )

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    predicted = cross_val_predict(model(), x, y, cv=cv)
    final = model().fit(x, y)
    todo = ~has
    if todo.any():
        proba = final.predict_proba(matrix[todo].astype(np.float64))
        best = np.argmax(proba, axis=1)
        suggested = [str(final.classes_[i]) for i in best]
        confidence = proba[np.arange(len(best)), best]
    else:
        suggested, confidence = [], np.zeros(0)
    return Suggestions(
        genres=[(g, counts[g]) for g in kept],
        left_out=left_out,
        accuracy=float(np.mean(predicted == y)),
        balanced_accuracy=float(balanced_accuracy_score(y, predicted)),
        folds=folds,
        seconds=time.perf_counter() - started,
        file_ids=ids[todo],
        suggested=suggested,
        confidence=confidence,
    )


def write(suggestions: Suggestions, genre: bool = False) -> Written:
    """Write nom_genre_suggested into each file without a genre; with genre, the
    suggestion into GENRE too, in the files that have no GENRE (those that do keep
    theirs). Without genre, GENRE is not touched."""
    key = suggested_key()
    return write_into(
        suggestions.file_ids,
        lambda index: {key: [suggestions.suggested[index]]},
        [key],
        fill_of=(lambda index: {"genre": [suggestions.suggested[index]]}) if genre else None,
    )
