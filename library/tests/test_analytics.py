"""Analytics on a small library whose scores are known: five real files, tagged by
Nomarr's writer with chosen scores, then scanned."""

from __future__ import annotations

import re

import pytest

from library import analytics
from library.tests.test_pages import tag_file
from tagging import keys

pytestmark = pytest.mark.django_db

# happy falls as sad rises; party and rock follow happy. Tiers of p against 1 - p:
# 0.80 and up high, 0.78 medium, 0.60 and 0.70 low, below none.
SCORES = [
    {"happy": 0.92, "sad": 0.10, "party": 0.95, "rock": 0.9},
    {"happy": 0.85, "sad": 0.20, "party": 0.80, "rock": 0.7},
    {"happy": 0.70, "sad": 0.78, "party": 0.60, "rock": 0.5},
    {"happy": 0.30, "sad": 0.80, "party": 0.40, "rock": 0.3},
    {"happy": 0.10, "sad": 0.90, "party": 0.20, "rock": 0.1},
]
GENRES = ["Pop", "Pop", "Ambient", "Ambient", "Ambient"]
YEARS = [2010, 2010, 1990, 1990, 1985]


@pytest.fixture
def known(add, scan):
    for n, (scores, genre, year) in enumerate(zip(SCORES, GENRES, YEARS, strict=True)):
        tag_file(add(f"Album/{n}.flac"), scores, genre=genre, date=str(year), title=f"T{n}")
    add("Untagged/u.flac")
    assert scan().status == "done"


def test_summary_counts_tagged_files(known):
    assert analytics.summary() == {"files": 6, "tagged": 5, "untagged": 1}


def test_mood_word_frequencies_per_set(known):
    freq = analytics.mood_frequencies()
    count = {
        word: {name: freq["sets"][name][i] for name in keys.MOOD_SETS}
        for i, word in enumerate(freq["words"])
    }
    assert count["happy"] == {"strict": 2, "regular": 2, "loose": 2}
    assert count["party"] == {"strict": 2, "regular": 2, "loose": 3}
    # File 2 is happy (low) and sad (medium): in mood_loose the two contradict, both leave.
    assert count["sad"] == {"strict": 2, "regular": 3, "loose": 2}
    assert set(count) == {"happy", "party", "sad"}


def test_tier_distribution_per_mood_label(known):
    tiers = analytics.tier_distribution()
    happy = tiers["labels"].index("happy")
    assert [tiers["tiers"][t][happy] for t in keys.TIERS] == [2, 0, 1, 2]
    sad = tiers["labels"].index("sad")
    assert [tiers["tiers"][t][sad] for t in keys.TIERS] == [2, 1, 0, 2]
    # Every mood label counts every tagged file once.
    for index in range(len(tiers["labels"])):
        assert sum(tiers["tiers"][t][index] for t in keys.TIERS) == 5


def test_co_occurrence_of_mood_words(known):
    pairs = analytics.co_occurrence("regular")
    assert pairs["words"] == ["sad", "happy", "party"]  # most common first
    assert pairs["matrix"] == [[3, 0, 0], [0, 2, 2], [0, 2, 2]]
    assert pairs["max"] == 3


def test_correlation_signs(known):
    corr = analytics.correlation()
    assert corr["files"] == 5
    at = {label: i for i, label in enumerate(corr["labels"])}
    r = corr["matrix"]
    assert r[at["happy"]][at["party"]] > 0.9
    assert r[at["happy"]][at["sad"]] < -0.8
    assert r[at["happy"]][at["happy"]] == 1.0
    assert r[at["happy"]][at["rock (msd-musicnn-1)"]] > 0.9
    # Heads that scored 0.5 everywhere do not vary: they correlate with nothing.
    assert "danceable" not in at and "pop (msd-musicnn-1)" not in at
    assert set(at) == {"happy", "party", "sad", "rock (msd-musicnn-1)"}


def test_correlation_reads_a_capped_sample(known):
    assert analytics.correlation(sample=3)["files"] == 3


def test_mean_scores_by_genre_and_year(known):
    genre = analytics.scores_by("genre")
    assert genre["groups"] == ["Ambient", "Pop"] and genre["files"] == [3, 2]
    assert genre["means"]["happy"] == [pytest.approx(0.367, abs=0.001), pytest.approx(0.885)]
    year = analytics.scores_by("year")
    assert year["groups"] == [1985, 1990, 2010]
    assert year["means"]["sad"] == [pytest.approx(0.9), pytest.approx(0.79), pytest.approx(0.15)]


def test_the_page_draws_the_charts_from_json(admin_client, known):
    page = admin_client.get("/library/analytics/")
    text = page.content.decode()
    assert page.status_code == 200
    for chart in ["frequencies", "tiers", "genre", "year"]:
        assert f'<canvas id="chart-{chart}">' in text
    assert '<script id="analytics-data" type="application/json">' in text
    assert "vendor/chart.umd.min.js" in text
    assert 'id="files-tagged">5<' in text
    # The heatmaps are tables: the happy/party cell is coloured, its value shown.
    correlation = text[text.index('id="correlation"') :]
    blue = r'<td style="background: rgb\(47 111 223 / 0\.9\d\);[^"]*">\+0\.9\d</td>'
    assert re.search(blue, correlation)
    assert re.search(r'rgb\(192 57 43 / 0\.\d\d\);[^"]*">-0\.\d\d</td>', correlation)


def test_an_empty_library_has_empty_analytics(admin_client, library):
    page = admin_client.get("/library/analytics/")
    assert page.status_code == 200 and b"No file carries" in page.content
    assert analytics.correlation()["files"] == 0
