"""The file side of a retier: one file's new tiers and mood sets written, nothing else.

Kept apart from library/retier.py so that it imports no Django model: mutagen is pure
Python, so the writes run in processes of their own (spawned, one core each), started
without Django, while the retier decides and refreshes the library rows.
"""

from __future__ import annotations

import os
from pathlib import Path

from library import metadata
from tagging import tagfiles, writers

#: (path, (size, mtime_ns) of the file when the library last read it, the Nomarr tags to
#: write, the MOOD values to write or None to leave MOOD alone, the namespace)
Write = tuple[str, tuple[int, int], dict[str, list[str]], list[str] | None, str]
#: The file once written: (size, mtime_ns, ctime_ns, tags_digest), for its row.
Written = tuple[int, int, int, str]

CHANGED = "changed since the library last read it: left alone (the next scan reads it)"


def write(job: Write) -> tuple[str, Written | None]:
    """Write the new tags if the file is as the library last read it (same size and
    mtime, the scan's own test: the decision was made on its rows); (the problem, or
    "" and the file as written). Atomic and audio-safe (tagging.writers.write_tags,
    which also refuses a file that changes while it writes).

    The digest is that of the written file's tags (library.metadata.read_file's, so
    the next scan sees them unchanged), taken from the parse that verified the write:
    the file is not read again. The retier sets the rows from the values it wrote
    (library.rows.apply_rewrites)."""
    path, (size, mtime_ns), tags, moods, namespace = job
    try:
        st = tagfiles.stat_regular_file(Path(path))
        if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            return CHANGED, None
        written = writers.write_tags(Path(path), tags, namespace, moods)
        if written is None:  # it held these values already: nothing written, read it
            st = os.stat(path)
            info = metadata.read_file(path, st, namespace)
        else:
            st = written.stat
            info = metadata.read_file(path, st, namespace, parsed=written.audio)
    except (tagfiles.TagWriteError, writers.InvalidTagsError, OSError) as exc:
        return str(exc), None
    # A file that does not read back gets no digest: the next scan that reads it
    # replaces its rows.
    return "", (st.st_size, st.st_mtime_ns, st.st_ctime_ns, "" if info.error else info.tags_digest)


def write_all(jobs: list[Write]) -> list[tuple[str, Written | None]]:
    """`write` for each job, in order (a writer's share of a batch). The folders'
    fsyncs (the renames made durable) are done once per folder at the end, before the
    results go back to the retier, which then updates the rows."""
    with writers.folder_syncs_deferred():
        return [write(job) for job in jobs]
