"""What tagging tells the rest of Nomarr, without importing it.

Tagging is the bottom app: the library and the playlists build on it, never the
other way. When another app needs to act on something tagging did, it connects a
receiver here in its AppConfig.ready(), the way django-q2 announces its tasks.

`file_tagged` (keywords `path`, the file's real path as a string, and `result`, the
job's tagging.pipeline.FileResult with each backbone's embedding) is sent by the
tagging job after it wrote a file's tags, once the job's result is known and
before the job is marked done. The library connects it to refresh the file's rows
at once. A receiver must not raise: a job's outcome never depends on a listener.

`workers_started` (no arguments) is sent when a worker cluster starts
(tagging/watchdog.py), after the pending jobs were sent again: the messages a dead
cluster had taken are lost, so the library hands its claimed scans that no worker
took yet over again.

`calibration_wanted` (no arguments) is sent by the pipeline when tiers are decided on
calibrated scores (NOMARR_TIER_SCORES=calibrated), before it decides a file's tiers.
A receiver returns the calibration it holds, `{score key: (p5, p95)}` (the library
returns its last calibration); the pipeline decides on their union. A receiver that
raises fails the file (its tiers would be wrong), so it raises only when it cannot tell.

`retag_keeps` (no arguments) is sent by the pipeline before it writes a file's tags
afresh (tagging.pipeline.tag_file). A receiver returns the keys it owns that the
pipeline does not produce (teach returns its taught tags' keys); a re-tag keeps those
the file holds (tagging.keys.is_kept_on_retag), as it keeps the suggestions. A
receiver that raises fails the file (a re-tag would drop what it owns).
`retag_kept_keys()` asks and gives the union.

`serve_starting` (no arguments) is sent by `manage.py serve` once the database is
migrated, before the web server and workers start. A receiver may return a line
for the person starting Nomarr (accounts returns the first admin's password, which
is printed once and stored nowhere else); serve prints every line it gets.
"""

from django.dispatch import Signal

__all__ = [
    "calibration_wanted",
    "file_tagged",
    "retag_keeps",
    "retag_kept_keys",
    "serve_starting",
    "workers_started",
]

#: Sent with path=str and result=FileResult after a job wrote a file's tags.
file_tagged = Signal()

#: Sent when a worker cluster starts, before it takes any task.
workers_started = Signal()

#: Sent by `manage.py serve` before it starts; receivers may return a line to print.
serve_starting = Signal()

#: Sent by the pipeline before it decides tiers on calibrated scores; receivers return
#: {score key: (p5, p95)}.
calibration_wanted = Signal()

#: Sent by the pipeline before it writes a file's tags afresh; receivers return the keys
#: they own (an iterable of str) that a re-tag keeps.
retag_keeps = Signal()


def retag_kept_keys() -> frozenset[str]:
    """The keys retag_keeps' receivers own, together."""
    owned: set[str] = set()
    for _receiver, reply in retag_keeps.send(sender=retag_keeps):
        if reply:
            owned.update(str(key) for key in reply)
    return frozenset(owned)
