"""What the library's Nomarr tags say, for the library and analytics pages.

Nomarr's keys (scores, tiers, mood sets; tagging.keys builds and parses them) come
from the model catalog (the heads and their labels), so every query here names its
keys and uses the TagValue (key, value) and (key, number) indexes.
Counting happens in the database; only the correlation needs the scores themselves,
and it reads a capped sample.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.db.models import Avg, Count

from library.models import LibraryFile, TagValue
from tagging import keys
from tagging.catalog import get_catalog, is_negation

#: Files read for the correlation matrix (the most recently added tagged files).
CORRELATION_SAMPLE = 5000
#: Backbone labels shown beside the two-class heads in the correlation matrix.
SELECTED_LABELS = ("rock", "pop", "electronic", "jazz", "hip_hop", "classical")
#: Genres shown in "scores by genre" (the most common ones).
TOP_GENRES = 12


@dataclass(frozen=True)
class Label:
    """One label of one head, with the keys its score and tier are written under."""

    model: str  # the head's stem: mood_happy-msd-musicnn-1
    label: str  # as the sidecar says: happy
    key: str  # nom_mood_happy_msd_musicnn_1__happy
    two_class: bool
    mood: bool  # a mood word (mood head, not a negation)

    @property
    def tier_key(self) -> str:
        return keys.tier_key_for(self.key)

    @property
    def word(self) -> str:
        return keys.mood_word(self.label)


def catalog_labels() -> list[Label]:
    """Every label of every loaded head, in catalog order."""
    labels = []
    for head in get_catalog().heads:
        head_keys = keys.label_keys(head.stem, head.labels)
        for label, key in zip(head.labels, head_keys, strict=True):
            mood = head.is_mood and head.is_two_class and not is_negation(label)
            labels.append(Label(head.stem, label, key, head.is_two_class, mood))
    return labels


def mood_labels() -> list[Label]:
    """The labels that give mood words (happy, party, danceable, ...)."""
    return [label for label in catalog_labels() if label.mood]


def mood_words() -> dict[str, list[Label]]:
    """Mood word -> its labels (several models may score one word), sorted by word.

    Words found in the library's mood sets but not in the loaded models (an older
    model set) are included with no labels."""
    words: dict[str, list[Label]] = defaultdict(list)
    for label in mood_labels():
        words[label.word].append(label)
    stored = TagValue.objects.filter(key=keys.mood_set_key("loose")).values_list("value", flat=True)
    for word in stored.distinct():
        words.setdefault(word, [])
    return dict(sorted(words.items()))


def correlation_labels() -> list[Label]:
    """The first non-negation label of each two-class head, and a few backbone labels."""
    chosen, heads, picked = [], set(), set()
    for label in catalog_labels():
        if label.two_class:
            if label.model not in heads and not is_negation(label.label):
                heads.add(label.model)
                chosen.append(label)
        elif keys.slug(label.label) in SELECTED_LABELS and keys.slug(label.label) not in picked:
            picked.add(keys.slug(label.label))
            chosen.append(label)
    return chosen


# --- one file --------------------------------------------------------------------


def score_groups(file: LibraryFile) -> dict[str, list[dict]]:
    """The file's scores grouped by model, highest first, with tiers where it has them.

    Models and labels are named as the catalog names them when it knows the key (the
    stored keys are slugs); keys of other model sets keep their slugs."""
    names = {label.key: (label.model, label.label) for label in catalog_labels()}
    scores: dict[tuple[str, str], dict] = {}
    tiers: dict[tuple[str, str], str] = {}
    for key, value, number in file.tags.values_list("key", "value", "number"):
        parsed = keys.parse(key)
        if parsed is None or parsed.kind not in ("score", "tier"):
            continue
        model, label, kind = parsed
        if kind == "tier":
            tiers[(model, label)] = value
        elif number is not None:
            shown_model, shown_label = names.get(key, (model, label))
            scores[(model, label)] = {
                "model": shown_model,
                "label": shown_label,
                "score": number,
                "percent": round(max(0.0, min(number, 1.0)) * 100, 1),
                "key": key,
            }
    groups: dict[str, list[dict]] = {}
    for ident, score in scores.items():
        score["tier"] = tiers.get(ident, "")
        groups.setdefault(score["model"], []).append(score)
    return {
        model: sorted(rows, key=lambda s: -s["score"]) for model, rows in sorted(groups.items())
    }


def mood_sets(file: LibraryFile) -> dict[str, list[str]]:
    names = {keys.mood_set_key(name): name for name in keys.MOOD_SETS}
    result: dict[str, list[str]] = {name: [] for name in keys.MOOD_SETS}
    for key, value in file.tags.filter(key__in=names).values_list("key", "value"):
        result[names[key]].append(value)
    return result


def moods_by_file(file_ids: list[int], set_name: str = "regular") -> dict[int, list[str]]:
    """The mood words of each of these files (one query, for a page of files)."""
    result: dict[int, list[str]] = defaultdict(list)
    rows = TagValue.objects.filter(file_id__in=file_ids, key=keys.mood_set_key(set_name))
    for file_id, value in rows.order_by("value").values_list("file_id", "value"):
        result[file_id].append(value)
    return result


# --- the whole library -----------------------------------------------------------


def summary() -> dict[str, int]:
    files = LibraryFile.objects.count()
    tagged = LibraryFile.objects.exclude(nom_version="").count()
    return {"files": files, "tagged": tagged, "untagged": files - tagged}


def mood_frequencies() -> dict:
    """Files per mood word in each mood set: {"words": [...], "sets": {set: [n, ...]}}."""
    names = {keys.mood_set_key(name): name for name in keys.MOOD_SETS}
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (
        TagValue.objects.filter(key__in=names)
        .values("key", "value")
        .annotate(n=Count("file_id", distinct=True))
    )
    for row in rows:
        counts[row["value"]][names[row["key"]]] = row["n"]
    words = sorted(counts, key=lambda w: (-counts[w].get("loose", 0), w))
    return {
        "words": words,
        "sets": {name: [counts[w].get(name, 0) for w in words] for name in keys.MOOD_SETS},
    }


def tier_distribution() -> dict:
    """Per mood label, how many files have each tier: {"labels": [...], "tiers": {tier: [...]}}."""
    labels = mood_labels()
    by_key = {label.tier_key: index for index, label in enumerate(labels)}
    counts = {tier: [0] * len(labels) for tier in keys.TIERS}
    rows = TagValue.objects.filter(key__in=by_key).values("key", "value").annotate(n=Count("id"))
    for row in rows:
        if row["value"] in counts:
            counts[row["value"]][by_key[row["key"]]] += row["n"]
    words = [label.word for label in labels]
    titles = [
        label.word if words.count(label.word) == 1 else f"{label.word} ({label.model})"
        for label in labels
    ]
    return {"labels": titles, "tiers": counts}


def co_occurrence(set_name: str = "regular") -> dict:
    """How many files carry each pair of mood words in one mood set (the diagonal: each
    word alone): {"words": [...], "matrix": [[n, ...], ...], "max": n}."""
    table = connection.ops.quote_name(TagValue._meta.db_table)
    column = {
        name: connection.ops.quote_name(TagValue._meta.get_field(name).column)
        for name in ("file", "key", "value")
    }
    # Only our own quoted table and column names go into the text; values are params.
    sql = (
        f"SELECT a.{column['value']}, b.{column['value']}, COUNT(*) "  # noqa: S608
        f"FROM {table} a JOIN {table} b ON b.{column['file']} = a.{column['file']} "
        f"WHERE a.{column['key']} = %s AND b.{column['key']} = %s "
        f"GROUP BY a.{column['value']}, b.{column['value']}"
    )
    key = keys.mood_set_key(set_name)
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, key])
        pairs = cursor.fetchall()
    alone = {a: n for a, b, n in pairs if a == b}
    words = sorted(alone, key=lambda w: (-alone[w], w))
    index = {word: i for i, word in enumerate(words)}
    matrix = [[0] * len(words) for _ in words]
    for a, b, n in pairs:
        if a in index and b in index:
            matrix[index[a]][index[b]] = n
    return {"words": words, "matrix": matrix, "max": max(alone.values(), default=0)}


def correlation(sample: int = CORRELATION_SAMPLE) -> dict:
    """Pearson correlation of label scores across files (pairwise complete, at most
    `sample` files): {"labels": [...], "matrix": [[r or None, ...]], "files": n}.
    Labels whose score does not vary over the sample are left out."""
    labels = correlation_labels()
    column = {label.key: i for i, label in enumerate(labels)}
    files = LibraryFile.objects.exclude(nom_version="").order_by("-pk").values("pk")[:sample]
    rows = TagValue.objects.filter(
        file_id__in=files, key__in=column, number__isnull=False
    ).values_list("file_id", "key", "number")
    row_of: dict[int, int] = {}
    values: list[list[float]] = []
    for file_id, key, number in rows:
        if file_id not in row_of:
            row_of[file_id] = len(values)
            values.append([np.nan] * len(labels))
        values[row_of[file_id]][column[key]] = number
    data = np.array(values, dtype=float).reshape(len(values), len(labels))
    matrix: list[list[float | None]] = [[None] * len(labels) for _ in labels]
    for i in range(len(labels)):
        for j in range(i, len(labels)):
            r = _pearson(data[:, i], data[:, j])
            matrix[i][j] = matrix[j][i] = r
    # A label that scored the same everywhere correlates with nothing: left out.
    keep = [i for i in range(len(labels)) if matrix[i][i] is not None]
    titles = [
        labels[i].label if labels[i].two_class else f"{labels[i].label} ({labels[i].model})"
        for i in keep
    ]
    return {
        "labels": titles,
        "matrix": [[matrix[i][j] for j in keep] for i in keep],
        "files": len(values),
    }


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < 3:
        return None
    a, b = a[both], b[both]
    if a.std() == 0 or b.std() == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 3)


def scores_by(field: str) -> dict:
    """Mean mood score per genre (the most common genres) or per year:
    {"groups": [...], "labels": [...], "means": {label: [mean or None, ...]}, "files": [...]}."""
    labels = _first_label_per_word()
    word_of = {label.key: label.word for label in labels}
    files = LibraryFile.objects.exclude(nom_version="")
    if field == "genre":
        top = (
            files.exclude(genre="")
            .values("genre")
            .annotate(n=Count("id"))
            .order_by("-n", "genre")[:TOP_GENRES]
        )
        groups = [row["genre"] for row in top]
        counts = [row["n"] for row in top]
        extra = {"file__genre__in": groups}
    elif field == "year":
        years = files.exclude(year=None).values("year").annotate(n=Count("id")).order_by("year")
        groups = [row["year"] for row in years]
        counts = [row["n"] for row in years]
        extra = {"file__year__isnull": False}
    else:
        raise ValueError(field)
    position = {group: i for i, group in enumerate(groups)}
    means: dict[str, list[float | None]] = {word: [None] * len(groups) for word in word_of.values()}
    rows = (
        TagValue.objects.filter(key__in=word_of, number__isnull=False, **extra)
        .exclude(file__nom_version="")
        .values(f"file__{field}", "key")
        .annotate(mean=Avg("number"))
    )
    for row in rows:
        group = row[f"file__{field}"]
        if group in position:
            means[word_of[row["key"]]][position[group]] = round(row["mean"], 3)
    return {"groups": groups, "files": counts, "labels": list(means), "means": means}


def _first_label_per_word() -> list[Label]:
    seen, labels = set(), []
    for label in mood_labels():
        if label.word not in seen:
            seen.add(label.word)
            labels.append(label)
    return labels


def report() -> dict:
    """Everything the analytics page shows."""
    return {
        "summary": summary(),
        "frequencies": mood_frequencies(),
        "tiers": tier_distribution(),
        "co_occurrence": co_occurrence(),
        "correlation": correlation(),
        "by_genre": scores_by("genre"),
        "by_year": scores_by("year"),
    }
