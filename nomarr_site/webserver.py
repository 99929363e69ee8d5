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

`python -m nomarr_site.webserver <daphne's arguments>` runs daphne so
(`manage.py serve` does, with `--fd N`: a listening socket it opened and shares among
its web processes; IPv4 or IPv6, told by the socket itself).

Database connections of a web process (`web_connections`, applied before Django
starts): on PostgreSQL they come from a pool of at most NOMARR_DB_POOL open
connections (psycopg_pool), taken by a request and given back when it ends, instead
of a new connection (a new server process) per request. The pool is made here only:
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
import os
import socket
from http import HTTPStatus

from daphne.cli import CommandLineInterface
from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.internet import reactor
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
    return AdoptedStreamServerEndpoint(reactor, fileno, family)


def web_connections(databases: dict, pool_size: int) -> None:
    """A web process's database settings: on PostgreSQL, a pool of at most `pool_size`
    connections (0: none; Django's pool keeps no connection persistent)."""
    for config in databases.values():
        if pool_size and config["ENGINE"] == "django.db.backends.postgresql":
            config["CONN_MAX_AGE"] = 0
            # Django checks a connection when it is taken (CONN_HEALTH_CHECKS, one empty
            # round trip): one broken by a database restart is replaced, not handed on.
            options = config.setdefault("OPTIONS", {})
            options["pool"] = {"min_size": min(2, pool_size), "max_size": pool_size}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nomarr_site.settings")
    from django.conf import settings

    web_connections(settings.DATABASES, settings.NOMARR_DB_POOL)
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
