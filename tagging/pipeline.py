"""From an audio file to the scores, tiers, mood sets and tags Nomarr writes.

The expensive part is the backbones (a musicnn pass costs ~2.8 GFLOP per 3 s
patch), so each file is decoded once, the musicnn mel frontend runs once and is
shared by every musicnn backbone, each backbone runs once in large batches for
all its outputs, and every head runs on that backbone's embeddings.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from tagging import runtime, writers
from tagging.catalog import Backbone, Catalog, Head, get_catalog, is_negation

log = logging.getLogger(__name__)

MUSICNN_SAMPLE_RATE = 16000
MUSICNN_FRAME, MUSICNN_HOP, MUSICNN_PATCH = 512, 256, 187

# The original Nomarr's tier cascade on p (the label's score) and q (its opposite):
# (tier, minimum p, minimum p/q, minimum p-q), strongest first.
TIERS = (
    ("high", 0.80, 1.20, 0.15),
    ("medium", 0.75, 1.10, 0.08),
    ("low", 0.60, 1.02, 0.03),
)
MOOD_SETS = {"strict": {"high"}, "regular": {"high", "medium"}, "loose": {"high", "medium", "low"}}
# Words that cannot both describe one track: when both make a set, both leave it.
CONTRADICTIONS = (("happy", "sad"), ("aggressive", "relaxed"), ("acoustic", "electronic"))
SCORE_FORMAT = "{:.3f}"
DECODE_TIMEOUT = 600


class AnalysisError(Exception):
    """The file cannot be analysed (missing, not audio, undecodable)."""


class TooShort(AnalysisError):
    """The track is shorter than NOMARR_MIN_DURATION; it is skipped, not failed."""


@dataclass
class LabelScore:
    model: str
    label: str
    score: float
    tier: str | None = None

    def as_dict(self) -> dict:
        return {"model": self.model, "label": self.label, "score": self.score, "tier": self.tier}


@dataclass
class Analysis:
    """What Nomarr heard in one file, and the tags that say it."""

    duration: float
    scores: list[LabelScore]
    tags: dict[str, list[str]] = field(default_factory=dict)
    moods: list[str] = field(default_factory=list)


def tier(p: float, q: float) -> str:
    """high, medium, low or none for a two-class score p against its opposite q."""
    for name, min_p, min_ratio, min_margin in TIERS:
        ratio = p / q if q > 0 else float("inf")
        if p >= min_p and ratio >= min_ratio and p - q >= min_margin:
            return name
    return "none"


def slug(text: str) -> str:
    """A lowercase field-name part: letters, digits and single underscores."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def label_keys(namespace: str, model: str, labels: list[str]) -> list[str]:
    """Stable, unambiguous keys `<ns>_<model>__<label>` for a head's labels.

    `__` never occurs inside a slug, so model and label never run together; two
    labels of one head that slug alike get their output index appended.
    """
    base = f"{namespace}_{slug(model)}__"
    keys: list[str] = []
    for index, label in enumerate(labels):
        key = base + (slug(label) or str(index))
        keys.append(f"{key}_{index}" if key in keys else key)
    return keys


def mood_word(label: str) -> str:
    return label.lower().replace("_", " ").strip()


def decode(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at sample_rate, as Essentia's MonoLoader gives them.

    The ffmpeg program decodes: Essentia's own loader lacks some codecs (Opus) and,
    once it has failed on one file, can crash the process on the next, and a worker
    must survive any file a user has. It mixes down as MonoLoader does ((L+R)/2: by
    default ffmpeg keeps the power, 3 dB louder, which shifts the models' scores) at
    the file's own rate, and Essentia's resampler (libsamplerate, MonoLoader's) takes it
    to sample_rate, so the models hear what Essentia's reference pipeline hears.
    """
    command = [
        "ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
        "-ac", "1", "-af", "aresample=rematrix_maxval=1", "-c:a", "pcm_f32le", "-f", "wav", "-",
    ]  # fmt: skip
    try:
        proc = subprocess.run(command, capture_output=True, timeout=DECODE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AnalysisError(f"decoding took longer than {DECODE_TIMEOUT} s") from exc
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        detail = message[-1] if message else f"ffmpeg exit status {proc.returncode}"
        raise AnalysisError(f"cannot decode audio: {detail}")
    rate, audio = _read_float_wav(proc.stdout)
    if audio.size == 0:
        raise AnalysisError("cannot decode audio: no audio in file")
    if rate != sample_rate:
        es = runtime.essentia_standard()
        audio = es.Resample(inputSampleRate=rate, outputSampleRate=sample_rate, quality=1)(audio)
    return np.asarray(audio, dtype=np.float32)


def _read_float_wav(data: bytes) -> tuple[int, np.ndarray]:
    """The sample rate and samples of the float WAV ffmpeg streams (its sizes unset)."""
    pos, rate = 12, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"fmt ":
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
        elif chunk == b"data":
            body = data[pos + 8 :]
            return rate, np.frombuffer(body[: len(body) // 4 * 4], dtype="<f4")
        pos += 8 + size + (size & 1)
    raise AnalysisError("cannot decode audio: decoder gave no samples")


def musicnn_mel(audio: np.ndarray) -> np.ndarray:
    """The musicnn log-mel frontend [frames, 96], framed exactly as Essentia's
    TensorflowPredictMusiCNN frames it (first frame centred on sample 0), so each
    patch gives the same embedding as Essentia's own algorithm."""
    es = runtime.essentia_standard()
    frontend = es.TensorflowInputMusiCNN()
    frames = es.FrameGenerator(
        audio,
        frameSize=MUSICNN_FRAME,
        hopSize=MUSICNN_HOP,
        startFromZero=False,
        validFrameThresholdRatio=0,
    )
    return np.array([frontend(frame) for frame in frames], dtype=np.float32)


def cut_patches(mel: np.ndarray, hop: int) -> np.ndarray:
    """187-frame patches every `hop` frames; the last patch is aligned to the end so
    the whole track is heard even when the hop does not divide it."""
    if len(mel) < MUSICNN_PATCH:
        reps = -(-MUSICNN_PATCH // max(len(mel), 1))
        mel = np.tile(mel, (reps, 1))[:MUSICNN_PATCH]
    starts = list(range(0, len(mel) - MUSICNN_PATCH + 1, max(hop, 1)))
    if starts[-1] != len(mel) - MUSICNN_PATCH:
        starts.append(len(mel) - MUSICNN_PATCH)
    return np.stack([mel[s : s + MUSICNN_PATCH] for s in starts])


Progress = Callable[[str, int, int], None]


def run_models(
    path: Path,
    catalog: Catalog,
    hop: int,
    batch_size: int,
    min_duration: float,
    progress: Progress | None = None,
) -> tuple[float, list[tuple[Head, np.ndarray]]]:
    """Decode once, run each backbone once and every head on it.

    Returns the duration and, per head, its per-label score averaged over the track.
    progress(model, done, total) is called after each model.
    """
    decoded: dict[int, np.ndarray] = {}

    def audio_at(rate: int) -> np.ndarray:
        if rate not in decoded:
            decoded[rate] = decode(path, rate)
        return decoded[rate]

    audio = audio_at(MUSICNN_SAMPLE_RATE)
    duration = len(audio) / MUSICNN_SAMPLE_RATE
    if duration < min_duration:
        raise TooShort(f"track is {duration:.1f} s, shorter than the {min_duration:g} s minimum")

    total = sum(1 + len(b.heads) for b in catalog.backbones)
    done = 0
    patches = None
    results: list[tuple[Head, np.ndarray]] = []
    for backbone in catalog.backbones:
        if backbone.is_musicnn:
            if patches is None:
                patches = cut_patches(musicnn_mel(audio), hop)
            outputs = backbone.run_patches(patches, batch_size)
        else:
            outputs = backbone.run_audio(audio_at(backbone.sample_rate))
        done += 1
        if progress:
            progress(backbone.stem, done, total)
        results.extend(_run_heads(backbone, outputs))
        done += len(backbone.heads)
        if progress:
            progress(backbone.stem + " heads", done, total)
    return duration, results


def _run_heads(backbone: Backbone, outputs: dict[str, np.ndarray]) -> list[tuple[Head, np.ndarray]]:
    embeddings = outputs[backbone.embeddings_output]
    results = []
    for head in backbone.heads:
        if head.graph is None:
            activations = outputs[backbone.predictions_output]
        else:
            activations = head.predict(embeddings)
        if activations.shape[1] != len(head.labels):
            raise AnalysisError(
                f"{head.stem} gives {activations.shape[1]} outputs but its sidecar lists "
                f"{len(head.labels)} classes"
            )
        results.append((head, activations.mean(axis=0)))
    return results


def describe(
    head_scores: list[tuple[Head, np.ndarray]], namespace: str, fingerprint: str
) -> Analysis:
    """Scores, tiers, mood sets and the tag dict for averaged head outputs."""
    scores: list[LabelScore] = []
    tags: dict[str, list[str]] = {}
    mood_tiers: dict[str, str] = {}
    for head, mean in head_scores:
        keys = label_keys(namespace, head.stem, head.labels)
        for index, (label, key) in enumerate(zip(head.labels, keys, strict=True)):
            p = float(np.clip(mean[index], 0.0, 1.0))
            label_tier = None
            tags[key] = [SCORE_FORMAT.format(p)]
            if head.is_two_class:
                q = float(np.clip(mean[1 - index], 0.0, 1.0))
                label_tier = tier(p, q)
                tags[key + "__tier"] = [label_tier]
                if head.is_mood and not is_negation(label) and label_tier != "none":
                    mood_tiers[mood_word(label)] = label_tier
            scores.append(LabelScore(model=head.stem, label=label, score=p, tier=label_tier))

    sets: dict[str, list[str]] = {}
    for name, allowed in MOOD_SETS.items():
        words = {word for word, word_tier in mood_tiers.items() if word_tier in allowed}
        for a, b in CONTRADICTIONS:
            if a in words and b in words:
                words -= {a, b}
        sets[name] = sorted(words)
        tags[f"{namespace}_mood_{name}"] = sets[name]
    tags[f"{namespace}_version"] = [fingerprint]
    return Analysis(duration=0.0, scores=scores, tags=tags, moods=sets["regular"])


def analyse(
    path: Path, catalog: Catalog | None = None, progress: Progress | None = None
) -> Analysis:
    """Everything Nomarr would write to path, computed with the current settings."""
    catalog = catalog or get_catalog()
    if not catalog.backbones:
        raise AnalysisError("no models are installed: run `python manage.py install_models`")
    duration, head_scores = run_models(
        path,
        catalog,
        hop=settings.NOMARR_PATCH_HOP,
        batch_size=settings.NOMARR_BATCH_SIZE,
        min_duration=settings.NOMARR_MIN_DURATION,
        progress=progress,
    )
    analysis = describe(head_scores, settings.NOMARR_NAMESPACE, catalog.fingerprint)
    analysis.duration = duration
    return analysis


@dataclass
class FileResult:
    """The outcome for one file, as the CLI, the API and jobs report it."""

    path: str
    status: str  # tagged, skipped or error
    error: str = ""
    scores: list[LabelScore] = field(default_factory=list)
    tags: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "status": self.status,
            "error": self.error,
            "scores": [s.as_dict() for s in self.scores],
            "tags": self.tags,
        }


def tag_file(
    path: Path,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> FileResult:
    """Analyse one file and write Nomarr's tags into it, never leaving it damaged.

    Skips a file already tagged with the current model set unless forced, and a
    file too short to judge. Any failure is reported in the result, not raised,
    so one bad file never stops a batch.
    """
    catalog = get_catalog()
    namespace = settings.NOMARR_NAMESPACE
    result = FileResult(path=str(path), status="error")
    try:
        before = path.stat()
        if not path.is_file():
            raise AnalysisError("not a regular file")
        existing = writers.read_tags(path, namespace)
        if not force and existing.get(f"{namespace}_version") == [catalog.fingerprint]:
            result.status, result.error = "skipped", "already tagged with the current models"
            return result
        analysis = analyse(path, catalog, progress)
        result.scores, result.tags = analysis.scores, analysis.tags
        if not dry_run:
            after = path.stat()
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                raise AnalysisError("file changed while it was being analysed; try again")
            moods = analysis.moods if settings.NOMARR_WRITE_MOOD else None
            writers.write_tags(path, analysis.tags, namespace, moods)
        result.status = "tagged"
    except TooShort as exc:
        result.status, result.error = "skipped", str(exc)
    except FileNotFoundError:
        result.error = "no such file"
    except PermissionError as exc:
        result.error = f"permission denied: {exc.strerror or exc}"
    except (AnalysisError, writers.TagWriteError) as exc:
        result.error = str(exc)
    return result


AUDIO_EXTENSIONS = frozenset(
    {".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".wav", ".aif", ".aiff"}
)


def audio_files(paths: list[Path]) -> list[Path]:
    """Files named directly, plus every audio file under the folders named, in order.

    A named file is kept whatever its extension (the user asked for it, and a bad one
    gets its own error); a missing one is kept too, so it is reported."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix.lower() in AUDIO_EXTENSIONS
                    and p.is_file()
                    and not p.name.startswith(".nomarr-")
                )
            )
        else:
            found.append(path)
    return found
