"""Library roots: every path Nomarr accepts from outside must lie inside one.

The rule itself (resolve, then compare whole path components) is
tagging/boundary.py; this module says which folders are roots, and registers
`library_roots` with the boundary when the app starts (library/apps.py). The
roots are the LibraryRoot table (editable in the admin), seeded from
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
from tagging import boundary


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
    rows = {root.path: root for root in LibraryRoot.objects.filter(enabled=True)}
    found = boundary.containing_root(path, rows)
    return rows[str(found)] if found is not None else None
