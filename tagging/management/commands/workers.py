"""Run the tagging workers: django-q2's cluster, under Nomarr's watchdog.

`serve` runs this next to the web server; on the scale-out path, run it on every
machine that tags (instead of `manage.py qcluster`, which has no watchdog). A
cluster that can no longer take work (a worker killed while it waited for a task
keeps django-q2's queue locked for good) is started afresh, and every start sends
the pending jobs again: see tagging/watchdog.py. SIGTERM or Ctrl+C stops it within
NOMARR_STOP_GRACE seconds; the jobs of workers still busy then go back to the queue.
"""

import signal
import threading

from django.core.management.base import BaseCommand

from tagging import watchdog


class Command(BaseCommand):
    help = "Run the tagging workers (django-q2), restarted whenever they stall."

    def handle(self, *args, **options):
        stopping = threading.Event()

        def stop(signum, frame):
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        watchdog.supervise(stopping.is_set, say=lambda message: self.stderr.write(message))
