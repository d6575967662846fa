"""A real HTTP server on 127.0.0.1 serving published bundle directories.

Static files with a content ETag (answers 304); a path prefix can be marked down (503) or
held (requests under it stall until released, while every other request is served), and
the server stopped (connections refused). Started and stopped by the ``http_server``
fixture, or by :func:`serve` for wider scopes.

Registries bake their base URL, port included, into what they sign. :class:`ServerHost`
keeps one port for a whole module and serves each test's own directory in turn, so a world
of registries built once per module can be copied for every test (``tests/support/worlds.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The longest a held request waits for its release (a failing test cannot hang the run).
MAX_HOLD_SECONDS = 60.0


class Hold:
    """Requests under one path prefix, stalled: ``arrived`` is set when one is held;
    :meth:`release` lets them (and later ones) be answered."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.released = threading.Event()
        self.count = 0  #: how many requests were held

    def release(self) -> None:
        self.released.set()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with a content ETag (answers 304), 503 for paths marked down."""

    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def end_headers(self) -> None:
        for name, value in self.server.extra_headers.items():
            self.send_header(name, value)
        super().end_headers()

    def send_head(self) -> io.BytesIO | None:  # type: ignore[override]
        path = urllib.parse.urlsplit(self.path).path
        for prefix, hold in list(self.server.holds.items()):
            if path.startswith(prefix) and not hold.released.is_set():
                hold.count += 1
                hold.arrived.set()
                hold.released.wait(MAX_HOLD_SECONDS)  # then served as it is by then
        if any(path.startswith(prefix) for prefix in self.server.down):
            self.server.log.append((path, 503))
            self.send_error(503, "down for maintenance")
            return None
        file = Path(self.translate_path(self.path))
        if file.is_dir():
            file = file / "index.html"
        if not file.is_file():
            self.server.log.append((path, 404))
            self.send_error(404, "not found")
            return None
        data = file.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'
        if self.headers.get("If-None-Match") == etag:
            self.server.log.append((path, 304))
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return None
        self.server.log.append((path, 200))
        self.send_response(200)
        self.send_header("Content-Type", self.server.media_type(file))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        self.end_headers()
        return io.BytesIO(data)


class LocalServer(http.server.ThreadingHTTPServer):
    """Serves ``root`` on 127.0.0.1 (an ephemeral port) from a daemon thread."""

    daemon_threads = True

    #: Headers sent with every answer (a :class:`~tests.support.browser.BundleHost`'s CORS).
    extra_headers: dict[str, str] = {}  # noqa: RUF012 - replaced, never changed in place

    def __init__(self, root: Path, port: int = 0) -> None:
        self.root = root
        self.down: set[str] = set()
        self.holds: dict[str, Hold] = {}
        self.log: list[tuple[str, int]] = []

        def handler(request: Any, client: Any, server: LocalServer) -> _Handler:
            # The root of the moment: a ServerHost points the server at each test in turn.
            return _Handler(request, client, server, directory=str(server.root))

        super().__init__(("127.0.0.1", port), handler)
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        self._stopped = False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    @contextlib.contextmanager
    def hold(self, prefix: str) -> Iterator[Hold]:
        """Stall every request for a path under ``prefix`` until the hold is released
        (at the latest when the block ends); other paths are served meanwhile."""
        hold = self.holds[prefix] = Hold()
        try:
            yield hold
        finally:
            hold.release()
            del self.holds[prefix]

    def media_type(self, file: Path) -> str:
        """The Content-Type of ``file`` (a bundle's documents are bytes to a verifier)."""
        return "application/octet-stream"

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Stop serving: connections are then refused. Idempotent."""
        if not self._stopped:
            self._stopped = True
            self.shutdown()
            self.server_close()
            self._thread.join(5)


class ServerHost:
    """One port for many tests: serves one directory at a time with a :class:`LocalServer`.

    :meth:`serve` points the server at a test's directory (marks and request log cleared).
    A test may stop the server (connections refused); the next :meth:`serve` listens on the
    same port again, or returns ``None`` if the port was taken meanwhile (the caller then
    builds what it needs on a server of its own)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.server: LocalServer | None = LocalServer(root)
        self.port = self.server.port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def serve(self, root: Path) -> LocalServer | None:
        root.mkdir(parents=True, exist_ok=True)
        if self.server is not None and self.server.stopped:
            try:
                self.server = LocalServer(root, self.port)
            except OSError:  # somebody else listens there now
                self.server = None
        if self.server is None:
            return None
        self.server.root = root
        self.server.down.clear()
        self.server.log.clear()
        return self.server

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def serve(root: Path) -> Iterator[LocalServer]:
    root.mkdir(parents=True, exist_ok=True)
    server = LocalServer(root)
    try:
        yield server
    finally:
        server.stop()
