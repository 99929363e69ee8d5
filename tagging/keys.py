"""Nomarr's tag keys: how each is spelled, what it holds, and how to read one back.

Every key Nomarr owns starts with the namespace (NOMARR_NAMESPACE, `nom`) and `_`:

* `nom_<model>__<label>`: the label's score in [0, 1]
  (`nom_mood_happy_msd_musicnn_1__happy`);
* `nom_<model>__<label>__tier`: a two-class head's tier for the label (`TIERS`);
* `nom_mood_<set>`: the mood words of one mood set (`MOOD_SETS`), one value each;
* `nom_version`: the fingerprint of the model set that wrote the tags;
* `nom_<field>_suggested`: a value suggested for a standard field the file lacks
  (`nom_genre_suggested`, from a tag taught on the library's own genres).

The pipeline writes a file's keys afresh on each (re-)tag; the keys it does not
produce but another part of Nomarr wrote (a suggestion, a taught tag's keys) are
kept (`is_kept_on_retag`).

`<model>` and `<label>` are slugs: lowercase letters and digits joined by single
underscores, so `__` never occurs inside one and the first `__` of a key always ends
the model. A score or tier key therefore always holds `__` and the other two never do,
so no key can be read two ways. This module is pure: the namespace comes from
settings in `namespace()` alone, every builder takes `namespace=` to name another,
and every app asks it rather than spelling a key itself.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Literal, NamedTuple

from django.conf import settings

# The original Nomarr's tier cascade on p (the label's score) and q (its opposite):
# (tier, minimum p, minimum p/q, minimum p-q), strongest first.
TIER_CASCADE: tuple[tuple[str, float, float, float], ...] = (
    ("high", 0.80, 1.20, 0.15),
    ("medium", 0.75, 1.10, 0.08),
    ("low", 0.60, 1.02, 0.03),
)
#: Every tier a two-class label can get, strongest first: "none" passes no rung.
TIERS: tuple[str, ...] = (*(name for name, *_ in TIER_CASCADE), "none")
#: Each mood set and the tiers whose words it holds, strictest first.
MOOD_SETS: Mapping[str, tuple[str, ...]] = {
    "strict": ("high",),
    "regular": ("high", "medium"),
    "loose": ("high", "medium", "low"),
}
#: Words that cannot both describe one track: when both make a set, both leave it.
CONTRADICTIONS: tuple[tuple[str, str], ...] = (
    ("happy", "sad"),
    ("aggressive", "relaxed"),
    ("acoustic", "electronic"),
)

SEPARATOR = "__"
TIER_SUFFIX = SEPARATOR + "tier"
MOOD_SET_PREFIX = "mood_"
VERSION = "version"
SUGGESTED_SUFFIX = "_suggested"
_SLUG = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")

KeyKind = Literal["score", "tier", "mood_set", "version", "suggestion"]


class ParsedKey(NamedTuple):
    """What a key names. model and label are the key's slugs (the sidecar's spelling
    cannot be recovered from them); a mood set's name is its label, with no model;
    the version key has neither."""

    model: str
    label: str
    kind: KeyKind


def namespace() -> str:
    """This installation's namespace (NOMARR_NAMESPACE): the one place keys read settings."""
    return str(settings.NOMARR_NAMESPACE).lower()


_configured = namespace  # the builders' `namespace` argument hides the function


def prefix(namespace: str | None = None) -> str:
    """`nom_`: what every key of the namespace (default: this installation's) starts with.

    Raises:
        ValueError: the namespace is empty (its prefix would match every `_` key).
    """
    name = _configured() if namespace is None else namespace.lower()
    if not name.strip():
        raise ValueError("the tag namespace must not be empty")
    return f"{name}_"


def slug(text: str) -> str:
    """A lowercase key part: letters, digits and single underscores."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def score_key(model: str, label: str, namespace: str | None = None) -> str:
    """`nom_<model>__<label>`: the key of a label's score (model: the head's file stem).

    Raises:
        ValueError: model or label has no letter or digit to name it by.
    """
    model_part, label_part = slug(model), slug(label)
    if not model_part or not label_part:
        raise ValueError(f"no key can name label {label!r} of model {model!r}")
    return f"{prefix(namespace)}{model_part}{SEPARATOR}{label_part}"


def label_keys(model: str, labels: Sequence[str], namespace: str | None = None) -> list[str]:
    """The score keys of one head's labels, in output order, all distinct.

    A label with nothing to slug is named by its output index; two labels of one head
    that slug alike get their output index appended to the second.
    """
    keys: list[str] = []
    for index, label in enumerate(labels):
        key = score_key(model, label if slug(label) else str(index), namespace)
        keys.append(f"{key}_{index}" if key in keys else key)
    return keys


def tier_key(model: str, label: str, namespace: str | None = None) -> str:
    """`nom_<model>__<label>__tier`: the key of a two-class head's tier for label."""
    return tier_key_for(score_key(model, label, namespace))


def tier_key_for(score: str) -> str:
    """The tier key that goes with a score key (as `label_keys` gives them)."""
    return score + TIER_SUFFIX


def tier_suffix(label: str) -> str:
    """`__<label>__tier`: how every model's tier key for label ends (to find the tiers
    of a label whose models are no longer installed)."""
    return f"{SEPARATOR}{slug(label)}{TIER_SUFFIX}"


def mood_set_key(set_name: str, namespace: str | None = None) -> str:
    """`nom_mood_<set>`: the key holding one mood set's words.

    Raises:
        ValueError: set_name is not one of MOOD_SETS.
    """
    if set_name not in MOOD_SETS:
        raise ValueError(f"no mood set {set_name!r}; there are: {', '.join(MOOD_SETS)}")
    return f"{prefix(namespace)}{MOOD_SET_PREFIX}{set_name}"


def version_key(namespace: str | None = None) -> str:
    """`nom_version`: the key holding the fingerprint of the model set that wrote the tags."""
    return prefix(namespace) + VERSION


def suggestion_key(field: str, namespace: str | None = None) -> str:
    """`nom_<field>_suggested`: the key of a value suggested for a standard field.

    Raises:
        ValueError: field has no letter or digit to name it by.
    """
    part = slug(field)
    if not part:
        raise ValueError(f"no key can name the field {field!r}")
    return f"{prefix(namespace)}{part}{SUGGESTED_SUFFIX}"


#: The kinds of key the pipeline never produces, which a re-tag therefore keeps: their
#: values come from elsewhere (a suggestion, from teaching on the library's genres).
KEPT_ON_RETAG: frozenset[KeyKind] = frozenset({"suggestion"})


def is_kept_on_retag(key: str, owned: Collection[str] = (), namespace: str | None = None) -> bool:
    """Whether a re-tag (the pipeline writing a file's keys afresh) keeps this key of
    the file when it does not produce it itself: a key of a kind in KEPT_ON_RETAG, or
    one of `owned`, the keys other owners answer for (a taught tag's, not saved as a
    head: tagging.signals.retag_keeps). A key the pipeline produces is replaced by
    its new value whatever this says; any other key of the namespace (an old model's)
    is dropped."""
    if key in owned:
        return True
    parsed = parse(key, namespace)
    return parsed is not None and parsed.kind in KEPT_ON_RETAG


def parse(key: str, namespace: str | None = None) -> ParsedKey | None:
    """What a key names, or None for a key Nomarr does not write (`nomad_rating`,
    another namespace's, a malformed one)."""
    start = prefix(namespace)
    if not key.startswith(start):
        return None
    rest = key[len(start) :]
    model, separator, label = rest.partition(SEPARATOR)
    if separator:
        kind: KeyKind = "score"
        if label.endswith(TIER_SUFFIX):
            label, kind = label.removesuffix(TIER_SUFFIX), "tier"
        if not _SLUG.fullmatch(model) or not _SLUG.fullmatch(label):
            return None
        return ParsedKey(model, label, kind)
    if rest == VERSION:
        return ParsedKey("", "", "version")
    set_name = rest.removeprefix(MOOD_SET_PREFIX)
    if rest.startswith(MOOD_SET_PREFIX) and set_name in MOOD_SETS:
        return ParsedKey("", set_name, "mood_set")
    field = rest.removesuffix(SUGGESTED_SUFFIX)
    if rest.endswith(SUGGESTED_SUFFIX) and _SLUG.fullmatch(field):
        return ParsedKey("", field, "suggestion")
    return None


def tier(p: float, q: float) -> str:
    """high, medium, low or none for a two-class score p against its opposite q."""
    for name, min_p, min_ratio, min_margin in TIER_CASCADE:
        ratio = p / q if q > 0 else float("inf")
        if p >= min_p and ratio >= min_ratio and p - q >= min_margin:
            return name
    return "none"


#: What tiers and mood sets are decided on (NOMARR_TIER_SCORES): the scores as the
#: models give them, or calibrated on the library (`calibrate`).
TIER_SCORE_MODES: tuple[str, ...] = ("raw", "calibrated")


def calibrate(p: float, bounds: tuple[float, float] | None) -> float:
    """The original Nomarr's calibration of a score: min-max between the library's 5th
    and 95th percentile of the label (bounds = (p5, p95)), clipped to [0, 1].

    Without bounds, or bounds that span nothing (p95 <= p5), p is left as it is."""
    if bounds is None:
        return p
    low, high = bounds
    if not high > low:
        return p
    return min(1.0, max(0.0, (p - low) / (high - low)))


def mood_word(label: str) -> str:
    """The mood word a mood head's label gives (`hip_hop` -> `hip hop`)."""
    return label.lower().replace("_", " ").strip()


def mood_sets(word_tiers: Mapping[str, str]) -> dict[str, list[str]]:
    """Each mood set's words, sorted, from mood words and their tiers.

    A word is in every set that allows its tier; two contradicting words that meet in
    one set both leave it.
    """
    sets: dict[str, list[str]] = {}
    for name, allowed in MOOD_SETS.items():
        words = {word for word, word_tier in word_tiers.items() if word_tier in allowed}
        for a, b in CONTRADICTIONS:
            if a in words and b in words:
                words -= {a, b}
        sets[name] = sorted(words)
    return sets
