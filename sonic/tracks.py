"""Finding the library file a request names: by path, library file id or MusicBrainz
recording id. A path goes through tagging.boundary first, like every path Nomarr is
given; a file of the library that has no row yet was never scanned or analysed."""

from __future__ import annotations

from pathlib import Path

from library.models import LibraryFile
from tagging.boundary import resolve_in_library


class NotInLibrary(LookupError):
    """No library file matches; `path` is set when the path is a file of the library
    that has no row yet (so it can be queued)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def find(path: str = "", file_id: int | None = None, mbid: str = "") -> LibraryFile:
    """The LibraryFile named by exactly one of path, file_id or mbid.

    Raises tagging.boundary.OutsideLibrary for a path outside the library, OSError
    for one that cannot be opened, NotInLibrary when nothing matches, ValueError
    when not exactly one is given."""
    given = [bool(path), file_id is not None, bool(mbid)]
    if sum(given) != 1:
        raise ValueError("name the track by exactly one of path, id or mbid")
    if path:
        real = resolve_in_library(path)
        row = LibraryFile.objects.filter(path=str(real)).first()
        if row is None:
            raise NotInLibrary(f"{real} is not analysed yet: queue it for tagging", path=real)
        return row
    if file_id is not None:
        row = LibraryFile.objects.filter(pk=file_id).first()
        if row is None:
            raise NotInLibrary(f"no library file has id {file_id}")
        return row
    row = LibraryFile.objects.filter(mb_recording_id=mbid).order_by("id").first()
    if row is None:
        raise NotInLibrary(f"no library file has the MusicBrainz recording id {mbid}")
    return row


def named(text: str) -> LibraryFile:
    """The LibraryFile a person names in words: a library file id (digits) or a path
    (the pages' and the commands' one rule); raises as find does."""
    text = text.strip()
    if text.isdigit():
        return find(file_id=int(text))
    return find(path=text)
