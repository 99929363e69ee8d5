"""What the library tells the apps above it, without importing them.

`file_refreshed` (keywords `file`, the LibraryFile, and whatever the tagging job's
`tagging.signals.file_tagged` carried, e.g. `result`, the job's
`tagging.pipeline.FileResult`) is sent by `library.rows.refresh_file` inside the
transaction that brings the file's rows up to date: what a receiver writes commits
or rolls back with them. A receiver that raises rolls the refresh back (it is then
logged; the next scan catches up), so a receiver raises only when its rows could
not be written.

`autotag_checked` (keyword `root`, the LibraryRoot) is sent by
`library.autotag.queue_outdated` once it queued the root's files that need tags of
the current model set (a scan of a root with auto-tag on ends with it), outside any
transaction. Sonic requests embeddings there for the tagged files that have none.
A receiver must not raise.
"""

from django.dispatch import Signal

__all__ = ["autotag_checked", "file_refreshed"]

#: Sent with file=LibraryFile (and the file_tagged keywords) inside the refresh's transaction.
file_refreshed = Signal()

#: Sent with root=LibraryRoot when auto-tag has queued that root's outdated files.
autotag_checked = Signal()
