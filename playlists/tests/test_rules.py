"""Validating smart-playlist rules: clear errors for everything Navidrome would reject
or misread."""

from __future__ import annotations

import pytest

from playlists.fields import FieldCatalog, Kind
from playlists.rules import RuleError, fields_used, validate
from tagging.keys import mood_set_key, score_key, tier_key, version_key

HAPPY = score_key("mood_happy-msd-musicnn-1", "happy")
DANCE = score_key("danceability-msd-musicnn-1", "danceable")
TIER = tier_key("danceability-msd-musicnn-1", "danceable")
REGULAR = mood_set_key("regular")
CATALOG = FieldCatalog.from_keys([HAPPY, DANCE, TIER, REGULAR, version_key()])


def errors(data) -> str:
    with pytest.raises(RuleError) as caught:
        validate(data, CATALOG)
    return "\n".join(caught.value.errors)


def test_the_library_keys_get_their_kinds_from_the_key_scheme():
    assert CATALOG.get(HAPPY).kind is Kind.SCORE
    assert CATALOG.get(TIER).kind is Kind.TAG
    assert CATALOG.get(REGULAR).multi
    assert CATALOG.get(version_key()).kind is Kind.TAG
    assert CATALOG.get("mood").kind is Kind.TAG
    assert CATALOG.get("year").kind is Kind.NUMBER


def test_nested_groups_are_accepted_and_spelled_as_navidrome_writes_them():
    rules = validate(
        {
            "ALL": [
                {"GT": {HAPPY.upper(): 0.7}},
                {"any": [{"isnot": {REGULAR: "sad"}}, {"lt": {DANCE: 0.4}}]},
            ],
            "sort": "-" + HAPPY + ", random",
            "order": "DESC",
            "limit": 25,
        },
        CATALOG,
    )
    assert rules == {
        "all": [
            {"gt": {HAPPY: 0.7}},
            {"any": [{"isNot": {REGULAR: "sad"}}, {"lt": {DANCE: 0.4}}]},
        ],
        "sort": f"-{HAPPY},random",
        "order": "desc",
        "limit": 25,
    }
    assert fields_used(rules) == [HAPPY, REGULAR, DANCE]


@pytest.mark.parametrize(
    "data",
    [{"all": [{"is": {"title": "x"}}], "any": [{"is": {"title": "y"}}]}, {"sort": "title"}],
)
def test_the_top_level_needs_exactly_one_of_all_and_any(data):
    assert "exactly one of 'all' or 'any'" in errors(data)


def test_it_refuses_an_unknown_operator():
    message = errors({"all": [{"matches": {"title": "x"}}]})
    assert "all[0]: unknown operator 'matches'" in message
    assert "isNot" in message  # it lists the allowed ones


def test_in_the_range_is_accepted_on_year_and_duration_and_refused_on_tags():
    assert validate({"all": [{"inTheRange": {"year": [1990, 1999]}}]}, CATALOG) == {
        "all": [{"inTheRange": {"year": [1990, 1999]}}]
    }
    assert validate({"all": [{"INTHERANGE": {"Duration": [60, 240.5]}}]}, CATALOG)
    message = errors({"all": [{"inTheRange": {HAPPY: [0.5, 0.9]}}]})
    assert "Navidrome refuses inTheRange on tags" in message and "gt and lt" in message
    assert "two JSON numbers" in errors({"all": [{"inTheRange": {"year": [1990]}}]})
    assert "1999 is above 1990" in errors({"all": [{"inTheRange": {"year": [1999, 1990]}}]})
    assert "title is text" in errors({"all": [{"inTheRange": {"title": [1, 2]}}]})


def test_is_missing_and_is_present_are_accepted_on_tags_and_album():
    rules = validate(
        {
            "all": [
                {"isMissing": {HAPPY: True}},
                {"ispresent": {REGULAR: "true"}},  # Navidrome reads "true" and 1 as true
                {"isMissing": {"album": 0}},
                {"isPresent": {"artist": True}},
            ]
        },
        CATALOG,
    )
    assert rules["all"] == [
        {"isMissing": {HAPPY: True}},
        {"isPresent": {REGULAR: True}},
        {"isMissing": {"album": False}},
        {"isPresent": {"artist": True}},
    ]
    message = errors({"all": [{"isMissing": {"title": True}}]})
    assert "Navidrome 0.62 or later" in message and "title is always there" in message
    assert "takes true or false" in errors({"all": [{"isPresent": {HAPPY: "maybe"}}]})


def test_limit_percent_offset_refresh_delay_and_public_are_accepted():
    rules = validate(
        {
            "all": [{"gt": {HAPPY: 0.5}}],
            "LimitPercent": 10,  # Navidrome's JSON keys ignore case
            "offset": 5,
            "refreshDelay": "1h30m",
            "public": True,
        },
        CATALOG,
    )
    assert rules == {
        "all": [{"gt": {HAPPY: 0.5}}],
        "limitPercent": 10,
        "offset": 5,
        "refreshDelay": "1h30m",
        "public": True,
    }
    assert validate({"all": [{"gt": {HAPPY: 0.5}}], "refreshDelay": "2d"}, CATALOG)
    message = errors(
        {"all": [{"gt": {HAPPY: 0.5}}], "limitPercent": 101, "offset": -1, "refreshDelay": "soon"}
    )
    assert "'limitPercent' must be a whole number from 1 to 100, not 101" in message
    assert "'offset' must be a whole number from 0" in message
    assert "'refreshDelay' must be a duration" in message


def test_it_refuses_an_unknown_field_and_suggests_the_close_one():
    typo = score_key("mood_hapy-msd-musicnn-1", "happy")
    message = errors({"any": [{"gt": {typo: 0.5}}]})
    assert f"unknown field '{typo}'" in message
    assert f"did you mean {HAPPY}" in message


@pytest.mark.parametrize("bound", ["0.7", True, None, [0.5]])
def test_a_score_bound_must_be_a_json_number(bound):
    message = errors({"all": [{"gt": {HAPPY: bound}}]})
    assert f"{HAPPY} is a score: gt needs a JSON number" in message


def test_text_operators_need_text_fields_and_gt_needs_numbers():
    assert "use gt or lt" in errors({"all": [{"contains": {HAPPY: "0.8"}}]})
    assert "gt compares numbers, but title is text" in errors({"all": [{"gt": {"title": 3}}]})


def test_a_tier_is_one_of_the_four_tiers():
    assert "high, medium, low, none" in errors({"all": [{"is": {TIER: "very high"}}]})
    assert validate({"all": [{"is": {TIER: "high"}}]}, CATALOG)


def test_every_problem_is_reported_with_where_it_is():
    message = errors(
        {
            "all": [{"any": [{"is": {"title": 1}}, {"gt": {"nope": 1}}]}, {}],
            "sort": "nope2",
            "order": "up",
            "limit": 0,
            "extra": 1,
        }
    )
    for part in (
        "all[0].any[0]: is on title needs a string",
        "all[0].any[1]: unknown field 'nope'",
        "all[1]: each condition is an object with one operator",
        "sort: unknown field 'nope2'",
        "'order' must be 'asc' or 'desc'",
        "'limit' must be a whole number",
        "unknown key 'extra'",
    ):
        assert part in message


def test_an_empty_group_is_refused():
    assert "all[0].any: must be a non-empty list" in errors({"all": [{"any": []}]})
