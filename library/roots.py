"""Library roots: every path Nomarr accepts from outside must lie inside one."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings


class OutsideLibrary(Exception):
    """The path resolves to somewhere outside every library root."""


def library_roots() -> list[Path]:
    return list(settings.NOMARR_LIBRARY_ROOTS)


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
