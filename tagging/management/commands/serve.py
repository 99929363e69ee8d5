"""Run Nomarr: the web/API/websocket server and the tagging workers, together.

The web server is NOMARR_WEB_PROCESSES daphne processes sharing one listening socket,
which serve opens and hands down (daphne's `--fd`): the kernel gives each new
connection to whichever process accepts it first, so one busy process does not hold
up the others. Every process serves pages, the API and websockets; live pages work in
each, whatever the channel layer (nomarr_site/consumers.py).

Each start migrates the database; the first start of an installation also creates
the first admin, whose password is printed once. The workers are `manage.py
workers` (django-q2 under Nomarr's watchdog, tagging/watchdog.py): they send every
pending job again whenever they start, and start afresh if they stall. Stopping
(Ctrl+C, SIGTERM, `docker stop`) tells each child once; a worker still busy after
NOMARR_STOP_GRACE seconds is killed with everything it started, and its job goes
back to the queue (files are written atomically, so a killed analysis leaves the
file as it was).
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from nomarr_site.workers import KILL_WAIT, kill_tree, pid_alive
from tagging import jobs
from tagging.signals import serve_starting

ANY_ADDRESS = {"0.0.0.0", "::"}  # noqa: S104
#: Seconds a stopping child gets beyond NOMARR_STOP_GRACE before it is killed.
HAND_BACK = 1.5
#: Connections waiting to be accepted (the kernel caps it at net.core.somaxconn).
BACKLOG = 1024


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


def host_hint(host: str) -> str | None:
    """What to tell someone who made serve listen beyond this machine."""
    if host not in ANY_ADDRESS or "*" in settings.ALLOWED_HOSTS:
        return None
    return (
        "listening on every address, but answering only the host names "
        f"{', '.join(settings.ALLOWED_HOSTS)}: add the name others use "
        "(e.g. NOMARR_ALLOWED_HOSTS=nomarr,192.168.1.10) or * for any"
    )


def listen(host: str, port: int) -> socket.socket:
    """The listening socket every web process shares (inheritable); CommandError if the
    address cannot be had (in use, not this machine's)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


class Command(BaseCommand):
    help = "Start daphne (HTTP, API, websockets) and the django-q2 workers; Ctrl+C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.NOMARR_PORT)
        parser.add_argument("--host", default=settings.NOMARR_HOST)
        parser.add_argument(
            "--no-workers", action="store_true", help="serve only; run workers elsewhere"
        )
        parser.add_argument(
            "--web-processes",
            type=int,
            default=settings.NOMARR_WEB_PROCESSES,
            help="daphne processes sharing the port (NOMARR_WEB_PROCESSES)",
        )

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        # The first start's admin password (accounts answers it) is shown once here.
        for _receiver, line in serve_starting.send(sender=self.__class__):
            if line:
                self.stdout.write(str(line))
        processes = options["web_processes"]
        if processes < 1:
            raise CommandError("--web-processes must be at least 1")
        sock = listen(options["host"], options["port"])
        # The web processes' open connections, one counter each, so they share the
        # socket's connections evenly (nomarr_site.webserver's Board).
        board = tempfile.TemporaryFile()
        board.truncate(8 * processes)
        shared = (sock.fileno(), board.fileno())

        def web(n: int) -> list[str]:
            # daphne on the shared socket, answering 414/431 to requests too large to read
            balance = ["--balance", f"{board.fileno()}:{n}:{processes}"] if processes > 1 else []
            return [
                sys.executable, "-m", "nomarr_site.webserver", *balance,
                "--fd", str(sock.fileno()), "nomarr_site.asgi:application",
            ]  # fmt: skip

        commands = {("web" if n == 0 else f"web-{n + 1}"): web(n) for n in range(processes)}
        if not options["no_workers"]:
            commands["workers"] = [sys.executable, "manage.py", "workers"]
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        children = {
            name: subprocess.Popen(
                argv,
                cwd=settings.BASE_DIR,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                pass_fds=shared if name.startswith("web") else (),
            )
            for name, argv in commands.items()
        }
        sock.close()  # the web processes hold them now
        board.close()
        parts = [f"{processes} web process{'es' if processes > 1 else ''}"]
        if "workers" in children:
            parts.append("workers")
        self.stdout.write(
            f"Nomarr on http://{options['host']}:{options['port']}/ ({', '.join(parts)})"
        )
        hint = host_hint(options["host"])
        if hint:
            self.stdout.write(hint)
        self.stdout.flush()
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
        """SIGTERM to each child (a worker finishes its job or hands it back), then wait
        NOMARR_STOP_GRACE seconds. What still runs then is killed with its whole process
        group (django-q2's worker processes included), and the jobs the killed workers
        held go back to the queue. Either way no process of the group outlives serve."""
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        # The workers keep the grace themselves (then kill what still runs and hand its
        # jobs back): they get HAND_BACK seconds more for that.
        deadline = time.monotonic() + settings.NOMARR_STOP_GRACE + HAND_BACK
        killed = False
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                waited = settings.NOMARR_STOP_GRACE + HAND_BACK
                self.stderr.write(f"{name} still busy after {waited:g} s: killed")
                killed = True
            self._kill_group(child)
        # Only now, with every killed process gone: until the kernel has run a killed
        # worker it still looks alive, and its job would count an attempt.
        if killed and "workers" in children:
            reset = jobs.reset_stuck(interrupted=True)
            if reset:
                self.stderr.write(f"{reset} running job(s) put back in the queue")

    @staticmethod
    def _kill_group(child: subprocess.Popen) -> None:
        """Kill a child, its process group (each child leads its own session: that is
        what it started) and whatever else runs below it, and return once they are
        all gone (at most nomarr_site.workers.KILL_WAIT seconds)."""
        pgid = child.pid
        # kill_tree stops them first, kills them together and waits; it reaches the
        # child's descendants outside the group too. A reaped child's pid is not ours.
        kill_tree(_group_members(pgid) + ([pgid] if child.poll() is None else []))
        try:
            os.killpg(pgid, signal.SIGKILL)  # one that joined the group meanwhile
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + KILL_WAIT
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.01)
        child.wait()


def _group_members(pgid: int) -> list[int]:
    """The live processes (zombies count as gone) of process group pgid."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
