"""How fast `retier` re-decides tiers and rewrites the files that change (no model run).

    .venv/bin/python benchmarks/bench_retier.py [--files 500] [--seconds 30] [--library DIR]

Builds (once, then reuses) a library of distinct files in /tmp: `--seconds` cuts of the
fixture clip in the seven formats Nomarr tags, each carrying the tags the pipeline writes
(tagging.pipeline.describe on the installed catalog, the msd/mtt backbones and the nine
fixture heads) for its own random scores, written by tagging.writers.write_tags: a tagged
library, without running the models. On a fresh SQLite database (a temporary file
unless DATABASE_URL is set) it scans the library in, and then measures in one run:

* baseline: a plain re-read of every file, what refreshing a row costs at least
  (tagging.tagfiles.read_tags and library.metadata.read_file);
* calibration: measuring the library's distribution per label (the SQL of
  library/calibration.py) and saving it as the calibration;
* retier with NOMARR_TIER_SCORES=calibrated: nearly every file's tiers change, so its
  tags are rewritten (tagging.writers.write_tags: a copy, fsync, verify, rename) and
  its rows follow from the values written (library.rows.apply_rewrites): the files
  rewritten per second is the figure of the target (>= TARGET files/s); and the ratio
  to the baseline read;
* the rows checked against a read of every file (library.metadata.read_file): each
  file's tag values, stat and tags_digest must be what the read gives;
* retier again, nothing to change: files checked per second (no file is opened);
* the full refresh of one file's rows (library.rows.refresh_file, a job's: read the
  file, replace all its TagValue rows), for every file: what the retier's rows cost
  before apply_rewrites.

`--profile N` prints the N costliest functions (cProfile, cumulative, or `--sort tottime`)
of this process during the calibrated retier (the writer processes are not in it).

The models are never run (tagging.pipeline.Counters.model_runs stays 0). Each figure is
the wall clock of one pass (time.perf_counter); the machine is shared, so compare the
ratios of one run.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fixtures"
SOURCE_CLIP = SHARED / "audio" / "joram-moments_of_clarity-08-solipsism-59-88.mp3"
FIXTURE_HEADS = SHARED / "essentia-models"
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
#: files/s retier rewrites (issue 12 §3)
TARGET = 100
sys.path.insert(0, str(ROOT))


def setup_django(library: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.settings")
    os.environ["NOMARR_LIBRARY_ROOTS"] = str(library)
    os.environ.setdefault("NOMARR_LOG_LEVEL", "WARNING")
    os.environ.setdefault("NOMARR_MODELS_DIR", f"{ROOT / 'models'}:{FIXTURE_HEADS}")
    if "DATABASE_URL" not in os.environ:
        db = Path(tempfile.mkdtemp(prefix="nomarr-bench-db-")) / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{db}"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def templates(folder: Path, seconds: float) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    found = {}
    from tagging.tests.formats import AUDIO_FORMATS  # the suite's encoders

    for fmt, args in AUDIO_FORMATS.items():
        target = folder / f"template-{seconds:g}.{fmt}"
        if not target.exists():
            subprocess.run(
                [FFMPEG, "-v", "error", "-nostdin", "-y", "-stream_loop", "-1",
                 "-i", str(SOURCE_CLIP), "-vn", "-map_metadata", "-1", "-t", str(seconds),
                 *args, str(target)],
                check=True,
            )  # fmt: skip
        found[fmt] = target
    return found


def nomarr_tags(catalog, rng: random.Random) -> tuple[dict[str, list[str]], list[str]]:
    """What the pipeline writes when the models hear random scores."""
    import numpy as np

    from tagging import keys, pipeline

    head_scores = []
    for head in catalog.heads:
        if head.is_two_class:
            p = rng.betavariate(2, 3)
            mean = np.array([p, 1 - p])
        else:
            mean = np.array([rng.random() * 0.3 for _ in head.labels])
        head_scores.append((head, mean))
    analysis = pipeline.describe(head_scores, keys.namespace(), catalog.fingerprint)
    return analysis.tags, analysis.moods


def build_library(library: Path, files: int, seconds: float) -> None:
    from tagging import keys, writers
    from tagging.catalog import get_catalog

    catalog = get_catalog()
    marker = library / ".nomarr-bench"
    wanted = f"{files} {seconds} {catalog.fingerprint}"
    if marker.exists() and marker.read_text() == wanted:
        print(f"reusing the library in {library}")
        return
    shutil.rmtree(library, ignore_errors=True)
    sources = templates(library.parent / f"{library.name}-templates", seconds)
    formats = sorted(sources)
    started = time.perf_counter()
    for i in range(files):
        fmt = formats[i % len(formats)]
        target = library / f"Artist {i // 100:03d}" / f"{i:05d} Track.{fmt}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[fmt], target)
        tags, moods = nomarr_tags(catalog, random.Random(i))
        writers.write_tags(target, tags, keys.namespace(), moods)
    marker.write_text(wanted)
    size = sum(p.stat().st_size for p in library.rglob("*") if p.is_file())
    print(f"built {files} files ({size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--writers", type=int, help="files written at once (retier.WRITERS)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each clip")
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    parser.add_argument("--sort", default="cumulative", help="their order (pstats: tottime...)")
    parser.add_argument(
        "--library", type=Path, default=Path(tempfile.gettempdir()) / "nomarr-bench-retier"
    )
    args = parser.parse_args()
    library = args.library.resolve()
    setup_django(library)
    build_library(library, args.files, args.seconds)

    from django.conf import settings
    from django.db import connection

    from library import calibration, metadata, retier, rows
    from library.models import LibraryFile, LibraryRoot, RetierRun, ScoreDistribution, TagValue
    from library.scanning import scan_root
    from tagging import keys, pipeline, tagfiles

    if args.writers:
        retier.WRITERS = args.writers
    for model in (TagValue, LibraryFile, RetierRun, ScoreDistribution, LibraryRoot):
        model.objects.all().delete()
    root = LibraryRoot.objects.create(path=str(library), auto_tag=False)
    scan = scan_root(root)
    paths = sorted(LibraryFile.objects.values_list("path", flat=True))
    size = sum(os.path.getsize(p) for p in paths) / len(paths)
    print(f"\n{len(paths)} files ({size / 1e6:.2f} MB each on average), {connection.vendor}, "
          f"{os.cpu_count()} CPUs; scanned in {scan.seconds:.1f} s")  # fmt: skip

    started = time.perf_counter()
    for path in paths:
        tagfiles.read_tags(Path(path), keys.namespace())
        metadata.read_file(path, os.stat(path), keys.namespace())
    read_s = time.perf_counter() - started

    # A library reused from an earlier run may hold calibrated tiers: raw ones first.
    settings.NOMARR_TIER_SCORES = "raw"
    retier.carry_out(retier.start(trigger="benchmark"))

    started = time.perf_counter()
    measured = calibration.calibrate()
    calibrate_s = time.perf_counter() - started

    settings.NOMARR_TIER_SCORES = "calibrated"
    runs = pipeline.Counters.model_runs
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    profile = cProfile.Profile() if args.profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profile:
        profile.enable()
    run = retier.carry_out(retier.start(trigger="benchmark"))
    if profile:
        profile.disable()
    retier_s, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    writers_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    assert run.status == "done", run.message

    started = time.perf_counter()
    wrong = []
    stored: dict[int, list[tuple[str, str]]] = {}
    for file_id, key, value in TagValue.objects.order_by("id").values_list(
        "file_id", "key", "value"
    ):
        stored.setdefault(file_id, []).append((key, value))
    for row in LibraryFile.objects.all():
        st = os.stat(row.path)
        info = metadata.read_file(row.path, st, keys.namespace())
        grouped: dict[str, list[str]] = {}
        for key, value in info.tags:
            grouped.setdefault(key, []).append(value)
        held: dict[str, list[str]] = {}
        for key, value in stored.get(row.pk, []):
            held.setdefault(key, []).append(value)
        if (held, row.tags_digest, row.size, row.mtime_ns, row.ctime_ns) != (
            grouped,
            info.tags_digest,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ):
            wrong.append(row.path)
    check_s = time.perf_counter() - started

    started = time.perf_counter()
    again = retier.carry_out(retier.start(trigger="benchmark"))
    again_s = time.perf_counter() - started
    assert pipeline.Counters.model_runs == runs, "a model ran"

    started = time.perf_counter()
    for path in paths:
        rows.refresh_file(path)
    refresh_s = time.perf_counter() - started

    rate = run.changed / retier_s
    print(f"  {'plain re-read of every file (baseline)':<46} {read_s:7.2f} s   "
          f"({len(paths) / read_s:,.0f} files/s)")  # fmt: skip
    print(f"  {f'calibration: {len(measured.labels)} labels measured, saved':<46} "
          f"{calibrate_s:7.2f} s")  # fmt: skip
    print(f"  {f'retier, calibrated: {run.changed} of {run.checked} rewritten':<46} "
          f"{retier_s:7.2f} s   ({rate:,.0f} files/s rewritten; target >= {TARGET}; "
          f"{rate / (len(paths) / read_s):.2f}x the re-read)")  # fmt: skip
    verdict = "ok" if not wrong else "WRONG: " + ", ".join(wrong[:3])
    print(f"  {f'rows as a read gives: {len(paths) - len(wrong)} of {len(paths)}':<46} "
          f"{check_s:7.2f} s   {verdict}")  # fmt: skip
    print(f"  {f'retier again: {again.changed} rewritten, {again.unchanged} unchanged':<46} "
          f"{again_s:7.2f} s   ({again.checked / again_s:,.0f} files/s checked)")  # fmt: skip
    print(f"  {'full refresh of every file (refresh_file)':<46} {refresh_s:7.2f} s   "
          f"({refresh_s * 1000 / len(paths):.1f} ms a file; the retier's process: "
          f"{cpu * 1000 / max(1, run.changed):.1f} ms CPU a file, all included)")  # fmt: skip
    per_file = 1000 / max(1, run.changed)
    ceiling = 2000 / ((cpu + writers_cpu) * per_file)
    print(f"  CPU per file rewritten: {cpu * per_file:.1f} ms here (decide, refresh the rows) "
          f"+ {writers_cpu * per_file:.1f} ms in the {retier.WRITERS} writer processes; "
          f"on 2 idle cores at most {ceiling:,.0f} files/s")  # fmt: skip
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  models run: {pipeline.Counters.model_runs - runs}; errors: {run.errors}")
    if profile:
        print(f"\nthis process during the calibrated retier (cProfile, top {args.profile}):")
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.profile)
    assert not wrong, f"{len(wrong)} file(s) whose rows are not what a read gives"
    print("PASS" if rate >= TARGET else "BELOW TARGET", f"{rate:.0f} files/s >= {TARGET}")


if __name__ == "__main__":
    main()
