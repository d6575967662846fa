"""Running the sharing service on uvicorn with a deadline on request headers too.

uvicorn bounds the size of a request's headers only with h11
(``h11_max_incomplete_event_size``), and neither of its HTTP/1.1 protocols bounds the
time a client takes to send them: a client sending one byte a second holds a connection
for ever. :class:`DeadlineHttpToolsProtocol` (httptools, the C parser uvicorn prefers;
the default where it is installed, as the ``server`` extra installs it) and
:class:`DeadlineH11Protocol` (pure Python h11, the fallback) start a timer when a
connection opens (so one that never sends is closed too) and again at the first byte of
each request, and close the connection if the request's headers are not complete within
the deadline; when they are, they tell the application when the request began (the ASGI
extension :data:`ecert.sharing.app.REQUEST_STARTED`), so the application's deadline on
the body counts from the first byte, not from the last header, and how many requests the
connection has carried (:data:`ecert.sharing.app.REQUEST_NUMBER`). The httptools one also
bounds the bytes of headers it buffers (llhttp has no such bound), answering 431.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from typing import Any, Literal

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ecert._formats.sharing import PROBLEM_MEDIA_TYPE, Problem
from ecert.sharing.app import REQUEST_NUMBER, REQUEST_STARTED, ASGIApp, Limits


def _raw_problem(code: str, reason: str) -> bytes:
    """A whole HTTP/1.1 answer with ``code``'s problem document, closing the connection
    (for answers the protocol gives before any application sees the request)."""
    problem = Problem.of(code)
    body = problem.to_json()
    return (f"HTTP/1.1 {problem.status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: {PROBLEM_MEDIA_TYPE}\r\nCache-Control: no-store\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("ascii") + body


_TIMEOUT_RESPONSE = _raw_problem("request_timeout", "Request Timeout")
_TOO_LARGE_RESPONSE = _raw_problem("headers_too_large", "Request Header Fields Too Large")

#: Whether uvicorn's httptools protocol can be used here (the ``server`` extra installs it).
HTTPTOOLS = importlib.util.find_spec("httptools") is not None


class _Deadline:
    """The header deadline, shared by both protocols (a mixin before the uvicorn class).

    The protocol calls :meth:`_request_begins` at each request's first byte and
    :meth:`_headers_complete` with the request's scope once its headers are parsed.
    """

    #: Seconds from a request's first byte (or the connection's start) to its last header.
    deadline_seconds: float = Limits().deadline_seconds
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def _deadline_init(self) -> None:
        self._started = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._awaiting_first_byte = False
        self._requests = 0  #: requests begun on this connection

    def _arm(self) -> None:
        self._disarm()
        self._started = time.monotonic()
        self._awaiting_first_byte = True
        self._timer = self.loop.call_later(self.deadline_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            # Still waiting for headers: answer 408, and hang up.
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

    # The protocol's own callbacks, before the uvicorn class's (this class comes first in
    # the protocols' bases).
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        self._response_complete()
        super().on_response_complete()  # type: ignore[misc]

    def _request_begins(self) -> None:
        if self._awaiting_first_byte:
            # The request begins now: its deadline counts from here, not from the end of
            # the previous response (idle keep-alive is uvicorn's timeout_keep_alive).
            self._arm()
            self._awaiting_first_byte = False

    def _response_complete(self) -> None:
        # Idle between requests is uvicorn's timeout_keep_alive; the next request's
        # deadline starts at its first byte.
        self._disarm()
        self._awaiting_first_byte = True

    def _headers_complete(self, scope: dict[str, Any]) -> None:
        # Headers complete: the application's guard takes over, from the same start.
        self._disarm()
        self._requests += 1
        extensions = scope.setdefault("extensions", {})
        extensions[REQUEST_STARTED] = self._started
        extensions[REQUEST_NUMBER] = self._requests


class DeadlineH11Protocol(_Deadline, H11Protocol):
    """uvicorn's h11 protocol, closing connections whose headers come too slowly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline_init()

    def data_received(self, data: bytes) -> None:
        self._request_begins()
        super().data_received(data)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before and self.cycle is not None:
            self._headers_complete(self.cycle.scope)


if HTTPTOOLS:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class DeadlineHttpToolsProtocol(_Deadline, HttpToolsProtocol):
        """uvicorn's httptools protocol, closing connections whose headers come too
        slowly or grow past :attr:`max_header_bytes` (431), or whose request (body and
        chunked trailers with their framing) grows past :attr:`max_request_bytes`.

        llhttp bounds neither, and reports a chunked body's trailers as header fields,
        which uvicorn would add to the headers of a request the application is already
        handling: they are dropped here (the service uses none), counted all the same.
        """

        #: Bytes of a request's line and headers buffered before it is refused.
        max_header_bytes: int = Limits().max_header_bytes + 1024
        #: Bytes of a whole request (line, headers, body, chunk framing, trailers).
        max_request_bytes: int = (Limits().max_header_bytes + 1024
                                  + 8 * Limits().max_body_bytes)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline_init()
            self._in_headers = False
            self._in_message = False
            self._header_bytes = 0
            self._request_bytes = 0
            self._refused = False

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            self._request_begins()
            super().data_received(data)
            # Bytes of a chunk still in a message after it are that message's (at most
            # the tail of a pipelined request before it too: counted against it).
            if self._in_headers:
                self._header_bytes += len(data)
            if self._in_message:
                self._request_bytes += len(data)
            if self._header_bytes > self.max_header_bytes or (
                    self._request_bytes > self.max_request_bytes):
                self._refuse()

        def _refuse(self) -> None:
            self._refused = True
            self._disarm()
            if self.transport.is_closing():
                return
            if not self._in_headers:
                # This request's body or trailers: its application is waiting for them;
                # hanging up is its answer (it sees the client gone).
                self.transport.close()
            elif self.cycle is not None and not self.cycle.response_complete:
                # A pipelined request's headers while the one before is answered: that
                # answer is never cut into; the connection closes once it is sent.
                self.cycle.keep_alive = False
            else:
                self.transport.write(_TOO_LARGE_RESPONSE)
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_headers = self._in_message = True
            self._header_bytes = self._request_bytes = 0

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._in_headers:
                super().on_header(name, value)
            # else: a trailer of a chunked body; dropped (counted in data_received).

        def on_headers_complete(self) -> None:
            self._in_headers = False
            super().on_headers_complete()
            self._headers_complete(self.scope)  # type: ignore[arg-type]

        def on_message_complete(self) -> None:
            self._in_message = False
            super().on_message_complete()


def protocol_class(limits: Limits | None = None,
                   http: Literal["auto", "httptools", "h11"] = "auto") -> type[Any]:
    """The HTTP/1.1 protocol class uvicorn should use, with ``limits``' deadline and
    header bound: httptools' where it is installed (``auto``), else h11's. With the
    default limits, the module's own class (a worker process imports it by name)."""
    limits = limits or Limits()
    base: type[_Deadline]
    if http == "httptools" or (http == "auto" and HTTPTOOLS):
        if not HTTPTOOLS:
            raise ValueError("httptools is not installed (the 'server' extra installs it)")
        base = DeadlineHttpToolsProtocol
        fields: dict[str, float] = {
            "deadline_seconds": limits.deadline_seconds,
            "max_header_bytes": limits.max_header_bytes + 1024,
            "max_request_bytes": limits.max_header_bytes + 1024 + 8 * limits.max_body_bytes}
    else:
        base = DeadlineH11Protocol
        fields = {"deadline_seconds": limits.deadline_seconds}
    if all(getattr(base, name) == value for name, value in fields.items()):
        return base
    return type(base.__name__, (base,), fields)


def uvicorn_config(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0,
                   limits: Limits | None = None,
                   http: Literal["auto", "httptools", "h11"] = "auto",
                   **options: Any) -> uvicorn.Config:
    """A uvicorn configuration serving ``app`` with the header deadline of ``limits``
    (uvloop as the event loop where installed: uvicorn's ``auto``)."""
    limits = limits or Limits()
    protocol = protocol_class(limits, http)
    options.setdefault("log_level", "warning")
    options.setdefault("h11_max_incomplete_event_size", limits.max_header_bytes + 1024)
    options.setdefault("limit_concurrency", limits.max_connections)
    return uvicorn.Config(app, host=host, port=port, http=protocol, lifespan="off",
                          **options)
