"""Running the sharing service on uvicorn with a deadline on request headers too.

uvicorn bounds the size of a request's headers (``h11_max_incomplete_event_size``) but not
the time a client takes to send them: a client sending one byte a second holds a
connection for ever. :class:`DeadlineH11Protocol` starts a timer when a connection opens
(so one that never sends is closed too) and again at the first byte of each request, and
closes the connection if the request's headers are not complete within the deadline; when
they are, it tells the application when the request began (the ASGI extension
:data:`ecert.sharing.app.REQUEST_STARTED`), so the application's deadline on the body
counts from the first byte, not from the last header.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ecert.sharing.app import REQUEST_NUMBER, REQUEST_STARTED, ASGIApp, Limits

_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                     b"Content-Type: application/problem+json\r\nContent-Length: 0\r\n\r\n")


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose headers come too slowly."""

    #: Seconds from a request's first byte (or the connection's start) to its last header.
    deadline_seconds: float = Limits().deadline_seconds

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # Idle between requests is uvicorn's timeout_keep_alive; the next request's
        # deadline starts at its first byte.
        self._disarm()
        self._awaiting_first_byte = True
        super().on_response_complete()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_first_byte:
            # The request begins now: its deadline counts from here, not from the end of
            # the previous response (idle keep-alive is uvicorn's timeout_keep_alive).
            self._arm()
            self._awaiting_first_byte = False
        super().data_received(data)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before and self.cycle is not None:
            # Headers complete: the application's guard takes over, from the same start.
            self._disarm()
            scope: dict[str, Any] = self.cycle.scope  # type: ignore[assignment]
            self._requests += 1
            extensions = scope.setdefault("extensions", {})
            extensions[REQUEST_STARTED] = self._started
            extensions[REQUEST_NUMBER] = self._requests


def uvicorn_config(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0,
                   limits: Limits | None = None, **options: Any) -> uvicorn.Config:
    """A uvicorn configuration serving ``app`` with the header deadline of ``limits``."""
    limits = limits or Limits()
    protocol = type("DeadlineH11Protocol", (DeadlineH11Protocol,),
                    {"deadline_seconds": limits.deadline_seconds})
    options.setdefault("log_level", "warning")
    options.setdefault("h11_max_incomplete_event_size", limits.max_header_bytes + 1024)
    options.setdefault("limit_concurrency", limits.max_connections)
    return uvicorn.Config(app, host=host, port=port, http=protocol, lifespan="off",
                          **options)
