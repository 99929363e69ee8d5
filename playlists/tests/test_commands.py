"""`manage.py playlists`: list the templates, preview, write, export and push."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tagging.keys import mood_set_key

from .conftest import HAPPY
from .fake_navidrome import FakeNavidrome
from .test_subsonic import PASSWORD, USER, songs_for_mixed


def run(*args) -> str:
    out = StringIO()
    call_command("playlists", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_list_shows_every_template_and_what_the_library_lacks(library):
    library.add("flac", "untagged")
    library.scan()
    out = run("list")
    assert "happy-energetic: Happy and energetic" in out
    assert "parameters: happy=0.7 energy=0.6 limit=100" in out
    assert f"NOT IN THE LIBRARY: {HAPPY}" in out


def test_preview_counts_and_samples(mixed):
    out = run("preview", "--template", "focus", "--set", "instrumental=0.8", "--sample", "5")
    assert out.splitlines()[0] == "2 tracks match; the playlist holds 2 (limit 100)"
    assert "Tester - Calm Focus" in out and "Tester - Rainy Night" in out
    assert not (mixed.root / "Playlists").exists() or not any((mixed.root / "Playlists").iterdir())


def test_write_a_template_and_rules_from_a_file(mixed, tmp_path):
    out = run("write", "--template", "workout", "--limit", "10")
    target = mixed.root / "Playlists" / "Workout.nsp"
    assert f"Wrote {target}" in out
    assert json.loads(target.read_text())["limit"] == 10

    rules = tmp_path / "mine.nsp"
    rules.write_text(json.dumps({"all": [{"contains": {mood_set_key("loose"): "relax"}}]}))
    out = run("write", "--rules", str(rules), "--name", "Relaxing")
    document = json.loads((mixed.root / "Playlists" / "Relaxing.nsp").read_text())
    assert document["all"] == [{"contains": {mood_set_key("loose"): "relax"}}]


def test_invalid_rules_and_refusals_are_command_errors(mixed, tmp_path):
    rules = tmp_path / "bad.nsp"
    loose = mood_set_key("loose")
    rules.write_text(json.dumps({"all": [{"gt": {loose: "x"}}]}))
    with pytest.raises(CommandError, match=f"gt compares numbers, but {loose} is text"):
        run("preview", "--rules", str(rules))
    with pytest.raises(CommandError, match="happy must be from 0 to 1"):
        run("preview", "--template", "happy-energetic", "--set", "happy=9")
    target = mixed.root / "Playlists" / "Workout.nsp"
    target.parent.mkdir()
    target.write_text("{}")
    with pytest.raises(CommandError, match="refusing to overwrite"):
        run("write", "--template", "workout")
    assert target.read_text() == "{}"


def test_m3u_and_push(mixed, settings):
    out = run("m3u", "--template", "focus")
    assert "with 2 tracks" in out
    assert (mixed.root / "Playlists" / "Focus - instrumental and calm.m3u8").exists()
    with FakeNavidrome({USER: PASSWORD}, songs_for_mixed()) as server:
        settings.NOMARR_NAVIDROME_URL = server.url
        settings.NOMARR_NAVIDROME_USER = USER
        settings.NOMARR_NAVIDROME_PASSWORD = PASSWORD
        run("push", "--template", "focus")
        out = run("push", "--template", "focus", "--name", "Focus")
        assert "Created the Navidrome playlist 'Focus (static)'" in out
        assert sorted(p.name for p in server.playlists.values()) == [
            "Focus (static)",
            "Focus: instrumental and calm (static)",
        ]


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("NOMARR_NAVIDROME_URL", "", "must start with http:// or https://"),
        (
            "NOMARR_NAVIDROME_PASSWORD",
            "",
            "set NOMARR_NAVIDROME_USER and NOMARR_NAVIDROME_PASSWORD",
        ),
        ("NOMARR_NAVIDROME_PASSWORD", "wrong", "refused user 'admin'"),
    ],
)
def test_push_checks_its_settings_before_computing_the_preview(
    mixed, settings, setting, value, message
):
    with FakeNavidrome({USER: PASSWORD}, songs_for_mixed()) as server:
        settings.NOMARR_NAVIDROME_URL = server.url
        settings.NOMARR_NAVIDROME_USER = USER
        settings.NOMARR_NAVIDROME_PASSWORD = PASSWORD
        setattr(settings, setting, value)
        out = StringIO()
        with pytest.raises(CommandError, match=f"cannot push: .*{message}"):
            call_command("playlists", "push", "--template", "focus", stdout=out, stderr=StringIO())
        assert out.getvalue() == ""  # no preview was computed, nothing was searched
        assert set(server.methods()) <= {"ping"} and server.playlists == {}
