"""Library roots: every path Nomarr accepts from outside must lie inside one.

The roots are the LibraryRoot table (editable in the admin), seeded from
NOMARR_LIBRARY_ROOTS:

* `library_roots()` is every enabled root in the table, plus every root in the
  settings that has no row yet. It only reads, so checking a path never writes.
* `sync_settings_roots()` gives every settings root its row (scans and the library
  refresh call it). Once a row exists it is the truth: disabling it in the admin takes
  the folder out of the library even though the settings still name it; a deleted row
  comes back from the settings at the next scan.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from library.models import LibraryRoot


class OutsideLibrary(Exception):
    """The path resolves to somewhere outside every library root."""


def settings_roots() -> list[Path]:
    return [Path(p).expanduser().resolve() for p in settings.NOMARR_LIBRARY_ROOTS]


def library_roots() -> list[Path]:
    """Every folder that is part of the library (real paths)."""
    rows = dict(LibraryRoot.objects.values_list("path", "enabled"))
    roots = [Path(path) for path, enabled in rows.items() if enabled]
    roots += [p for p in settings_roots() if str(p) not in rows and p not in roots]
    return roots


def sync_settings_roots() -> list[LibraryRoot]:
    """Give each settings root its LibraryRoot row; returns the rows created."""
    created = []
    existing = set(LibraryRoot.objects.values_list("path", flat=True))
    for path in settings_roots():
        if str(path) in existing:
            continue
        try:
            with transaction.atomic():
                created.append(
                    LibraryRoot.objects.create(path=str(path), name=path.name, from_settings=True)
                )
        except IntegrityError:  # another process seeded it meanwhile
            continue
    return created


def root_for(path: str | os.PathLike) -> LibraryRoot | None:
    """The enabled root row holding this real path (the deepest, for nested roots)."""
    target = Path(path)
    best = None
    for root in LibraryRoot.objects.filter(enabled=True):
        if target.is_relative_to(root.path) and (best is None or len(root.path) > len(best.path)):
            best = root
    return best


def resolve_in_library(raw: str | os.PathLike) -> Path:
    """The real path of raw, if it lies inside a library root.

    Symlinks and `..` are resolved first, so neither can smuggle a path out of the
    library. Raises OutsideLibrary, or FileNotFoundError for a path that is not there.
    """
    text = os.fspath(raw)
    if not text or "\x00" in text:
        raise OutsideLibrary("empty or malformed path")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise OutsideLibrary(f"path must be absolute: {text}")
    resolved = path.resolve(strict=False)
    roots = library_roots()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise OutsideLibrary(f"path is outside the library roots: {text}")
    if not resolved.exists():
        raise FileNotFoundError(text)
    return resolved
