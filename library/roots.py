"""Library roots: every path Nomarr accepts from outside must lie inside one.

The rule itself (resolve, then compare whole path components) is
tagging/boundary.py; this module says which folders are roots, and registers
`library_roots` with the boundary when the app starts (library/apps.py). The
roots are the LibraryRoot table, managed on the Settings page (staff) or in the
admin, and seeded from NOMARR_LIBRARY_ROOTS. One rule for the variable:

* A folder the variable names is a root: `sync_settings_roots()` (scans, the
  pages and the library refresh call it) gives it its row, enabled. Staff may
  disable it; it cannot be removed while the variable names it (it would come back).
* A folder the variable no longer names is disabled at the next sync and labelled
  so (`removed_from_settings`); staff may then remove it, or enable it again, which
  makes it a root of the Settings page's own.
* A folder that does not exist (or cannot be read) never becomes a root: the
  variable's typo is skipped with a warning (`missing_settings_roots()`, shown on the
  Settings page), and the Settings page refuses it with the reason (`check_new_root`).
  A root whose folder disappears later (an unmounted disk) stays a root; its scans
  fail, saying so, until the folder is back or the root is disabled or removed.

`library_roots()` is every enabled root in the table, plus every existing folder the
settings name that has no row yet. It only reads, so checking a path never writes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from library.models import LibraryRoot, Scan
from tagging import boundary

log = logging.getLogger(__name__)


class RootRefused(ValueError):
    """A folder cannot be added as a library root (the message says why), or a root
    cannot be changed so."""


def settings_roots() -> list[Path]:
    return [Path(p).expanduser().resolve() for p in settings.NOMARR_LIBRARY_ROOTS]


def usable_folder(path: Path) -> str:
    """Why path cannot be a library root ("" when it can): it must be a folder Nomarr
    may list and enter."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is not a folder"
    if not os.access(path, os.R_OK | os.X_OK):
        return f"{path} cannot be read by Nomarr (user id {os.geteuid()})"
    return ""


def missing_settings_roots() -> list[tuple[Path, str]]:
    """Folders NOMARR_LIBRARY_ROOTS names that are not roots because they cannot be
    (each with the reason), and have no row from an earlier start."""
    rows = set(LibraryRoot.objects.values_list("path", flat=True))
    found = [(path, usable_folder(path)) for path in settings_roots() if str(path) not in rows]
    return [(path, why) for path, why in found if why]


def library_roots() -> list[Path]:
    """Every folder that is part of the library (real paths)."""
    rows = dict(LibraryRoot.objects.values_list("path", "enabled"))
    roots = [Path(path) for path, enabled in rows.items() if enabled]
    roots += [p for p in settings_roots() if str(p) not in rows and p not in roots and p.is_dir()]
    return roots


def sync_settings_roots() -> list[LibraryRoot]:
    """Make the table follow NOMARR_LIBRARY_ROOTS: each folder it names gets its row
    (one that cannot be a root is skipped, with a warning), and a row it seeded whose
    folder it no longer names is disabled. Returns the rows created."""
    created = []
    named = settings_roots()
    existing = set(LibraryRoot.objects.values_list("path", flat=True))
    for path in named:
        if str(path) in existing:
            continue
        why = usable_folder(path)
        if why:
            log.warning("NOMARR_LIBRARY_ROOTS: %s; not a library root", why)
            continue
        try:
            with transaction.atomic():
                created.append(
                    LibraryRoot.objects.create(path=str(path), name=path.name, from_settings=True)
                )
        except IntegrityError:  # another process seeded it meanwhile
            continue
    dropped = LibraryRoot.objects.filter(from_settings=True, enabled=True).exclude(
        path__in=[str(p) for p in named]
    )
    for path in dropped.values_list("path", flat=True):
        log.warning("NOMARR_LIBRARY_ROOTS no longer names %s: root disabled", path)
    dropped.update(enabled=False)
    return created


def removed_from_settings(root: LibraryRoot) -> bool:
    """Whether NOMARR_LIBRARY_ROOTS seeded this root and no longer names it."""
    return root.from_settings and Path(root.path) not in settings_roots()


def named_by_settings(root: LibraryRoot) -> bool:
    return Path(root.path) in settings_roots()


def check_new_root(raw: str) -> Path:
    """The real path of a folder that may become a new root, or RootRefused saying why:
    an absolute path to a readable folder, neither inside nor around another root."""
    text = (raw or "").strip()
    if not text or "\x00" in text or not Path(text).expanduser().is_absolute():
        raise RootRefused("Give the folder's absolute path (it starts with /).")
    try:
        path = Path(text).expanduser().resolve()
    except (OSError, RuntimeError) as exc:
        raise RootRefused(f"{text} cannot be resolved: {exc}") from None
    why = usable_folder(path)
    if why:
        raise RootRefused(why)
    others = [Path(p) for p in LibraryRoot.objects.values_list("path", flat=True)]
    others += [p for p in settings_roots() if p not in others]
    for other in others:
        if path == other:
            raise RootRefused(f"{path} is already a library root")
        if boundary.within(path, other):
            raise RootRefused(f"{path} is inside the library root {other}")
        if boundary.within(other, path):
            raise RootRefused(f"{path} holds the library root {other}: add only one of them")
    return path


def add_root(raw: str, auto_tag: bool = True) -> LibraryRoot:
    """A new root for the folder raw (checked by `check_new_root`), enabled."""
    path = check_new_root(raw)
    try:
        with transaction.atomic():
            return LibraryRoot.objects.create(path=str(path), name=path.name, auto_tag=auto_tag)
    except IntegrityError:
        raise RootRefused(f"{path} is already a library root") from None


def set_enabled(root: LibraryRoot, enabled: bool) -> None:
    """Enable or disable a root. Enabling one the variable no longer names makes it a
    root of the Settings page's own (the next sync leaves it on)."""
    if enabled and not root.enabled:
        why = usable_folder(Path(root.path))
        if why:
            raise RootRefused(f"cannot enable {root}: {why}")
    fields = {"enabled": enabled}
    if enabled and removed_from_settings(root):
        fields["from_settings"] = False
    LibraryRoot.objects.filter(pk=root.pk).update(**fields)


def remove_root(root: LibraryRoot) -> int:
    """Forget a root with its files' rows and scans (the files themselves are left as
    they are); how many file rows went. A root the variable names cannot be removed."""
    if root.scans.filter(status=Scan.Status.RUNNING).exists():
        raise RootRefused(f"a scan of {root} is running: cancel it first")
    if named_by_settings(root):
        raise RootRefused(
            f"{root} is named by NOMARR_LIBRARY_ROOTS: remove it there and restart "
            "(or disable it here)"
        )
    files = root.files.count()
    root.delete()
    return files


def root_for(path: str | os.PathLike) -> LibraryRoot | None:
    """The enabled root row holding this real path (the deepest, for nested roots)."""
    rows = {root.path: root for root in LibraryRoot.objects.filter(enabled=True)}
    found = boundary.containing_root(path, rows)
    return rows[str(found)] if found is not None else None
