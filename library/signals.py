"""What the library tells the apps above it, without importing them.

`file_refreshed` (keywords `file`, the LibraryFile, and whatever the tagging job's
`tagging.signals.file_tagged` carried, e.g. `result`, the job's
`tagging.pipeline.FileResult`) is sent by `library.rows.refresh_file` inside the
transaction that brings the file's rows up to date: what a receiver writes commits
or rolls back with them. A receiver that raises rolls the refresh back (it is then
logged; the next scan catches up), so a receiver raises only when its rows could
not be written.
"""

from django.dispatch import Signal

__all__ = ["file_refreshed"]

#: Sent with file=LibraryFile (and the file_tagged keywords) inside the refresh's transaction.
file_refreshed = Signal()
