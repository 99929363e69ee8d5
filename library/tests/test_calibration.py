"""The library's score distribution per label, the calibration and its drift.

The library is real clips (conftest `make_audio`) carrying the tags the pipeline writes
for chosen scores (tagging.pipeline.describe on the installed catalog, as the playlist
tests do, no model run), read in by a real scan. The percentiles are checked against
numpy's over the same scores.
"""

from __future__ import annotations

import shutil
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse

from library import calibration
from library.models import ScoreDistribution
from library.rows import refresh_file
from tagging import keys, pipeline
from tagging.catalog import get_catalog
from tagging.writers import write_tags

pytestmark = pytest.mark.django_db

HAPPY = "mood_happy-msd-musicnn-1"


@pytest.fixture
def catalog():
    found = get_catalog()
    if HAPPY not in {head.stem for head in found.heads}:
        pytest.skip("the Essentia fixture heads are needed")
    return found


def happy_key() -> str:
    return keys.score_key(HAPPY, "happy")


@pytest.fixture
def add_file(catalog, make_audio, library, root_row):
    """add_file(name, happy) -> a real clip in the library tagged as if the models heard
    `happy` (the other labels at 0.5, the backbones' tags at 0.02)."""

    def add(name: str, happy: float):
        head_scores = []
        for head in catalog.heads:
            mean = np.full(len(head.labels), 0.5 if head.is_two_class else 0.02)
            if head.stem == HAPPY:
                index = head.labels.index("happy")
                mean[index], mean[1 - index] = happy, 1 - happy
            head_scores.append((head, mean))
        analysis = pipeline.describe(head_scores, keys.namespace(), catalog.fingerprint)
        path = library / f"{name}.flac"
        shutil.move(make_audio("flac", name), path)
        write_tags(path, analysis.tags, keys.namespace(), analysis.moods)
        return refresh_file(path)

    return add


def test_percentiles_are_numpys_over_the_stored_scores():
    rng = np.random.default_rng(7)
    scores = np.round(rng.beta(2, 5, size=997), 3)
    values, counts = np.unique(scores, return_counts=True)
    stats = calibration.stats_from_counts(values, counts)
    for pct in calibration.PERCENTILES:
        assert stats[f"p{pct}"] == pytest.approx(np.percentile(scores, pct), abs=1e-4)
    assert stats["n"] == 997 and sum(stats["histogram"]) == 997
    assert stats["histogram"] == np.histogram(scores, bins=20, range=(0, 1))[0].tolist()


def test_the_library_distribution_per_label_comes_from_its_files(add_file):
    chosen = [0.12, 0.35, 0.41, 0.58, 0.77, 0.93]
    for n, happy in enumerate(chosen):
        add_file(f"song{n}", happy)
    measured = calibration.measure()
    stats = measured.labels[happy_key()]
    assert measured.files == len(chosen) and stats["n"] == len(chosen)
    for pct in (5, 50, 95):
        assert stats[f"p{pct}"] == pytest.approx(np.percentile(chosen, pct), abs=1e-4)
    # The opposite label mirrors it; a label no file has is absent.
    assert measured.labels[keys.score_key(HAPPY, "non_happy")]["p95"] == pytest.approx(
        1 - stats["p5"], abs=1e-3
    )


def test_calibrating_with_no_tagged_file_says_so_and_saves_nothing(catalog, admin_client):
    with pytest.raises(calibration.CalibrationError, match="tag some first"):
        calibration.calibrate()
    response = admin_client.post(reverse("library:calibration-action"), {"action": "calibrate"})
    assert response.status_code == 302
    page = admin_client.get(reverse("library:calibration")).content.decode()
    assert "tag some first" in page and "No file has scores" in page
    assert not ScoreDistribution.objects.exists()


def test_the_page_shows_the_distribution_and_its_drift_since_the_calibration(
    add_file, admin_client, client, django_user_model
):
    for n, happy in enumerate([0.2, 0.3, 0.4]):
        add_file(f"song{n}", happy)
    response = admin_client.post(reverse("library:calibration-action"), {"action": "calibrate"})
    assert response.status_code == 302
    in_use = calibration.current()
    assert in_use.kind == "calibration" and in_use.bounds()[happy_key()] == pytest.approx(
        (np.percentile([0.2, 0.3, 0.4], 5), np.percentile([0.2, 0.3, 0.4], 95)), abs=1e-4
    )
    # The library grows: the page measures it again and shows how far it moved.
    add_file("late", 0.9)
    ScoreDistribution.objects.update(created_at=in_use.created_at.replace(year=2000))
    person = django_user_model.objects.create_user("plain", password="x" * 20)
    client.force_login(person)
    page = client.get(reverse("library:calibration"))
    assert page.status_code == 200
    text = page.content.decode()
    now = [0.2, 0.3, 0.4, 0.9]
    drift = np.percentile(now, 95) - np.percentile([0.2, 0.3, 0.4], 95)
    assert f"{drift:.3f}" in text and "4 files" in text
    assert calibration.latest_measure().files == 4
    view = calibration.drift(calibration.latest_measure(), in_use)
    happy = next(row for row in view["heads"] if row.label.key == happy_key())
    assert happy.drift_p95 == pytest.approx(drift, abs=1e-4)
    assert view["largest_drift"] >= abs(drift) - 1e-4
    assert 'value="calibrate"' not in text  # staff only
    assert "Calibration" in client.get(reverse("library:analytics")).content.decode()


def test_the_pipeline_asks_the_library_for_its_calibration_only_when_calibrated(add_file, settings):
    for n, happy in enumerate([0.2, 0.6]):
        add_file(f"song{n}", happy)
    assert pipeline.tier_calibration() is None  # raw, the default
    settings.NOMARR_TIER_SCORES = "calibrated"
    assert pipeline.tier_calibration() == {}  # no calibration yet: raw scores per label
    saved = calibration.calibrate()
    bounds = pipeline.tier_calibration()
    assert bounds == saved.bounds() and happy_key() in bounds
    # Decided on calibrated scores, the happier file is "happy" at a tier it was not before.
    low, high = bounds[happy_key()]
    assert keys.calibrate(0.6, (low, high)) == 1.0 and keys.calibrate(0.2, (low, high)) == 0.0
    decision = pipeline.decide(
        get_catalog().heads,
        {happy_key(): 0.6, keys.score_key(HAPPY, "non_happy"): 0.4},
        keys.namespace(),
        bounds,
    )
    assert decision.tiers[happy_key()] == "high" and keys.tier(0.6, 0.4) != "high"
    assert "happy" in decision.moods


def test_the_calibrate_command_saves_a_calibration_and_show_only_measures(add_file):
    for n, happy in enumerate([0.2, 0.5, 0.7]):
        add_file(f"song{n}", happy)
    out = StringIO()
    call_command("calibrate", "--show", stdout=out)
    assert "measured: 3 files" in out.getvalue() and calibration.current() is None
    call_command("calibrate", stdout=out)
    saved = calibration.current()
    assert f"calibration #{saved.pk} saved: 3 files" in out.getvalue()
    assert happy_key() in out.getvalue()
