"""`manage.py retier` and the retier button: tiers and mood sets re-decided from the
stored scores, only the files that change rewritten, no model run, resumable.

Two real clips (12 s of each fixture recording) are tagged once per module by the real
pipeline with the real models; each test copies them into its library and refreshes
their rows, as a job does. Tiers are then decided on calibrated scores (a calibration
of those two files spreads every label over [0, 1]), and the files must change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import mutagen
import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from library import calibration, metadata, retier, retier_writes
from library.models import LibraryFile, RetierRun, TagValue
from library.rows import refresh_file
from tagging import keys, pipeline, tagfiles, writers
from tagging.catalog import get_catalog
from tagging.tests.browser import SHOTS

pytestmark = pytest.mark.django_db

CLIPS = {
    "joram.flac": ("joram-moments_of_clarity-08-solipsism-59-88.mp3", ["-c:a", "flac"]),
    "msd.mp3": ("TRWJAZW128F42760DD_test.mp3", ["-c:a", "libmp3lame", "-q:a", "5"]),
}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory) -> dict[str, Path]:
    """The two clips, tagged by the real models once (raw scores), read-only for tests."""
    if "mood_happy-msd-musicnn-1" not in {head.stem for head in get_catalog().heads}:
        pytest.skip("the Essentia fixture heads are needed")
    folder = tmp_path_factory.mktemp("retier-clips")
    made = {}
    for name, (source, encoder) in CLIPS.items():
        target = folder / name
        subprocess.run(
            [
                "ffmpeg", "-v", "error", "-nostdin", "-ss", "3", "-t", "12",
                "-i", str(Path(settings.SHARED_DIR) / "fixtures" / "audio" / source),
                "-metadata", "artist=Someone", "-metadata", "custom_foreign=keep me",
                *encoder, str(target),
            ],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        result = pipeline.tag_file(target)
        assert result.status == "tagged", result.error
        made[name] = target
    return made


@pytest.fixture
def files(tagged, library, root_row) -> dict[str, Path]:
    """The tagged clips copied into the library, their rows refreshed as a job does."""
    copies = {}
    for name, source in tagged.items():
        target = library / name
        shutil.copyfile(source, target)
        target.chmod(0o644)
        assert refresh_file(target) is not None
        copies[name] = target
    return copies


def file_tags(path: Path) -> dict[str, list[str]]:
    """Every tag in the file as mutagen reads it: Vorbis names lowercased, ID3 TXXX by
    description, MOOD as `mood`."""
    audio = mutagen.File(path)
    if path.suffix == ".mp3":
        found = {f.desc.lower(): [str(t) for t in f.text] for f in audio.tags.getall("TXXX")}
        found["mood"] = [str(t) for f in audio.tags.getall("TMOO") for t in f.text]
        return found
    found = {}
    for name, value in audio.tags:
        found.setdefault(name.lower(), []).append(value)
    return found


def kind(key: str) -> str:
    parsed = keys.parse(key)
    return parsed.kind if parsed else ""


def tiers(tags: dict[str, list[str]]) -> dict[str, list[str]]:
    """The tier keys and the mood sets."""
    return {k: v for k, v in tags.items() if kind(k) in ("tier", "mood_set")}


def audio_of(path: Path) -> bytes:
    """The decoded audio, to show it is the same after the tags changed."""
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "s16le", "-"],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip


def expected_tiers(path: Path) -> dict[str, list[str]]:
    """What the rule gives for the scores in the file, with the calibration in use."""
    tags = file_tags(path)
    scores = {k: float(v[0]) for k, v in tags.items() if kind(k) == "score"}
    decision = pipeline.decide(
        get_catalog().heads, scores, keys.namespace(), pipeline.tier_calibration()
    )
    return decision.tags(keys.namespace())


def assert_rows_as_read(path: Path) -> None:
    """The file's rows are exactly what a full read of it gives, digest and stat too."""
    st = path.stat()
    info = metadata.read_file(str(path), st, keys.namespace())
    row = LibraryFile.objects.get(path=str(path))
    read: dict[str, list[str]] = {}
    for key, value in info.tags:
        read.setdefault(key, []).append(value)
    assert row.tag_dict() == read
    assert (row.size, row.mtime_ns, row.ctime_ns) == (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    assert row.tags_digest == info.tags_digest


def test_with_the_rules_unchanged_retier_rewrites_nothing(files, capsys):
    before = {name: (path.stat().st_mtime_ns, file_tags(path)) for name, path in files.items()}
    runs = pipeline.Counters.model_runs
    call_command("retier")
    run = RetierRun.objects.get()
    assert (run.status, run.checked, run.changed, run.unchanged) == ("done", 2, 0, 2)
    for name, path in files.items():
        assert (path.stat().st_mtime_ns, file_tags(path)) == before[name]
    assert pipeline.Counters.model_runs == runs
    shown = capsys.readouterr()
    assert "retier #" in shown.out and "] 2/2 checked, 0 rewritten" in shown.err  # the bar


def test_calibrated_scores_change_the_tiers_in_the_files_without_a_model_run(
    files, settings, audio_stream_hash, monkeypatch, caplog
):
    monkeypatch.setattr(retier, "PROCESSES_FROM", 0)  # the writer processes of a large run
    before = {name: file_tags(path) for name, path in files.items()}
    audio = {name: audio_of(path) for name, path in files.items()}
    packets = {name: audio_stream_hash(path) for name, path in files.items()}
    settings.NOMARR_TIER_SCORES = "calibrated"
    calibration.calibrate()
    runs = pipeline.Counters.model_runs

    with caplog.at_level("INFO", logger="library.retier"):
        call_command("retier")

    assert pipeline.Counters.model_runs == runs
    assert "written in 4 processes" in caplog.text
    run = RetierRun.objects.get()
    assert run.status == "done" and run.tier_scores == "calibrated"
    assert run.changed >= 1 and run.changed + run.unchanged == 2
    changed = 0
    for name, path in files.items():
        after = file_tags(path)
        wanted = expected_tiers(path)
        assert tiers(after) == {k: v for k, v in wanted.items() if v}
        if tiers(after) != tiers(before[name]):
            changed += 1
        # The scores, the version and the user's tags stay; the audio is the same.
        untouched = {k: v for k, v in before[name].items() if k not in tiers(before[name])}
        assert {k: after.get(k) for k in untouched if k != "mood"} == {
            k: v for k, v in untouched.items() if k != "mood"
        }
        regular = wanted[keys.mood_set_key("regular")]
        assert sorted(after.get("mood", [])) == regular
        assert audio_of(path) == audio[name] and audio_stream_hash(path) == packets[name]
        # The library rows follow the file.
        row = LibraryFile.objects.get(path=str(path))
        assert row.mtime_ns == path.stat().st_mtime_ns
        assert row.tag_dict().get(keys.mood_set_key("regular"), []) == regular
    assert changed == run.changed

    # Once applied, a second run finds nothing to change and touches nothing.
    mtimes = {path: path.stat().st_mtime_ns for path in files.values()}
    call_command("retier")
    assert RetierRun.objects.first().changed == 0
    assert {path: path.stat().st_mtime_ns for path in files.values()} == mtimes


def test_after_a_retier_the_rows_are_what_reading_the_files_gives(files, settings, scan):
    """The rows follow from the values written, without reading the files again: they
    must be exactly what a full read of each file gives, digest and stat included, so
    that a full scan re-reads the files and keeps every TagValue row as it is."""
    settings.NOMARR_TIER_SCORES = "calibrated"
    calibration.calibrate()
    run = retier.carry_out(retier.start())
    assert run.changed == 2
    for path in files.values():
        assert_rows_as_read(path)
    ids = sorted(TagValue.objects.values_list("id", flat=True))
    assert scan().read == 0  # the stat matches: nothing to read
    full = scan(full=True)
    assert full.read == 2
    assert sorted(TagValue.objects.values_list("id", flat=True)) == ids  # same digest: kept


def test_a_new_file_is_tagged_by_the_same_rule_as_retier(files, tagged, settings, library):
    settings.NOMARR_TIER_SCORES = "calibrated"
    calibration.calibrate()
    fresh = library / "fresh.flac"
    shutil.copyfile(tagged["joram.flac"], fresh)
    result = pipeline.tag_file(fresh, force=True)
    assert result.status == "tagged"
    assert tiers(file_tags(fresh)) == {k: v for k, v in expected_tiers(fresh).items() if v}
    refresh_file(fresh)
    mtime = fresh.stat().st_mtime_ns
    retier.carry_out(retier.start())
    assert fresh.stat().st_mtime_ns == mtime  # the pipeline wrote what retier decides


def test_an_interrupted_retier_carries_on_after_its_cursor(files, settings, monkeypatch):
    settings.NOMARR_TIER_SCORES = "calibrated"
    calibration.calibrate()
    monkeypatch.setattr(retier, "BATCH", 1)  # one file per batch

    def stop(run):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        retier.carry_out(retier.start(), on_progress=stop)
    run = RetierRun.objects.get()
    first = LibraryFile.objects.order_by("pk").first()
    assert (run.status, run.checked, run.cursor) == ("interrupted", 1, first.pk)
    # The second file's write had started with the first batch's save (the batches
    # overlap): it is written, and its rows say so, though the cursor is not past it.
    for path in files.values():
        assert_rows_as_read(path)

    resumed = retier.start()
    assert resumed.pk == run.pk
    done = retier.carry_out(resumed)
    assert (done.status, done.checked, done.total) == ("done", 2, 2)
    assert (done.changed, done.unchanged, done.errors) == (1, 1, 0)  # found as decided
    for path in files.values():
        assert tiers(file_tags(path)) == {k: v for k, v in expected_tiers(path).items() if v}

    # Another rule (raw scores again) does not carry on an interrupted run: it starts over.
    with pytest.raises(KeyboardInterrupt):
        retier.carry_out(retier.start(), on_progress=stop)
    settings.NOMARR_TIER_SCORES = "raw"
    again = retier.start()
    assert again.pk != run.pk and again.cursor == 0
    assert RetierRun.objects.filter(status="cancelled").count() == 1


def test_a_second_retier_is_refused_while_one_runs(files):
    retier.start()
    with pytest.raises(retier.RetierRefused, match="is running"):
        retier.start()


def test_a_file_that_cannot_be_written_is_reported_and_the_rest_done(files, settings):
    settings.NOMARR_TIER_SCORES = "calibrated"
    calibration.calibrate()
    locked = files["msd.mp3"]
    content = locked.read_bytes()
    locked.chmod(0o444)
    run = retier.carry_out(retier.start())
    assert (run.status, run.changed, run.errors) == ("done", 1, 1)
    assert run.problems == [{"path": str(locked), "problem": f"file is read-only: {locked}"}]
    assert locked.read_bytes() == content


def test_a_tier_no_loaded_head_decides_is_kept(files, settings):
    song = files["joram.flac"]
    ours = tagfiles.read_tags(song, keys.namespace())
    taught = keys.tier_key("taught_workout", "workout")  # a key of no loaded head
    writers.write_tags(song, {**ours, taught: ["high"]}, keys.namespace(), None)
    refresh_file(song)
    settings.NOMARR_TIER_SCORES = "calibrated"
    calibration.calibrate()
    run = retier.carry_out(retier.start())
    assert run.changed == 2
    assert file_tags(song)[taught] == ["high"]


def test_a_file_changed_since_the_library_read_it_is_left_for_the_next_scan(files, settings):
    settings.NOMARR_TIER_SCORES = "calibrated"
    calibration.calibrate()
    edited = files["joram.flac"]
    st = edited.stat()
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # another program wrote it
    content = edited.read_bytes()
    run = retier.carry_out(retier.start())
    assert run.problems == [{"path": str(edited), "problem": retier_writes.CHANGED}]
    assert (run.changed, run.errors) == (1, 1)
    assert edited.read_bytes() == content


def test_staff_start_a_retier_from_the_page_and_see_its_progress(files, admin_client, settings):
    settings.NOMARR_TIER_SCORES = "calibrated"
    calibration.calibrate()
    url = reverse("library:calibration-action")
    response = admin_client.post(url, {"action": "retier"})
    assert response.status_code == 302
    run = RetierRun.objects.get()
    assert run.status == "running" and run.worker == ""  # handed to the workers
    page = admin_client.get(reverse("library:calibration")).content.decode()
    assert "waiting for a worker" in page and 'hx-trigger="every 1s"' in page

    assert retier.run_task(run.pk).endswith("done")  # what a worker runs
    progress = admin_client.get(reverse("library:retier-progress")).content.decode()
    assert "<b>done</b>" in progress and "2 of 2 files checked" in progress
    assert "every 1s" not in progress
    assert retier.run_task(run.pk).startswith("not waiting")  # a second message: nothing


def test_outsiders_cannot_start_a_retier(files, client, django_user_model):
    url = reverse("library:calibration-action")
    response = client.post(url, {"action": "retier"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    person = django_user_model.objects.create_user("plain", password="x" * 20)
    client.force_login(person)
    assert client.post(url, {"action": "retier"}).status_code == 403
    assert client.post(url, {"action": "calibrate"}).status_code == 403
    assert not RetierRun.objects.exists()
    page = client.get(reverse("library:calibration"))
    assert page.status_code == 200 and 'value="retier"' not in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_staff_retier_from_the_page_on_a_phone_and_watch_it_finish(
    files,
    live_server,
    browser_page,
    django_user_model,
    settings,
):
    settings.NOMARR_TIER_SCORES = "calibrated"
    calibration.calibrate()
    django_user_model.objects.create_user("ann", password="a long secret phrase", is_staff=True)
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + "/library/calibration/")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "a long secret phrase")
    page.click("main form button[type=submit]")
    page.wait_for_url(live_server.url + "/library/calibration/")
    assert "happy" in page.inner_text("#head-labels")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways page

    page.click("button[value=retier]")
    page.wait_for_selector("#retier-status:has-text('waiting for a worker')")
    run = RetierRun.objects.get()
    assert retier.run_task(run.pk).endswith("done")  # what a worker does with it
    # The region polls itself: the run's end shows up without a reload.
    page.wait_for_selector("#retier-status:has-text('done')", timeout=10_000)
    assert "2 of 2 files checked" in page.inner_text("#retier-counts")
    page.screenshot(path=SHOTS / "calibration.png", full_page=True)
