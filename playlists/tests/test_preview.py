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


def test_underscore_and_percent_are_wildcards_as_in_navidrome(mixed):
    # Navidrome builds LIKE patterns without escaping (persistence/criteria_sql.go).
    assert matched({"all": [{"contains": {"title": "R_in"}}]}) == {"Rainy Night"}
    assert matched({"all": [{"startsWith": {"title": "S%Day"}}]}) == {"Sunny Day"}
    assert matched({"all": [{"endsWith": {mood_set_key("regular"): "re_axed"}}]}) == {
        "Rainy Night",
        "Calm Focus",
    }
    assert matched({"all": [{"notContains": {"title": "a_"}}]}) == {"Middle"}


def test_a_missing_score_counts_as_zero_so_it_sorts_last_highest_first(mixed):
    mixed.add("flac", "Untagged")  # no Nomarr tags at all
    mixed.scan()
    everything = {"all": [{"gt": {"duration": 0}}]}
    assert titles({**everything, "sort": f"-{HAPPY}"})[-1] == "Untagged"
    assert titles({**everything, "sort": f"-{HAPPY}", "order": "desc"})[0] == "Untagged"
    assert titles({**everything, "sort": HAPPY})[0] == "Untagged"


def test_in_the_range_on_duration_and_missing_or_present_tags(mixed):
    mixed.add("flac", "Untagged")
    mixed.scan()
    every = {"Sunny Day", "Rainy Night", "Calm Focus", "Rage", "Middle", "Untagged"}
    assert matched({"all": [{"inTheRange": {"duration": [1, 3600]}}]}) == every
    assert matched({"all": [{"inTheRange": {"duration": [3600, 7200]}}]}) == set()
    assert matched({"all": [{"isMissing": {HAPPY: True}}]}) == {"Untagged"}
    assert matched({"all": [{"isPresent": {HAPPY: False}}]}) == {"Untagged"}
    assert matched({"all": [{"isPresent": {HAPPY: True}}]}) == every - {"Untagged"}
    # Middle's mood set is empty: no value at all.
    assert matched({"all": [{"isMissing": {mood_set_key("regular"): True}}]}) == {
        "Middle",
        "Untagged",
    }
    assert matched({"all": [{"isPresent": {"album": True}}]}) == every  # the clips have one
    assert matched({"all": [{"isMissing": {"album": True}}]}) == set()


def test_artist_fields_match_participants(library):
    library.add("flac", "Duet", {}, artist="Ann feat. Bob")
    library.add("mp3", "Solo", {}, artist="Bob")
    library.add("ogg", "Trio", {}, artist="Cy / Dee; Eve")
    library.scan()
    assert matched({"all": [{"is": {"artist": "Bob"}}]}) == {"Duet", "Solo"}
    assert matched({"all": [{"is": {"artist": "bob"}}]}) == set()  # "=" is exact
    assert matched({"all": [{"startsWith": {"artist": "de"}}]}) == {"Trio"}
    assert matched({"all": [{"endsWith": {"artist": "nn"}}]}) == {"Duet"}
    assert matched({"all": [{"isNot": {"artist": "Ann"}}]}) == {"Solo", "Trio"}
    # No album artist tag: Navidrome's album artists are the track's artists.
    assert matched({"all": [{"is": {"albumartist": "Eve"}}]}) == {"Trio"}
    assert matched({"all": [{"isPresent": {"albumartist": True}}]}) == {"Duet", "Solo", "Trio"}


def test_limit_percent_and_offset(mixed):
    by_happy = {"all": [{"gt": {"duration": 0}}], "sort": f"-{HAPPY}"}
    assert titles({**by_happy, "limitPercent": 40}) == ["Sunny Day", "Calm Focus"]  # 2 of 5
    assert titles({**by_happy, "limitPercent": 1}) == ["Sunny Day"]  # at least one
    assert titles({**by_happy, "limit": 2, "offset": 1}) == ["Calm Focus", "Middle"]
    assert len(titles({**by_happy, "offset": 3})) == 5  # without a limit Navidrome ignores it
    catalog = FieldCatalog.current()
    shown = preview(validate({**by_happy, "limit": 3, "offset": 4}, catalog), catalog)
    assert (shown.matched, shown.selected, [t.title for t in shown.tracks]) == (
        5,
        1,
        ["Rainy Night"],
    )
