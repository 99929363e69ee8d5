"""How well sonic similarity retrieves on real music nobody here wrote: Debian's game soundtracks.

    .venv/bin/python benchmarks/bench_retrieval.py [--packages frozen-bubble-data ...]
        [--excerpt 30] [--per-package 12] [--work /tmp/nomarr-retrieval]

Downloads the packages with `apt-get download` (never in the test suite), extracts
them with `dpkg-deb -x`, and takes every music file of 30 s or more (Ogg Vorbis, Opus
and tracker modules, which ffmpeg decodes), up to --per-package of each. Each is cut to
an --excerpt-second piece from its middle (the models hear a track as patches of
3 s, so a piece tells the track; the whole corpus would take an hour on 2 cores),
heard by the real pipeline (`tagging.pipeline.run_models`, the installed model
set), and kept in --work, so a second run only scores.

For each representation it reports, leaving each track out in turn, how often its
nearest neighbour (P@1) and how many of its 5 nearest (P@5) come from the same
package (the same game's soundtrack: one composer or a few, one style), against
what chance gives. Representations: each backbone's mean embedding, mean with the
spread, the mean centred on the corpus mean, both backbones together, and the
backbones' own tag predictions (the MSD and MTT 50-tag vectors).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media import duration  # noqa: E402  (benchmarks/ is the script's folder)

PACKAGES = [
    "frozen-bubble-data", "pingus-data", "extremetuxracer-data", "xmoto-data",
    "drascula-music", "singularity-music", "hyperrogue-music", "asc-music",
    "planetblupi-music-ogg", "warzone2100-music",
]  # fmt: skip
AUDIO = {".ogg", ".opus", ".mp3", ".flac", ".it", ".xm", ".s3m", ".mod"}


def corpus(work: Path, packages: list[str], per_package: int) -> dict[str, list[Path]]:
    debs, tree = work / "debs", work / "tree"
    debs.mkdir(parents=True, exist_ok=True)
    found = {}
    for package in packages:
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
        target = tree / package
        if not target.exists():
            deb = next(debs.glob(f"{package}_*.deb"))
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
        music = sorted(
            p for p in target.rglob("*") if p.suffix.lower() in AUDIO and _length(p) >= 30
        )
        found[package] = music[:per_package]
    return found


def _length(path: Path) -> float:
    """duration(), 0 for a file ffprobe cannot read (it is left out of the corpus)."""
    try:
        return duration(path)
    except (subprocess.CalledProcessError, ValueError):
        return 0.0


def hear_middle(path: Path, key: str, pieces: Path, excerpt: float, catalog):
    """The real pipeline's models on the middle excerpt seconds of path (cut to a mono
    FLAC in pieces): what every corpus benchmark hears of a track."""
    from django.conf import settings

    from tagging import pipeline

    start = max(0.0, duration(path) / 2 - excerpt / 2)
    piece = pieces / (key.replace("/", "__") + ".flac")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-ss", f"{start:.1f}", "-t",
         f"{excerpt:g}", "-i", str(path), "-ac", "1", str(piece)],
        check=True,
    )  # fmt: skip
    return pipeline.run_models(
        piece, catalog, hop=settings.NOMARR_PATCH_HOP,
        batch_size=settings.NOMARR_BATCH_SIZE, min_duration=1.0,
    )  # fmt: skip


def hear(work: Path, files: dict[str, list[Path]], excerpt: float) -> dict[str, np.ndarray]:
    """Each file's representations, heard once and kept in work/heard.npz."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.settings")
    os.environ.setdefault("NOMARR_LOG_LEVEL", "WARNING")
    import django

    django.setup()

    from tagging.catalog import get_catalog

    catalog = get_catalog()
    cache = work / f"heard-{catalog.fingerprint}-{excerpt:g}.npz"
    saved = dict(np.load(cache, allow_pickle=True)) if cache.exists() else {}
    rows = {
        name: list(saved.get(name, []))
        for name in ("key", "package", "msd", "mtt", "msd_sd", "mtt_sd", "msd_tags", "mtt_tags")
    }
    done = set(rows["key"])
    pieces = work / "pieces"
    pieces.mkdir(exist_ok=True)
    for package, paths in files.items():
        for path in paths:
            key = f"{package}/{path.name}"
            if key in done:
                continue
            heard = hear_middle(path, key, pieces, excerpt, catalog)
            tags = {head.stem: mean for head, mean in heard.head_scores if head.graph is None}
            rows["key"].append(key)
            rows["package"].append(package)
            for stem, short in (("msd-musicnn-1", "msd"), ("mtt-musicnn-1", "mtt")):
                rows[short].append(heard.embeddings[stem].mean)
                rows[f"{short}_sd"].append(heard.embeddings[stem].spread)
                rows[f"{short}_tags"].append(tags.get(stem, np.zeros(50)))
            print(f"heard {key}", flush=True)
            np.savez(cache, **{k: np.array(v) for k, v in rows.items()})
    return {k: np.array(v) for k, v in rows.items()}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def precision(vectors: np.ndarray, labels: np.ndarray, k: int) -> float:
    v = unit(vectors)
    scores = v @ v.T
    np.fill_diagonal(scores, -np.inf)
    top = np.argsort(-scores, axis=1)[:, :k]
    return float((labels[top] == labels[:, None]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packages", nargs="+", default=PACKAGES)
    parser.add_argument("--per-package", type=int, default=12)
    parser.add_argument("--excerpt", type=float, default=30.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nomarr-retrieval"))  # noqa: S108
    args = parser.parse_args()
    files = corpus(args.work, args.packages, args.per_package)
    for package, paths in files.items():
        print(f"{package}: {len(paths)} tracks")
    d = hear(args.work, files, args.excerpt)
    labels = d["package"]
    counts = {p: int((labels == p).sum()) for p in set(labels)}
    chance = sum(c * (c - 1) for c in counts.values()) / (len(labels) * (len(labels) - 1))

    def centred(x):
        return x - x.mean(axis=0)

    def both(a, b):
        return np.hstack([unit(a), unit(b)])

    reps = {
        "msd mean": d["msd"],
        "mtt mean": d["mtt"],
        "msd mean + spread": both(d["msd"], d["msd_sd"]),
        "mtt mean + spread": both(d["mtt"], d["mtt_sd"]),
        "msd mean, centred": centred(d["msd"]),
        "mtt mean, centred": centred(d["mtt"]),
        "msd + mtt means": both(d["msd"], d["mtt"]),
        "msd + mtt means, centred": both(centred(d["msd"]), centred(d["mtt"])),
        "MSD tag vector": d["msd_tags"],
        "MTT tag vector": d["mtt_tags"],
    }
    print(f"\n{len(labels)} tracks from {len(counts)} packages; chance P@1 = P@5 = {chance:.2f}")
    print(f"{'representation':28} {'P@1':>6} {'P@5':>6}")
    for name, vectors in reps.items():
        p1, p5 = precision(vectors, labels, 1), precision(vectors, labels, 5)
        print(f"{name:28} {p1:6.2f} {p5:6.2f}")


if __name__ == "__main__":
    main()
