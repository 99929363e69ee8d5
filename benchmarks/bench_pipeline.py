"""How fast Nomarr tags music, against Essentia's own ways of running the same models.

    .venv/bin/python benchmarks/bench_pipeline.py [--tracks 8] [--minutes 1.5]   # whole processes
    .venv/bin/python benchmarks/bench_pipeline.py --details [--tracks 6]          # in one process
    .venv/bin/python benchmarks/bench_pipeline.py --trace [--tracks 4]            # idle cores

By default (the target) it measures whole processes on >= 10 minutes of distinct
audio: `manage.py tag --dry-run --json` (NOMARR_ENGINE=onnx) against Essentia's
pipeline done well (`--essentia-way`: MonoLoader, then one TensorflowPredictMusiCNN
pass for the msd embeddings, one for the msd tags, one for the mtt tags, and each
head on the embeddings), each process timed on a fixture clip alone (after one untimed
run that makes what a first run caches) and then on the clip plus every track, so the
difference is the tracks' analysis with start-up (imports, model loading, first
patches) subtracted. The tiers Nomarr writes are
compared with the Essentia pipeline's (hop 93: the full-overlap reference).

With --trace, in one process, it shows where the cores wait: the batch as
`manage.py tag` runs it (pipeline.tag_files: the next file decoded while this one's
models run; the backbones in lanes that do not wait for each other) against each
file alone with the per-block barrier between the backbones (tag_file with
IN_FLIGHT 0), each way timed in turn, --repeat times: wall, CPU (threads and the
ffmpeg children), the lanes' CPU, and the core-seconds left idle (cores x wall -
CPU) per audio minute. Then a backbone's CPU per patch on its twin as made by
tf2onnx and with tagging.onnx.pool_first, in turn, and their largest difference.

With --details, in one process:

Builds a set of distinct test tracks from the two 30-s fixture clips with ffmpeg
(concatenations with tempo and pitch changes, mixes, EQ, echo, reversal), then for
the default model set plus the nine fixture heads measures, in one run:

* naive: per track, decode once with MonoLoader at 16 kHz, then per model Essentia's
  own algorithm with its defaults, as the model zoo's docs show it: for each head
  TensorflowPredictMusiCNN(msd-musicnn-1, output=model/dense/BiasAdd, patchHopSize 93)
  then TensorflowPredict2D(head), and for each backbone TensorflowPredictMusiCNN(
  output=model/Sigmoid); every output averaged over patches. Its results, at 50 %
  patch overlap, are the "full overlap" reference.
* Nomarr: tagging.pipeline.run_models() + describe() at several patch hops.

It prints seconds of analysis per minute of audio, the speedup over naive, how many
(track, two-class label) tiers agree with the reference, and where Nomarr's time
goes. Model loading and one warm-up run are timed apart from the measurements;
each measurement runs once per track (the tracks are the repetitions).

Never import tensorflow here: it aborts next to the TensorFlow Essentia bundles.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from media import duration as clip_duration

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fixtures"
CLIPS_DIR = SHARED / "audio"
FIXTURE_MODELS = SHARED / "essentia-models"
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
NAIVE_HOP = 93  # TensorflowPredictMusiCNN's default patchHopSize (50 % overlap)


# --------------------------------------------------------------------------- tracks


def _segment(rng: random.Random, clips: list[Path], inputs: list[Path], durations: dict):
    """One ~30-s section: a clip (or a mix of two) through one or two effects.

    Returns (filter chain text ending in a label, its length in seconds, a short recipe)."""
    norm = "aresample=44100,aformat=sample_fmts=fltp:channel_layouts=stereo"
    first = rng.choice(clips)
    inputs.append(first)
    a = len(inputs) - 1
    length = durations[first]
    recipe = [first.stem[:4]]
    chain = f"[{a}:a]{norm}"
    if rng.random() < 0.3:  # a mix of both clips, the second one quieter
        second = next(c for c in clips if c != first) if len(clips) > 1 else first
        inputs.append(second)
        b = len(inputs) - 1
        weight = rng.uniform(0.4, 0.9)
        chain = (
            f"[{a}:a]{norm}[m{a}];[{b}:a]{norm}[m{b}];"
            f"[m{a}][m{b}]amix=inputs=2:duration=shortest:weights=1 {weight:.2f}"
        )
        length = min(length, durations[second])
        recipe = [f"{first.stem[:4]}+{second.stem[:4]}"]
    effects = rng.sample(["tempo", "pitch", "reverse", "eq", "echo", "plain"], k=rng.choice([1, 2]))
    for effect in effects:
        if effect == "tempo":
            factor = rng.uniform(0.8, 1.25)
            chain += f",atempo={factor:.3f}"
            length /= factor
            recipe.append(f"tempo{factor:.2f}")
        elif effect == "pitch":  # shift pitch (and speed) by resampling
            factor = 2 ** (rng.uniform(-3, 3) / 12)
            chain += f",asetrate={44100 * factor:.0f},aresample=44100"
            length /= factor
            recipe.append(f"pitch{factor:.2f}")
        elif effect == "reverse":
            chain += ",areverse"
            recipe.append("rev")
        elif effect == "eq":
            eq = rng.choice(
                [
                    "highpass=f=250",
                    "lowpass=f=2500",
                    "bass=g=9",
                    "treble=g=-9",
                    "equalizer=f=1000:t=q:w=1:g=10",
                ]
            )
            chain += f",{eq}"
            recipe.append(eq.split("=")[0])
        elif effect == "echo":
            chain += ",aecho=0.8:0.7:80|160:0.4|0.25"
            recipe.append("echo")
    return chain, length, ",".join(recipe)


def make_tracks(dest: Path, count: int, minutes: float, seed: int) -> list[tuple[Path, str]]:
    """count distinct MP3 tracks of about `minutes` each (±10 %) from the fixture clips."""
    clips = sorted(CLIPS_DIR.glob("*.mp3"))
    if not clips:
        raise SystemExit(f"no fixture clips in {CLIPS_DIR}")
    durations = {clip: clip_duration(clip) for clip in clips}
    rng = random.Random(seed)
    tracks = []
    for number in range(1, count + 1):
        seconds = minutes * 60 * rng.uniform(0.9, 1.1)
        inputs: list[Path] = []
        chains, labels, recipes = [], [], []
        total = 0.0
        while total < seconds + 1:
            chain, length, recipe = _segment(rng, clips, inputs, durations)
            label = f"s{len(labels)}"
            chains.append(f"{chain}[{label}]")
            labels.append(f"[{label}]")
            recipes.append(recipe)
            total += length
        # Each track gets its own overall colour and loudness, so tracks differ as a whole.
        colour = rng.choice(["anull", "bass=g=4", "treble=g=4", "lowpass=f=6000", "highpass=f=80"])
        gain = rng.uniform(-6, 0)
        graph = ";".join(chains) + (
            f";{''.join(labels)}concat=n={len(labels)}:v=0:a=1,{colour},volume={gain:.1f}dB,"
            f"afade=t=in:d=2,afade=t=out:st={seconds - 3:.2f}:d=3[out]"
        )
        path = dest / f"track_{number:02d}.mp3"
        argv = [FFMPEG, "-v", "error", "-y"]
        for clip in inputs:
            argv += ["-i", str(clip)]
        argv += ["-filter_complex", graph, "-map", "[out]", "-t", f"{seconds:.2f}"]
        argv += ["-ac", "2", "-ar", "44100", "-c:a", "libmp3lame", "-b:a", "192k", str(path)]
        subprocess.run(argv, check=True)
        tracks.append((path, f"{colour} | " + " > ".join(recipes)))
    return tracks


# --------------------------------------------------------------------------- naive


class Naive:
    """The models run the way Essentia's model-zoo docs show, one algorithm per model.

    Every algorithm is created once (before timing), and each call then recomputes the
    mel frontend and the backbone: nine msd-musicnn-1 embedding passes (one per head)
    plus one predictions pass per backbone, all at Essentia's default patch hop (93).
    """

    def __init__(self, catalog, es):
        self.es = es
        self.catalog = catalog
        self.embedders: dict[str, object] = {}
        self.classifiers: dict[str, object] = {}
        self.taggers: dict[str, object] = {}
        for backbone in catalog.backbones:
            for head in backbone.heads:
                if head.graph is None:
                    self.taggers[head.stem] = es.TensorflowPredictMusiCNN(
                        graphFilename=str(backbone.graph), output=backbone.predictions_output
                    )
                else:
                    self.embedders[head.stem] = es.TensorflowPredictMusiCNN(
                        graphFilename=str(backbone.graph), output=backbone.embeddings_output
                    )
                    self.classifiers[head.stem] = es.TensorflowPredict2D(
                        graphFilename=str(head.graph),
                        input=head.input_name,
                        output=head.output_name,
                    )

    def run(self, path: Path):
        """(duration, [(head, mean scores)]) in the catalog's order, like run_models."""
        audio = self.es.MonoLoader(filename=str(path), sampleRate=16000)()
        results = []
        for backbone in self.catalog.backbones:
            for head in backbone.heads:
                if head.graph is None:
                    activations = np.asarray(self.taggers[head.stem](audio))
                else:
                    embeddings = np.asarray(self.embedders[head.stem](audio))
                    activations = np.asarray(self.classifiers[head.stem](embeddings))
                activations = activations.reshape(activations.shape[0], -1)
                results.append((head, activations.mean(axis=0)))
        return len(audio) / 16000, results


# --------------------------------------------------------------------------- compare


@dataclass
class Run:
    """One way of analysing, over all tracks."""

    name: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    analyses: list = field(default_factory=list)

    def add(self, wall: float, cpu: float, analysis) -> None:
        self.seconds.append(wall)
        self.cpu.append(cpu)
        self.analyses.append(analysis)

    def per_minute(self, minutes: float) -> float:
        return sum(self.seconds) / minutes


def cpu_seconds() -> float:
    """CPU time of this process's threads plus its finished children (ffmpeg decodes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn, *args):
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = fn(*args)
    return value, time.perf_counter() - wall, cpu_seconds() - cpu


def nomarr_way(pipeline, path: Path, catalog, hop: int, batch: int, namespace: str):
    """(wall s, cpu s, Analysis) for Nomarr's whole way on one file."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    heard = pipeline.run_models(path, catalog, hop=hop, batch_size=batch, min_duration=7)
    analysis = pipeline.describe(heard.head_scores, namespace, catalog.fingerprint)
    return time.perf_counter() - wall, cpu_seconds() - cpu, analysis


def time_parts(pipeline, path: Path, catalog, hop: int, batch: int, namespace: str, parts) -> int:
    """Nomarr's way piece by piece, adding [wall, cpu] per piece into parts; the patch count."""

    def add(name, wall, cpu):
        totals = parts.setdefault(name, [0.0, 0.0])
        totals[0] += wall
        totals[1] += cpu

    audio, wall, cpu = timed(pipeline.decode, path, pipeline.MUSICNN_SAMPLE_RATE)
    add("decode (pipeline.decode)", wall, cpu)
    mel, wall, cpu = timed(pipeline.musicnn_mel, audio)
    add("mel frontend (musicnn_mel)", wall, cpu)
    patches, wall, cpu = timed(pipeline.cut_patches, mel, hop)
    add("cut_patches", wall, cpu)
    head_scores = []
    for backbone in catalog.backbones:
        outputs, wall, cpu = timed(backbone.run_patches, patches, batch)
        add(f"backbone {backbone.stem}", wall, cpu)
        embeddings = outputs[backbone.embeddings_output]
        wall, cpu = time.perf_counter(), cpu_seconds()
        for head in backbone.heads:
            if head.graph is None:
                activations = outputs[backbone.predictions_output]
            else:
                activations = head.predict(embeddings)
            head_scores.append((head, activations.mean(axis=0)))
        add("heads (Head.predict)", time.perf_counter() - wall, cpu_seconds() - cpu)
    _, wall, cpu = timed(pipeline.describe, head_scores, namespace, catalog.fingerprint)
    add("describe (tiers, moods)", wall, cpu)
    return len(patches)


def agreement(runs, reference):
    """(tier pairs agreeing, tier pairs, mood-regular sets equal, tracks, mean |score diff|)."""
    same = pairs = moods_same = 0
    diffs = []
    for mine, ref in zip(runs, reference, strict=True):
        for a, b in zip(mine.scores, ref.scores, strict=True):
            assert (a.model, a.label) == (b.model, b.label)
            diffs.append(abs(a.score - b.score))
            if b.tier is not None:
                pairs += 1
                same += a.tier == b.tier
        moods_same += mine.moods == ref.moods
    return same, pairs, moods_same, len(reference), float(np.mean(diffs))


def frontend_parity(path: Path, catalog, naive: Naive, pipeline, es) -> str:
    """How far Nomarr's decode + mel frontend are from what Essentia's own algorithm
    feeds the same backbone: max |embedding difference| on the same hop-93 patches."""
    backbone = catalog.backbones[0]
    head = next(h for h in backbone.heads if h.graph is not None)
    audio = es.MonoLoader(filename=str(path), sampleRate=16000)()
    reference = np.asarray(naive.embedders[head.stem](audio))
    scale = float(np.abs(reference).mean())
    decoded = pipeline.decode(path, pipeline.MUSICNN_SAMPLE_RATE)
    n = min(len(audio), len(decoded))
    level = 20 * np.log10(np.std(decoded[:n]) / np.std(audio[:n]))
    diffs = []
    for samples in (audio, decoded):
        mel = pipeline.musicnn_mel(samples)
        starts = range(0, len(mel) - pipeline.MUSICNN_PATCH + 1, NAIVE_HOP)
        patches = np.stack([mel[s : s + pipeline.MUSICNN_PATCH] for s in starts])
        mine = backbone.run_patches(patches, 64)[backbone.embeddings_output]
        n = min(len(mine), len(reference))
        diffs.append(float(np.abs(mine[:n] - reference[:n]).max()))
    return (
        f"parity with Essentia on {path.name}: max |embedding diff| vs TensorflowPredictMusiCNN"
        f" (mean |embedding| {scale:.2f}): {diffs[0]:.2g} via musicnn_mel on MonoLoader audio,"
        f" {diffs[1]:.2g} via pipeline.decode() + musicnn_mel;"
        f" pipeline.decode() level vs MonoLoader {level:+.1f} dB"
    )


def cpu_stall_us() -> int | None:
    """Microseconds some runnable task waited for a core (Linux PSI), if the kernel says."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(first.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


def tier_counts(analyses) -> str:
    counts = {"high": 0, "medium": 0, "low": 0, "none": 0}
    for analysis in analyses:
        for score in analysis.scores:
            if score.tier is not None:
                counts[score.tier] += 1
    return ", ".join(f"{name} {n}" for name, n in counts.items())


# --------------------------------------------------------------------------- trace


def lane_cpu() -> dict[str, float]:
    """CPU seconds of each of this process's model lanes (pipeline._model_lanes' threads)."""
    from tagging import pipeline

    ticks = os.sysconf("SC_CLK_TCK")
    lanes: dict[str, float] = {}
    for lane in pipeline._lanes:
        for thread in list(lane._threads):
            try:
                stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            lanes[thread.name] = (int(fields[11]) + int(fields[12])) / ticks
    return lanes


def graph_speed(path: Path, rounds: int = 4) -> str:
    """CPU ms per patch (batch 4, 1 thread) of a twin as tf2onnx made it and after
    tagging.onnx.pool_first, timed in turn; and their largest output difference."""
    import onnx as onnx_pkg

    from tagging import onnx as twins
    from tagging import runtime

    ort = runtime.onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    model = onnx_pkg.load(str(path))
    twins.pool_first(model)
    sessions = {
        "as made": ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]),
        "pools first": ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        ),
    }
    batch = np.random.default_rng(0).standard_normal((4, 187, 96)).astype(np.float32) * 2
    times: dict[str, list[float]] = {name: [] for name in sessions}
    outputs = {}
    for _ in range(rounds):
        for name, session in sessions.items():
            feed = {session.get_inputs()[0].name: batch}
            outputs[name] = session.run(None, feed)
            start = time.thread_time()
            for _ in range(5):
                session.run(None, feed)
            times[name].append((time.thread_time() - start) / 20 * 1000)
    diff = max(
        float(np.abs(a - b).max())
        for a, b in zip(outputs["as made"], outputs["pools first"], strict=True)
    )
    best = {name: min(values) for name, values in times.items()}
    return (
        f"{path.name}, CPU ms per patch (best of {rounds}): as tf2onnx made it"
        f" {best['as made']:.1f}, pools first {best['pools first']:.1f}"
        f" ({best['as made'] / best['pools first']:.2f}x); largest output difference {diff:.1e}"
    )


def trace(args) -> int:
    """Where the cores wait: the batch way against each file alone with the barrier."""
    setup_django()
    from tagging import catalog as catalog_mod
    from tagging import pipeline

    cores = os.cpu_count() or 1
    catalog = catalog_mod.get_catalog()
    warm = sorted(CLIPS_DIR.glob("*.mp3"))[0]
    pipeline.tag_file(warm, dry_run=True)  # models loaded, sessions warm
    print(
        f"Nomarr trace: {cores} CPU cores (load average {os.getloadavg()[0]:.2f}),"
        f" {len(catalog.backbones)} backbones + {len(catalog.heads)} heads, engine onnx"
    )

    def batch(paths):
        return [r.status for r in pipeline.tag_files(paths, dry_run=True)]

    def alone_with_barrier(paths):
        in_flight, pipeline.IN_FLIGHT = pipeline.IN_FLIGHT, 0
        try:
            return [pipeline.tag_file(path, dry_run=True).status for path in paths]
        finally:
            pipeline.IN_FLIGHT = in_flight

    ways = {"tag_files (batch, lanes)": batch, "tag_file each, barrier": alone_with_barrier}
    with tempfile.TemporaryDirectory(prefix="nomarr-trace-") as tmp:
        folder = args.tracks_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        tracks = [path for path, _ in make_tracks(folder, args.tracks, args.minutes, args.seed)]
        minutes = sum(clip_duration(path) for path in tracks) / 60
        totals = {name: [0.0, 0.0, 0.0] for name in ways}  # wall, cpu, lanes' cpu
        for _ in range(args.repeat):
            for name, way in ways.items():  # in turn, so a change of load hits both
                lanes, cpu, wall = lane_cpu(), cpu_seconds(), time.perf_counter()
                statuses = way(tracks)
                wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
                assert set(statuses) == {"tagged"}, statuses
                lanes_after = lane_cpu()
                totals[name][0] += wall
                totals[name][1] += cpu
                totals[name][2] += sum(lanes_after.values()) - sum(lanes.values())
    runs = args.repeat * minutes
    print(f"tracks: {len(tracks)} distinct, {minutes:.1f} min of audio, {args.repeat} run(s)")
    header = f"{'way':<28}{'s/min':>7}{'cpu s/min':>10}{'lanes cpu':>10}{'idle core-s/min':>16}"
    print(header)
    print("-" * len(header))
    rates = {}
    for name, (wall, cpu, lanes) in totals.items():
        rates[name] = wall / runs
        idle = (cores * wall - cpu) / runs
        print(f"{name:<28}{wall / runs:>7.2f}{cpu / runs:>10.2f}{lanes / runs:>10.2f}{idle:>16.2f}")
    first, second = rates.values()
    print(f"batch vs each file alone: {second / first:.2f}x (wall)")
    backbone = next(b for b in catalog.backbones if b.onnx is not None)
    assert backbone.onnx is not None
    print(graph_speed(backbone.onnx))
    print(
        f"(load average now {os.getloadavg()[0]:.2f} on {cores} cores: other busy processes"
        " take cores, and their time shows here as neither CPU nor idle)"
    )
    return 0


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=8, help="test tracks to build (default 8)")
    parser.add_argument(
        "--minutes", type=float, default=1.5, help="length of each track, ±10 %% (default 1.5)"
    )
    parser.add_argument(
        "--details", action="store_true", help="the in-process comparison (hops, parts)"
    )
    parser.add_argument(
        "--trace", action="store_true", help="in one process: where the cores wait (batch way)"
    )
    parser.add_argument(
        "--onnx-threads", type=int, default=None, help="NOMARR_ONNX_THREADS for manage.py tag"
    )
    parser.add_argument(
        "--also-engine-essentia",
        action="store_true",
        help="also time manage.py tag with NOMARR_ENGINE=essentia",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="time each way this many times, in turn (mean)"
    )
    parser.add_argument("--essentia-way", nargs="+", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--hops", default="93,187,280,374", help="Nomarr patch hops to measure, in mel frames"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: NOMARR_BATCH_SIZE")
    parser.add_argument(
        "--batch-sizes",
        default="",
        help="also sweep these batch sizes at the default hop, e.g. 1,8,32,64,256",
    )
    parser.add_argument(
        "--tf-threads",
        type=int,
        default=None,
        help="set TF_NUM_INTRAOP_THREADS/TF_NUM_INTEROP_THREADS before Essentia loads",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the track recipes")
    parser.add_argument("--tracks-dir", type=Path, help="keep the tracks here (default: temp dir)")
    parser.add_argument("--show-tracks", action="store_true", help="print each track's recipe")
    return parser.parse_args(argv)


def setup_django():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.test_settings")
    import django

    django.setup()


# --------------------------------------------------------------------------- whole processes


def essentia_way(paths: list[Path]) -> int:
    """The child process of the whole-process run: Essentia's pipeline done well on
    each file, one JSON line per file ({"path", "duration", "means": {head stem: [..]}})."""
    setup_django()
    from django.conf import settings

    from tagging import catalog as catalog_mod
    from tagging import runtime

    es = runtime.essentia_standard()
    catalog = catalog_mod.discover([ROOT / "models", FIXTURE_MODELS], settings.NOMARR_MOOD_HEADS)
    passes = {}  # (backbone stem, output) -> algorithm: one pass each
    for backbone in catalog.backbones:
        for head in backbone.heads:
            output = backbone.predictions_output if head.graph is None else None
            output = output or backbone.embeddings_output
            if (backbone.stem, output) not in passes:
                passes[backbone.stem, output] = es.TensorflowPredictMusiCNN(
                    graphFilename=str(backbone.graph), output=output
                )
    classifiers = {
        head.stem: es.TensorflowPredict2D(
            graphFilename=str(head.graph), input=head.input_name, output=head.output_name
        )
        for head in catalog.heads
        if head.graph is not None
    }
    for path in paths:
        audio = es.MonoLoader(filename=str(path), sampleRate=16000)()
        outputs = {key: np.asarray(algorithm(audio)) for key, algorithm in passes.items()}
        means = {}
        for backbone in catalog.backbones:
            for head in backbone.heads:
                if head.graph is None:
                    activations = outputs[backbone.stem, backbone.predictions_output]
                else:
                    embeddings = outputs[backbone.stem, backbone.embeddings_output]
                    activations = np.asarray(classifiers[head.stem](embeddings))
                activations = activations.reshape(activations.shape[0], -1)
                means[head.stem] = activations.mean(axis=0).tolist()
        line = {"path": str(path), "duration": len(audio) / 16000, "means": means}
        print(json.dumps(line), flush=True)
    return 0


def run_process(argv: list[str], env: dict[str, str]) -> tuple[float, float, list[dict]]:
    """(wall s, CPU s of the process and its children, its JSON lines)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return wall, cpu, lines


def whole_process(args) -> int:
    setup_django()
    from django.conf import settings

    from tagging import catalog as catalog_mod
    from tagging import keys, pipeline

    catalog = catalog_mod.discover([ROOT / "models", FIXTURE_MODELS], settings.NOMARR_MOOD_HEADS)
    if not catalog.backbones or sum(h.graph is not None for h in catalog.heads) < 9:
        print(f"expected the default backbones and nine fixture heads; got {catalog}")
        return 1
    heads = {head.stem: head for head in catalog.heads}
    namespace = keys.namespace()
    started, stall_start = time.perf_counter(), cpu_stall_us()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nomarr_site.settings",
        "NOMARR_MODELS_DIR": f"{ROOT / 'models'}:{FIXTURE_MODELS}",
        "NOMARR_LOG_FILE": "off",
        "NOMARR_ENGINE": "onnx",
    }
    if args.onnx_threads:
        env["NOMARR_ONNX_THREADS"] = str(args.onnx_threads)
    print(
        f"Nomarr whole-process benchmark: {os.cpu_count()} CPU cores (load average"
        f" {os.getloadavg()[0]:.2f}), NOMARR_PATCH_HOP {settings.NOMARR_PATCH_HOP},"
        f" batch {settings.NOMARR_BATCH_SIZE}, NOMARR_ONNX_THREADS"
        f" {args.onnx_threads or settings.NOMARR_ONNX_THREADS}"
    )
    with tempfile.TemporaryDirectory(prefix="nomarr-bench-") as tmp:
        folder = args.tracks_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        tracks = [path for path, _ in make_tracks(folder, args.tracks, args.minutes, args.seed)]
        warm = Path(tmp) / "warm.mp3"
        shutil.copy(sorted(CLIPS_DIR.glob("*.mp3"))[0], warm)
        nomarr = [sys.executable, str(ROOT / "manage.py"), "tag", "--dry-run", "--json"]
        essentia = [sys.executable, str(Path(__file__).resolve()), "--essentia-way"]
        ways = {"nomarr (onnx)": (nomarr, env), "essentia done well": (essentia, env)}
        if args.also_engine_essentia:
            ways["nomarr (NOMARR_ENGINE=essentia)"] = (nomarr, {**env, "NOMARR_ENGINE": "essentia"})
        results = {}
        for name, (argv, way_env) in ways.items():
            # Once untimed first: a fresh machine makes the heads' ONNX twins (TensorFlow
            # in a child, seconds) in the first process only, which made the start-up
            # that is subtracted too long (0.68 s/min measured where it is 1.10).
            run_process([*argv, str(warm)], way_env)
            results[name] = [run_process([*argv, str(warm)], way_env)]
        for _ in range(args.repeat):  # the ways in turn, so a change of load hits all
            for name, (argv, way_env) in ways.items():
                results[name].append(run_process([*argv, str(warm), *map(str, tracks)], way_env))
    reference = {
        line["path"]: line
        for line in results["essentia done well"][1][2]
        if line["path"] != str(warm)
    }
    minutes = sum(line["duration"] for line in reference.values()) / 60
    print(f"tracks: {len(tracks)} distinct, {minutes:.1f} min of audio")
    header = f"{'way':<34}{'start-up s':>11}{'s/audio min':>12}{'cpu s/min':>10}{'tiers agree':>18}"
    print(header)
    print("-" * len(header))
    rates = {}
    for name, ((warm_wall, warm_cpu, _), *full) in results.items():
        wall = sum(run[0] for run in full) / len(full)
        cpu = sum(run[1] for run in full) / len(full)
        lines = full[0][2]
        rate = (wall - warm_wall) / minutes
        rates[name] = rate
        agree = ""
        if name.startswith("nomarr"):
            same = pairs = 0
            for line in lines:
                ref = reference.get(line["path"])
                if ref is None:
                    continue
                scores = [(heads[stem], np.array(m)) for stem, m in ref["means"].items()]
                ref_tiers = {
                    (s.model, s.label): s.tier
                    for s in pipeline.describe(scores, namespace, catalog.fingerprint).scores
                    if s.tier is not None
                }
                for score in line["scores"]:
                    key = (score["model"], score["label"])
                    if key in ref_tiers:
                        pairs += 1
                        same += ref_tiers[key] == score["tier"]
            agree = f"{same}/{pairs} {100 * same / max(pairs, 1):.1f}%"
            rates[name + " agree"] = same / max(pairs, 1)
        print(
            f"{name:<34}{warm_wall:>11.1f}{rate:>12.2f}{(cpu - warm_cpu) / minutes:>10.2f}"
            f"{agree or 'reference':>18}"
        )
    ours, theirs = rates["nomarr (onnx)"], rates["essentia done well"]
    agree = rates["nomarr (onnx) agree"]
    met = ours <= 2.0 and theirs / ours >= 3.5 and agree >= 0.99
    elapsed, stall_end = time.perf_counter() - started, cpu_stall_us()
    stalled = ""
    if stall_start is not None and stall_end is not None:
        stalled = (
            f", a task waited for a core {(stall_end - stall_start) / 1e4 / elapsed:.0f} % of it"
        )
    print(
        f"SUMMARY: {minutes:.1f} min of audio, {args.repeat} run(s) each; nomarr (onnx)"
        f" {ours:.2f} s/min, essentia done well"
        f" {theirs:.2f} s/min: {theirs / ours:.2f}x; tiers agree {100 * agree:.1f}%"
        f" -> target (<=2.0 s/min, >=3.5x, >=99%) {'MET' if met else 'NOT MET'}"
    )
    print(
        f"(start-up = the process on one 30-s clip, subtracted; benchmark wall time {elapsed:.0f} s"
        f"{stalled}; load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)"
    )
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.essentia_way:
        return essentia_way(args.essentia_way)
    if args.trace:
        return trace(args)
    if not args.details:
        return whole_process(args)
    if args.tf_threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(args.tf_threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = str(args.tf_threads)
    setup_django()
    from django.conf import settings

    from tagging import catalog as catalog_mod
    from tagging import keys, pipeline, runtime

    hops = [int(h) for h in args.hops.split(",") if h.strip()]
    default_hop = settings.NOMARR_PATCH_HOP
    if default_hop not in hops:
        hops.append(default_hop)
    batch = args.batch_size or settings.NOMARR_BATCH_SIZE
    namespace = keys.namespace()
    started, stall_start = time.perf_counter(), cpu_stall_us()

    print(
        f"Nomarr pipeline benchmark: {os.cpu_count()} CPU cores (load average"
        f" {os.getloadavg()[0]:.2f}), engine {settings.NOMARR_ENGINE}, batch size {batch},"
        f" TF threads"
        f" {args.tf_threads or 'TensorFlow default'}, NOMARR_PATCH_HOP {default_hop}"
    )

    # Models: discover and load, then warm every session once on a fixture clip.
    warm_clip = sorted(CLIPS_DIR.glob("*.mp3"))[0]
    t0 = time.perf_counter()
    es = runtime.essentia_standard()
    catalog = catalog_mod.discover([ROOT / "models", FIXTURE_MODELS], settings.NOMARR_MOOD_HEADS)
    if settings.NOMARR_ENGINE == "onnx":  # Nomarr's way on its engine; naive stays Essentia
        catalog_mod.attach_twins(catalog, settings.NOMARR_ONNX_CACHE, settings.NOMARR_ONNX_THREADS)
    classifier_heads = [h for h in catalog.heads if h.graph is not None]
    if not catalog.backbones or len(classifier_heads) < 9:
        print(f"expected the default backbones and nine fixture heads; got {catalog}")
        return 1
    pipeline.run_models(warm_clip, catalog, default_hop, batch, 7)
    nomarr_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = Naive(catalog, es)
    naive.run(warm_clip)
    naive_load = time.perf_counter() - t0
    labels = sum(len(h.labels) for h in catalog.heads)
    two_class = sum(len(h.labels) for h in catalog.heads if h.is_two_class)
    print(
        f"models: {', '.join(b.stem for b in catalog.backbones)} + {len(classifier_heads)} heads"
        f" ({labels} labels, {two_class} two-class); load+warm-up: Nomarr {nomarr_load:.1f} s,"
        f" naive {naive_load:.1f} s (not in the timings)"
    )

    with tempfile.TemporaryDirectory(prefix="nomarr-bench-") as tmp:
        folder = args.tracks_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        tracks = make_tracks(folder, args.tracks, args.minutes, args.seed)
        built = time.perf_counter() - t0
        if args.show_tracks:
            for path, recipe in tracks:
                print(f"  {path.name}: {recipe}")

        # Per track, every measurement in turn, so a burst of load from other processes
        # hits naive and Nomarr alike.
        naive_run = Run("naive")
        nomarr_runs = {hop: Run(f"nomarr hop {hop}") for hop in hops}
        parts: dict[str, list[float]] = {}
        sizes = [int(size) for size in args.batch_sizes.split(",") if size.strip()]
        sweep = dict.fromkeys(sizes, 0.0)
        minutes = 0.0
        patch_count = 0
        for path, _ in tracks:
            (duration, head_scores), wall, cpu = timed(naive.run, path)
            minutes += duration / 60
            naive_run.add(wall, cpu, pipeline.describe(head_scores, namespace, catalog.fingerprint))
            for hop, run in nomarr_runs.items():
                run.add(*nomarr_way(pipeline, path, catalog, hop, batch, namespace))
            patch_count += time_parts(pipeline, path, catalog, default_hop, batch, namespace, parts)
            for size in sizes:
                sweep[size] += nomarr_way(pipeline, path, catalog, default_hop, size, namespace)[0]
        print(
            f"tracks: {len(tracks)} built in {built:.1f} s, {minutes:.1f} min of audio"
            f" ({minutes / len(tracks):.2f} min each on average)"
        )
        parity = frontend_parity(tracks[0][0], catalog, naive, pipeline, es)

    # ----------------------------------------------------------------- report
    naive_rate = naive_run.per_minute(minutes)
    reference = naive_run.analyses
    print(f"reference tiers (naive, hop {NAIVE_HOP}): {tier_counts(reference)}")
    print(parity)
    print()
    header = f"{'way':<26}{'patch/min':>10}{'s/min':>7}{'cpu s/min':>10}{'speedup':>8}"
    header += f"{'tier agree':>16}{'mood sets':>11}{'mean |dS|':>11}"
    print(header)
    print("-" * len(header))
    naive_patches = 60 * 16000 / 256 / NAIVE_HOP
    print(
        f"{f'naive ({len(catalog.heads)} calls, hop {NAIVE_HOP})':<26}"
        f"{naive_patches * len(catalog.heads):>10.0f}{naive_rate:>7.2f}"
        f"{sum(naive_run.cpu) / minutes:>10.2f}{1:>7.1f}x"
        f"{'reference':>16}{'reference':>11}{0:>11.4f}"
    )
    results = {}
    for hop, run in sorted(nomarr_runs.items()):
        rate = run.per_minute(minutes)
        same, pairs, moods_same, n, mad = agreement(run.analyses, reference)
        results[hop] = (rate, naive_rate / rate, same / pairs)
        patches = 60 * 16000 / 256 / hop * len(catalog.backbones)
        mark = "*" if hop == default_hop else " "
        print(
            f"{f'nomarr hop {hop}{mark}':<26}{patches:>10.0f}{rate:>7.2f}"
            f"{sum(run.cpu) / minutes:>10.2f}{naive_rate / rate:>7.1f}x"
            f"{f'{same}/{pairs} {100 * same / pairs:.1f}%':>16}"
            f"{f'{moods_same}/{n}':>11}{mad:>11.4f}"
        )
    print(
        "  (* = NOMARR_PATCH_HOP; patch/min = backbone patches per minute of audio;"
        " naive algorithms created once, before timing; each call redoes mel + backbone;"
        " cpu s/min = CPU seconds of all threads per minute of audio)"
    )

    print()
    print(f"where Nomarr's time goes at hop {default_hop}, batch {batch} ({patch_count} patches):")
    total = sum(wall for wall, _ in parts.values())
    for name, (wall, cpu) in parts.items():
        ratio = f"cpu/wall {cpu / wall:.2f}" if wall >= 0.5 else ""  # os.times() ticks 10 ms
        line = f"  {name:<32}{wall / minutes:>7.3f} s/min {100 * wall / total:>5.1f} %   {ratio}"
        print(line.rstrip())
    print(f"  {'sum of parts':<32}{total / minutes:>7.3f} s/min")
    if sweep:
        print(f"batch size sweep at hop {default_hop} (run_models, s/min):")
        print("  " + ", ".join(f"batch {size}: {t / minutes:.3f}" for size, t in sweep.items()))

    rate, speedup, agree = results[default_hop]
    target = speedup >= 4 and agree >= 0.98
    good = [hop for hop, (r, s, a) in results.items() if s >= 4 and a >= 0.98]
    fastest = max(good, default=None)
    stretch = [hop for hop, (r, _, _) in results.items() if r <= 1.0]
    print()
    line = (
        f"SUMMARY: {os.cpu_count()} cores, {minutes:.1f} min of audio in {len(tracks)} tracks;"
        f" naive {naive_rate:.2f} s/min; Nomarr at hop {default_hop}: {rate:.2f} s/min,"
        f" {speedup:.1f}x faster, {100 * agree:.1f}% tiers agree"
        f" -> target (>=4x, >=98%) {'MET' if target else 'NOT MET'}"
    )
    if fastest is not None:
        r, s, a = results[fastest]
        line += f"; fastest hop meeting it: {fastest} ({r:.2f} s/min, {s:.1f}x, {100 * a:.1f}%)"
    if stretch:
        hop = min(stretch)
        r, s, a = results[hop]
        line += f"; stretch <=1.0 s/min first at hop {hop} ({r:.2f} s/min, {100 * a:.1f}% agree)"
    else:
        line += "; stretch <=1.0 s/min not reached at any hop measured"
    print(line)
    elapsed, stall_end = time.perf_counter() - started, cpu_stall_us()
    stalled = ""
    if stall_start is not None and stall_end is not None:
        stalled = (
            f", a task waited for a core {(stall_end - stall_start) / 1e4 / elapsed:.0f} % of it"
        )
    print(
        f"(benchmark wall time {elapsed:.0f} s{stalled}; load average now"
        f" {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores: other busy processes inflate s/min)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
