"""The library's score distribution per label, and the calibration tiers may be decided on.

For every label of the loaded models, the scores the library stores (TagValue rows
with a number, under the label's score key) are counted in the database, one row per
distinct value (scores are written with three decimals, so at most 1,001 per label):
`GROUP BY key, number` on the (key, number) index. From those counts come the exact
percentiles (p5 ... p95, numpy's linear interpolation) and a histogram.

* `latest_measure()` is the library as it is: measured again (a `measured`
  ScoreDistribution row) when the library changed since (files tagged, scans) and the
  last measure is older than MEASURE_EVERY, or on demand (`measure()`).
* `calibrate()` saves a measure as a `calibration`: the latest is the calibration in
  use when NOMARR_TIER_SCORES=calibrated. Each label's score is then min-max scaled
  between its p5 and p95 (tagging.keys.calibrate, the original Nomarr's rule) before
  its tier is decided. The pipeline asks for it through
  tagging.signals.calibration_wanted (`bounds_for_tiers`, connected in apps.py), so
  new files and `manage.py retier` (library/retier.py) decide by the same bounds.
* `drift()` is how far the latest measure moved from the calibration in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db.models import Count, Max
from django.utils import timezone

from library.analytics import Label, catalog_labels
from library.models import LibraryFile, ScoreDistribution, TagValue

PERCENTILES = (5, 25, 50, 75, 95)
HISTOGRAM_BINS = 20
#: Seconds a measure stays good while the library changes (tagging, scans) under it.
MEASURE_EVERY = 300
#: A change of a percentile shown as notable: time to calibrate again.
DRIFT_NOTABLE = 0.05
#: Measured rows kept (calibrations are all kept).
MEASURES_KEPT = 20


class CalibrationError(Exception):
    """Nothing to calibrate on (no file has scores yet)."""


def library_state() -> str:
    """What the library is now, cheaply: its tagged files and when a file was last read."""
    found = LibraryFile.objects.exclude(nom_version="").aggregate(n=Count("id"), at=Max("read_at"))
    at = found["at"].isoformat() if found["at"] else ""
    return f"{found['n']}:{at}"


def stats_from_counts(values: np.ndarray, counts: np.ndarray) -> dict:
    """n, min, max, the PERCENTILES (numpy's default linear interpolation, exactly as
    np.percentile on the expanded values) and a histogram over [0, 1] of one label's
    scores, given each distinct value (sorted) and how many files have it."""
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])

    def at(rank: np.ndarray) -> np.ndarray:
        return values[np.searchsorted(cumulative, rank, side="right")]

    stats: dict = {"n": n, "min": float(values[0]), "max": float(values[-1])}
    for pct in PERCENTILES:
        h = (n - 1) * pct / 100
        low, high = np.floor(h), np.ceil(h)
        lo_value, hi_value = at(np.array([low, high]))
        stats[f"p{pct}"] = round(float(lo_value + (h - low) * (hi_value - lo_value)), 4)
    histogram, _ = np.histogram(
        np.clip(values, 0.0, 1.0), bins=HISTOGRAM_BINS, range=(0.0, 1.0), weights=counts
    )
    stats["histogram"] = [int(count) for count in histogram]
    return stats


def distributions(labels: list[Label] | None = None) -> dict[str, dict]:
    """{score key: stats_from_counts(...)} for each label (default: every label of the
    loaded models) that any file has a score for, counted in the database."""
    wanted = [label.key for label in (catalog_labels() if labels is None else labels)]
    if not wanted:
        return {}
    rows = (
        TagValue.objects.filter(key__in=wanted, number__isnull=False)
        .values_list("key", "number")
        .annotate(n=Count("id"))
        .order_by("key", "number")
    )
    by_key: dict[str, tuple[list[float], list[int]]] = {}
    for key, number, n in rows.iterator(chunk_size=5000):
        values, counts = by_key.setdefault(key, ([], []))
        values.append(number)
        counts.append(n)
    return {
        key: stats_from_counts(np.array(values), np.array(counts))
        for key, (values, counts) in by_key.items()
    }


def measure(kind: str = ScoreDistribution.Kind.MEASURED) -> ScoreDistribution:
    """Measure the library now and keep it (as a `measured` row, or a `calibration`)."""
    state = library_state()
    labels = distributions()
    files = int(state.split(":", 1)[0])
    row = ScoreDistribution.objects.create(
        kind=kind, files=files, library_state=state, labels=labels
    )
    old = ScoreDistribution.objects.filter(kind=ScoreDistribution.Kind.MEASURED).values_list(
        "pk", flat=True
    )[MEASURES_KEPT:]
    ScoreDistribution.objects.filter(pk__in=list(old)).delete()
    return row


def latest_measure(max_age: float = MEASURE_EVERY) -> ScoreDistribution | None:
    """The latest measure (a calibration is one too), measured again first when the
    library changed since and it is older than max_age seconds; None for a library
    with no scores at all."""
    latest = ScoreDistribution.objects.first()
    if latest is None or (
        latest.library_state != library_state()
        and latest.created_at < timezone.now() - timedelta(seconds=max_age)
    ):
        if not distributions_possible():
            return latest
        latest = measure()
    return latest


def current() -> ScoreDistribution | None:
    """The calibration in use (the latest one saved), or None before the first."""
    return ScoreDistribution.objects.filter(kind=ScoreDistribution.Kind.CALIBRATION).first()


def calibrate() -> ScoreDistribution:
    """Measure the library and make that the calibration in use.

    Raises:
        CalibrationError: no file has scores of the loaded models yet.
    """
    if not distributions_possible():
        raise CalibrationError(
            "no file of the library has scores of the loaded models yet: tag some first"
        )
    return measure(ScoreDistribution.Kind.CALIBRATION)


def distributions_possible() -> bool:
    wanted = [label.key for label in catalog_labels()]
    return bool(wanted) and TagValue.objects.filter(key__in=wanted, number__isnull=False).exists()


def bounds_for_tiers(**kwargs) -> dict[str, tuple[float, float]]:
    """The receiver of tagging.signals.calibration_wanted: the calibration in use, as
    {score key: (p5, p95)} ({} before the first calibration: raw scores then)."""
    calibration = current()
    return calibration.bounds() if calibration else {}


@dataclass
class LabelRow:
    """One label on the calibration page: its distribution now and its drift."""

    label: Label
    stats: dict
    calibrated: dict | None  # the label's stats in the calibration in use

    @property
    def bars(self) -> list[int]:
        """The histogram as heights in percent of its highest bin."""
        top = max(self.stats["histogram"]) or 1
        return [round(100 * count / top) for count in self.stats["histogram"]]

    def drift(self, pct: int) -> float | None:
        if self.calibrated is None:
            return None
        return round(self.stats[f"p{pct}"] - self.calibrated[f"p{pct}"], 4)

    @property
    def drifts(self) -> list[dict]:
        """Δp5, Δp50, Δp95, each with whether it moved more than DRIFT_NOTABLE."""
        changes = (self.drift_p5, self.drift_p50, self.drift_p95)
        return [{"value": d, "big": d is not None and abs(d) > DRIFT_NOTABLE} for d in changes]

    @property
    def drift_p5(self) -> float | None:
        return self.drift(5)

    @property
    def drift_p50(self) -> float | None:
        return self.drift(50)

    @property
    def drift_p95(self) -> float | None:
        return self.drift(95)


def drift(measured: ScoreDistribution | None, calibration: ScoreDistribution | None) -> dict:
    """The page's view: each label's distribution now with its change since the
    calibration in use; the two-class heads' labels (what tiers are decided on) apart
    from the backbones' tags, and the largest change of p5/p50/p95."""
    heads: list[LabelRow] = []
    tags: list[LabelRow] = []
    largest = 0.0
    if measured is not None:
        before = calibration.labels if calibration else {}
        for label in catalog_labels():
            stats = measured.labels.get(label.key)
            if stats is None:
                continue
            row = LabelRow(label, stats, before.get(label.key))
            for change in (row.drift_p5, row.drift_p50, row.drift_p95):
                largest = max(largest, abs(change or 0.0))
            (heads if label.two_class else tags).append(row)
    return {"heads": heads, "tags": tags, "largest_drift": round(largest, 4)}
