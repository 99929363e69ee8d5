"""Learning a tag from its examples, and writing it into every analysed file.

The features are the stored track-level embeddings (sonic.models.TrackEmbedding) of
the searched backbone under the current model set (`sonic.similar.space()`): the
mean over a track's patches, as the tagging job stored it. No model runs here.

`train` fits scikit-learn's LogisticRegression (class_weight="balanced", on
standardised features) and measures it first by stratified k-fold cross-validation;
the weights are kept with the standardisation folded in, so a score is
`sigmoid(weights . mean + bias)`: one matrix-vector product for the whole library.
It shows the cross-validated accuracy and the library's most and least confident
tracks before anything is written. `apply` then writes the scores and tiers into
every analysed file, through tagging/writers.py (only this tag's keys change; every
other tag stays), and refreshes the file's library rows (library/rows.py). The tiers
are decided as every key's (tagging.pipeline.decide, on the calibrated scores when
NOMARR_TIER_SCORES=calibrated: tagging.pipeline.tier_calibration).

A re-tag by the pipeline keeps a taught tag's keys in the files (`owned_keys`, the
receiver of tagging.signals.retag_keeps); once the tag is saved as a head, the
pipeline gives them afresh.

The keys are those of a head named `<tag>-<backbone>` with the classes `<tag>` and
`non_<tag>` (tagging/keys.py): `nom_<tag>_<backbone>__<tag>` and its `__tier`, the
keys the saved head (teach/heads.py) gives the files tagged after it, so the
Navidrome config and the playlist builder treat it as every other key.

Trained on track means, applied to patches: the head the catalog runs sees each
patch's embedding and the pipeline averages the head's per-patch probabilities,
while the classifier was fitted on the mean embedding. The logit is linear, so it
is the same for the mean as the mean of the patches' logits; only the sigmoid
differs (the mean of sigmoids against the sigmoid of the mean), a gap that is
small where a track's patches agree. Means are what is stored (one row per track,
200 numbers), so teaching runs on the whole library in seconds; the test measures
the gap on a real file (teach/tests/test_teach.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from django.db import connection
from django.utils import timezone

from library.models import LibraryFile, TagValue
from library.rows import refresh_file
from sonic import similar
from sonic.index import search_backbone
from sonic.models import TrackEmbedding
from tagging import catalog, keys, pipeline, tagfiles, writers
from tagging.boundary import OutsideLibrary, inside_library
from teach.models import TaughtTag

log = logging.getLogger(__name__)

#: Examples each side needs at least, and the number from which more help little.
MIN_PER_SIDE = 5
ENOUGH_PER_SIDE = 20
FOLDS = 5
#: Tracks shown as the most and the least confident.
PREVIEW = 10
#: The regularisation of the logistic regression (sklearn's C, on standardised features).
C = 0.5
NAME_LENGTH = 40
#: Rows read from the table at a time.
READ_BATCH = 5000


class TeachError(Exception):
    """The tag cannot be taught or written as asked; the message says why (nothing was written)."""


# --- names and keys ---------------------------------------------------------------------


def head_stem(name: str, backbone: str) -> str:
    """The model file stem of a taught tag (`workout-mtt-musicnn-1`), as zoo heads are named."""
    return f"{name}-{backbone}"


def labels(name: str) -> list[str]:
    """The classes of a taught tag's head, in output order."""
    return [name, f"non_{name}"]


def tag_keys(name: str, backbone: str) -> list[str]:
    """Every key a taught tag writes: each class's score and tier."""
    scores = keys.label_keys(head_stem(name, backbone), labels(name))
    return [*scores, *(keys.tier_key_for(key) for key in scores)]


def score_key(name: str, backbone: str) -> str:
    """The key of the tag's own score (`nom_workout_mtt_musicnn_1__workout`)."""
    return keys.label_keys(head_stem(name, backbone), labels(name))[0]


def check_name(name: str, backbone: str | None = None) -> str:
    """The name, if it can name a new taught tag; else TeachError saying why.

    A name is a key part (lowercase letters, digits, single underscores, starting with
    a letter), no negation (`non_...`), and its keys and its head's file name are
    nobody else's: not another taught tag's, not an installed model's, not a key
    the library's files already hold."""
    name = name.strip()
    if not name:
        raise TeachError("give the tag a name")
    if len(name) > NAME_LENGTH:
        raise TeachError(f"the name is longer than {NAME_LENGTH} characters")
    if keys.slug(name) != name or not name[0].isalpha():
        hint = keys.slug(name)
        raise TeachError(
            f"{name!r} is not a valid field name: use lowercase letters, digits and single "
            "underscores, starting with a letter" + (f" (e.g. {hint!r})" if hint else "")
        )
    if catalog.is_negation(name):
        raise TeachError(f"{name!r} reads as a negation; name what the tag is, not what it is not")
    if TaughtTag.objects.filter(name=name).exists():
        raise TeachError(f"a taught tag {name!r} exists already")
    backbone = backbone or search_backbone()
    stem = head_stem(name, backbone)
    models = catalog.current_catalog()
    stems = {b.stem for b in models.backbones} | {h.stem for h in models.heads}
    stems |= {path.rsplit("/", 1)[-1].rsplit(".", 1)[0] for path, _ in models.skipped}
    if stem in stems:
        raise TeachError(f"{name!r} collides with the installed model {stem}")
    taken = set(
        TagValue.objects.filter(key__in=tag_keys(name, backbone))
        .values_list("key", flat=True)
        .distinct()
    )
    if taken:
        raise TeachError(
            f"{name!r} collides with the key {sorted(taken)[0]} that files already hold"
        )
    return name


# --- the embeddings ------------------------------------------------------------------


def space() -> tuple[str, str]:
    """(backbone, model set) taught in; TeachError when no file is analysed yet."""
    try:
        return similar.space()
    except similar.SonicError as exc:
        raise TeachError(str(exc)) from None


def embeddings(file_ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(file ids, mean embeddings [n, dims] float32) of the current space, for these
    files (all analysed ones by default), in file id order.

    Read with the database cursor, a batch of rows at a time, each row's mean copied
    straight into the matrix (the spread is never read): 200,000 rows are one pass."""
    backbone, model_set = space()
    rows = TrackEmbedding.objects.filter(backbone=backbone, model_set=model_set)
    batches = (
        [rows]
        if file_ids is None
        else [
            rows.filter(file_id__in=file_ids[i : i + READ_BATCH])
            for i in range(0, len(file_ids), READ_BATCH)
        ]
    )
    ids: list[int] = []
    parts: list[np.ndarray] = []
    dims = 0
    for batch in batches:
        sql, params = batch.values_list("file_id", "dims", "vector").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            while chunk := cursor.fetchmany(READ_BATCH):
                dims = dims or int(chunk[0][1])
                part = np.empty((len(chunk), dims), dtype=np.float32)
                kept = 0
                for file_id, size, vector in chunk:
                    if size != dims:
                        continue  # another backbone version; the space check prevents it
                    part[kept] = np.frombuffer(vector, dtype="<f4", count=dims)
                    ids.append(file_id)
                    kept += 1
                parts.append(part[:kept])
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    file_ids_read = np.asarray(ids, dtype=np.int64)
    matrix = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if np.all(file_ids_read[1:] > file_ids_read[:-1]):
        return file_ids_read, matrix  # read in file order already (the usual case)
    order = np.argsort(file_ids_read, kind="stable")
    return file_ids_read[order], matrix[order]


def probabilities(matrix: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    """The taught tag's score of each row: sigmoid(weights . row + bias)."""
    logits = matrix @ np.asarray(weights, dtype=matrix.dtype) + bias  # no copy of the matrix
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))


# --- training -----------------------------------------------------------------------


@dataclass
class Scored:
    file: LibraryFile
    score: float
    positive: bool | None = None  # an example's side


@dataclass
class Preview:
    """What a training gives before anything is written."""

    tag: TaughtTag
    positives: int
    negatives: int
    folds: int
    accuracy: float
    balanced_accuracy: float
    seconds: float
    scored: int  # analysed files of the library
    likely: int  # of those, scored >= 0.5
    advice: list[str] = field(default_factory=list)
    not_analysed: list[LibraryFile] = field(default_factory=list)
    most: list[Scored] = field(default_factory=list)
    least: list[Scored] = field(default_factory=list)
    misjudged: list[Scored] = field(default_factory=list)  # examples CV got wrong


def fit(x: np.ndarray, y: np.ndarray, folds: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(cross-validated probabilities, weights, bias) of the classifier on x, y: the
    probabilities from stratified k-fold CV, the weights from a fit on all of x with
    the standardisation folded in."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model():
        return make_pipeline(
            StandardScaler(),
            LogisticRegression(class_weight="balanced", C=C, max_iter=2000),
        )

    x = np.asarray(x, dtype=np.float64)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    cv_proba = cross_val_predict(model(), x, y, cv=cv, method="predict_proba")[:, 1]
    final = model().fit(x, y)
    scaler, regression = (
        final.named_steps["standardscaler"],
        final.named_steps["logisticregression"],
    )
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    weights = regression.coef_[0] / scale
    bias = float(regression.intercept_[0] - np.sum(regression.coef_[0] * scaler.mean_ / scale))
    return cv_proba, weights, bias


def _advice(positives: int, negatives: int, balanced: float, name: str) -> list[str]:
    advice = []
    more_yes, more_no = ENOUGH_PER_SIDE - positives, ENOUGH_PER_SIDE - negatives
    if more_yes > 0 or more_no > 0:
        wanted = [
            f"{count} more {side}"
            for count, side in ((more_yes, "yes"), (more_no, "no"))
            if count > 0
        ]
        advice.append(
            f"{' and '.join(wanted)} example{'s' if max(more_yes, more_no) > 1 else ''} would "
            f"help: below {ENOUGH_PER_SIDE} a side the accuracy is a rough estimate"
        )
    if balanced < 0.8:
        advice.append(
            f"the examples are hard to tell apart: mark some of the least confident tracks "
            f"below as {name} or not, and check the examples it misjudged"
        )
    return advice


def train(tag: TaughtTag) -> Preview:
    """Learn tag from its analysed examples, keep the classifier on the tag, and
    preview it on the library; nothing is written into any file.

    Raises TeachError: too few examples a side, one side only, examples not analysed."""
    started = time.perf_counter()
    backbone, model_set = space()
    examples = {e.file_id: e for e in tag.examples.select_related("file")}
    if not examples:
        raise TeachError(f"{tag.name} has no examples yet: mark tracks yes and no first")
    ids, x = embeddings(sorted(examples))
    have = set(ids.tolist())
    not_analysed = [e.file for fid, e in examples.items() if fid not in have]
    y = np.array([examples[int(fid)].positive for fid in ids], dtype=bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    gap = (
        f" ({len(not_analysed)} example{'s' if len(not_analysed) != 1 else ''} not analysed "
        "yet and left out: queue them for tagging, or run `manage.py embed`)"
        if not_analysed
        else ""
    )
    if not positives or not negatives:
        side, other = ("yes", "no") if positives else ("no", "yes")
        raise TeachError(
            f"every analysed example is a {side}: mark at least {MIN_PER_SIDE} tracks {other} "
            f"too, so there is something to tell {tag.name} from{gap}"
        )
    if positives < MIN_PER_SIDE or negatives < MIN_PER_SIDE:
        raise TeachError(
            f"too few examples: {positives} yes and {negatives} no are analysed; at least "
            f"{MIN_PER_SIDE} a side are needed ({max(0, MIN_PER_SIDE - positives)} more yes, "
            f"{max(0, MIN_PER_SIDE - negatives)} more no){gap}"
        )
    folds = min(FOLDS, positives, negatives)
    cv_proba, weights, bias = fit(x, y, folds)
    predicted = cv_proba >= 0.5
    accuracy = float(np.mean(predicted == y))
    balanced = float((np.mean(predicted[y]) + np.mean(~predicted[~y])) / 2)

    tag.backbone, tag.model_set = backbone, model_set
    tag.set_coefficients(weights, bias)
    tag.trained_at = timezone.now()
    tag.positives, tag.negatives, tag.cv_folds = positives, negatives, folds
    tag.cv_accuracy, tag.cv_balanced_accuracy = accuracy, balanced
    tag.save()

    all_ids, matrix = embeddings()
    scores = probabilities(matrix, weights, bias)
    others = ~np.isin(all_ids, ids)
    other_ids, other_scores = all_ids[others], scores[others]
    top = np.argsort(-other_scores, kind="stable")[:PREVIEW]
    unsure = np.argsort(np.abs(other_scores - 0.5), kind="stable")[:PREVIEW]
    wrong = [
        i for i in np.argsort(np.abs(cv_proba - y), kind="stable")[::-1] if predicted[i] != y[i]
    ]
    wanted = {int(other_ids[i]) for i in [*top, *unsure]} | {int(ids[i]) for i in wrong}
    files = LibraryFile.objects.in_bulk(list(wanted))
    return Preview(
        tag=tag,
        positives=positives,
        negatives=negatives,
        folds=folds,
        accuracy=accuracy,
        balanced_accuracy=balanced,
        seconds=time.perf_counter() - started,
        scored=len(all_ids),
        likely=int(np.sum(scores >= 0.5)),
        advice=_advice(positives, negatives, balanced, tag.name),
        not_analysed=not_analysed,
        most=[
            Scored(files[fid], float(other_scores[i]))
            for i in top
            if (fid := int(other_ids[i])) in files  # a file removed meanwhile is left out
        ],
        least=[
            Scored(files[fid], float(other_scores[i]))
            for i in unsure
            if (fid := int(other_ids[i])) in files
        ],
        misjudged=[
            Scored(files[fid], float(cv_proba[i]), bool(y[i]))
            for i in wrong[:PREVIEW]
            if (fid := int(ids[i])) in files
        ],
    )


def current_coefficients(tag: TaughtTag) -> tuple[np.ndarray, float]:
    """The tag's classifier, if it was learned in the current space; else TeachError."""
    if not tag.trained:
        raise TeachError(f"{tag.name} is not trained yet: train it and look at the preview first")
    backbone, model_set = space()
    if (tag.backbone, tag.model_set) != (backbone, model_set):
        raise TeachError(
            f"{tag.name} was learned from the embeddings of another model set; train it again"
        )
    return tag.coefficients()


# --- writing into the files -----------------------------------------------------------


def tags_for(
    name: str, backbone: str, score: float, calibration: pipeline.Calibration | None = None
) -> dict[str, list[str]]:
    """The tags a score gives: each class's score and tier, decided as the pipeline
    decides a two-class head's (tagging.pipeline.describe, which decides by
    tagging.pipeline.decide on calibration's bounds: tier_calibration() gives those
    tiers are decided on now, None for the raw scores)."""
    head = catalog.Head(stem=head_stem(name, backbone), labels=labels(name), backbone=backbone)
    described = pipeline.describe(
        [(head, np.array([score, 1.0 - score]))], keys.namespace(), "", calibration
    )
    wanted = set(tag_keys(name, backbone))
    return {key: values for key, values in described.tags.items() if key in wanted}


def owned_keys(**kwargs: object) -> list[str]:
    """The receiver of tagging.signals.retag_keeps: every taught tag's keys (under the
    backbone it was learned from), which a re-tag keeps in the files."""
    owned: list[str] = []
    for name, backbone in TaughtTag.objects.exclude(backbone="").values_list("name", "backbone"):
        owned.extend(tag_keys(name, backbone))
    return owned


@dataclass
class Written:
    written: int = 0  # files whose tags changed (or were already right)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    filled: int = 0  # files whose standard field (GENRE) was filled, when asked


def write_into(
    file_ids: np.ndarray,
    tags_of: Callable[[int], dict[str, list[str]]],
    own_keys: list[str],
    progress: Callable[[int, int], None] | None = None,
    fill_of: Callable[[int], dict[str, list[str]]] | None = None,
) -> Written:
    """Write into each file (file_ids[i]) the tags `tags_of(i)`, replacing own_keys and
    keeping every other tag, then refresh its library rows. With fill_of, the
    standard fields `fill_of(i)` ({"genre": [...]}) are set in the files that have
    none (tagging.writers.write_tags' fill: a value the file holds is never
    overwritten). A file that cannot be written is reported and left as it was; the
    others go on."""
    namespace = keys.namespace()
    result = Written()
    index_of = {int(file_id): i for i, file_id in enumerate(file_ids.tolist())}
    files = LibraryFile.objects.filter(pk__in=list(index_of)).order_by("pk")
    total = len(index_of)
    for done, file in enumerate(files.iterator(chunk_size=1000), start=1):
        try:
            path = inside_library(file.path)
            current = tagfiles.read_tags(path, namespace)
            merged = {k: v for k, v in current.items() if k not in own_keys}
            merged.update(tags_of(index_of[file.pk]))
            fill = fill_of(index_of[file.pk]) if fill_of else None
            writers.write_tags(path, merged, namespace, None, fill=fill)
            row = refresh_file(path)
            result.written += 1
            if fill and row is not None and _filled(file, row, fill):
                result.filled += 1
        except (OutsideLibrary, OSError, writers.TagWriteError) as exc:
            result.failed.append((file.path, str(exc)))
            log.warning("cannot write into %s: %s", file.path, exc)
        if progress:
            progress(done, total)
    return result


def _filled(before: LibraryFile, after: LibraryFile, fill: dict[str, list[str]]) -> bool:
    """Whether a write filled a field: the row had none and now holds what was asked
    (the library's column of the field, its values joined as the library joins them)."""
    return any(
        not getattr(before, name, "") and getattr(after, name, None) == "; ".join(values)
        for name, values in fill.items()
    )


def apply(tag: TaughtTag, progress: Callable[[int, int], None] | None = None) -> Written:
    """Write the tag's scores and tiers into every analysed file, no model run; the
    tiers decided as every key's now (raw or calibrated scores)."""
    weights, bias = current_coefficients(tag)
    ids, matrix = embeddings()
    scores = probabilities(matrix, weights, bias)
    calibration = pipeline.tier_calibration()
    result = write_into(
        ids,
        lambda i: tags_for(tag.name, tag.backbone, float(scores[i]), calibration),
        tag_keys(tag.name, tag.backbone),
        progress,
    )
    tag.applied_at, tag.applied_files = timezone.now(), result.written
    tag.save(update_fields=["applied_at", "applied_files"])
    return result
