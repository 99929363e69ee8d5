"""`manage.py tag` and `show_tags`: real files in every format, tagged through the CLI."""

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from tagging import tagfiles
from tagging.catalog import get_catalog
from tagging.keys import mood_set_key, namespace, parse, score_key, version_key

FORMATS = ["mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"]


def run_tag(*args: str) -> tuple[list[dict], str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("tag", *args, "--json", stdout=out, stderr=err)
    except CommandError as exc:
        err.write(str(exc))
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_it_tags_a_folder_of_every_format_and_writes_the_scores(make_audio, audio_stream_hash):
    files = [make_audio(fmt, name=f"track-{fmt}") for fmt in FORMATS]
    hashes = {f: audio_stream_hash(f) for f in files}
    folder = files[0].parent
    results, progress = run_tag(str(folder))
    assert sorted(r["path"] for r in results) == sorted(str(f) for f in files)
    assert {r["status"] for r in results} == {"tagged"}
    assert "7/7 100%" in progress and "eta" in progress
    fingerprint = get_catalog().fingerprint
    for result in results:
        path = Path(result["path"])
        stored = tagfiles.read_tags(path, namespace())
        assert stored[version_key()] == [fingerprint]
        assert stored == result["tags"]
        assert len([k for k in stored if parse(k).kind != "tier"]) == 118 + 3 + 1
        score = stored[score_key("voice_instrumental-msd-musicnn-1", "instrumental")][0]
        assert len(score.split(".")[1]) == 3 and 0 <= float(score) <= 1
        assert {"model": "mtt-musicnn-1", "label": "techno"} in [
            {"model": s["model"], "label": s["label"]} for s in result["scores"]
        ]
        assert tagfiles.read_moods(path) == stored[mood_set_key("regular")]
        assert audio_stream_hash(path) == hashes[path]


def test_a_tagged_file_is_skipped_until_forced(make_audio):
    song = make_audio("flac")
    assert run_tag(str(song))[0][0]["status"] == "tagged"
    before = song.read_bytes()
    skipped = run_tag(str(song))[0][0]
    assert skipped["status"] == "skipped" and "already tagged" in skipped["error"]
    assert song.read_bytes() == before
    assert run_tag(str(song), "--force")[0][0]["status"] == "tagged"


def test_dry_run_shows_the_tags_and_writes_nothing(make_audio):
    song = make_audio("mp3")
    before = song.read_bytes()
    out = StringIO()
    call_command("tag", str(song), "--dry-run", stdout=out, stderr=StringIO())
    assert song.read_bytes() == before
    assert f"would tag: {song}" in out.getvalue()
    assert f"{mood_set_key('regular')} = " in out.getvalue()


def test_one_bad_file_is_reported_and_the_run_goes_on(make_audio, tmp_path):
    good = make_audio("ogg")
    text = tmp_path / "notes.mp3"
    text.write_text("this is not music")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp3"
    truncated.write_bytes(make_audio("mp3", name="whole").read_bytes()[:2048])
    (tmp_path / "whole.mp3").unlink()
    locked = make_audio("m4a", name="locked")
    locked.chmod(0o444)
    missing = tmp_path / "gone.mp3"
    bad = [text, empty, truncated, locked]
    before = {p: p.read_bytes() for p in bad}
    results, err = run_tag(str(tmp_path), str(missing))
    by_path = {Path(r["path"]): r for r in results}
    assert by_path[good]["status"] == "tagged"
    assert by_path[missing] == {**by_path[missing], "status": "error", "error": "no such file"}
    assert "not a supported audio file" in by_path[text]["error"]
    assert by_path[empty]["status"] == "error" and by_path[empty]["error"]
    assert by_path[truncated]["status"] in {"error", "skipped"} and by_path[truncated]["error"]
    assert "read-only" in by_path[locked]["error"]
    assert "5 of 6 files failed" in err or "4 of 6 files failed" in err
    assert {p: p.read_bytes() for p in bad} == before


def test_the_exit_code_says_a_file_failed(tmp_path):
    (tmp_path / "bad.mp3").write_text("not music")
    proc = subprocess.run(
        [sys.executable, "manage.py", "tag", "--json", str(tmp_path)],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        env={"DJANGO_SETTINGS_MODULE": "nomarr_site.test_settings", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 1
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["status"] == "error" and line["path"] == str(tmp_path / "bad.mp3")
    assert set(line) >= {"path", "status", "error", "scores", "tags"}


def test_show_tags_prints_what_is_in_the_file(make_audio):
    song = make_audio("opus")
    run_tag(str(song))
    out = StringIO()
    call_command("show_tags", str(song), stdout=out)
    text = out.getvalue()
    assert f"{version_key()} = nomarr1-" in text
    assert f"{score_key('mood_happy-msd-musicnn-1', 'happy')} = 0." in text


def test_show_tags_refuses_a_file_that_is_not_audio(tmp_path):
    junk = tmp_path / "junk.flac"
    junk.write_text("nope")
    with pytest.raises(CommandError, match="not a supported audio file"):
        call_command("show_tags", str(junk), stdout=StringIO())
