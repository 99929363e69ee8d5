"""Moods without the heads? The backbones' own mood-like tags against the real heads.

    .venv/bin/python benchmarks/bench_mood_mapping.py [--packages ...] [--per-package 8]
        [--excerpt 30] [--work /tmp/nomarr-moodmap]

The MSD and MTT backbones tag every file with 50 words each, some of them moods
(MSD: happy, sad, chill, Mellow, party, dance, ...; MTT: quiet, soft, ambient, no
vocals, ...). This asks whether a documented mapping from those tags to Nomarr's
mood words agrees well enough with Essentia's mood heads (the nine heads in
../shared/fixtures/essentia-models) to be worth writing when the heads are not
installed.

Music nobody here wrote: Debian's free game soundtracks (`apt-get download`, then
`dpkg-deb -x`, into --work, by bench_retrieval.py's corpus code), a 30-second piece
from the middle of each track, heard once by the real pipeline with the heads
installed (kept in --work, so a second run only scores).

The mapping (MAPPING below): a word's score is the mean of its source tags, each
first calibrated on this corpus as Nomarr's calibration does (min-max between the
5th and 95th percentile, keys.calibrate); its decision is keys.tier(s, 1 - s) !=
"none", the rule a two-class head's label gets. The head's decision is its label's
tier on the raw scores != "none" (the label is in nom_mood_loose). Per word: the
share of tracks where both decide alike, Cohen's kappa (agreement beyond chance),
and the ROC AUC of the mapped score against the head's decision (no threshold).
A word earns a place in the product at kappa >= 0.6 and AUC >= 0.85. "best k" is the
kappa of the threshold that gives the head's own share of yes (it peeks at the heads:
an upper bound for any threshold, not a usable rule).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_retrieval  # noqa: E402
from benchmarks.bench_retrieval import corpus  # noqa: E402

bench_retrieval.AUDIO.add(".opus")  # warzone2100-music's soundtrack is Opus

PACKAGES = [
    "frozen-bubble-data", "drascula-music", "singularity-music", "hyperrogue-music",
    "asc-music", "planetblupi-music-ogg", "warzone2100-music",
]  # fmt: skip

#: Nomarr's mood word -> (head stem, label) and the backbone tags that stand for it.
MAPPING: dict[str, tuple[str, str, list[str]]] = {
    "happy": ("mood_happy-msd-musicnn-1", "happy", ["msd:happy", "msd:catchy"]),
    "sad": ("mood_sad-msd-musicnn-1", "sad", ["msd:sad"]),
    "relaxed": (
        "mood_relaxed-msd-musicnn-1", "relaxed",
        ["msd:chillout", "msd:chill", "msd:Mellow", "msd:easy listening",
         "mtt:quiet", "mtt:soft", "mtt:ambient", "mtt:slow"],
    ),
    "party": ("mood_party-msd-musicnn-1", "party", ["msd:party", "msd:dance", "mtt:dance"]),
    "aggressive": (
        "mood_aggressive-msd-musicnn-1", "aggressive",
        ["msd:metal", "msd:heavy metal", "msd:hard rock", "msd:punk", "mtt:loud", "mtt:metal"],
    ),
    "danceable": (
        "danceability-msd-musicnn-1", "danceable",
        ["msd:dance", "msd:party", "msd:House", "msd:electro", "mtt:dance", "mtt:techno",
         "mtt:beat"],
    ),
    "instrumental": (
        "voice_instrumental-msd-musicnn-1", "instrumental",
        ["msd:instrumental", "mtt:no vocals", "mtt:no vocal", "mtt:no voice"],
    ),
    "voice": (
        "voice_instrumental-msd-musicnn-1", "voice",
        ["msd:female vocalists", "msd:male vocalists", "mtt:vocal", "mtt:vocals",
         "mtt:voice", "mtt:singing"],
    ),
}  # fmt: skip
BACKBONES = {"msd": "msd-musicnn-1", "mtt": "mtt-musicnn-1"}


def hear(work: Path, files: dict[str, list[Path]], excerpt: float) -> dict[str, dict]:
    """Each track's mean scores per head and label, heard once and kept in work."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.settings")
    os.environ.setdefault("NOMARR_LOG_LEVEL", "WARNING")
    fixtures = ROOT.parent / "shared" / "fixtures" / "essentia-models"
    os.environ.setdefault("NOMARR_MODELS_DIR", f"{ROOT / 'models'}:{fixtures}")
    import django

    django.setup()

    from tagging.catalog import get_catalog

    catalog = get_catalog()
    missing = {stem for stem, _, _ in MAPPING.values()} - {h.stem for h in catalog.heads}
    if missing:
        sys.exit(f"heads missing from the models folders: {sorted(missing)}")
    cache = work / f"moods-{catalog.fingerprint}-{excerpt:g}.npz"
    saved = dict(np.load(cache, allow_pickle=True))["rows"].item() if cache.exists() else {}
    pieces = work / "pieces"
    pieces.mkdir(exist_ok=True)
    for package, paths in files.items():
        for path in paths:
            key = f"{package}/{path.name}"
            if key in saved:
                continue
            heard = bench_retrieval.hear_middle(path, key, pieces, excerpt, catalog)
            saved[key] = {
                head.stem: dict(zip(head.labels, map(float, mean), strict=True))
                for head, mean in heard.head_scores
            }
            print(f"heard {key}", flush=True)
            np.savez(cache, rows=np.array(saved, dtype=object))
    return saved


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by ranks (ties halved); nan when one class is absent."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def kappa(a: np.ndarray, b: np.ndarray) -> float:
    observed = float((a == b).mean())
    expected = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    return (observed - expected) / (1 - expected) if expected < 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packages", nargs="+", default=PACKAGES)
    parser.add_argument("--per-package", type=int, default=10)
    parser.add_argument("--excerpt", type=float, default=30.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nomarr-moodmap"))  # noqa: S108
    args = parser.parse_args()
    files = corpus(args.work, args.packages, args.per_package)
    for package, paths in files.items():
        print(f"{package}: {len(paths)} tracks")
    rows = hear(args.work, files, args.excerpt)

    from tagging import keys

    tracks = sorted(rows)

    def column(model: str, label: str) -> np.ndarray:
        return np.array([rows[t][model][label] for t in tracks])

    def calibrated(values: np.ndarray) -> np.ndarray:
        bounds = (float(np.percentile(values, 5)), float(np.percentile(values, 95)))
        return np.array([keys.calibrate(float(v), bounds) for v in values])

    print(f"\n{len(tracks)} tracks from {len(files)} packages")
    print(
        f"{'word':13} {'head+':>6} {'map+':>6} {'agree':>6} {'kappa':>6} {'AUC':>6} "
        f"{'best k':>6}  verdict"
    )
    for word, (stem, label, sources) in MAPPING.items():
        head = rows[tracks[0]][stem]
        other = next(name for name in head if name != label)
        p, q = column(stem, label), column(stem, other)
        truth = np.array([keys.tier(a, b) != "none" for a, b in zip(p, q, strict=True)])
        members = [
            calibrated(column(BACKBONES[src.split(":")[0]], src.split(":", 1)[1]))
            for src in sources
        ]
        mapped = np.mean(members, axis=0)
        decided = np.array([keys.tier(s, 1 - s) != "none" for s in mapped])
        k, area = kappa(truth, decided), auc(mapped, truth)
        # The best a threshold could do: the one giving the head's own share of yes
        # (it peeks at the heads, so it only bounds what a mapping could reach).
        cut = np.quantile(mapped, 1 - truth.mean()) if 0 < truth.mean() < 1 else np.inf
        best = kappa(truth, mapped >= cut)
        earns = k >= 0.6 and area >= 0.85
        print(
            f"{word:13} {truth.mean():6.0%} {decided.mean():6.0%} "
            f"{(truth == decided).mean():6.0%} {k:6.2f} {area:6.2f} {best:6.2f}  "
            f"{'earns it' if earns else 'rejected'}"
        )


if __name__ == "__main__":
    main()
