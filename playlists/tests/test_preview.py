"""Previewing rules on the library database with Navidrome's semantics.

The library is five real clips, tagged as if the models heard the scores in
conftest.MIXED and read by the library scanner. Mood sets that follow from them
(the pipeline's tier cascade): Sunny Day regular = danceable, happy, party, voice;
Rainy Night = instrumental, relaxed, sad; Calm Focus = instrumental, relaxed;
Rage = aggressive; Middle has no mood words at all.
"""

from __future__ import annotations

from playlists.fields import FieldCatalog
from playlists.rules import preview, selected_files, validate
from tagging.keys import mood_set_key, tier_key_for

from .conftest import AGGRESSIVE, DANCEABLE, HAPPY, RELAXED, SAD


def titles(rules, library_catalog=None, **kwargs):
    catalog = library_catalog or FieldCatalog.current()
    return [f.title for f in selected_files(validate(rules, catalog), catalog)]


def matched(rules) -> set[str]:
    return set(titles(rules))


def test_scores_compare_as_numbers(mixed):
    assert matched({"all": [{"gt": {HAPPY: 0.7}}]}) == {"Sunny Day"}
    assert matched({"all": [{"lt": {AGGRESSIVE: 0.08}}]}) == {"Rainy Night"}
    assert matched({"all": [{"is": {SAD: 0.88}}]}) == {"Rainy Night"}
    # gt and lt inside all: a range, the way Navidrome v0.63 accepts it.
    in_range = {"all": [{"gt": {HAPPY: 0.2}}, {"lt": {HAPPY: 0.6}}]}
    assert matched(in_range) == {"Calm Focus", "Middle", "Rage"}


def test_a_tag_condition_matches_if_any_value_matches(mixed):
    mood = mood_set_key("regular")
    assert mixed.file("Rainy Night").tag_dict()[mood] == ["instrumental", "relaxed", "sad"]
    assert matched({"all": [{"is": {mood: "relaxed"}}]}) == {"Rainy Night", "Calm Focus"}
    assert matched({"all": [{"contains": {mood: "RELAX"}}]}) == {"Rainy Night", "Calm Focus"}
    assert matched({"all": [{"startsWith": {mood: "instr"}}]}) == {"Rainy Night", "Calm Focus"}
    assert matched({"all": [{"endsWith": {mood: "ssive"}}]}) == {"Rage"}


def test_a_negation_means_no_value_matches(mixed):
    mood = mood_set_key("regular")
    # Rainy Night has other words than "sad", but one of its values is "sad": out.
    # Middle has no mood words (no values at all): in.
    assert matched({"all": [{"isNot": {mood: "sad"}}]}) == {
        "Sunny Day",
        "Calm Focus",
        "Rage",
        "Middle",
    }
    assert matched({"all": [{"notContains": {mood: "relax"}}]}) == {"Sunny Day", "Rage", "Middle"}


def test_nested_any_and_all_groups(mixed):
    rules = {
        "any": [
            {"all": [{"gt": {DANCEABLE: 0.6}}, {"gt": {AGGRESSIVE: 0.5}}]},
            {"all": [{"gt": {RELAXED: 0.8}}, {"is": {"title": "Calm Focus"}}]},
        ]
    }
    assert matched(rules) == {"Rage", "Calm Focus"}


def test_tiers_and_builtin_fields(mixed):
    tier = tier_key_for(HAPPY)
    assert matched({"all": [{"is": {tier: "high"}}]}) == {"Sunny Day"}
    assert matched({"all": [{"contains": {"title": "night"}}]}) == {"Rainy Night"}
    assert matched({"all": [{"is": {"artist": "Tester"}}, {"gt": {"duration": 20}}]}) == set(
        ["Sunny Day", "Rainy Night", "Calm Focus", "Rage", "Middle"]
    )
    assert matched({"all": [{"is": {"mood": "party"}}]}) == {"Sunny Day"}


def test_sort_order_and_limit(mixed):
    by_happy = {"all": [{"gt": {"duration": 0}}], "sort": f"-{HAPPY}"}
    assert titles(by_happy) == ["Sunny Day", "Calm Focus", "Middle", "Rage", "Rainy Night"]
    assert titles({**by_happy, "order": "desc"}) == [
        "Rainy Night",
        "Rage",
        "Middle",
        "Calm Focus",
        "Sunny Day",
    ]
    assert titles({**by_happy, "limit": 2}) == ["Sunny Day", "Calm Focus"]
    assert titles({"all": [{"gt": {"duration": 0}}]}) == sorted(titles(by_happy))  # by title
    assert sorted(titles({**by_happy, "sort": "random"})) == sorted(titles(by_happy))


def test_preview_counts_all_matches_and_samples_the_kept_ones(mixed, django_assert_max_num_queries):
    catalog = FieldCatalog.current()
    rules = validate({"all": [{"lt": {SAD: 0.6}}], "sort": f"-{HAPPY}", "limit": 3}, catalog)
    with django_assert_max_num_queries(2):  # a count and one page: no per-file queries
        shown = preview(rules, catalog, sample=2)
    assert (shown.matched, shown.selected, shown.limit) == (4, 3, 3)
    assert [t.title for t in shown.tracks] == ["Sunny Day", "Calm Focus"]
