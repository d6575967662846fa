"""The sharing service on a real uvicorn on 127.0.0.1, in a thread, and raw HTTP to it.

:class:`ServiceHost` binds a port first (so the application knows its own base URL), then
serves the application with :func:`ecert.sharing.server.uvicorn_config` until stopped.
:func:`raw_exchange` speaks HTTP/1.1 over a plain socket, for the hostile cases no client
library would send (slow, oversized, malformed).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Literal

import uvicorn

from ecert.sharing.app import ASGIApp, Limits
from ecert.sharing.server import uvicorn_config


class ServiceHost:
    """Serves the application ``make(base_url)`` returns on an ephemeral loopback port."""

    def __init__(self, make: Callable[[str], ASGIApp], limits: Limits,
                 http: Literal["auto", "httptools", "h11"] = "auto") -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.app = make(self.base_url)
        self.http = http
        self.server = uvicorn.Server(uvicorn_config(self.app, limits=limits, http=http))
        self._thread = threading.Thread(target=self.server.run,
                                        kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        for _ in range(500):  # up to 5 s for the server to start
            if self.server.started:
                break
            time.sleep(0.01)
        else:  # pragma: no cover
            raise RuntimeError("the sharing service did not start")

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._socket.close()


def raw_exchange(port: int, *parts: bytes | float, timeout: float = 20.0) -> bytes:
    """Send ``parts`` (bytes are sent, a float pauses that many seconds), then read the
    answer until the server closes or ``timeout``; return what was read ("" if the server
    hung up without answering)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            for part in parts:
                if isinstance(part, float):
                    time.sleep(part)
                else:
                    sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server hung up on us mid-request; read what it said
        return read_response(sock)


def read_response(sock: socket.socket) -> bytes:
    """Read one whole response (by its Content-Length), or until the server closes."""
    data = b""
    try:
        while not (b"\r\n\r\n" in data and _complete(data)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response (0 if there is none)."""
    parts = response.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def body_of(response: bytes) -> bytes:
    """The body of a raw HTTP response."""
    return response.partition(b"\r\n\r\n")[2]


def request_bytes(method: str, path: str, port: int, headers: list[tuple[str, str]],
                  body: bytes) -> bytes:
    """An HTTP/1.1 request as bytes (``Host`` and ``Content-Length`` added)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


