"""Essentia's classifier heads, fetched into the models folder: the manifest, the
download, the checks and the install.

The heads (mood, danceability, voice, genre...) are Essentia model-zoo files under
CC BY-NC-SA 4.0 that Nomarr cannot ship. ``tagging/zoo_manifest.json`` lists each
head's two files (``.pb`` and its ``.json`` sidecar) by their path under Essentia's
models URL, with their size and sha256 where known (null where not: see the
manifest's ``about``). ``NOMARR_MODELS_URL`` points at Essentia's site, a mirror in
the same layout, or a local folder (that layout, or all files in one folder).

A head is installed whole or not at all. Each file is fetched into a temporary file
in the models folder (``.nomarr-zoo-<name>.tmp``, locked while written, so the model
discovery and the cleaners pass over it), resumed with an HTTP Range request when a
previous download broke off, checked (size and sha256 where the manifest has them;
then the sidecar must describe a TensorflowPredict2D head on this backbone with the
expected label, by the same rules the workers' discovery applies, and the ``.pb``
must load in Essentia and answer with one score per label), and only then renamed
into place: the sidecar first, the ``.pb`` last, so discovery never sees a ``.pb``
without its sidecar. A failure removes what it wrote, except a download that broke
off mid-way, which is kept to be resumed. Then the workers reload their models.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nomarr_site.atomic import TEMP_PREFIX, TEMP_SUFFIX, fsync_directory
from tagging import catalog, runtime

CHUNK = 64 * 1024
TIMEOUT = 30  # seconds without an answer (connecting, or between two reads)
_ANY_WRITE_BIT = 0o222

Progress = Callable[[str, int, int | None], None]


class ZooError(Exception):
    """Why a head could not be installed (the message says what to do). fatal: the
    next head would fail the same way (the disk is full, the folder read-only)."""

    def __init__(self, message: str, fatal: bool = False, resumable: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.resumable = resumable  # a partial download is kept, to be resumed


@dataclass(frozen=True)
class ZooFile:
    path: str  # under the models URL: classification-heads/<task>/<stem>.pb
    size: int | None
    sha256: str | None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ZooHead:
    stem: str
    backbone: str
    group: str  # "mood": what "Get the mood models" installs; "other"
    label: str | None  # a label its sidecar must have (None: not checked)
    adds: str  # what it gives, in words
    files: tuple[ZooFile, ...]

    @property
    def pb(self) -> ZooFile:
        return next(f for f in self.files if f.name.endswith(".pb"))

    @property
    def sidecar(self) -> ZooFile:
        return next(f for f in self.files if f.name.endswith(".json"))


@dataclass(frozen=True)
class Manifest:
    licence: str
    licence_url: str
    licence_text: str
    heads: tuple[ZooHead, ...]

    def group(self, name: str) -> list[ZooHead]:
        return [head for head in self.heads if head.group == name]

    def select(self, names: list[str], everything: bool = False) -> list[ZooHead]:
        """The heads named (a stem, a task such as ``mood_happy``, or ``moods`` for
        every mood head), or all with everything. Unknown names are refused."""
        if everything:
            return list(self.heads)
        if not names:
            raise ZooError("name the heads to get (or 'moods', or --all); --list shows them")
        chosen: dict[str, ZooHead] = {}
        for name in names:
            found = (
                self.group("mood")
                if name == "moods"
                else [h for h in self.heads if name in (h.stem, h.stem.split("-", 1)[0])]
            )
            if not found:
                raise ZooError(f"no head {name!r} in the manifest; --list shows them")
            chosen.update((head.stem, head) for head in found)
        return list(chosen.values())


def estimated_size(heads: list[ZooHead]) -> int:
    """Bytes the heads take, where a size is not listed taking the median listed
    size of files of its kind (about 82 KB per .pb, 2 KB per sidecar)."""
    listed: dict[str, list[int]] = {".pb": [], ".json": []}
    for head in heads:
        for f in head.files:
            if f.size is not None:
                listed[Path(f.name).suffix].append(f.size)
    guess = {".pb": 82458, ".json": 2048}
    guess.update({kind: int(np.median(sizes)) for kind, sizes in listed.items() if sizes})
    return sum(
        f.size if f.size is not None else guess[Path(f.name).suffix]
        for head in heads
        for f in head.files
    )


def load_manifest(path: Path) -> Manifest:
    """The manifest at path; ZooError naming the file if it cannot be used."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        heads = tuple(
            ZooHead(
                stem=_safe_name(h["stem"]),
                backbone=str(h["backbone"]),
                group=str(h.get("group") or "other"),
                label=h.get("label"),
                adds=str(h.get("adds") or ""),
                files=tuple(_zoo_file(f) for f in h["files"]),
            )
            for h in data["heads"]
        )
        for head in heads:
            head.pb, head.sidecar  # noqa: B018 - both must be there
            if {f.name for f in head.files} != {f"{head.stem}.pb", f"{head.stem}.json"}:
                raise ValueError(f"{head.stem}'s files must be {head.stem}.pb and .json")
        return Manifest(
            licence=str(data["licence"]),
            licence_url=str(data.get("licence_url", "")),
            licence_text=str(data.get("licence_text", "")),
            heads=heads,
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ZooError(f"cannot read the models manifest {path}: {exc}") from exc
    except (KeyError, TypeError, ValueError, StopIteration) as exc:
        raise ZooError(f"the models manifest {path} is not valid: {exc!r}") from exc


def _zoo_file(f: dict[str, Any]) -> ZooFile:
    path = str(f["path"])
    if path.startswith("/") or ".." in path.split("/"):
        raise ValueError(f"a file's path must stay under the models URL: {path!r}")
    _safe_name(path.rsplit("/", 1)[-1])
    size, sha = f.get("size"), f.get("sha256")
    if size is not None and (not isinstance(size, int) or size <= 0):
        raise ValueError(f"bad size for {path}: {size!r}")
    if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise ValueError(f"bad sha256 for {path}: {sha!r}")
    return ZooFile(path=path, size=size, sha256=sha)


def _safe_name(name: str) -> str:
    if not name or "/" in name or name.startswith(".") or name != name.strip():
        raise ValueError(f"not a file name: {name!r}")
    return name


# --- where the files come from ---------------------------------------------------------


@dataclass
class _Stream:
    chunks: Iterator[bytes]
    start: int  # the offset the bytes begin at (0: from the start, whatever was asked)
    total: int | None  # the whole file's size, if the source says


class Source:
    """Essentia's site, a mirror (http/https) or a local folder."""

    def __init__(self, base: str) -> None:
        parsed = urllib.parse.urlparse(base)
        self.folder: Path | None = None
        if parsed.scheme in ("http", "https"):
            self.base = base if base.endswith("/") else base + "/"
        elif parsed.scheme == "file":
            self.folder = Path(urllib.parse.unquote(parsed.path))
        elif not parsed.scheme:
            self.folder = Path(base).expanduser()
        else:
            raise ZooError(f"NOMARR_MODELS_URL must be http(s):// or a folder, got {base!r}")
        if self.folder is not None:
            self.base = str(self.folder)
            if not self.folder.is_dir():
                raise ZooError(f"the models folder to install from does not exist: {self.folder}")

    def __str__(self) -> str:
        return self.base

    def where(self, f: ZooFile) -> str:
        if self.folder is None:
            return self.base + f.path
        return str(self._local(f))

    def _local(self, f: ZooFile) -> Path:
        for candidate in (self.folder / f.path, self.folder / f.name):  # type: ignore[operator]
            if candidate.is_file():
                return candidate
        raise ZooError(f"{f.name} is not in {self.folder} (looked for {f.path} and {f.name} there)")

    @contextmanager
    def open(self, f: ZooFile, offset: int) -> Iterator[_Stream]:
        if self.folder is not None:
            local = self._local(f)
            with open(local, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                start = offset if offset <= size else 0
                handle.seek(start)
                yield _Stream(iter(lambda: handle.read(CHUNK), b""), start, size)
            return
        url = self.where(f)
        headers = {"User-Agent": "nomarr (manage.py download_models)"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only
            response = urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # what we have is all there is, or more
                with self.open(f, 0) as stream:
                    yield stream
                return
            if exc.code == 404:
                raise ZooError(f"{url}: not found (HTTP 404); the mirror lacks this file") from exc
            raise ZooError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise ZooError(
                f"cannot reach {urllib.parse.urlparse(url).netloc} ({reason}); "
                "no network? NOMARR_MODELS_URL can name a mirror or a local folder",
                fatal=True,
            ) from exc
        with response:
            start, total = 0, _int(response.headers.get("Content-Length"))
            if response.status == 206:
                first, _, whole = (response.headers.get("Content-Range") or "").partition("/")
                if not first.startswith(f"bytes {offset}-"):
                    raise ZooError(f"{url}: the server resumed at the wrong place ({first!r})")
                start, total = offset, _int(whole)
            yield _Stream(_read(response, url), start, total)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class _BrokeOff(Exception):
    """The source stopped sending before the end (kept, to be resumed)."""


def _read(response: Any, url: str) -> Iterator[bytes]:
    while True:
        try:
            chunk = response.read(CHUNK)
        except (http.client.IncompleteRead, OSError, http.client.HTTPException) as exc:
            raise _BrokeOff(f"{type(exc).__name__}: {exc}") from exc
        if not chunk:
            return
        yield chunk


# --- one file fetched, one head checked and installed -------------------------------------


def partial_path(models_dir: Path, f: ZooFile) -> Path:
    """Where a file is downloaded to before it is checked (resumable, never a model)."""
    return models_dir / f"{TEMP_PREFIX}zoo-{f.name}{TEMP_SUFFIX}"


def _disk_error(exc: OSError, models_dir: Path, what: str) -> ZooError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ZooError(
            f"no room left in {models_dir} writing {what} ({exc.strerror}); nothing of it "
            "was installed",
            fatal=True,
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ZooError(
            f"the models folder {models_dir} is not writable ({exc.strerror})", fatal=True
        )
    return ZooError(f"cannot write {what} into {models_dir} ({exc.strerror or exc})")


def fetch(source: Source, f: ZooFile, models_dir: Path, progress: Progress | None) -> Path:
    """The file downloaded into its partial (resumed if one is there) and checked
    against its size and sha256 where the manifest has them; returns the partial."""
    partial = partial_path(models_dir, f)
    try:
        handle: BinaryIO = open(partial, "ab")
    except OSError as exc:
        raise _disk_error(exc, models_dir, f.name) from exc
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise ZooError(  # its partials are that download's: leave them
                f"another download of {f.name} is running; wait for it", resumable=True
            ) from exc
        have = os.fstat(handle.fileno()).st_size
        if f.size is not None and have >= f.size:
            handle.truncate(0)  # all of it was there but it did not pass; fetch it afresh
            have = 0
        broke = ""
        with ExitStack() as opened:
            try:
                stream = opened.enter_context(source.open(f, have))
            except ZooError:
                if not have:
                    _unlink(partial)  # nothing came: leave nothing behind
                raise
            if stream.start != have:
                handle.truncate(0)  # the source sends it whole: start over
            done, total = stream.start, stream.total or f.size
            if progress:
                progress(f.name, done, total)
            try:
                for chunk in stream.chunks:
                    try:
                        handle.write(chunk)
                    except OSError as exc:
                        raise _disk_error(exc, models_dir, f.name) from exc
                    done += len(chunk)
                    if progress:
                        progress(f.name, done, total)
            except _BrokeOff as exc:
                broke = str(exc)
            except ZooError:
                _unlink(partial)
                raise
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                _unlink(partial)
                raise _disk_error(exc, models_dir, f.name) from exc
        size = os.fstat(handle.fileno()).st_size
        if broke or (stream.total is not None and size < stream.total):
            raise ZooError(
                f"the download of {f.name} broke off at {size} of {total or '?'} bytes "
                f"({broke or 'the connection closed'}); run it again to resume",
                resumable=True,
            )
        if f.size is not None and size != f.size:
            _unlink(partial)
            raise ZooError(
                f"{f.name} from {source} is {size} bytes, the manifest says {f.size}: "
                "not the published file; removed"
            )
        if f.sha256 is not None:
            digest = _sha256(partial)
            if digest != f.sha256:
                _unlink(partial)
                raise ZooError(
                    f"{f.name} from {source} has sha256 {digest}, the manifest says "
                    f"{f.sha256}: not the published file; removed"
                )
    return partial


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def check_head(head: ZooHead, pb: Path, sidecar: Path, backbone: catalog.Backbone) -> None:
    """The downloaded pair is the head it should be, by the workers' own discovery
    rules, and its graph loads in Essentia and gives one score per label."""
    staging = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}zoo-check-", dir=pb.parent))
    try:
        staged = staging / f"{head.stem}.pb"
        shutil.copyfile(sidecar, staging / f"{head.stem}.json")
        shutil.copyfile(pb, staged)
        (staging / f"{backbone.stem}.pb").symlink_to(backbone.graph)
        (staging / f"{backbone.stem}.json").symlink_to(backbone.graph.with_suffix(".json"))
        found = catalog.discover([staging], [])
        reasons = [reason for path, reason in found.skipped if Path(path) == staged]
        if reasons:
            raise ZooError(f"{head.stem} is not a usable head: {reasons[0]}")
        loaded = next((h for h in found.heads if h.graph == staged), None)
        if loaded is None:
            raise ZooError(f"{head.stem}'s sidecar does not describe a classifier head")
        if head.label is not None and head.label not in loaded.labels:
            raise ZooError(
                f"{head.stem}'s sidecar has the labels {loaded.labels}, not {head.label!r}"
            )
        width = _input_width(sidecar)
        try:
            algorithm = runtime.essentia_standard().TensorflowPredict2D(
                graphFilename=str(staged), input=loaded.input_name, output=loaded.output_name
            )
            out = np.asarray(algorithm(np.zeros((1, width), dtype=np.float32)))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ZooError(f"{head.pb.name} does not load in Essentia: {first}") from exc
        if out.reshape(1, -1).shape[1] != len(loaded.labels) or not np.isfinite(out).all():
            raise ZooError(
                f"{head.pb.name} answers with {out.shape} values, not one score for each of "
                f"its {len(loaded.labels)} labels"
            )
    except OSError as exc:
        raise _disk_error(exc, pb.parent, head.stem) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _input_width(sidecar: Path) -> int:
    try:
        shape = json.loads(sidecar.read_text())["schema"]["inputs"][0]["shape"]
        return int(shape[-1])
    except (KeyError, IndexError, TypeError, ValueError, json.JSONDecodeError):
        return 200  # the musicnn embeddings' width


# --- the whole of it ----------------------------------------------------------------------


@dataclass
class Outcome:
    installed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # stem, why

    @property
    def ok(self) -> bool:
        return not self.failed


def writable_models_dir(models_dir: Path) -> Path:
    """The folder heads go into, made if missing; ZooError if it cannot be written.

    A folder without any write bit counts as read-only even for root, as for tagged
    files (tagging/writers.py): someone who made it read-only meant it."""
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        mode = models_dir.stat().st_mode
    except OSError as exc:
        raise _disk_error(exc, models_dir, "the models folder") from exc
    if not mode & _ANY_WRITE_BIT or not os.access(models_dir, os.W_OK | os.X_OK):
        raise ZooError(
            f"the models folder {models_dir} is read-only; nothing was downloaded", fatal=True
        )
    return models_dir


def is_installed(head: ZooHead, models_dirs: list[Path]) -> bool:
    """Both files of the head are in a models folder (and match what the manifest pins)."""
    for folder in models_dirs:
        pb, sidecar = folder / head.pb.name, folder / head.sidecar.name
        if pb.is_file() and sidecar.is_file():
            f = head.pb
            if f.size is not None and pb.stat().st_size != f.size:
                continue
            if f.sha256 is not None and _sha256(pb) != f.sha256:
                continue
            return True
    return False


def install(
    heads: list[ZooHead],
    source: Source,
    models_dirs: list[Path],
    progress: Progress | None = None,
    force: bool = False,
) -> Outcome:
    """Download, check and install each head into models_dirs[0] (each whole or not
    at all); heads already there are left alone unless forced. Raises ZooError only
    for what stops every head (a read-only folder); each head's own failure is in
    the outcome."""
    target = writable_models_dir(models_dirs[0])
    backbones = {b.stem: b for b in catalog.discover(models_dirs, []).backbones}
    outcome = Outcome()
    for head in heads:
        if not force and is_installed(head, models_dirs):
            outcome.already.append(head.stem)
            continue
        backbone = backbones.get(head.backbone)
        if backbone is None:
            outcome.failed.append(
                (head.stem, f"its backbone {head.backbone} is not installed (install_models)")
            )
            continue
        try:
            sidecar = fetch(source, head.sidecar, target, progress)
            pb = fetch(source, head.pb, target, progress)
            try:
                check_head(head, pb, sidecar, backbone)
            except ZooError:
                _unlink(pb)
                _unlink(sidecar)
                raise
            try:
                # The sidecar first: the catalog finds a head by its .pb, so a head
                # is never seen half installed (a sidecar alone is not looked at).
                os.replace(sidecar, target / head.sidecar.name)
                os.replace(pb, target / head.pb.name)
                fsync_directory(target)
            except OSError as exc:
                raise _disk_error(exc, target, head.stem) from exc
        except ZooError as exc:
            if not exc.resumable:  # nothing of the head stays behind
                for f in head.files:
                    _unlink(partial_path(target, f))
            outcome.failed.append((head.stem, str(exc)))
            if exc.fatal:
                break  # the next head would fail the same way
            continue
        outcome.installed.append(head.stem)
    return outcome


def download(
    names: list[str],
    everything: bool = False,
    progress: Progress | None = None,
    force: bool = False,
    manifest_path: Path | None = None,
    base: str | None = None,
) -> Outcome:
    """What `manage.py download_models` and the Models page do: the heads named,
    from NOMARR_MODELS_URL (or base), into the first models folder; then the
    workers reload their models if anything was installed."""
    from django.conf import settings

    from tagging import jobs

    manifest = load_manifest(manifest_path or settings.NOMARR_MODELS_MANIFEST)
    heads = manifest.select(names, everything)
    source = Source(base or settings.NOMARR_MODELS_URL)
    outcome = install(heads, source, list(settings.NOMARR_MODELS_DIRS), progress, force)
    if outcome.installed:
        jobs.refresh_models()
    return outcome


def mood_heads_installed() -> bool:
    """Whether the model set in use has a mood head (else no nom_mood_* and no MOOD)."""
    return any(head.is_mood and head.graph is not None for head in catalog.current_catalog().heads)


@dataclass
class Offer:
    """What the Models page says about the mood heads: which, how big, the licence."""

    manifest: Manifest | None
    heads: list[tuple[ZooHead, bool]]  # each mood head, installed or not
    size: int
    source: str
    error: str = ""

    @property
    def missing(self) -> int:
        return sum(not installed for _, installed in self.heads)


def offer() -> Offer:
    from django.conf import settings

    try:
        manifest = load_manifest(settings.NOMARR_MODELS_MANIFEST)
    except ZooError as exc:
        return Offer(None, [], 0, settings.NOMARR_MODELS_URL, error=str(exc))
    heads = manifest.group("mood")
    dirs = list(settings.NOMARR_MODELS_DIRS)
    return Offer(
        manifest,
        [(head, is_installed(head, dirs)) for head in heads],
        estimated_size(heads),
        settings.NOMARR_MODELS_URL,
    )
