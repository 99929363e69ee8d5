"""How much memory a worker needs for a track, by the track's length.

    .venv/bin/python benchmarks/bench_memory.py [--long-minutes 120] [--baseline OLD_PIPELINE.py]

Builds, from the two 30-s fixture clips with ffmpeg in a temporary folder, a
3-minute track (the clips in turn, 44.1 kHz stereo MP3, the usual case for the
resampler) and a long one (that track repeated, 2 hours by default, stream-copied
so it takes seconds). Each track is analysed in a fresh process, as a worker would:
the default model set plus the nine fixture heads (the two musicnn backbones and
nine heads, 11 models) are loaded and warmed on a fixture clip, then
`pipeline.analyse()` runs once on the track. It prints, per track, the worker's
resident memory with the models loaded, its peak resident memory (VmHWM, the
kernel's high-water mark), the wall time and the patch count, and checks the
target: a peak of at most 700 MB for both tracks.

`--baseline PATH` also runs another copy of `tagging/pipeline.py` (for instance
the one from before a change, copied aside) on the 3-minute track, and prints
the largest score difference between it and the current pipeline (target:
below 1e-4) and both peaks; `--baseline-long` runs it on the long track too
(issue 10 measured 3.9 GB for 2 hours before the pipeline streamed).

The long track takes minutes of CPU (the models hear every 1.5 s of it);
`--long-minutes 20` is a quicker look. `--tracks-dir` keeps the tracks.
Never import tensorflow here: it aborts next to the TensorFlow Essentia bundles.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from media import duration as probe_duration

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fixtures"
CLIPS_DIR = SHARED / "audio"
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
TARGET_MB = 700.0
SCORE_TOLERANCE = 1e-4
CURRENT = "tagging.pipeline"


# --------------------------------------------------------------------------- tracks


def make_tracks(dest: Path, short_minutes: float, long_minutes: float) -> tuple[Path, Path]:
    """A track of short_minutes from the fixture clips in turn, and one of
    long_minutes made of that track repeated (stream copy, no re-encoding)."""
    clips = sorted(CLIPS_DIR.glob("*.mp3"))
    if not clips:
        raise SystemExit(f"no fixture clips in {CLIPS_DIR}")
    short = dest / f"track-{short_minutes:g}min.mp3"
    count = int(short_minutes * 60 // 29) + 1
    inputs = [clips[i % len(clips)] for i in range(count)]
    argv = [FFMPEG, "-v", "error", "-y"]
    for clip in inputs:
        argv += ["-i", str(clip)]
    norm = "aresample=44100,aformat=sample_fmts=fltp:channel_layouts=stereo"
    graph = "".join(f"[{i}:a]{norm}[s{i}];" for i in range(count))
    graph += "".join(f"[s{i}]" for i in range(count)) + f"concat=n={count}:v=0:a=1[out]"
    argv += ["-filter_complex", graph, "-map", "[out]", "-t", f"{short_minutes * 60:g}"]
    argv += ["-c:a", "libmp3lame", "-b:a", "192k", str(short)]
    subprocess.run(argv, check=True)

    long = dest / f"track-{long_minutes:g}min.mp3"
    repeats = max(1, round(long_minutes / short_minutes))
    listing = dest / "long.txt"
    listing.write_text("".join(f"file '{short.name}'\n" for _ in range(repeats)))
    concat = [FFMPEG, "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
    subprocess.run([*concat, "-c", "copy", str(long)], check=True)
    return short, long


# --------------------------------------------------------------------------- one worker


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _load_pipeline(spec: str) -> ModuleType:
    if spec == CURRENT:
        return importlib.import_module(CURRENT)
    loader_spec = importlib.util.spec_from_file_location("baseline_pipeline", spec)
    if loader_spec is None or loader_spec.loader is None:
        raise SystemExit(f"cannot import {spec}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[loader_spec.name] = module  # its dataclasses look their module up
    loader_spec.loader.exec_module(module)
    return module


def child(spec: str, track: Path) -> dict[str, Any]:
    """In this fresh process: load the 11 models, warm them, analyse track once."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.test_settings")
    import django

    django.setup()
    from tagging.catalog import get_catalog

    pipeline = _load_pipeline(spec)
    catalog = get_catalog()
    models = len(catalog.backbones) + sum(1 for h in catalog.heads if h.graph is not None)
    pipeline.analyse(sorted(CLIPS_DIR.glob("*.mp3"))[0], catalog)  # loads every model
    loaded_kb = _status_kb("VmRSS")
    started = time.perf_counter()
    analysis = pipeline.analyse(track, catalog)
    wall = time.perf_counter() - started
    return {
        "models": models,
        "loaded_mb": loaded_kb / 1024,
        "peak_mb": _status_kb("VmHWM") / 1024,
        "wall": wall,
        "duration": analysis.duration,
        "patches": getattr(analysis, "patches", None),
        "scores": {f"{s.model}|{s.label}": s.score for s in analysis.scores},
    }


def measure(spec: str, track: Path) -> dict[str, Any]:
    """child() in a new process, so each measurement starts from an empty worker."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", spec, str(track)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{spec} on {track.name} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(lines[-1]))


# --------------------------------------------------------------------------- report


def row(label: str, track: Path, result: dict[str, Any]) -> str:
    patches = result["patches"] if result["patches"] is not None else "-"
    verdict = "ok" if result["peak_mb"] <= TARGET_MB else f"OVER {TARGET_MB:g} MB"
    return (
        f"{label:<9} {track.name:<22} {result['duration']:>8.1f} {result['wall']:>8.1f}"
        f" {patches!s:>8} {result['loaded_mb']:>10.0f} {result['peak_mb']:>9.0f}  {verdict}"
    )


def max_difference(a: dict[str, float], b: dict[str, float]) -> float:
    if a.keys() != b.keys():
        raise SystemExit("the two pipelines scored different labels")
    return max(abs(a[k] - b[k]) for k in a)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--short-minutes", type=float, default=3.0)
    parser.add_argument("--long-minutes", type=float, default=120.0)
    parser.add_argument("--baseline", help="another copy of tagging/pipeline.py to compare")
    parser.add_argument("--baseline-long", action="store_true", help="baseline on the long track")
    parser.add_argument("--tracks-dir", type=Path, help="keep the tracks here (default: temp)")
    parser.add_argument("--child", nargs=2, metavar=("PIPELINE", "TRACK"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return 0
    with tempfile.TemporaryDirectory(prefix="nomarr-bench-memory-") as tmp:
        dest = args.tracks_dir or Path(tmp)
        dest.mkdir(parents=True, exist_ok=True)
        short, long = make_tracks(dest, args.short_minutes, args.long_minutes)
        print(
            f"Worker memory by track length: {os.cpu_count()} CPU cores (load average"
            f" {os.getloadavg()[0]:.2f}); tracks {short.name} ({probe_duration(short):.0f} s),"
            f" {long.name} ({probe_duration(long):.0f} s)"
        )
        runs = [("current", CURRENT, short), ("current", CURRENT, long)]
        if args.baseline:
            runs.insert(0, ("baseline", str(Path(args.baseline).resolve()), short))
            if args.baseline_long:
                runs.append(("baseline", str(Path(args.baseline).resolve()), long))
        print(
            f"{'pipeline':<9} {'track':<22} {'audio s':>8} {'wall s':>8} {'patches':>8}"
            f" {'loaded MB':>10} {'peak MB':>9}"
        )
        results = {}
        for label, spec, track in runs:
            result = measure(spec, track)
            results[label, track] = result
            print(row(label, track, result), flush=True)
        current = [results["current", short], results["current", long]]
        print(f"models loaded: {current[0]['models']} (backbones + classifier heads)")
        ok = all(r["peak_mb"] <= TARGET_MB for r in current)
        if ("baseline", short) in results:
            diff = max_difference(results["baseline", short]["scores"], current[0]["scores"])
            same = diff < SCORE_TOLERANCE
            print(
                f"scores on {short.name}, current vs baseline: largest difference {diff:.2e}"
                f" ({'within' if same else 'OVER'} {SCORE_TOLERANCE:g})"
            )
            ok = ok and same
        growth = current[1]["peak_mb"] - current[0]["peak_mb"]
        print(
            f"peak growth from {short.name} to {long.name}: {growth:+.0f} MB;"
            f" target peak <= {TARGET_MB:g} MB for both: {'met' if ok else 'NOT met'}"
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
