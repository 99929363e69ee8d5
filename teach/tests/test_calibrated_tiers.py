"""A taught tag's tiers are decided like every key's: on the raw scores by default, on
the calibrated ones when NOMARR_TIER_SCORES=calibrated (tagging.pipeline.decide with
tagging.pipeline.tier_calibration, the library's calibration in use)."""

from __future__ import annotations

import pytest

from library import calibration
from library.models import ScoreDistribution, TagValue
from tagging import catalog, keys, pipeline, tagfiles
from teach import learning
from teach.tests.test_teach import teach_joram

pytestmark = pytest.mark.django_db


def tiers_in_files(files, tag) -> dict[str, dict[str, str]]:
    """Each file's tiers of the tag's two classes, as the file holds them."""
    scores = keys.label_keys(learning.head_stem(tag.name, tag.backbone), learning.labels(tag.name))
    found = {}
    for name, file in files.items():
        in_file = tagfiles.read_tags(file.path, keys.namespace())
        found[name] = {key: in_file[keys.tier_key_for(key)][0] for key in scores}
    return found


def decided(files, tag, bounds) -> dict[str, dict[str, str]]:
    """What tagging.pipeline.decide makes of each file's written scores, on bounds."""
    head = catalog.Head(
        stem=learning.head_stem(tag.name, tag.backbone),
        labels=learning.labels(tag.name),
        backbone=tag.backbone,
    )
    scores = keys.label_keys(head.stem, head.labels)
    found = {}
    for name, file in files.items():
        in_file = tagfiles.read_tags(file.path, keys.namespace())
        written = {key: float(in_file[key][0]) for key in scores}
        found[name] = pipeline.decide([head], written, keys.namespace(), bounds).tiers
    return found


def test_taught_tiers_are_decided_on_calibrated_scores_when_asked(teach_library, settings):
    files = teach_library()
    tag = teach_joram(files)
    learning.train(tag)
    assert settings.NOMARR_TIER_SCORES == "raw"
    learning.apply(tag)
    raw = tiers_in_files(files, tag)
    assert raw == decided(files, tag, None)

    # A calibration in use (a real row, as `calibrate()` saves one) whose bounds for
    # the tag's two classes are those of a library where almost no track is it: the
    # tag's scores between 0 and 0.01, its opposite's between 0.99 and 1 (these
    # clips' scores are all near 0 or 1, so their own percentiles would change
    # nothing).
    scores = keys.label_keys(learning.head_stem(tag.name, tag.backbone), learning.labels(tag.name))
    ScoreDistribution.objects.create(
        kind=ScoreDistribution.Kind.CALIBRATION,
        files=len(files),
        labels={
            scores[0]: {"n": len(files), "p5": 0.0, "p95": 0.01},
            scores[1]: {"n": len(files), "p5": 0.99, "p95": 1.0},
        },
    )
    assert calibration.current() is not None

    settings.NOMARR_TIER_SCORES = "calibrated"
    bounds = pipeline.tier_calibration()
    assert bounds is not None and set(scores) <= set(bounds)
    written = learning.apply(tag)
    assert written.written == len(files) and not written.failed

    calibrated = tiers_in_files(files, tag)
    assert calibrated == decided(files, tag, bounds)
    # The calibration changes what some files get: the rule was really applied.
    changed = [name for name in files if calibrated[name] != raw[name]]
    print(f"tiers changed by the calibration: {changed}")
    assert changed
    # The library's rows hold the tiers the files hold.
    for name, file in files.items():
        for key, tier in calibrated[name].items():
            assert TagValue.objects.filter(file=file, key=keys.tier_key_for(key), value=tier)
