"""Nomarr's web server: daphne, with a clear answer to a request too large to read.

Daphne reads HTTP with Twisted, whose `HTTPChannel` caps a request line and each
header line at 16 KB (`MAX_LENGTH`), the request line and headers together at 16 KB
(`totalHeadersSize`) and the header fields at 500 (`maxHeaders`). Daphne has no
setting for any of them, and Twisted's answers are no answer: a line too long drops
the connection, the others get a bare `400 Bad Request` without a reason. Here the
limits stay Twisted's, and each is answered as HTTP says, with a reason (the API's
JSON error under /api/, a line of text elsewhere):

* `414 URI Too Long` for a request line over the limit (an address of 16 KB);
* `431 Request Header Fields Too Large` for headers over it, or too many of them.

The connection is then closed once the client has read the answer: what it still
sends is read and dropped for a few seconds, so closing does not reset the
connection under an answer not yet read.

`python -m nomarr_site.webserver [--balance FD:SLOT:COUNT] <daphne's arguments>` runs
daphne so (`manage.py serve` does, with `--fd N`: a listening socket it opened and
shares among its web processes; IPv4 or IPv6, told by the socket itself).

Several web processes on one socket share its connections evenly (`--balance`, given
by serve: a file of one counter a process, and this process's slot): a process
holding SLACK more open connections than the least loaded one leaves the next
connection to it (for at most MAX_DEFER), and takes no more at once than that leaves.
Otherwise whichever process the kernel woke first took a whole burst: 200 keep-alive
clients split 150 to 50, and the busier process's clients waited twice as long while
the other's cores sat partly idle (200 clients: p99 1.6 s against a mean of 1.1 s, and
as little as 169 req/s against 237 when even).

Database connections of a web process (`web_connections`, applied before Django
starts): on PostgreSQL they come from a pool of at most NOMARR_DB_POOL open
connections (psycopg_pool), taken by a request and given back when it ends, instead
of a new connection (a new server process) per request, and checked when taken only
where a restart may have ended it (`check_pooled`). The pool is made here only:
worker processes fork, and a pool's connections and threads must not cross a fork.
Requests run in the lanes of nomarr_site/asgi.py, at most NOMARR_WEB_CONCURRENCY at
once, so a pool a few larger never makes one wait. Without the pool (SQLite, or
NOMARR_DB_POOL=0) NOMARR_DB_CONN_MAX_AGE keeps each lane's connection open: one
a lane, not one a request. (Before the lanes, Django ran each request in a new
thread; a persistent connection stayed with its dead thread until the garbage
collector found it, and under load they piled up past PostgreSQL's max_connections:
500s.)
"""

from __future__ import annotations

import json
import mmap
import os
import select
import socket
import struct
import sys
import time
from http import HTTPStatus

import django
from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.internet import defer, error, reactor, tcp
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.web import http

API_PREFIX = b"/api/"
# Seconds a refused client has to read the answer before the connection is cut.
LINGER = 5.0


class FormlessRequest(WebRequest):
    """daphne's request, without Twisted's parse of a POST's form body into
    `request.args`: daphne hands the body to Django as it came and never reads
    `args`, and the parse (the Content-Type through the email package, a multipart
    body into memory a second time) cost ~8 % of a web process's CPU on POST
    /api/v1/tag, a JSON request whose Content-Type it parsed for nothing."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)


class LimitedHTTPChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel, answering 414 and 431 where it would drop or 400,
    with FormlessRequest for daphne's requests."""

    _refused = False

    @property  # type: ignore[override]
    def requestFactory(self) -> type[FormlessRequest]:
        return FormlessRequest

    @requestFactory.setter
    def requestFactory(self, value: type) -> None:
        # daphne's factory sets its WebRequest on every new channel: ours stands in.
        if not issubclass(FormlessRequest, value):
            raise TypeError(f"unexpected request factory {value!r}")

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._refuse_oversized(line)
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        # One line longer than MAX_LENGTH, before its end arrived.
        if not self._refused:
            self._refuse_oversized(line)

    def headerReceived(self, line: bytes) -> bool:
        if self._refused:
            return False
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuse(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"more than {self.maxHeaders} header fields",
            )
            return False
        return bool(super().headerReceived(line))

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped: the answer is on its way
        super().dataReceived(data)

    def _refuse_oversized(self, line: bytes) -> None:
        """414 if the request line is what is too long, else 431."""
        if self._receivedHeaderSize == 0:  # nothing of this request received yet
            self._path = line.split(b" ", 2)[1] if line.count(b" ") >= 1 else b""
            self._refuse(
                HTTPStatus.REQUEST_URI_TOO_LONG,
                f"the request line is longer than {self.totalHeadersSize} bytes",
            )
        else:
            self._refuse(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"the request's headers are larger than {self.totalHeadersSize} bytes",
            )

    def _refuse(self, status: HTTPStatus, detail: str) -> None:
        self._refused = True
        path = getattr(self, "_path", b"") or b""
        if path.startswith(API_PREFIX):
            too_long = status == HTTPStatus.REQUEST_URI_TOO_LONG
            code = "uri_too_long" if too_long else "headers_too_large"
            body = json.dumps({"error": code, "detail": detail}).encode()
            kind = b"application/json"
        else:
            body = f"{status.value} {status.phrase}: {detail}\n".encode()
            kind = b"text/plain; charset=utf-8"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s"
            % (status.value, status.phrase.encode(), kind, len(body), body)
        )
        self.setTimeout(None)
        self.transport.loseWriteConnection()
        reactor.callLater(LINGER, self.transport.abortConnection)


# --- connections shared evenly among the web processes ----------------------------

#: Seconds a busier process leaves a waiting connection to the others before it takes
#: it itself (a peer that is slow to accept must not leave a client waiting).
MAX_DEFER = 0.05
#: Seconds between a busier process's looks at the socket while it leaves it alone.
RECHECK = 0.005
#: Connections a process may hold beyond the least loaded one's before it leaves the
#: next to the others, and so may take at once: one at a time, a burst of 200 clients
#: connecting together took a reactor turn each under load, and the last ones' first
#: requests waited 1.6 s in the listening socket while the others' were answered.
SLACK = 4


class Board:
    """The open connections of each web process: one 8-byte counter a process in a
    file that `serve` made and shares (its descriptor), this process's at `slot`."""

    def __init__(self, fd: int, slot: int, count: int):
        if not 0 <= slot < count:
            raise ValueError(f"slot {slot} is not one of {count}")
        self.map = mmap.mmap(fd, 8 * count)
        self.slot, self.count = slot, count

    def publish(self, connections: int) -> None:
        struct.pack_into("q", self.map, 8 * self.slot, connections)

    def counts(self) -> list[int]:
        return list(struct.unpack_from(f"{self.count}q", self.map))

    def room(self) -> int:
        """How many more connections this process may take now: up to SLACK more than
        the least loaded other process holds (none or fewer: it is the busier one)."""
        counts = self.counts()
        mine = counts.pop(self.slot)
        return min(counts, default=mine) + SLACK - mine

    @classmethod
    def parse(cls, value: str) -> Board:
        fd, slot, count = (int(part) for part in value.split(":"))
        return cls(fd, slot, count)


class CountedServer(tcp.Server):
    """A connection's transport, counted on the board while it is open (whatever
    protocol it carries: HTTP, or a websocket after an upgrade)."""

    board: Board | None = None
    open = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._count(+1)

    def connectionLost(self, reason) -> None:
        self._count(-1)
        super().connectionLost(reason)

    @classmethod
    def _count(cls, change: int) -> None:
        CountedServer.open += change
        if cls.board is not None:
            cls.board.publish(CountedServer.open)


class BalancedPort(tcp.Port):
    """The shared listening socket: with a board, accepting as many connections at a
    time as the board leaves room for, and none while this process holds SLACK more
    than another (for at most MAX_DEFER); without one (a single web process), as
    Twisted's."""

    transport = CountedServer
    _deferring_since: float | None = None

    def doRead(self) -> None:
        board = CountedServer.board
        room = board.room() if board is not None else 0
        if board is not None and room <= 0:
            now = time.monotonic()
            if self._deferring_since is None:
                self._deferring_since = now
            if now - self._deferring_since < MAX_DEFER:
                self.stopReading()
                self.reactor.callLater(RECHECK, self._look_again)
                return
        self._deferring_since = None
        if board is not None:
            self.numberAccepts = max(1, room)  # and the board looked at again after those
        super().doRead()

    def _look_again(self) -> None:
        if self.connected and not self.disconnecting:
            self.startReading()


class BalancedEndpoint(AdoptedStreamServerEndpoint):
    """daphne's adopted socket, listened on through BalancedPort."""

    def listen(self, factory):
        if self._used:
            return defer.fail(error.AlreadyListened())
        self._used = True
        try:
            self._setNonBlocking(self.fileno)
            port = BalancedPort._fromListeningDescriptor(
                self.reactor, self.fileno, self.addressFamily, factory
            )
            port.startListening()
            self._close(self.fileno)
        except BaseException:
            return defer.fail()
        return defer.succeed(port)


def _channel(factory: HTTPFactory) -> http._GenericHTTPChannelProtocol:
    # What twisted.web.http.HTTPFactory.protocol builds, with our channel inside.
    return http._GenericHTTPChannelProtocol(LimitedHTTPChannel())


def _adopt(parser, reactor, fileno, domain=None) -> AdoptedStreamServerEndpoint:
    """daphne's `fd:fileno=N` endpoint, with the socket's own address family (daphne's
    parser assumes IPv4)."""
    fileno = int(fileno)
    probe = socket.socket(fileno=fileno)  # reads the family; detached, so not closed
    family = probe.family
    probe.detach()
    return BalancedEndpoint(reactor, fileno, family)


def web_connections(databases: dict, pool_size: int) -> None:
    """A web process's database settings: on PostgreSQL, a pool of at most `pool_size`
    connections (0: none; Django's pool keeps no connection persistent), each checked
    when it is taken by `check_pooled`."""
    for config in databases.values():
        if pool_size and config["ENGINE"] == "django.db.backends.postgresql":
            config["CONN_MAX_AGE"] = 0
            # Django's own check (CONN_HEALTH_CHECKS) is an empty query every time a
            # connection is taken; check_pooled asks the server only when needed.
            config["CONN_HEALTH_CHECKS"] = False
            options = config.setdefault("OPTIONS", {})
            options["pool"] = {"min_size": min(2, pool_size), "max_size": pool_size}


def check_pools() -> None:
    """Give each pool of this process (Django set up, web_connections applied) its
    check, check_pooled. Django passes the pool's `check` itself, as psycopg_pool's
    empty query or none (CONN_HEALTH_CHECKS), so it is set on the pool Django made."""
    from django.db import connections

    for wrapper in connections.all():
        pool = getattr(wrapper, "pool", None)
        if pool is not None:
            pool._check = check_pooled


#: A pooled connection is asked (an empty query) at least this often when it is taken.
CHECK_EVERY = 10.0


def check_pooled(conn) -> None:
    """The pool's check of a connection it is about to hand to a request: one broken
    by a database restart (or a terminated backend) is replaced, not handed on.

    An idle connection has nothing to read unless the server wrote to it, and a server
    that ends a connection says so first ("terminating connection due to administrator
    command") and closes it: a socket with something to read is asked with an empty
    query (psycopg_pool's own check), which raises for a dead one. So is one not asked
    for CHECK_EVERY seconds. The rest go on without a round trip: asking each time
    was one more statement a request for PostgreSQL (12 % of a web process's wall time
    under 200 clients; no change in req/s or p99 measured, the cores being full)."""
    from psycopg_pool import ConnectionPool

    now = time.monotonic()
    poll = select.poll()  # not select.select: no limit on the descriptor's number
    poll.register(conn.fileno(), select.POLLIN)
    if poll.poll(0) or now - getattr(conn, "_nomarr_checked", 0.0) >= CHECK_EVERY:
        ConnectionPool.check_connection(conn)
        conn._nomarr_checked = now


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--balance":
        CountedServer.board = Board.parse(sys.argv[2])
        del sys.argv[1:3]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.settings")
    from django.conf import settings

    web_connections(settings.DATABASES, settings.NOMARR_DB_POOL)
    django.setup(set_prefix=False)  # as nomarr_site.asgi does first; the pools made now
    check_pools()
    HTTPFactory.protocol = _channel  # daphne's factory; daphne builds one per server
    try:
        from twisted.plugins import fd_endpoint  # daphne's, installed into Twisted's plugins
    except ImportError:
        pass
    else:
        fd_endpoint._FDParser._parseServer = _adopt
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
