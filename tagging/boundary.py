"""The library boundary: every file Nomarr writes, and every path it accepts, lies inside a root.

The rule is written once, here, and every way in goes through it: the web pages,
the API and Lidarr's webhook, `manage.py queue`, scans, and playlists. Queueing
itself checks too (`tagging.jobs.queue_file` and `queue_paths` refuse what is
outside, and a job checks its file again before it runs), so no caller can forget.

* `within(path, root)` is the pure test: whole path components, so `/musicals` is
  not inside `/music`.
* `inside_library(raw)` is the real path of raw (symlinks and `..` resolved first,
  so neither can smuggle a path out) if it lies inside an enabled root; it need not
  exist yet. `resolve_in_library(raw)` also wants it to exist.
* `library_files(paths)` is the per-file check of a folder: the audio files under
  it are each resolved and checked on their own, so a symlink inside the library
  that points outside is refused, not followed. Its refusals say why.

Both raise `OutsideLibrary` for a path outside every root (and for text that cannot
name a file: empty, relative, NUL, not encodable) and `Unresolvable`, an OSError,
for one whose real path cannot be known (a symlink loop, a name too long);
`resolve_in_library` raises FileNotFoundError for a path that is not there.

Which folders are roots is the library app's business (its LibraryRoot table,
seeded from NOMARR_LIBRARY_ROOTS). Tagging never imports the library: the library
registers its provider when it starts (`library.apps.LibraryConfig.ready()` calls
`register_roots(library.roots.library_roots)`). Without a provider there are no
roots, and every path is outside.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tagging import tagfiles

__all__ = [
    "OUTSIDE",
    "UNREADABLE",
    "LibraryFiles",
    "OutsideLibrary",
    "Refused",
    "Unresolvable",
    "containing_root",
    "inside_library",
    "library_files",
    "library_roots",
    "register_roots",
    "resolve_in_library",
    "within",
]

RootsProvider = Callable[[], Iterable[Path]]
Roots = Iterable[str | os.PathLike[str]]

_provider: RootsProvider | None = None

#: Refused.reason for a file whose real path is outside every root.
OUTSIDE = "outside_library"
#: Refused.reason for a file that cannot be resolved or opened (a loop, a name too long).
UNREADABLE = "unreadable"


class OutsideLibrary(Exception):
    """The path resolves to somewhere outside every library root (or names no file)."""


class Unresolvable(OSError):
    """The path's real path cannot be known: a symlink loop, a name too long, a folder
    that cannot be searched. An OSError, with its errno."""

    def __str__(self) -> str:
        return f"{self.strerror}: {self.filename}"


def register_roots(provider: RootsProvider) -> None:
    """Name the function that lists the library roots (real, absolute paths)."""
    global _provider
    _provider = provider


def library_roots() -> list[Path]:
    """Every library root, from the registered provider (none if nothing registered)."""
    return [Path(root) for root in _provider()] if _provider is not None else []


def within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether path is root or lies below it, compared by whole path components.

    Both are taken as they are (resolve them first): `/music/a` is within `/music`,
    `/music2/a` is not."""
    return Path(path).is_relative_to(root)


def containing_root(path: str | os.PathLike[str], roots: Roots) -> Path | None:
    """The deepest of roots that path lies within (nested roots: the inner one), or None."""
    found = [Path(root) for root in roots if within(path, root)]
    return max(found, key=lambda root: len(root.parts)) if found else None


def inside_library(raw: str | os.PathLike[str], roots: Roots | None = None) -> Path:
    """The real path of raw, if it lies inside a library root; it need not exist.

    Symlinks and `..` are resolved first, so neither can smuggle a path out of the
    library. roots defaults to every enabled root (pass them to check many paths
    against one reading). Raises OutsideLibrary, or Unresolvable (an OSError) for a
    path that cannot be resolved (a symlink loop, a name too long)."""
    text = os.fspath(raw)
    if not isinstance(text, str) or not text or "\x00" in text:
        raise OutsideLibrary("empty or malformed path")
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise OutsideLibrary(f"malformed path (cannot name a file): {text!r}") from None
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise OutsideLibrary(f"path must be absolute: {text}")
    try:
        resolved = path.resolve(strict=False)
    except RuntimeError:  # how Python < 3.13 says "symlink loop"
        raise Unresolvable(errno.ELOOP, "symlink loop", text) from None
    except OSError as exc:
        raise Unresolvable(exc.errno, exc.strerror or str(exc), text) from None
    if containing_root(resolved, library_roots() if roots is None else roots) is None:
        raise OutsideLibrary(f"path is outside the library roots: {text}")
    return resolved


def resolve_in_library(raw: str | os.PathLike[str], roots: Roots | None = None) -> Path:
    """The real path of raw, if it lies inside a library root and is there.

    As `inside_library`, and FileNotFoundError (its text: raw) for a path that is not
    there."""
    resolved = inside_library(raw, roots)
    try:
        there = resolved.exists()
    except OSError as exc:  # a name too long: resolve() lets it through, exists() raises
        raise Unresolvable(exc.errno, exc.strerror or str(exc), os.fspath(raw)) from None
    if not there:
        raise FileNotFoundError(os.fspath(raw))
    return resolved


@dataclass(frozen=True)
class Refused:
    """A path `library_files` left out: `reason` is OUTSIDE or UNREADABLE, `detail` says
    it in words."""

    path: str
    reason: str
    detail: str


@dataclass(frozen=True)
class LibraryFiles:
    """What `library_files` found: the real paths to use, and the paths refused."""

    files: list[Path] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


def library_files(
    paths: Iterable[str | os.PathLike[str]], roots: Roots | None = None
) -> LibraryFiles:
    """The files paths name, and the audio files under the folders they name, each
    checked on its own: their real paths inside the library, once each, in order.

    A file under a folder that is a symlink out of the library is refused, not
    followed; a symlink loop is no file, and is not found; symlinked folders are not
    descended (their targets are found where they lie, as the scanner finds them). A
    named path that is outside, or a loop, is refused too. A file named directly is
    kept whatever its name, and kept when missing, so that its job reports it (as
    `tagging.tagfiles.audio_files` does)."""
    roots = library_roots() if roots is None else list(roots)
    found = LibraryFiles()
    seen: set[Path] = set()

    def check(path: str | os.PathLike[str]) -> Path | None:
        try:
            return inside_library(path, roots)
        except OutsideLibrary as exc:
            found.refused.append(Refused(os.fspath(path), OUTSIDE, str(exc)))
        except OSError as exc:
            detail = f"cannot open {os.fspath(path)}: {exc.strerror or exc}"
            found.refused.append(Refused(os.fspath(path), UNREADABLE, detail))
        return None

    def keep(real: Path) -> None:
        if real not in seen:
            seen.add(real)
            found.files.append(real)

    for named in paths:
        real = check(named)
        if real is None:
            continue
        try:
            is_dir = real.is_dir()
        except OSError:
            is_dir = False
        if not is_dir:
            keep(real)
            continue
        for path in tagfiles.audio_files([real]):
            inner = check(path)
            if inner is not None:
                keep(inner)
    return found
