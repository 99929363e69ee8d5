"""Random bytes and random paths, thrown at `tag_file` and at the Lidarr webhook.

Properties, each checked on every example hypothesis makes up:

* `tag_file` never raises, whatever it is given: random bytes under an audio name,
  a real file truncated or overwritten somewhere, or a path that is odd (NUL, a lone
  surrogate, `..`, a name over 255 bytes, a symlink loop, a dangling link, a folder
  or a FIFO with an audio name). A failure is an `error` result with a reason.
* It never leaves a file half-written: a file it did not tag is byte-for-byte as it
  was, a file it tagged has the current model set's version tag and the same audio
  packets (where ffmpeg read them cleanly before), and no `.nomarr-*` temporary file
  stays behind.
* The webhook answers every payload, however odd, with a JSON 2xx or 4xx, never a
  5xx; and it never queues a file outside the library: through a symlink out, `..`,
  a root's look-alike sibling (`music` and `musicals`) or a symlink loop.

The models are real (the test settings' model set) and the files are temporary
copies. The examples are bounded and derandomized, so a run is repeatable and
short; NOMARR_FUZZ_SCALE multiplies them for a deeper run by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework_api_key.models import APIKey

from tagging import keys
from tagging.catalog import get_catalog
from tagging.models import Job
from tagging.pipeline import FileResult, tag_file
from tagging.tagfiles import AUDIO_EXTENSIONS, TEMP_PREFIX, read_tags

pytestmark = pytest.mark.fuzz

# NOMARR_FUZZ_SCALE=N: N times the examples, drawn at random (by hand, for a deeper look);
# the suite's run is the same every time.
SCALE = int(os.environ.get("NOMARR_FUZZ_SCALE", "0") or 0) or 1
EXTENSIONS = sorted(AUDIO_EXTENSIONS)
# What a container's first bytes look like, so random data gets past the first check.
MAGIC = [b"", b"ID3\x04\x00\x00", b"fLaC", b"OggS\x00\x02", b"RIFF\x24\x00\x00\x00WAVEfmt "]
MAGIC += [b"FORM\x00\x00\x00\x00AIFFCOMM", b"\x00\x00\x00\x20ftypM4A ", b"\xff\xfb\x90\x64"]


# Text as clients send it, and as they should not: lone surrogates (valid JSON escapes,
# no valid file name), NUL, names past the 255-byte limit.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=12),
    st.sampled_from(["\ud800", "\udfff", "\x00", "a\x00b", "\u00e9" * 200, "x" * 300]),
)


def fuzz_settings(examples: int, **extra) -> settings:
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        database=None,
        derandomize=SCALE == 1,
        # No shrinking: it reruns a failure hundreds of times (minutes, with real
        # models); the first failing example is reported as it was found.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        **extra,
    )


def call_tag_file(path: Path) -> FileResult:
    """tag_file(path), failing the test if it raises or hangs (a FIFO read, say)."""
    outcome: list = []

    def target() -> None:
        try:
            outcome.append(tag_file(path))
        except BaseException as exc:  # reported below, with the path
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(120)
    assert outcome, f"tag_file({path!r}) did not return within 120 s"
    if isinstance(outcome[0], BaseException):
        raise AssertionError(f"tag_file({path!r}) raised {outcome[0]!r}") from outcome[0]
    return outcome[0]


def temps_in(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(TEMP_PREFIX)]


def packets(path: Path) -> tuple[str, bool]:
    """ffmpeg's hash of the audio packets, and whether ffmpeg read them cleanly (no
    CRC mismatch, no lost sync, no error)."""
    done = subprocess.run(
        ["ffmpeg", "-v", "warning", "-nostdin", "-i", str(path),
         "-map", "0:a", "-c", "copy", "-f", "hash", "-hash", "sha256", "-"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip(), done.returncode == 0 and not done.stderr.strip()


@pytest.fixture(scope="module")
def catalog():
    """The real model set, loaded once for the module."""
    return get_catalog()


# --- random bytes -------------------------------------------------------------------


@fuzz_settings(40)
@given(
    head=st.sampled_from(MAGIC),
    body=st.binary(max_size=4096),
    extension=st.sampled_from(EXTENSIONS),
)
def test_random_bytes_under_an_audio_name_are_an_error_and_stay_untouched(
    catalog, head, body, extension
):
    data = head + body
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"random{extension}"
        path.write_bytes(data)
        result = call_tag_file(path)
        assert result.status in {"error", "skipped"}, result
        assert result.error, result
        assert path.read_bytes() == data
        assert temps_in(Path(folder)) == []


@pytest.fixture(scope="module")
def short_sources(audio_sources, tmp_path_factory) -> dict[str, Path]:
    """Each format as a real 8-s clip: long enough to be analysed, quick to analyse."""
    folder = tmp_path_factory.mktemp("short-sources")
    made = {}
    for fmt, source in audio_sources.items():
        target = folder / f"clip.{fmt}"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(source),
             "-map", "0:a", "-c", "copy", "-t", "8", str(target)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        made[fmt] = target
    return made


@st.composite
def damage(draw, size: int) -> list[tuple[str, int, bytes]]:
    """A few cuts and overwrites: ("truncate", at, b"") or ("write", at, data)."""
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(0, size - 1)))
        if draw(st.booleans()):
            steps.append(("truncate", at, b""))
        else:
            steps.append(("write", at, draw(st.binary(min_size=1, max_size=64))))
    return steps


@fuzz_settings(10)
@given(fmt=st.sampled_from(["mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"]), data=st.data())
def test_a_damaged_real_file_is_tagged_whole_or_left_as_it_was(catalog, short_sources, fmt, data):
    source = short_sources[fmt]
    steps = data.draw(damage(source.stat().st_size), label="damage")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"damaged.{fmt}"
        shutil.copyfile(source, path)
        with path.open("r+b") as handle:
            for kind, at, chunk in steps:
                if kind == "truncate":
                    handle.truncate(at)
                else:
                    handle.seek(min(at, os.fstat(handle.fileno()).st_size))
                    handle.write(chunk)
        before = path.read_bytes()
        audio_before, clean = packets(path)

        result = call_tag_file(path)

        assert result.status in {"tagged", "skipped", "error"}, result
        assert temps_in(Path(folder)) == []
        if result.status == "tagged":
            # Audio ffmpeg reads cleanly keeps every packet. (Audio it already finds
            # damaged may read differently once the tags are rewritten: mutagen gives a
            # damaged Ogg page a fresh CRC.)
            if clean:
                assert packets(path) == (audio_before, True)
            version = read_tags(path, keys.namespace())[keys.version_key()]
            assert version == [catalog.fingerprint]
        else:
            assert result.error, result
            assert path.read_bytes() == before


# --- random paths -------------------------------------------------------------------


@pytest.fixture(scope="module")
def odd_tree(tmp_path_factory, short_sources) -> Path:
    """A folder of things with audio names that are not audio to tag, and one too short."""
    root = tmp_path_factory.mktemp("odd-tree")
    (root / "random.mp3").write_bytes(os.urandom(2048))
    (root / "empty.flac").write_bytes(b"")
    (root / "folder.ogg").mkdir()
    (root / "folder.ogg" / "inner.mp3").write_bytes(b"ID3 not really")
    (root / "loop.mp3").symlink_to(root / "loop.mp3")
    (root / "dangling.opus").symlink_to(root / "missing.opus")
    os.mkfifo(root / "pipe.wav")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(short_sources["flac"]),
         "-t", "2", "-c:a", "flac", str(root / "short.flac")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and p.name != "pipe.wav"
    }


NAMES = ["random.mp3", "empty.flac", "folder.ogg", "loop.mp3", "dangling.opus", "pipe.wav"]
NAMES += ["short.flac", "nothing.mp3", "..", ".", "", "x" * 300 + ".mp3", "folder.ogg/inner.mp3"]
SEGMENT = st.one_of(st.sampled_from(NAMES), HOSTILE_TEXT)


@fuzz_settings(60)
@given(
    segments=st.lists(SEGMENT, max_size=4),
    rooted=st.booleans(),
    wild=st.one_of(st.none(), HOSTILE_TEXT),
)
def test_an_odd_path_is_an_error_result_never_an_exception(
    catalog, odd_tree, segments, rooted, wild
):
    before = snapshot(odd_tree)
    if wild is not None:
        raw = wild
    else:
        raw = os.path.join(str(odd_tree) if rooted else "", *segments) if segments else "."
    result = call_tag_file(Path(raw))
    assert result.status in {"error", "skipped"}, result
    assert result.error, result
    assert snapshot(odd_tree) == before
    assert temps_in(odd_tree) == []


# --- the webhook --------------------------------------------------------------------


@pytest.fixture
def webhook_world(make_library, make_audio, private_cache, tmp_path):
    """A library with a real file, and every way out of it, made from real files."""
    library = make_library("music")
    song = make_audio("flac", name="song")
    inside = library / "Artist" / "song.flac"
    inside.parent.mkdir()
    song.rename(inside)
    outside_dir = tmp_path / "outside"
    outside_dir.mkdir()
    outside = outside_dir / "secret.flac"
    shutil.copyfile(inside, outside)
    lookalike = tmp_path / "musicals" / "show.flac"
    lookalike.parent.mkdir()
    shutil.copyfile(inside, lookalike)
    (library / "Artist" / "link-out.flac").symlink_to(outside)
    (library / "Artist" / "dir-out").symlink_to(outside_dir)
    (library / "Artist" / "loop.flac").symlink_to(library / "Artist" / "loop.flac")
    paths = [
        str(inside),
        str(outside),
        str(lookalike),
        str(library / "Artist" / "link-out.flac"),
        str(library / "Artist" / "dir-out" / "secret.flac"),
        str(library / "Artist" / "loop.flac"),
        str(library / ".." / "outside" / "secret.flac"),
        str(library) + "als/show.flac",
        str(library / "Artist"),
        str(library / "missing.flac"),
        str(library / ("x" * 300 + ".flac")),
        "relative/song.flac",
    ]
    return {"library": library, "outside": [outside, lookalike], "paths": paths}


def json_values() -> st.SearchStrategy:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        HOSTILE_TEXT,
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )


@st.composite
def webhook_payloads(draw, paths: list[str]):
    """Mostly Lidarr-shaped payloads whose paths and fields go wrong in every way."""
    path = st.one_of(st.sampled_from(paths), HOSTILE_TEXT, json_values())
    track = st.fixed_dictionaries(
        {"path": path},
        optional={"previousPath": path, "id": json_values(), "quality": json_values()},
    )
    tracks = st.one_of(st.lists(track, max_size=5), json_values())
    event = st.one_of(
        st.sampled_from(["Download", "Retag", "Rename", "Test", "download", " Rename ", ""]),
        HOSTILE_TEXT,
        json_values(),
    )
    payload = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "eventType": event,
                "trackFiles": tracks,
                "trackFile": st.one_of(track, json_values()),
                "renamedTrackFiles": tracks,
                "isUpgrade": json_values(),
            },
        )
    )
    return draw(st.one_of(st.just(payload), json_values()))


def assert_nothing_outside_is_queued(world) -> None:
    library = world["library"]
    for path in Job.objects.values_list("path", flat=True):
        assert Path(path).resolve().is_relative_to(library), f"queued outside: {path}"
    for outside in world["outside"]:
        assert not Job.objects.filter(path=str(outside)).exists()


@pytest.mark.django_db(transaction=True)
def test_the_webhook_answers_any_payload_without_a_server_error(live_server, webhook_world):
    key = APIKey.objects.create_key(name="fuzz")[1]
    session = requests.Session()
    session.headers["X-Api-Key"] = key
    url = f"{live_server.url}/api/v1/lidarr"
    outside_bytes = [p.read_bytes() for p in webhook_world["outside"]]

    @fuzz_settings(60)
    @given(payload=webhook_payloads(webhook_world["paths"]))
    def payloads(payload) -> None:
        response = session.post(url, json=payload, timeout=30)
        assert response.status_code < 500, (payload, response.text[:500])
        body = response.json()
        if response.status_code >= 400:
            assert body["error"] and body["detail"], body
        else:
            assert isinstance(body["files"], list), body
        assert_nothing_outside_is_queued(webhook_world)

    @fuzz_settings(30)
    @given(
        body=st.one_of(
            st.binary(max_size=512),
            st.text(alphabet=st.characters(exclude_categories=()), max_size=200).map(
                lambda t: t.encode("utf-8", "surrogatepass")
            ),
        ),
        content_type=st.sampled_from(["application/json", "text/plain", "", "application/xml"]),
    )
    def raw_bodies(body, content_type) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        response = session.post(url, data=body, headers=headers, timeout=30)
        assert response.status_code < 500, (body, response.text[:500])
        assert response.headers["Content-Type"].startswith("application/json"), response.text
        assert_nothing_outside_is_queued(webhook_world)

    payloads()
    raw_bodies()
    assert [p.read_bytes() for p in webhook_world["outside"]] == outside_bytes
