"""The ready-made templates: built on the real keys, adjustable, honest about gaps."""

from __future__ import annotations

import json

import pytest

from playlists import presets, service
from playlists.fields import FieldCatalog
from playlists.presets import PresetError
from playlists.rules import RuleError, fields_used, selected_files, validate
from tagging.keys import mood_set_key

from .conftest import CHILL, DANCEABLE, HAPPY, INSTRUMENTAL, SLOW


def test_there_are_at_least_a_dozen_templates_with_distinct_slugs():
    assert len(presets.PRESETS) >= 12
    assert len({p.slug for p in presets.PRESETS}) == len(presets.PRESETS)


def test_every_template_is_valid_navidrome_rules_on_a_tagged_library(mixed):
    catalog = FieldCatalog.current()
    for preset in presets.PRESETS:
        assert preset.missing_keys(catalog) == [], preset.slug
        rules = validate(preset.rules(), catalog)
        groups = [key for key in ("all", "any") if key in rules]
        assert len(groups) == 1
        text = json.dumps(rules)
        assert "inTheRange" not in text
        # Thresholds are JSON numbers, never strings.
        for name in fields_used(rules):
            if catalog.get(name).kind.numeric:
                assert f'"{name}": "' not in text, preset.slug
        assert rules["limit"] == 100


def test_the_templates_read_the_current_model_sets_keys():
    used = {key for preset in presets.PRESETS for key in preset.keys()}
    for key in (
        HAPPY,
        DANCEABLE,
        mood_set_key("regular"),
        CHILL,
        SLOW,
        INSTRUMENTAL,
    ):
        assert key in used


def test_a_template_takes_its_parameters():
    preset = presets.get("happy-energetic")
    rules = preset.rules({"happy": "0.8", "energy": 0.5, "limit": "10"})
    assert rules["all"] == [
        {"gt": {HAPPY: 0.8}},
        {"gt": {DANCEABLE: 0.5}},
    ]
    assert rules["limit"] == 10
    mood = presets.get("mood").rules({"mood": "sad", "set": "strict"})
    assert mood["all"] == [{"is": {mood_set_key("strict"): "sad"}}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"happy": "1.5"}, "happy must be from 0 to 1"),
        ({"happy": "lots"}, "happy must be a number from 0 to 1"),
        ({"limit": "0"}, "limit must be from 1"),
        ({"colour": "red"}, "has no parameter colour"),
    ],
)
def test_bad_template_parameters_are_refused_clearly(params, message):
    with pytest.raises(PresetError, match=message):
        presets.get("happy-energetic").rules(params)


def test_an_unknown_template_is_refused_with_the_list():
    with pytest.raises(PresetError, match=r"no template 'nope'; there are: .*happy-energetic"):
        presets.get("nope")


def test_a_template_whose_keys_are_absent_from_the_library_says_so(library):
    library.add("flac", "untagged")
    library.scan()
    catalog = FieldCatalog.current()
    status = {s.preset.slug: s for s in service.preset_statuses(catalog)}
    assert not status["chill-evening"].available
    assert CHILL in status["chill-evening"].missing
    with pytest.raises(RuleError) as caught:
        service.preset_rules("happy-energetic", {}, catalog)
    assert HAPPY in caught.value.errors[0]
    assert "no file in the library has" in caught.value.errors[0]


def test_templates_select_the_tracks_that_fit(mixed):
    catalog = FieldCatalog.current()

    def run(slug, **params):
        rules = service.preset_rules(slug, params, catalog)
        return {f.title for f in selected_files(rules, catalog)}

    assert run("happy-energetic") == {"Sunny Day"}
    assert run("sad-slow") == {"Rainy Night"}
    assert run("party") == {"Sunny Day"}
    assert run("focus") == {"Rainy Night", "Calm Focus"}
    assert run("workout") == {"Rage"}
    assert run("chill-evening") == {"Calm Focus"}
    assert run("mood", mood="relaxed", set="regular") == {"Rainy Night", "Calm Focus"}
    assert run("dance-floor") == {"Sunny Day"}
