"""Run Nomarr: the web/API/websocket server and the tagging workers, together."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


def _die_with_parent() -> None:
    """In the child: get SIGTERM if serve itself dies, even by SIGKILL (Linux).

    Children run in their own session, so a terminal's Ctrl+C or a SIGTERM to the
    group reaches serve alone, and each child is told to stop exactly once (a
    second SIGTERM leaves django-q2's cluster hanging)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Command(BaseCommand):
    help = "Start daphne (HTTP, API, websockets) and the django-q2 workers; Ctrl+C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("NOMARR_PORT", "8356")))
        parser.add_argument("--host", default=os.environ.get("NOMARR_HOST", "127.0.0.1"))
        parser.add_argument(
            "--no-workers", action="store_true", help="serve only; run workers elsewhere"
        )

    def handle(self, *args, **options):
        from accounts.bootstrap import ensure_admin

        password = ensure_admin()
        if password:
            # Shown once: only the hash is stored. Change it with `manage.py changepassword admin`.
            self.stdout.write(f"Created the first user: admin / {password}")
        commands = {
            "web": [
                sys.executable, "-m", "daphne", "-b", options["host"], "-p", str(options["port"]),
                "nomarr_site.asgi:application",
            ],
        }  # fmt: skip
        if not options["no_workers"]:
            commands["workers"] = [sys.executable, "manage.py", "qcluster"]
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        children = {
            name: subprocess.Popen(
                argv, cwd=settings.BASE_DIR, start_new_session=True, preexec_fn=_die_with_parent
            )
            for name, argv in commands.items()
        }
        self.stdout.write(
            f"Nomarr on http://{options['host']}:{options['port']}/ ({', '.join(children)})"
        )
        code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with status {child.returncode}; stopping")
                    stopping, code = True, child.returncode or 1
            time.sleep(0.2)
        self._stop(children)
        sys.exit(code)

    def _stop(self, children: dict[str, subprocess.Popen]) -> None:
        """SIGTERM to each child (the workers finish or hand back their job), then wait;
        whatever has not stopped after the grace period is killed."""
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
