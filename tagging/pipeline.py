"""From an audio file to the scores, tiers, mood sets and tags Nomarr writes.

The expensive part is the backbones (a musicnn pass costs ~2.8 GFLOP per 3 s
patch), so each file is decoded once, the musicnn mel frontend runs once and is
shared by every musicnn backbone, each backbone runs once per patch for all its
outputs, and every head runs on that backbone's embeddings.

A worker's memory does not grow with the track: the track streams through in
pieces. ffmpeg's output is read a piece at a time and resampled as it comes
(Essentia's own resampler, kept running across pieces, so the samples are the ones
MonoLoader gives); the mel frames, the patches and the models' outputs follow, a
block of patches at a time; each head's per-patch outputs are summed as they
come, and the mean over the track is all that is kept. A track longer than
NOMARR_MAX_DURATION is skipped on its header's word, before anything is decoded.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
from django.conf import settings

from tagging import keys, runtime, signals, tagfiles, writers
from tagging.catalog import (
    Backbone,
    Catalog,
    Head,
    embedding_version,
    get_catalog,
    is_negation,
)

log = logging.getLogger(__name__)

MUSICNN_SAMPLE_RATE = 16000
MUSICNN_FRAME, MUSICNN_HOP, MUSICNN_PATCH = 512, 256, 187

SCORE_FORMAT = "{:.3f}"
#: Seconds ffmpeg may take to say what a file holds, and then to give each piece.
PROBE_TIMEOUT = 60
DECODE_STALL = 600
#: Bytes of decoded audio read from ffmpeg at a time (about 6 s at 44.1 kHz).
READ_BYTES = 1 << 20
#: Patches gathered before the models run on them (rounded up to whole batches). Small,
#: so the models start on a track's first seconds while the rest is still decoding.
BLOCK_PATCHES = 4
#: Decoded pieces (READ_BYTES each) the decoding thread may run ahead of the models.
AHEAD = 4
#: Seconds a stream started ahead for a file (tag_files, a worker's next job) waits
#: to be taken before it stops itself and its ffmpeg: the file it was for may never
#: come (another worker took that job, it was removed, the queue was paused).
UNTAKEN_LIFE = 60.0
#: Blocks the backbones may still be running while the next block is given to them.
IN_FLIGHT = 2
#: Seconds of audio a backbone that frames audio itself (not musicnn) hears per
#: call: windows of one to two AUDIO_WINDOWs, so a track up to twice that long is
#: heard whole, and a longer one window by window (each framed on its own).
AUDIO_WINDOW = 300.0


#: Bounds per score key ({key: (p5, p95)}) that tiers are decided on (keys.calibrate).
Calibration = Mapping[str, tuple[float, float]]


class Counters:
    """What this process did, counted for the tests and benchmarks that must show a
    thing did not happen (e.g. that `manage.py retier` ran no model)."""

    model_runs = 0  # run_models calls: a track heard by the models


class AnalysisError(Exception):
    """The file cannot be analysed (missing, not audio, undecodable)."""


class Skipped(AnalysisError):
    """Nomarr does not analyse this track; it is skipped, not failed (no retry helps)."""


class TooShort(Skipped):
    """The track is shorter than NOMARR_MIN_DURATION."""


class TooLong(Skipped):
    """The track is longer than NOMARR_MAX_DURATION."""


@dataclass
class LabelScore:
    model: str
    label: str
    score: float
    tier: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "label": self.label, "score": self.score, "tier": self.tier}


@dataclass
class Embedding:
    """A backbone's track-level embedding: the mean and the spread (standard
    deviation) of its per-patch embeddings, and how many patches it heard."""

    mean: np.ndarray
    spread: np.ndarray
    patches: int


@dataclass
class Analysis:
    """What Nomarr heard in one file, and the tags that say it."""

    duration: float
    scores: list[LabelScore]
    tags: dict[str, list[str]] = field(default_factory=dict)
    moods: list[str] = field(default_factory=list)
    patches: int = 0  # musicnn patches each musicnn backbone heard
    embeddings: dict[str, Embedding] = field(default_factory=dict)  # by backbone stem


# --- decoding ----------------------------------------------------------------------


def probe_duration(path: Path) -> float | None:
    """The length in seconds the file's header gives for its first audio stream
    (None when it gives none), read by ffprobe without decoding anything."""
    command = [
        "ffprobe", "-v", "error", "-select_streams", "a:0",
        "-show_entries", "stream=duration:format=duration", "-of", "json", str(path),
    ]  # fmt: skip
    try:
        proc = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AnalysisError(f"reading the header took longer than {PROBE_TIMEOUT} s") from exc
    if proc.returncode != 0:
        raise AnalysisError(f"cannot decode audio: {_last_line(proc.stderr, proc.returncode)}")
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        return None
    streams = info.get("streams") or [{}]
    for value in (streams[0].get("duration"), (info.get("format") or {}).get("duration")):
        try:
            seconds = float(str(value))
        except ValueError:
            continue
        if np.isfinite(seconds) and seconds > 0:
            return seconds
    return None


def _last_line(stderr: bytes, returncode: int) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"ffmpeg exit status {returncode}"


class Decoder:
    """The file's first audio stream as mono float32 pieces at its own rate.

    The ffmpeg program decodes: Essentia's own loader lacks some codecs (Opus) and,
    once it has failed on one file, can crash the process on the next, and a worker
    must survive any file a user has. It mixes down as MonoLoader does ((L+R)/2: by
    default ffmpeg keeps the power, 3 dB louder, which shifts the models' scores) and
    keeps the file's own rate; `runtime.Resampler` takes the pieces to the models'
    rate. ffmpeg writes while it is read, so only one piece is in memory at a time.

    Use as a context manager: leaving it stops ffmpeg, whatever happened.
    """

    def __init__(self, path: Path) -> None:
        command = [
            "ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
            "-map_metadata", "-1", "-ac", "1", "-af", "aresample=rematrix_maxval=1",
            "-c:a", "pcm_f32le", "-f", "wav", "-",
        ]  # fmt: skip
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr)
        self._pending = b""
        self._eof = False
        try:
            self.rate = self._read_header()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Decoder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        assert self._proc.stdout is not None
        self._proc.stdout.close()
        self._stderr.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        """The samples, READ_BYTES at a time; raises AnalysisError if ffmpeg failed."""
        while not self._eof:
            data = self._read(READ_BYTES)
            usable = len(data) // 4 * 4
            self._pending = data[usable:]
            if usable:
                yield np.frombuffer(data[:usable], dtype="<f4")
        if self._proc.wait() != 0:
            self._stderr.seek(0)
            raise AnalysisError(
                f"cannot decode audio: {_last_line(self._stderr.read(), self._proc.returncode)}"
            )

    def _read(self, size: int) -> bytes:
        """Up to size bytes (fewer only at the end), waiting at most DECODE_STALL s for each."""
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        parts, have = [self._pending], len(self._pending)
        self._pending = b""
        while have < size and not self._eof:
            ready, _, _ = select.select([fd], [], [], DECODE_STALL)
            if not ready:
                raise AnalysisError(f"the decoder gave nothing for {DECODE_STALL} s")
            part = os.read(fd, size - have)
            self._eof = not part
            parts.append(part)
            have += len(part)
        return b"".join(parts)

    def _read_header(self) -> int:
        """The sample rate from the WAV header ffmpeg streams (its sizes unset); the
        bytes after the header are the first samples."""
        data = self._read(12)
        pos, rate = 12, 0
        while True:
            if len(data) < pos + 8:
                data += self._read(pos + 8 - len(data))
            if len(data) < pos + 8:
                break
            chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
            if chunk == b"data":
                self._pending = data[pos + 8 :]
                if rate:
                    return rate
                break
            if len(data) < pos + 8 + size:
                data += self._read(pos + 8 + size - len(data))
            if chunk == b"fmt ":
                rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
            pos += 8 + size + (size & 1)
        if self._proc.wait() != 0:
            self._stderr.seek(0)
            detail = _last_line(self._stderr.read(), self._proc.returncode)
            raise AnalysisError(f"cannot decode audio: {detail}")
        raise AnalysisError("cannot decode audio: decoder gave no samples")


def decode(path: Path, sample_rate: int) -> np.ndarray:
    """The whole track as mono float32 samples at sample_rate, as Essentia's MonoLoader
    gives them. For tests and benchmarks: the analysis itself streams (run_models)."""
    with Decoder(path) as decoder:
        resample = runtime.Resampler(decoder.rate, sample_rate)
        pieces = [resample(piece) for piece in decoder]
        pieces.append(resample(np.zeros(0, dtype=np.float32), last=True))
    audio = np.concatenate(pieces)
    if audio.size == 0:
        raise AnalysisError("cannot decode audio: no audio in file")
    return audio


# --- the musicnn frontend, piece by piece -----------------------------------------------


class MelFrames:
    """The musicnn log-mel frontend [frames, 96] of samples fed in pieces, framed
    exactly as Essentia's TensorflowPredictMusiCNN frames a whole track (its
    FrameGenerator with startFromZero=False, validFrameThresholdRatio=0): frame k
    is centred on sample k * 256, zeros stand in before the start and after the
    end, and n samples give ceil(n / 256) + 1 frames. So each patch gives the same
    embedding as Essentia's own algorithm."""

    def __init__(self) -> None:
        self._frontend = runtime.essentia_standard().TensorflowInputMusiCNN()
        # Samples from `_start` on, as if the track began with half a frame of zeros.
        self._buffer = np.zeros(MUSICNN_FRAME // 2, dtype=np.float32)
        self._start = 0
        self._next = 0  # the next frame to give
        self.samples = 0  # samples fed so far

    def feed(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        """The frames these samples complete (with last, every frame that is left)."""
        self.samples += len(samples)
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        end = self._next
        if last:
            end = -(-self.samples // MUSICNN_HOP) + 1 if self.samples else 0
            wanted = (end - 1) * MUSICNN_HOP + MUSICNN_FRAME - self._start
            if wanted > len(self._buffer):
                padding = np.zeros(wanted - len(self._buffer), dtype=np.float32)
                self._buffer = np.concatenate([self._buffer, padding])
        else:
            while (end * MUSICNN_HOP + MUSICNN_FRAME - self._start) <= len(self._buffer):
                end += 1
        frames = np.empty((end - self._next, 96), dtype=np.float32)
        for row, k in enumerate(range(self._next, end)):
            first = k * MUSICNN_HOP - self._start
            frames[row] = self._frontend(self._buffer[first : first + MUSICNN_FRAME])
        self._next = end
        drop = self._next * MUSICNN_HOP - self._start
        self._buffer, self._start = self._buffer[drop:].copy(), self._start + drop
        return frames


def musicnn_mel(audio: np.ndarray) -> np.ndarray:
    """The musicnn log-mel frontend [frames, 96] of a whole track (see MelFrames)."""
    return MelFrames().feed(audio, last=True)


class Patches:
    """187-frame patches every `hop` frames of mel frames fed in pieces; the last
    patch is aligned to the end so the whole track is heard even when the hop does
    not divide it, and a track shorter than one patch is repeated to fill one.
    Only the frames a patch may still need are kept (about one patch's worth)."""

    def __init__(self, hop: int) -> None:
        self.hop = max(hop, 1)
        self._mel = np.zeros((0, 96), dtype=np.float32)
        self._base = 0  # the track frame _mel[0] is
        self._next = 0  # the next patch's first frame
        self._last: int | None = None  # the last patch's first frame
        self.frames = 0
        self.count = 0  # patches given

    def feed(self, frames: np.ndarray, last: bool = False) -> list[np.ndarray]:
        """The patches these frames complete (with last, the end-aligned one too)."""
        self._mel = np.concatenate([self._mel, frames])
        self.frames += len(frames)
        patches = []
        while self._next + MUSICNN_PATCH <= self.frames:
            first = self._next - self._base
            patches.append(self._mel[first : first + MUSICNN_PATCH].copy())
            self._last, self._next = self._next, self._next + self.hop
        if last and self.frames:
            if self.frames < MUSICNN_PATCH:
                reps = -(-MUSICNN_PATCH // self.frames)
                patches.append(np.tile(self._mel, (reps, 1))[:MUSICNN_PATCH])
            elif self._last != self.frames - MUSICNN_PATCH:
                patches.append(self._mel[len(self._mel) - MUSICNN_PATCH :].copy())
        keep = max(self._base, min(self._next, self.frames - MUSICNN_PATCH))
        self._mel, self._base = self._mel[keep - self._base :].copy(), keep
        self.count += len(patches)
        return patches


def cut_patches(mel: np.ndarray, hop: int) -> np.ndarray:
    """The patches [n, 187, 96] of a whole track's mel frames (see Patches)."""
    return np.stack(Patches(hop).feed(mel, last=True))


# --- the models, block by block ----------------------------------------------------------


Progress = Callable[[str, int, int], None]


@dataclass
class Heard:
    """What run_models gives: the track's length, each head's per-label mean over the
    track, how many patches each musicnn backbone heard, and each backbone's embedding."""

    duration: float
    head_scores: list[tuple[Head, np.ndarray]]
    patches: int
    embeddings: dict[str, Embedding] = field(default_factory=dict)


class _Means:
    """Each head's per-patch outputs, and each backbone's embeddings (and their
    squares, for the spread), summed as they come."""

    def __init__(self, catalog: Catalog) -> None:
        self._sums = {head.stem: np.zeros(len(head.labels)) for head in catalog.heads}
        self._counts = dict.fromkeys(self._sums, 0)
        self._heads = catalog.heads
        self._embedded: dict[str, list[Any]] = {}  # stem -> [sum, sum of squares, count]

    def add(self, backbone: Backbone, outputs: dict[str, np.ndarray]) -> None:
        embeddings = outputs[backbone.embeddings_output]
        flat = np.asarray(embeddings, dtype=np.float64).reshape(len(embeddings), -1)
        sums = self._embedded.setdefault(backbone.stem, [0.0, 0.0, 0])
        sums[0] += flat.sum(axis=0)
        sums[1] += np.square(flat).sum(axis=0)
        sums[2] += len(flat)
        for head in backbone.heads:
            if head.graph is None:
                # A head without a graph is its backbone's own predictions (catalog.discover).
                assert backbone.predictions_output is not None
                activations = outputs[backbone.predictions_output]
            else:
                activations = head.predict(embeddings)
            if activations.shape[1] != len(head.labels):
                raise AnalysisError(
                    f"{head.stem} gives {activations.shape[1]} outputs but its sidecar lists "
                    f"{len(head.labels)} classes"
                )
            self._sums[head.stem] += activations.sum(axis=0, dtype=np.float64)
            self._counts[head.stem] += len(activations)

    def means(self) -> list[tuple[Head, np.ndarray]]:
        for stem, count in self._counts.items():
            if not count:
                raise AnalysisError(f"{stem} heard no part of the track")
        return [(h, self._sums[h.stem] / self._counts[h.stem]) for h in self._heads]

    def embeddings(self) -> dict[str, Embedding]:
        result: dict[str, Embedding] = {}
        for stem, (total, squares, count) in self._embedded.items():
            mean = total / count
            spread = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
            result[stem] = Embedding(mean.astype(np.float32), spread.astype(np.float32), count)
        return result


class _Windows:
    """The audio for a backbone that frames audio itself (not musicnn), handed out
    in windows of one to two AUDIO_WINDOWs (the rest of the track, at its end)."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        self.window = int(AUDIO_WINDOW * backbone.sample_rate)
        self._pieces: list[np.ndarray] = []
        self._size = 0

    def add(self, samples: np.ndarray) -> None:
        self._pieces.append(samples)
        self._size += len(samples)

    def ready(self, last: bool = False) -> Iterator[np.ndarray]:
        if self._size < 2 * self.window and not (last and self._size):
            return
        audio = np.concatenate(self._pieces)
        while len(audio) >= 2 * self.window or (last and len(audio)):
            size = self.window if len(audio) >= 2 * self.window else len(audio)
            yield audio[:size]
            audio = audio[size:]
        self._pieces, self._size = [audio], len(audio)


class _Listener:
    """Every model of the catalog on a track fed in pieces at 16 kHz (and at each
    other rate a backbone wants); the models run a block at a time, when asked."""

    def __init__(self, catalog: Catalog, hop: int, batch_size: int) -> None:
        self.musicnn = [b for b in catalog.backbones if b.is_musicnn]
        self.windows = [_Windows(b) for b in catalog.backbones if not b.is_musicnn]
        self.rates = sorted({w.backbone.sample_rate for w in self.windows} - {MUSICNN_SAMPLE_RATE})
        self.batch_size = batch_size
        # Whole batches only, so each batch holds the patches it would for a whole track.
        self.block = -(-max(BLOCK_PATCHES, batch_size) // batch_size) * batch_size
        self.frames = MelFrames() if self.musicnn else None
        self.patches = Patches(hop)
        self.waiting: list[np.ndarray] = []
        self.running: list[list[Future[dict[str, np.ndarray]]]] = []  # by block, oldest first
        self.means = _Means(catalog)

    def cut(self, samples: np.ndarray, last: bool = False) -> list[np.ndarray]:
        """The musicnn patches that these 16 kHz samples complete (the decoding side)."""
        if self.frames is None:
            return []
        return self.patches.feed(self.frames.feed(samples, last), last)

    def hear(self, by_rate: dict[int, np.ndarray], patches: list[np.ndarray]) -> None:
        """Queue what cut() gave, and the audio for the backbones that frame it themselves."""
        self.waiting += patches
        for windows in self.windows:
            windows.add(by_rate[windows.backbone.sample_rate])

    def _submit(self, block: np.ndarray) -> list[Future[dict[str, np.ndarray]]]:
        """Each musicnn backbone on one block, in its own lane (a thread of its own) when
        onnxruntime runs them: it lets go of the GIL, so two single-threaded sessions
        keep two cores busy, and neither waits for the other between blocks."""
        if len(self.musicnn) > 1 and all(b.onnx is not None for b in self.musicnn):
            lanes = _model_lanes(len(self.musicnn))
            return [
                lane.submit(b.run_patches, block, self.batch_size)
                for lane, b in zip(lanes, self.musicnn, strict=False)
            ]
        runs: list[Future[dict[str, np.ndarray]]] = []
        for backbone in self.musicnn:
            run: Future[dict[str, np.ndarray]] = Future()
            run.set_result(backbone.run_patches(block, self.batch_size))
            runs.append(run)
        return runs

    def _collect(self, keep: int) -> None:
        """Add the outputs of the oldest blocks (heads run here, on them) until at most
        `keep` blocks are still running."""
        while len(self.running) > keep:
            outputs = [run.result() for run in self.running[0]]  # an error: stop() waits
            del self.running[0]
            for backbone, output in zip(self.musicnn, outputs, strict=True):
                self.means.add(backbone, output)

    def run(self, last: bool = False) -> bool:
        """Run the models on what is ready (with last, on all that is left, and wait for
        them); whether any started. Up to IN_FLIGHT blocks run while the next ones are
        given, so each backbone goes from block to block without waiting."""
        ran = False
        while len(self.waiting) >= self.block or (last and self.waiting):
            block = np.stack(self.waiting[: self.block])
            del self.waiting[: self.block]
            self.running.append(self._submit(block))
            self._collect(IN_FLIGHT)
            ran = True
        if last:
            self._collect(0)
        for windows in self.windows:
            for audio in windows.ready(last):
                self.means.add(windows.backbone, windows.backbone.run_audio(audio))
                ran = True
        return ran

    def stop(self) -> None:
        """Cancel the blocks that have not started and wait for the others (on an error)."""
        for runs in self.running:
            for run in runs:
                run.cancel()
        wait([run for runs in self.running for run in runs])
        self.running.clear()


def run_models(
    path: Path,
    catalog: Catalog,
    hop: int,
    batch_size: int,
    min_duration: float,
    progress: Progress | None = None,
    max_duration: float | None = None,
) -> Heard:
    """Decode once, as a stream, and run each backbone and every head on it.

    A track longer than max_duration raises TooLong: on its header's word before
    anything is decoded, or as soon as more than that has been decoded (a header
    that says nothing, or lies). One shorter than min_duration raises TooShort, and
    no model runs on it. progress(what, seconds_heard, seconds) is called each time
    the models have heard another block of the track.

    Within tag_files, the stream of the batch's next file is started once this
    one's models run, and this file's is the one the previous file started.
    """
    Counters.model_runs += 1
    stream = _Stream.prepared(path, catalog, hop, batch_size, max_duration)
    listener = stream.listener
    models = len(catalog.backbones) + sum(1 for head in catalog.heads if head.graph is not None)
    what = f"{models} models"
    heard = 0  # samples at 16 kHz
    try:
        # Probing, decoding, resampling and the mel frontend run in a thread of their
        # own, a few pieces ahead, while the models run on what came before.
        with stream as items:
            header = next(items)
            if max_duration is not None and header is not None and header > max_duration:
                raise TooLong(_too_long(header, max_duration))
            for by_rate, patches, last in items:
                heard += len(by_rate[MUSICNN_SAMPLE_RATE])
                seconds = heard / MUSICNN_SAMPLE_RATE
                if max_duration is not None and seconds > max_duration:
                    raise TooLong(_too_long(None, max_duration))
                if last:
                    break
                listener.hear(by_rate, patches)
                # Nothing runs before the track is known to be long enough.
                if seconds >= min_duration and listener.run():
                    if progress:
                        progress(what, int(seconds), int(max(header or 0, seconds)))
                    _Stream.prepare_upcoming(catalog, hop, batch_size, max_duration)
        duration = heard / MUSICNN_SAMPLE_RATE
        if heard == 0:
            raise AnalysisError("cannot decode audio: no audio in file")
        if duration < min_duration:
            raise TooShort(
                f"track is {duration:.1f} s, shorter than the {min_duration:g} s minimum"
            )
        _Stream.prepare_upcoming(catalog, hop, batch_size, max_duration)
        listener.hear(by_rate, patches)
        listener.run(last=True)
    except BaseException:
        listener.stop()  # no backbone goes on with this track
        raise
    if progress:
        progress(what, round(duration), round(duration))
    return Heard(
        duration=duration,
        head_scores=listener.means.means(),
        patches=listener.patches.count,
        embeddings=listener.means.embeddings(),
    )


Decoded = tuple[dict[int, np.ndarray], list[np.ndarray], bool]


def _decoded(path: Path, listener: _Listener) -> Iterator[Decoded]:
    """The track piece by piece: (samples at each rate the models want, the musicnn
    patches they complete, whether this is the end); the last item holds what the
    resamplers and the frontend still had."""
    with Decoder(path) as decoder:
        resamplers = {
            rate: runtime.Resampler(decoder.rate, rate)
            for rate in [MUSICNN_SAMPLE_RATE, *listener.rates]
        }
        for piece in decoder:
            by_rate = {rate: resample(piece) for rate, resample in resamplers.items()}
            yield by_rate, listener.cut(by_rate[MUSICNN_SAMPLE_RATE]), False
        end = np.zeros(0, dtype=np.float32)
        last = {rate: resample(end, last=True) for rate, resample in resamplers.items()}
    yield last, listener.cut(last[MUSICNN_SAMPLE_RATE], last=True), True


class _Stream:
    """One file's way to the models, in a thread of its own (_Ahead): first the
    header's duration (probe_duration), then, unless that is over max_duration,
    the decoded pieces and their patches (_decoded), into its own _Listener.

    Started on construction, so a batch (tag_files) starts the next file's while
    this file's models run: the cores do not wait at each file's start for ffprobe,
    ffmpeg and the first seconds of decoding. Such a stream is kept for this thread
    (`_local`) until run_models takes it; close() (or leaving its `with`) stops it,
    and with it the decoder's ffmpeg."""

    _local = threading.local()  # .upcoming: the batch's next path; .prepared: its _Stream

    def __init__(
        self,
        path: Path,
        catalog: Catalog,
        hop: int,
        batch_size: int,
        max_duration: float | None,
        untaken_life: float | None = None,
    ) -> None:
        self.key = (path, id(catalog), hop, batch_size, max_duration)
        self.stat = _stat_key(path)  # the file as it was when the stream started
        self.listener = _Listener(catalog, hop, batch_size)
        self._ahead = _Ahead(self._items(path, max_duration), untaken_life=untaken_life)
        self._items_iter = self._ahead.__enter__()

    def _items(self, path: Path, max_duration: float | None) -> Iterator[Any]:
        header = probe_duration(path)
        yield header
        if max_duration is not None and header is not None and header > max_duration:
            return  # run_models says TooLong on the header's word: nothing is decoded
        yield from _decoded(path, self.listener)

    def __enter__(self) -> Iterator[Any]:
        return self._items_iter

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._ahead.__exit__(None, None, None)

    @classmethod
    def prepared(
        cls,
        path: Path,
        catalog: Catalog,
        hop: int,
        batch_size: int,
        max_duration: float | None,
    ) -> _Stream:
        """The stream tag_files started for this very file and these settings (and
        the file unchanged since), else a new one."""
        key = (path, id(catalog), hop, batch_size, max_duration)
        stream: _Stream | None = getattr(cls._local, "prepared", None)
        if stream is not None and stream.key == key:
            cls._local.prepared = None
            if stream.stat == _stat_key(path) and stream._ahead.take():
                return stream
            stream.close()  # the file changed after its stream started, or it gave up
        return cls(path, catalog, hop, batch_size, max_duration)

    @classmethod
    def prepare_upcoming(
        cls, catalog: Catalog, hop: int, batch_size: int, max_duration: float | None
    ) -> None:
        """Start the stream of the batch's next file (once; none outside tag_files)."""
        upcoming: Path | None = getattr(cls._local, "upcoming", None)
        if upcoming is None:
            return
        cls._local.upcoming = None
        cls.drop()
        cls._local.prepared = cls(
            upcoming, catalog, hop, batch_size, max_duration, untaken_life=UNTAKEN_LIFE
        )

    @classmethod
    def expect(cls, upcoming: Path | None) -> None:
        """The file the batch tags next (None: no more), its stream started by run_models
        (unless NOMARR_READ_AHEAD is off)."""
        cls._local.upcoming = upcoming if settings.NOMARR_READ_AHEAD else None

    @classmethod
    def drop(cls, keep: Path | None = None) -> None:
        """Stop the prepared stream, unless it is for `keep`."""
        stream: _Stream | None = getattr(cls._local, "prepared", None)
        if stream is not None and (keep is None or stream.key[0] != keep):
            cls._local.prepared = None
            stream.close()


def _stat_key(path: Path) -> tuple[int, int, int, int] | None:
    try:
        info = path.stat()
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


class _Ahead:
    """Run an iterator in a thread of its own, up to AHEAD items ahead of its reader.

    Its exceptions reach the reader at the point they happened; leaving the `with`
    (done, or on an error of the reader's) stops the thread and closes the iterator
    there, so the decoder's ffmpeg is always stopped.

    With `untaken_life`, started for a reader that may never come: unless take()d
    first, the thread stops itself (and closes the iterator) once it has waited that
    long for room, and take() then says no."""

    _END = object()

    def __init__(
        self, items: Iterator[Any], ahead: int = 0, untaken_life: float | None = None
    ) -> None:
        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead or AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="nomarr-decode", daemon=True)
        self._untaken_life = untaken_life
        self._taken_lock = threading.Lock()
        self._taken = untaken_life is None  # None: taken from the start
        self._gave_up = False

    def take(self) -> bool:
        """Claim the items for a reader; False if the thread gave up waiting for one."""
        with self._taken_lock:
            if self._gave_up:
                return False
            self._taken = True
            return True

    def __enter__(self) -> Iterator[Any]:
        self._thread.start()
        return self._consume()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:  # make room, so a producer waiting to put sees the stop
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread.join()

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(("item", item)):
                    return
            self._put(("end", self._END))
        except BaseException as exc:
            self._put(("error", exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def _put(self, entry: tuple[str, Any]) -> bool:
        waited = 0.0
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                waited += 0.1
                if self._untaken_life is not None and waited >= self._untaken_life:
                    with self._taken_lock:
                        if not self._taken:
                            self._gave_up = True
                            return False
                continue
        return False

    def _consume(self) -> Iterator[Any]:
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value


_lanes_lock = threading.Lock()
_lanes: list[ThreadPoolExecutor] = []


def _model_lanes(count: int) -> list[ThreadPoolExecutor]:
    """The process's lanes that run backbones side by side: a thread each, so one
    backbone's blocks run one after another, in order."""
    with _lanes_lock:
        while len(_lanes) < count:
            name = f"nomarr-model-{len(_lanes)}"
            _lanes.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix=name))
        return _lanes[:count]


def _too_long(seconds: float | None, max_duration: float) -> str:
    length = "longer" if seconds is None else f"{seconds:.0f} s ({_clock(seconds)}), longer"
    limit = f"{max_duration:g} s ({_clock(max_duration)})"
    return f"track is {length} than the {limit} maximum (NOMARR_MAX_DURATION)"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


@dataclass
class Decision:
    """The tiers and mood sets decided from a file's scores."""

    tiers: dict[str, str]  # score key -> tier, for each label of a two-class head
    sets: dict[str, list[str]]  # mood set name -> its words, sorted

    @property
    def moods(self) -> list[str]:
        """The words of the regular mood set (what the MOOD tag holds)."""
        return self.sets["regular"]

    def tags(self, namespace: str) -> dict[str, list[str]]:
        """The tier keys and the mood-set keys, as written into a file."""
        tags = {keys.tier_key_for(key): [tier] for key, tier in self.tiers.items()}
        for name, words in self.sets.items():
            tags[keys.mood_set_key(name, namespace)] = words
        return tags


def decide(
    heads: Sequence[Head],
    scores: Mapping[str, float],
    namespace: str,
    calibration: Calibration | None = None,
) -> Decision:
    """Tiers and mood sets from the scores by key, as written (three decimals).

    The one rule for new files (describe) and for re-deciding stored scores
    (`manage.py retier`): each label of a two-class head gets keys.tier of its score
    against its opposite's, both first calibrated (keys.calibrate) with calibration's
    bounds for their keys where it has them; a mood head's words join the mood sets
    by their tier. A head whose scores are not all given is left out."""
    tiers: dict[str, str] = {}
    mood_tiers: dict[str, str] = {}
    bounds = calibration or {}
    for head in heads:
        if not head.is_two_class:
            continue
        head_keys = keys.label_keys(head.stem, head.labels, namespace)
        if any(key not in scores for key in head_keys):
            continue
        values = [keys.calibrate(scores[key], bounds.get(key)) for key in head_keys]
        for index, (label, key) in enumerate(zip(head.labels, head_keys, strict=True)):
            label_tier = keys.tier(values[index], values[1 - index])
            tiers[key] = label_tier
            if head.is_mood and not is_negation(label) and label_tier != "none":
                mood_tiers[keys.mood_word(label)] = label_tier
    return Decision(tiers=tiers, sets=keys.mood_sets(mood_tiers))


def tier_calibration() -> Calibration | None:
    """The bounds tiers are decided on now: None for the raw scores (NOMARR_TIER_SCORES
    =raw, the default), else the library's calibration, which the receivers of
    signals.calibration_wanted give (the library's last calibration; empty before the
    first, and a label it has no bounds for is decided on its raw score)."""
    if settings.NOMARR_TIER_SCORES != "calibrated":
        return None
    bounds: dict[str, tuple[float, float]] = {}
    for _receiver, reply in signals.calibration_wanted.send(sender=Decision):
        if isinstance(reply, Mapping):
            bounds.update(reply)
    return bounds


def describe(
    head_scores: list[tuple[Head, np.ndarray]],
    namespace: str,
    fingerprint: str,
    calibration: Calibration | None = None,
) -> Analysis:
    """Scores, tiers, mood sets and the tag dict (keys from tagging.keys) for averaged
    head outputs; tiers and mood sets by `decide`, on the scores as written."""
    scores: list[tuple[str, LabelScore]] = []
    tags: dict[str, list[str]] = {}
    written: dict[str, float] = {}
    for head, mean in head_scores:
        head_keys = keys.label_keys(head.stem, head.labels, namespace)
        for index, (label, key) in enumerate(zip(head.labels, head_keys, strict=True)):
            p = float(np.clip(mean[index], 0.0, 1.0))
            tags[key] = [SCORE_FORMAT.format(p)]
            written[key] = float(tags[key][0])
            scores.append((key, LabelScore(model=head.stem, label=label, score=p)))

    decision = decide([head for head, _ in head_scores], written, namespace, calibration)
    for key, score in scores:
        score.tier = decision.tiers.get(key)
    tags.update(decision.tags(namespace))
    tags[keys.version_key(namespace)] = [fingerprint]
    labelled = [score for _, score in scores]
    return Analysis(duration=0.0, scores=labelled, tags=tags, moods=decision.moods)


def analyse(
    path: Path, catalog: Catalog | None = None, progress: Progress | None = None
) -> Analysis:
    """Everything Nomarr would write to path, computed with the current settings."""
    catalog = catalog or get_catalog()
    if not catalog.backbones:
        raise AnalysisError("no models are installed: run `python manage.py install_models`")
    heard = run_models(
        path,
        catalog,
        hop=settings.NOMARR_PATCH_HOP,
        batch_size=settings.NOMARR_BATCH_SIZE,
        min_duration=settings.NOMARR_MIN_DURATION,
        progress=progress,
        max_duration=settings.NOMARR_MAX_DURATION,
    )
    analysis = describe(
        heard.head_scores, keys.namespace(), catalog.fingerprint, tier_calibration()
    )
    analysis.duration, analysis.patches = heard.duration, heard.patches
    analysis.embeddings = heard.embeddings
    return analysis


@dataclass
class FileResult:
    """The outcome for one file, as the CLI, the API and jobs report it."""

    path: str
    status: str  # tagged, skipped or error
    error: str = ""
    scores: list[LabelScore] = field(default_factory=list)
    tags: dict[str, list[str]] = field(default_factory=dict)
    # What the backbones heard (by backbone stem), and its version (catalog.embedding_version).
    embeddings: dict[str, Embedding] = field(default_factory=dict)
    model_set: str = ""

    def as_dict(self) -> dict[str, Any]:
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
    upcoming: Path | None = None,
) -> FileResult:
    """Analyse one file and write Nomarr's tags into it, never leaving it damaged.

    Skips a file already tagged with the current model set unless forced, and a
    file too short to judge or too long to analyse. Any failure is reported in the
    result, not raised, so one bad file never stops a batch. The file's keys are
    replaced by the analysis's, except those of other owners it holds (a
    suggestion, a taught tag's: keys.is_kept_on_retag), which stay.

    `upcoming`: the file this thread is to tag next (tag_files' next, a worker's
    next job), whose probing and decoding start once this file's models run (see
    _Stream); its stream waits for that call at most UNTAKEN_LIFE seconds.
    """
    _Stream.expect(upcoming)
    try:
        return _tag_file(path, force, dry_run, progress)
    finally:
        _Stream.expect(None)
        _Stream.drop(keep=upcoming)  # one this file left untaken (it was skipped)


def _tag_file(path: Path, force: bool, dry_run: bool, progress: Progress | None) -> FileResult:
    catalog = get_catalog()
    namespace = keys.namespace()
    result = FileResult(path=str(path), status="error")
    try:
        if "\x00" in str(path):
            raise AnalysisError("not a file name: the path contains a NUL character")
        before = path.stat()
        if not path.is_file():
            raise AnalysisError("not a regular file")
        existing = tagfiles.read_tags(path, namespace)
        if not force and existing.get(keys.version_key(namespace)) == [catalog.fingerprint]:
            result.status, result.error = "skipped", "already tagged with the current models"
            return result
        if not dry_run:
            writers.check_can_write(path)  # before the analysis spends seconds on it
        analysis = analyse(path, catalog, progress)
        result.scores, result.tags = analysis.scores, analysis.tags
        result.embeddings = analysis.embeddings
        result.model_set = embedding_version(catalog) or ""
        if not dry_run:
            after = path.stat()
            if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                raise AnalysisError("file changed while it was being analysed; try again")
            moods = analysis.moods if settings.NOMARR_WRITE_MOOD else None
            # The keys of other owners the file holds stay (keys.is_kept_on_retag);
            # their owners are asked only when the file holds keys the analysis lacks.
            others = {k: v for k, v in existing.items() if k not in analysis.tags}
            owned = signals.retag_kept_keys() if others else frozenset()
            kept = {
                key: values
                for key, values in others.items()
                if keys.is_kept_on_retag(key, owned, namespace)
            }
            writers.write_tags(path, {**kept, **analysis.tags}, namespace, moods)
        result.status = "tagged"
    except Skipped as exc:
        result.status, result.error = "skipped", str(exc)
    except FileNotFoundError:
        result.error = "no such file"
    except PermissionError as exc:
        result.error = f"permission denied: {exc.strerror or exc}"
    except OSError as exc:
        # The path names no file: a symlink loop, a name too long, a file used as a folder.
        result.error = f"cannot open the file: {exc.strerror or exc}"
    except UnicodeEncodeError:
        result.error = "not a file name: the path cannot be written in the file system's encoding"
    except (AnalysisError, writers.TagWriteError) as exc:
        result.error = str(exc)
    return result


def tag_files(
    paths: Sequence[Path],
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Iterator[FileResult]:
    """tag_file on each path in turn, each result as soon as it is known, with the
    next file's decoding started while this file's models run (see _Stream), so the
    cores do not wait at each file's start.

    Each file is what tag_file makes of it (its errors are in its result, the batch
    goes on); the next file's stream starts only once this file's models run, so a
    run of skipped files decodes nothing. Whatever stops the batch stops the stream
    it had started, and its ffmpeg."""
    paths = list(paths)
    try:
        for index, path in enumerate(paths):
            upcoming = paths[index + 1] if index + 1 < len(paths) else None
            yield tag_file(path, force, dry_run, progress, upcoming=upcoming)
    finally:
        _Stream.drop()
