"""Long tracks: a worker's memory stays flat in the track's length, and a track longer
than NOMARR_MAX_DURATION is skipped with the reason, before it is decoded."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from tagging import jobs, runtime
from tagging.models import Job
from tagging.pipeline import (
    MelFrames,
    Patches,
    TooLong,
    analyse,
    decode,
    probe_duration,
    tag_file,
)

SHARED = Path(settings.SHARED_DIR)
JORAM = SHARED / "fixtures/audio/joram-moments_of_clarity-08-solipsism-59-88.mp3"  # 16 kHz mono
GUITAR = SHARED / "fixtures/audio/TRWJAZW128F42760DD_test.mp3"  # 22.05 kHz stereo


def _pieces(audio: np.ndarray, sizes: list[int]):
    """audio cut into pieces of the given sizes in turn (the last one what is left)."""
    start, turn = 0, 0
    while start < len(audio):
        size = sizes[turn % len(sizes)]
        yield audio[start : start + size]
        start, turn = start + size, turn + 1


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
def test_the_resampler_fed_in_pieces_gives_the_samples_essentia_gives_for_the_whole_track(
    rate,
):
    es = runtime.essentia_standard()
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(GUITAR), "-ac", "1", "-ar", str(rate),
         "-f", "f32le", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    audio = np.frombuffer(raw, dtype="<f4")
    whole = es.Resample(inputSampleRate=rate, outputSampleRate=16000, quality=1)(audio)

    resample = runtime.Resampler(rate, 16000)
    streamed = [resample(piece) for piece in _pieces(audio, [1, 4093, 7, 100_003, 512])]
    streamed.append(resample(audio[:0], last=True))
    streamed = np.concatenate(streamed)

    assert len(streamed) == len(whole)
    assert np.abs(streamed - whole).max() < 1e-4


def test_the_mel_frames_and_patches_of_pieces_are_those_of_the_whole_track():
    es = runtime.essentia_standard()
    audio = decode(JORAM, 16000)
    frontend = es.TensorflowInputMusiCNN()
    frames = es.FrameGenerator(
        audio, frameSize=512, hopSize=256, startFromZero=False, validFrameThresholdRatio=0
    )
    whole = np.array([frontend(frame) for frame in frames])

    mel = MelFrames()
    streamed = [mel.feed(piece) for piece in _pieces(audio, [1000, 1, 255, 70_001, 256])]
    streamed = np.concatenate([*streamed, mel.feed(audio[:0], last=True)])
    assert streamed.shape == whole.shape and np.array_equal(streamed, whole)

    for hop in (93, 187, 400):
        patches = Patches(hop)
        got = [p for piece in _pieces(whole, [50, 1, 333]) for p in patches.feed(piece)]
        got += patches.feed(whole[:0], last=True)
        starts = [*range(0, len(whole) - 187 + 1, hop)]
        starts += [len(whole) - 187] if starts[-1] != len(whole) - 187 else []
        assert len(got) == len(starts) == patches.count
        assert all(np.array_equal(p, whole[s : s + 187]) for p, s in zip(got, starts, strict=True))


CHILD = """
import json, os, sys
from pathlib import Path
import django
django.setup()
from tagging.catalog import get_catalog
from tagging.pipeline import analyse

def rss_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])

catalog = get_catalog()
analyse(Path(sys.argv[1]), catalog)  # loads and warms every model
loaded = rss_kb("VmRSS")
# Reset the peak to now, so a transient of loading or warming up is not counted.
Path("/proc/self/clear_refs").write_text("5")
analysis = analyse(Path(sys.argv[2]), catalog)
peak = rss_kb("VmHWM")  # KiB
print(json.dumps({"loaded": loaded, "peak": peak, "duration": analysis.duration,
                  "patches": analysis.patches}))
"""


def test_a_20_minute_track_is_analysed_in_memory_that_does_not_grow_with_it(tmp_path):
    """Held whole, as before, 20 minutes at 22.05 kHz took ~300 MB more than the
    models; streamed, the worker needs a few MB more than for a 30-s clip."""
    listing = tmp_path / "clips.txt"
    listing.write_text(f"file '{GUITAR}'\n" * 40)
    track = tmp_path / "twenty-minutes.mp3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-c", "copy", str(track)],
        check=True,
    )  # fmt: skip
    hop = 3740  # a patch a minute: the memory is the same at any hop, the test quicker
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nomarr_site.test_settings",
        "NOMARR_PATCH_HOP": str(hop),
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(JORAM), str(track)],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    heard = json.loads(proc.stdout.strip().splitlines()[-1])

    loaded_mb, peak_mb = heard["loaded"] / 1024, heard["peak"] / 1024
    assert peak_mb - loaded_mb < 150, f"{loaded_mb:.0f} MB with the models, peak {peak_mb:.0f} MB"
    assert peak_mb < 1000
    # The whole track was heard: its length, and a patch every hop with the last
    # one aligned to the end.
    assert heard["duration"] == pytest.approx(probe_duration(track), abs=0.2)
    assert 1195 < heard["duration"] < 1210
    frames = math.ceil(heard["duration"] * 16000 / 256) + 1
    regular = len(range(0, frames - 187 + 1, hop))
    assert heard["patches"] == regular + ((frames - 187) % hop != 0)


def test_a_track_longer_than_the_maximum_is_skipped_before_it_is_decoded(make_audio, settings):
    settings.NOMARR_MAX_DURATION = 20
    path = make_audio("flac")
    before = path.read_bytes()
    models_run: list[str] = []

    result = tag_file(path, progress=lambda what, done, total: models_run.append(what))

    assert result.status == "skipped"
    assert result.error == (
        "track is 29 s (0:00:29), longer than the 20 s (0:00:20) maximum (NOMARR_MAX_DURATION)"
    )
    assert models_run == [] and result.tags == {}
    assert path.read_bytes() == before


def test_a_track_whose_header_gives_no_length_is_stopped_past_the_maximum(tmp_path, settings):
    """A FLAC may say "length unknown"; the decoder then stops at the maximum."""
    settings.NOMARR_MAX_DURATION = 20
    path = tmp_path / "unknown-length.flac"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=40", "-c:a", "flac", str(path)],
        check=True,
    )
    data = bytearray(path.read_bytes())
    data[21] &= 0xF0  # STREAMINFO's 36-bit total sample count: 0 means unknown
    data[22:26] = bytes(4)
    path.write_bytes(bytes(data))
    assert probe_duration(path) is None

    with pytest.raises(TooLong, match=r"^track is longer than the 20 s \(0:00:20\) maximum"):
        analyse(path)


@pytest.mark.django_db
def test_a_job_for_an_over_long_track_is_done_with_the_reason_and_never_retried(
    library, make_audio, settings
):
    settings.NOMARR_MAX_DURATION = 20
    path = make_audio("mp3").rename(library / "long.mp3")
    job, _ = jobs.queue_file(path)

    assert jobs.run(job.pk) == "done"

    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.attempts == 1 and job.error == ""
    assert job.result["status"] == "skipped"
    assert "longer than the 20 s (0:00:20) maximum (NOMARR_MAX_DURATION)" in job.result["reason"]
    assert jobs.run(job.pk) == "not pending"  # nothing is left to time out or retry
