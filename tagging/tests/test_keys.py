"""The tag-key scheme: every key is built and read back in tagging.keys alone."""

import numpy as np
import pytest

from tagging import keys
from tagging.catalog import get_catalog
from tagging.pipeline import describe


def test_keys_are_spelled_as_the_readme_says():
    assert keys.prefix() == "nom_"
    assert keys.score_key("mood_happy-msd-musicnn-1", "happy") == (
        "nom_mood_happy_msd_musicnn_1__happy"
    )
    assert keys.tier_key("danceability-msd-musicnn-1", "not_danceable") == (
        "nom_danceability_msd_musicnn_1__not_danceable__tier"
    )
    assert [keys.mood_set_key(name) for name in keys.MOOD_SETS] == [
        "nom_mood_strict",
        "nom_mood_regular",
        "nom_mood_loose",
    ]
    assert keys.version_key() == "nom_version"
    assert keys.suggestion_key("genre") == "nom_genre_suggested"


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        (keys.score_key("msd-musicnn-1", "happy"), ("msd_musicnn_1", "happy", "score")),
        (keys.tier_key("msd-musicnn-1", "happy"), ("msd_musicnn_1", "happy", "tier")),
        (keys.mood_set_key("loose"), ("", "loose", "mood_set")),
        (keys.version_key(), ("", "", "version")),
        (keys.suggestion_key("Genre"), ("", "genre", "suggestion")),
    ],
)
def test_a_built_key_parses_back_to_what_built_it(key, parsed):
    assert keys.parse(key) == keys.ParsedKey(*parsed)


@pytest.mark.parametrize(
    ("label", "slug"),
    [
        ("hip_hop", "hip_hop"),
        ("Hip-Hop", "hip_hop"),
        ("easy listening", "easy_listening"),
        ("60s", "60s"),
        ("  Rock & Roll!  ", "rock_roll"),
        ("non-happy", "non_happy"),
    ],
)
def test_a_label_with_underscores_dashes_or_spaces_round_trips_as_its_slug(label, slug):
    model, parsed_label, kind = keys.parse(keys.score_key("genre_discogs-effnet-1", label))
    assert (model, parsed_label, kind) == ("genre_discogs_effnet_1", slug, "score")
    tier = keys.parse(keys.tier_key("genre_discogs-effnet-1", label))
    assert tier == ("genre_discogs_effnet_1", slug, "tier")


def test_a_model_named_like_a_mood_set_or_version_is_still_a_score():
    assert keys.parse(keys.score_key("mood", "strict")) == ("mood", "strict", "score")
    assert keys.parse(keys.score_key("version", "x")) == ("version", "x", "score")
    assert keys.parse(keys.score_key("x", "tier")) == ("x", "tier", "score")


def test_labels_of_one_head_that_slug_alike_stay_distinct():
    assert keys.label_keys("m", ["Hip-Hop", "hip hop"]) == ["nom_m__hip_hop", "nom_m__hip_hop_1"]
    assert keys.label_keys("m", ["?", "ok"]) == ["nom_m__0", "nom_m__ok"]
    for key in keys.label_keys("m", ["Hip-Hop", "hip hop", "?"]):
        assert keys.parse(key).kind == "score"


def test_every_key_the_pipeline_writes_for_the_installed_models_parses():
    catalog = get_catalog()
    head_scores = [(head, np.full(len(head.labels), 0.5)) for head in catalog.heads]
    written = describe(head_scores, keys.namespace(), catalog.fingerprint).tags
    kinds = [keys.parse(key).kind for key in written]
    two_class = sum(len(head.labels) for head in catalog.heads if head.is_two_class)
    assert kinds.count("score") == sum(len(head.labels) for head in catalog.heads)
    assert kinds.count("tier") == two_class > 0
    assert kinds.count("mood_set") == len(keys.MOOD_SETS)
    assert kinds.count("version") == 1


def test_the_namespace_setting_names_every_key(settings):
    settings.NOMARR_NAMESPACE = "lib2"
    assert keys.namespace() == "lib2"
    assert keys.prefix() == "lib2_"
    score = keys.score_key("msd-musicnn-1", "rock")
    assert score == "lib2_msd_musicnn_1__rock"
    assert keys.mood_set_key("strict") == "lib2_mood_strict"
    assert keys.version_key() == "lib2_version"
    assert keys.parse(score) == ("msd_musicnn_1", "rock", "score")
    # Another namespace's keys are not this installation's ...
    assert keys.parse("nom_msd_musicnn_1__rock") is None
    # ... unless that namespace is asked for.
    assert keys.parse("nom_msd_musicnn_1__rock", namespace="nom") == (
        "msd_musicnn_1",
        "rock",
        "score",
    )
    assert keys.score_key("msd-musicnn-1", "rock", namespace="nom") == "nom_msd_musicnn_1__rock"


@pytest.mark.parametrize(
    "key",
    [
        "nomad_rating",  # starts with "nom" but not "nom_": the user's own tag
        "mood",
        "nom",
        "nom_",
        "nom_x",  # under the namespace, but no key Nomarr writes
        "nom_mood_happy",  # no such mood set
        "nom_mood_",
        "nom_versions",
        "nom__suggested",  # a suggestion for no field
        "nom___x",  # no model
        "nom_x__",  # no label
        "nom_x____tier",  # a tier of no label
        "nom_a__b__c",  # `__` inside a label
        "nom_A__b",  # keys are lowercase
        "nom_a-b__c",  # and slugs
        "other_msd_musicnn_1__rock",
    ],
)
def test_a_key_that_is_not_nomarrs_parses_to_none(key):
    assert keys.parse(key) is None


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="no mood set 'happy'; there are: strict, regular, loose"):
        keys.mood_set_key("happy")
    with pytest.raises(ValueError, match="no key can name label '\\?\\?' of model 'm'"):
        keys.score_key("m", "??")
    with pytest.raises(ValueError, match="namespace must not be empty"):
        keys.prefix("")


@pytest.mark.parametrize(
    ("p", "q", "expected"),
    [
        (0.90, 0.10, "high"),
        (0.80, 0.20, "high"),
        (0.79, 0.21, "medium"),
        (0.75, 0.25, "medium"),
        (0.74, 0.26, "low"),
        (0.60, 0.40, "low"),
        (0.59, 0.41, "none"),
        (0.10, 0.90, "none"),
        # p high but too close to q: the ratio and margin rules bite.
        (0.80, 0.70, "medium"),
        (0.80, 0.76, "low"),
        (0.80, 0.79, "none"),
    ],
)
def test_the_tier_cascade_follows_the_original_thresholds(p, q, expected):
    assert keys.tier(p, q) == expected
    assert expected in keys.TIERS


def test_mood_sets_nest_and_contradicting_words_leave_a_set_together():
    sets = keys.mood_sets({"happy": "high", "sad": "low", "relaxed": "medium", "party": "none"})
    assert sets == {"strict": ["happy"], "regular": ["happy", "relaxed"], "loose": ["relaxed"]}
    assert keys.mood_word("hip_hop") == "hip hop"
