"""How fast the library scan is: first scan, unchanged rescan, rescan after changes.

    .venv/bin/python benchmarks/bench_scan.py [--files 10000] [--nom-keys 0] [--library DIR]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/nomarr_bench \
        .venv/bin/python benchmarks/bench_scan.py

Builds (once, then reuses) a library of distinct files in /tmp: 8-s cuts of the fixture
clip in the seven formats Nomarr tags, copied into artist/album folders and each given
its own title, artist, album, track number and year with mutagen (--nom-keys N also
writes N Nomarr score keys into every other file, like a tagged library). Then, on a
fresh database (a temporary SQLite file unless DATABASE_URL is set; the library tables
of that database are emptied first), it measures in one run:

* floors: walking the tree with os.scandir + stat only, and reading every file's tags
  with mutagen alone (no database): what a rescan and a first scan cannot beat;
* baseline: a naive per-file ORM scan (get-or-create a row, one INSERT per tag value)
  over the first 1,000 files;
* Nomarr's scan: first scan (files/s) with auto-tag on, as a root has it by default
  (every new file gets its job: queued in bulk, target TARGET_FIRST_SCAN files/s), the
  same first scan with auto-tag off (the scan alone, on the emptied tables), a rescan
  with nothing changed, a rescan after 100 files' tags were rewritten, and one after
  100 renames, 50 deletions and 50 new files (moves must be recognised, not re-read);
* queueing baseline: the per-file way (`queue_file`: a look-up, an insert and a broker
  message per file) over 1,000 files, and the run messages of the bulk-queued jobs,
  which a worker sends after the scan (`tagging.jobs.send_run_messages`), timed here.

--no-auto-tag runs the first scan with auto-tag off only.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_CLIP = (
    ROOT.parent
    / "shared"
    / "fixtures"
    / "audio"
    / ("joram-moments_of_clarity-08-solipsism-59-88.mp3")
)
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
TRACKS_PER_ALBUM, ALBUMS_PER_ARTIST = 10, 10
#: files/s of a first scan of 10,000 files with auto-tag on (issue 15)
TARGET_FIRST_SCAN = 500
sys.path.insert(0, str(ROOT))

# The same encoders the test fixtures use (one list of formats Nomarr handles).
from tagging.tests.formats import AUDIO_FORMATS as ENCODERS  # noqa: E402


def setup_django(library: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.settings")
    os.environ["NOMARR_LIBRARY_ROOTS"] = str(library)
    os.environ.setdefault("NOMARR_LOG_LEVEL", "WARNING")
    if "DATABASE_URL" not in os.environ:
        db = Path(tempfile.mkdtemp(prefix="nomarr-bench-db-")) / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{db}"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# --------------------------------------------------------------------------- library


def templates(folder: Path, seconds: float) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    found = {}
    for fmt, args in ENCODERS.items():
        target = folder / f"template.{fmt}"
        if not target.exists():
            subprocess.run(
                [FFMPEG, "-v", "error", "-nostdin", "-y", "-i", str(SOURCE_CLIP), "-vn",
                 "-map_metadata", "-1", "-t", str(seconds), *args, str(target)],
                check=True,
            )  # fmt: skip
        found[fmt] = target
    return found


def write_tags(path: Path, fields: dict[str, str], nom: dict[str, str]) -> None:
    import mutagen
    from mutagen.id3 import TALB, TDRC, TIT2, TPE1, TRCK, TXXX, Encoding
    from mutagen.mp4 import AtomDataType, MP4FreeForm

    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    kind = type(audio).__name__
    if kind in ("MP3", "WAVE", "AIFF"):
        for frame, key in ((TIT2, "title"), (TPE1, "artist"), (TALB, "album"),
                           (TRCK, "tracknumber"), (TDRC, "date")):  # fmt: skip
            tags.setall(frame.__name__, [frame(encoding=Encoding.UTF8, text=[fields[key]])])
        for key, value in nom.items():
            tags.add(TXXX(encoding=Encoding.UTF8, desc=key, text=[value]))
        audio.save(v2_version=4) if kind == "MP3" else audio.save()
    elif kind == "MP4":
        atoms = {"title": "©nam", "artist": "©ART", "album": "©alb", "date": "©day"}
        for key, atom in atoms.items():
            tags[atom] = [fields[key]]
        tags["trkn"] = [(int(fields["tracknumber"]), TRACKS_PER_ALBUM)]
        for key, value in nom.items():
            tags[f"----:com.apple.iTunes:{key}"] = [
                MP4FreeForm(value.encode(), dataformat=AtomDataType.UTF8)
            ]
        audio.save()
    else:
        for key, value in fields.items():
            tags[key.upper()] = [value]
        for key, value in nom.items():
            tags[key.upper()] = [value]
        audio.save()


def stamp(path: Path, i: int) -> None:
    """Make the copy's audio its own: 16 bytes of the index in the middle of the audio
    payload (a click in PCM, a damaged frame elsewhere; tags and parsing are unaffected),
    so that no two files of the library share an audio fingerprint."""
    from library.metadata import _payload

    with open(path, "r+b") as handle:
        head = handle.read(64)
        _, start, end = _payload(handle, head, os.fstat(handle.fileno()).st_size)
        handle.seek(start + (end - start) // 2)
        handle.write(struct.pack(">QQ", i, 0x6E6F6D617272))


def track_path(library: Path, i: int, fmt: str) -> Path:
    album, track = divmod(i, TRACKS_PER_ALBUM)
    artist, album = divmod(album, ALBUMS_PER_ARTIST)
    name = f"{track + 1:02d} Track {i}.{fmt}"
    return library / f"Artist {artist:04d}" / f"Album {album:02d}" / name


def track_tags(i: int, nom_keys: int, version: str = "1") -> tuple[dict, dict]:
    # Settings are not set up while the library is built: the default namespace, named.
    from tagging.keys import score_key, version_key

    album, track = divmod(i, TRACKS_PER_ALBUM)
    artist, album_no = divmod(album, ALBUMS_PER_ARTIST)
    fields = {
        "title": f"Track {i} v{version}",
        "artist": f"Artist {artist}",
        "album": f"Album {artist}-{album_no}",
        "tracknumber": str(track + 1),
        "date": str(1960 + i % 60),
    }
    rng = random.Random(i)
    nom = {}
    if nom_keys and i % 2 == 0:
        nom = {
            score_key(f"model_{k:03d}", "label", "nom"): f"{rng.random():.3f}"
            for k in range(nom_keys)
        }
        nom[version_key("nom")] = "nomarr1-benchmark000"
    return fields, nom


def build_library(library: Path, files: int, nom_keys: int, seconds: float) -> None:
    marker = library / ".nomarr-bench"
    wanted = f"{files} {nom_keys} {seconds} stamped"
    if marker.exists() and marker.read_text() == wanted:
        print(f"reusing the library in {library}")
        return
    shutil.rmtree(library, ignore_errors=True)
    sources = templates(library.parent / f"{library.name}-templates", seconds)
    formats = sorted(sources)
    started = time.perf_counter()
    for i in range(files):
        fmt = formats[i % len(formats)]
        target = track_path(library, i, fmt)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sources[fmt], target)
        stamp(target, i)
        write_tags(target, *track_tags(i, nom_keys))
    marker.write_text(wanted)
    size = sum(p.stat().st_size for p in library.rglob("*") if p.is_file())
    print(
        f"built {files} files ({size / 1e9:.2f} GB) in {library} "
        f"in {time.perf_counter() - started:.0f} s"
    )


def audio_paths(library: Path) -> list[Path]:
    return sorted(p for p in library.rglob("*") if p.is_file() and not p.name.startswith("."))


# --------------------------------------------------------------------------- measures


def floor_walk(library: Path) -> float:
    started = time.perf_counter()
    stack, n = [str(library)], 0
    while stack:
        with os.scandir(stack.pop()) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    entry.stat(follow_symlinks=False)
                    n += 1
    return time.perf_counter() - started


def floor_mutagen(paths: list[Path]) -> float:
    import mutagen

    started = time.perf_counter()
    for path in paths:
        mutagen.File(path)
    return time.perf_counter() - started


def naive_scan(paths: list[Path]) -> float:
    """The obvious ORM way: one get_or_create per file, one INSERT per tag value."""
    from library.metadata import read_file
    from library.models import LibraryFile, LibraryRoot, TagValue
    from library.rows import tag_number
    from tagging.keys import namespace

    root, _ = LibraryRoot.objects.get_or_create(path="/naive-baseline", defaults={"enabled": False})
    started = time.perf_counter()
    for path in paths:
        info = read_file(str(path), path.stat(), namespace())
        row, _ = LibraryFile.objects.get_or_create(
            path=f"/naive-baseline{path}",
            defaults={"root": root, "folder": str(path.parent), "size": info.size,
                      "mtime_ns": info.mtime_ns, "fingerprint": info.fingerprint,
                      "duration": info.duration, **info.columns},
        )  # fmt: skip
        for key, value in info.tags:
            TagValue.objects.create(file=row, key=key, value=value, number=tag_number(key, value))
    took = time.perf_counter() - started
    root.delete()
    return took


def timed_scan(root, label: str, full: bool = False):
    from library.scanning import scan_root

    started = time.perf_counter()
    scan = scan_root(root, full=full, trigger="benchmark")
    took = time.perf_counter() - started
    counts = ", ".join(f"{k} {v}" for k, v in scan.counts().items() if v)
    print(f"  {label:<44} {took:8.2f} s   ({scan.status}; {counts})")
    assert scan.status == "done", scan.message
    return scan, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--nom-keys", type=int, default=0, help="Nomarr keys in every other file")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each clip")
    parser.add_argument(
        "--library", type=Path, default=Path(tempfile.gettempdir()) / "nomarr-bench-library"
    )
    parser.add_argument(
        "--no-auto-tag", action="store_true", help="first scan with auto-tag off only"
    )
    args = parser.parse_args()

    library = args.library.resolve()
    build_library(library, args.files, args.nom_keys, args.seconds)
    setup_django(library)
    from django.db import connection
    from django_q.models import OrmQ

    from library.models import LibraryFile, LibraryRoot, Scan, TagValue
    from tagging import jobs
    from tagging.models import Job

    def empty() -> None:
        TagValue.objects.all().delete()
        LibraryFile.objects.all().delete()
        Scan.objects.all().delete()
        Job.objects.all().delete()
        OrmQ.objects.all().delete()

    empty()
    LibraryRoot.objects.all().delete()
    auto_tag = not args.no_auto_tag
    root = LibraryRoot.objects.create(path=str(library), auto_tag=auto_tag)

    paths = audio_paths(library)
    broker = "redis" if os.environ.get("NOMARR_REDIS_URL") else "orm"
    print(f"\n{len(paths)} files, {connection.vendor} ({connection.settings_dict['NAME']}), "
          f"{os.cpu_count()} CPUs, broker: {broker}")  # fmt: skip
    walk = floor_walk(library)
    read = floor_mutagen(paths)
    naive_n = min(1000, len(paths))
    naive = naive_scan(paths[:naive_n])
    print("floors and baseline")
    print(f"  {'walk + stat only (no database)':<44} {walk:8.2f} s")
    print(f"  {'mutagen.File on every file (no database)':<44} {read:8.2f} s   "
          f"({len(paths) / read:,.0f} files/s)")  # fmt: skip
    print(f"  {f'naive per-file ORM scan, {naive_n} files':<44} {naive:8.2f} s   "
          f"({naive_n / naive:,.0f} files/s)")  # fmt: skip

    print("Nomarr's scan")
    label = "first scan, auto-tag on (the default)" if auto_tag else "first scan, auto-tag off"
    first, first_s = timed_scan(root, label)
    rate = first.seen / first_s
    tag_rows = TagValue.objects.count()
    messages = OrmQ.objects.count() if broker == "orm" else "(redis: not counted)"
    send_s = scan_only_s = per_file_s = None
    if auto_tag:
        assert first.queued == first.seen, (first.queued, first.seen)
        ids = list(Job.objects.order_by("pk").values_list("pk", flat=True))
        started = time.perf_counter()
        jobs.send_run_messages(ids)  # what a worker does with the scan's dispatch messages
        send_s = time.perf_counter() - started
        # The per-file way, as the scan queued before: 1,000 files.
        Job.objects.all().delete()
        OrmQ.objects.all().delete()
        sample = [Path(p) for p in LibraryFile.objects.values_list("path", flat=True)[:naive_n]]
        started = time.perf_counter()
        for path in sample:
            jobs.queue_file(path)  # autocommit: its run message is sent at once
        per_file_s = time.perf_counter() - started
        # The scan alone (auto-tag off) on emptied tables, for the queueing's share.
        empty()
        root.auto_tag = False
        root.save()
        _, scan_only_s = timed_scan(root, "first scan, auto-tag off (the scan alone)")
    _, unchanged_s = timed_scan(root, "rescan, nothing changed")

    rng = random.Random(7)
    changed = rng.sample(paths, 100)
    for path in changed:
        i = int(path.stem.rsplit(" ", 1)[1])
        write_tags(path, *track_tags(i, args.nom_keys, version=str(time.time_ns())))
    _, changed_s = timed_scan(root, "rescan after 100 files changed")
    _, full_s = timed_scan(root, "full rescan (--full, re-reads every file)", full=True)

    rest = [p for p in paths if p not in set(changed)]
    picked = rng.sample(rest, 200)
    renamed, deleted, copied = picked[:100], picked[100:150], picked[150:]
    for path in renamed:
        path.rename(path.with_name("renamed " + path.name))
    for path in deleted:
        path.unlink()
    new_files = []
    for n, path in enumerate(copied):
        target = path.parent / f"new {n} {path.name}"
        shutil.copyfile(path, target)
        write_tags(target, *track_tags(100_000 + n, args.nom_keys))
        new_files.append(target)
    _, moved_s = timed_scan(root, "rescan after 100 renamed, 50 deleted, 50 new")
    # Put the library back as it was built, for the next run (on a fresh database).
    for path in renamed:
        path.with_name("renamed " + path.name).rename(path)
    for target in new_files:
        target.unlink()
    for path in deleted:
        fmt = path.suffix[1:]
        shutil.copyfile(library.parent / f"{library.name}-templates" / f"template.{fmt}", path)
        i = int(path.stem.rsplit(" ", 1)[1])
        stamp(path, i)
        write_tags(path, *track_tags(i, args.nom_keys))

    print("\nsummary")
    what = "with auto-tag on" if auto_tag else "with auto-tag off"
    print(f"  first scan {what}: {rate:,.0f} files/s ({first.seen} files, {tag_rows:,} tag "
          f"rows in {first_s:.1f} s; naive ORM {naive_n / naive:,.0f} files/s, "
          f"{rate / (naive_n / naive):.1f}x)")  # fmt: skip
    if auto_tag:
        verdict = "meets" if rate >= TARGET_FIRST_SCAN else "misses"
        print(f"  target: >= {TARGET_FIRST_SCAN} files/s with auto-tag on: {verdict} it")
        print(f"  jobs queued by the scan: {first.queued}, in {messages} broker messages "
              f"(per-file queueing: one per job)")  # fmt: skip
        print(f"  per-file queueing (queue_file), {naive_n} files: {per_file_s:.2f} s "
              f"({naive_n / per_file_s:,.0f} files/s); bulk in the scan: "
              f"{first.queued / max(first_s - scan_only_s, 1e-9):,.0f} files/s "
              f"({first_s - scan_only_s:.2f} s over the scan alone, "
              f"{scan_only_s:.2f} s)")  # fmt: skip
        print(f"  the run messages, sent afterwards by a worker: {send_s:.2f} s for "
              f"{first.queued} jobs")  # fmt: skip
    print(f"  rescan, nothing changed: {unchanged_s:.2f} s (walk+stat floor {walk:.2f} s)")
    print(f"  rescan after 100 files changed: {changed_s:.2f} s")
    print(f"  rescan after 100 renamed, 50 deleted, 50 new: {moved_s:.2f} s")
    print(f"  full rescan: {full_s:.1f} s")


if __name__ == "__main__":
    main()
