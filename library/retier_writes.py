"""The file side of a retier: one file's new tiers and mood sets written, nothing else.

Kept apart from library/retier.py so that it imports no Django model: mutagen is pure
Python, so the writes run in processes of their own (spawned, one core each), started
without Django, while the retier decides and refreshes the library rows.
"""

from __future__ import annotations

from pathlib import Path

from tagging import tagfiles, writers

#: (path, the Nomarr tags the library's rows hold for it, the tags to write, the MOOD
#: values to write or None to leave MOOD alone, the namespace)
Write = tuple[str, dict[str, list[str]], dict[str, list[str]], list[str] | None, str]

CHANGED = "changed since the library last read it: left alone (the next scan reads it)"


def write(job: Write) -> str:
    """Write the new tags if the file still holds what the rows say (the decision was
    made on them); the problem, or "" once written. Atomic and audio-safe
    (tagging.writers.write_tags)."""
    path, before, after, moods, namespace = job
    try:
        if tagfiles.read_tags(Path(path), namespace) != before:
            return CHANGED
        writers.write_tags(Path(path), after, namespace, moods)
    except (tagfiles.TagWriteError, writers.InvalidTagsError, OSError) as exc:
        return str(exc)
    return ""
