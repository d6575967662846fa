"""Where a verifier reads published documents from.

* :class:`BundleDirectory`: one region's published bundle on disk;
* :class:`HttpSource`: the web, with one deadline over each whole download, size limits,
  redirects only within the same origin, and an ETag cache on disk that also serves when
  the network fails (freshness is still enforced by the documents' own expiry, so a
  stale copy fails closed);
* :class:`MirrorSource`: an offline copy of several regions made by ``ecert trust sync``;
* :class:`RoutedSource`: picks a source by URL prefix.

A source hands out bytes it has not verified. The caller verifies them and then calls
:meth:`DocumentSource.verified`: only then may a source keep them (the HTTP cache writes
nothing else to disk, so one bad answer cannot replace a good copy).
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import io
import logging
import os
import secrets
import select
import socket
import ssl
import stat
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ecert._formats.bundle import relative_path
from ecert._formats.url import check_host, check_http_url
from ecert.errors import FormatError

log = logging.getLogger(__name__)

#: Redirects followed per download (each within the same origin).
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Fetched documents held awaiting verification (each caller verifies at once).
_MAX_PENDING = 16


class DocumentSource(Protocol):
    """Fetches a published document by its URI."""

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        """Return the document's bytes; raise :class:`OSError` or ``FormatError``."""
        ...

    def verified(self, uri: str, data: bytes) -> None:
        """``data``, fetched for ``uri``, verified: a source may now keep it."""
        ...


class BundleDirectory:
    """A published bundle on disk, standing in for ``base_url``."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = Path(root)
        self.base_url = base_url

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        """The file for ``uri`` in the bundle."""
        path = self.root / relative_path(self.base_url, uri)
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FormatError(f"{uri} exceeds {max_bytes} bytes", code="too_large")
        return data

    def verified(self, uri: str, data: bytes) -> None:
        """Nothing to keep: the bundle is the copy."""


class MemorySource:
    """Documents held in memory by bundle path (used to re-verify before publishing)."""

    def __init__(self, base_url: str, documents: Mapping[str, bytes]) -> None:
        self.base_url = base_url
        self._documents = documents

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        """The document for ``uri``."""
        data = self._documents.get(relative_path(self.base_url, uri))
        if data is None:
            raise FileNotFoundError(uri)
        if len(data) > max_bytes:
            raise FormatError(f"{uri} exceeds {max_bytes} bytes", code="too_large")
        return data

    def verified(self, uri: str, data: bytes) -> None:
        """Nothing to keep."""


def _mirror_parts(uri: str) -> tuple[list[str], str]:
    """The directories and file name of ``uri`` in a mirror: ``<host>[_<port>]/<path>``."""
    try:
        check_http_url(uri)
    except FormatError as e:
        raise FormatError(f"{uri[:200]!r} cannot be mirrored: {e.message}",
                          code="foreign_uri") from e
    parts = urllib.parse.urlsplit(uri)
    # check_http_url refused any host that is not a DNS name or an IP address, so the
    # host is a safe single path component ('..' and '/' cannot occur).
    host = check_host(parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc)
    segments = [p for p in parts.path.split("/") if p]
    return [host + (f"_{parts.port}" if parts.port else ""), *segments[:-1]], segments[-1]


def mirror_path(root: Path, uri: str) -> Path:
    """Where ``uri`` lives in an offline mirror: ``root/<host>[_<port>]/<path>``."""
    directories, name = _mirror_parts(uri)
    return root.joinpath(*directories, name)


def _open_directory(root: Path, names: Sequence[str], *, create: bool) -> int:
    """A descriptor of ``root/names…``; no component below ``root`` may be a symlink.

    Walking by descriptor (``O_NOFOLLOW`` at each step) means a symlink planted in the
    mirror cannot redirect a write outside it, even if planted while we walk.
    """
    if create:
        root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=fd)
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise FormatError(f"{name!r} in {root} is a symbolic link or not a "
                                      "directory: refusing to use it", code="unsafe_path") from e
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class MirrorSource:
    """Documents from an offline mirror directory (see :func:`mirror_path`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        """The mirrored copy of ``uri`` (a regular file, reached through no symlink)."""
        directories, name = _mirror_parts(uri)
        directory = _open_directory(self.root, directories, create=False)
        try:
            # O_NONBLOCK: a FIFO planted in the mirror must not hang the verifier.
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise FormatError(f"{name!r} of {uri} is a symbolic link",
                                  code="unsafe_path") from e
            raise
        finally:
            os.close(directory)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise FormatError(f"the copy of {uri} is not a regular file", code="unsafe_path")
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FormatError(f"{uri} exceeds {max_bytes} bytes", code="too_large")
        return data

    def verified(self, uri: str, data: bytes) -> None:
        """Nothing to keep: the mirror is the copy."""

    def store(self, uri: str, data: bytes) -> None:
        """Write ``data`` for ``uri`` atomically, never through a symlink.

        The temporary file has a random name and is created exclusively
        (``O_EXCL | O_NOFOLLOW``) in the target directory, then renamed over the target
        (a rename replaces a symlink there instead of following it).
        """
        directories, name = _mirror_parts(uri)
        directory = _open_directory(self.root, directories, create=True)
        try:
            temporary, fd = _create_temporary(directory, name, 0o644)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
            except BaseException:
                _unlink_quietly(temporary, directory)
                raise
        finally:
            os.close(directory)


    def discard(self, uri: str) -> None:
        """Remove the copy of ``uri`` if there is one (never through a symlink)."""
        directories, name = _mirror_parts(uri)
        try:
            directory = _open_directory(self.root, directories, create=False)
        except FileNotFoundError:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=directory)
        finally:
            os.close(directory)


def _create_temporary(directory: int, name: str, mode: int) -> tuple[str, int]:
    """A new file ``.<name>.<random>.tmp`` in ``directory``, created exclusively."""
    for _ in range(16):  # a clash of 64 random bits means someone plants names: stop soon
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         mode, dir_fd=directory)
        except FileExistsError:
            continue
        os.fchmod(fd, mode)  # whatever the umask
        return temporary, fd
    raise FileExistsError(errno.EEXIST, "cannot create a temporary file", name)


def _unlink_quietly(name: str, directory: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=directory)


class _Deadline:
    """One wall-clock budget for a whole download: connect, TLS, headers and body."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left; raise :class:`TimeoutError` when none are."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the download took longer than {self.seconds:g} s")
        return left


class _DeadlineReader(io.RawIOBase):
    """Reads a socket; each receive waits at most until the deadline, never longer.

    A socket timeout alone bounds each receive, so a server dripping a byte at a time
    could hold a download forever; here every receive gets only what is left.
    """

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        self._sock.settimeout(self._deadline.remaining())
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """What :class:`http.client.HTTPConnection` needs of a socket, under a deadline.

    ``close`` is left to the caller: http.client closes the connection as soon as the
    headers say ``Connection: close``, before the body has been read.
    """

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(self._deadline.remaining())
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def close(self) -> None:
        """Closed by :func:`_exchange`, once the body is read."""


def _resolve(host: str, port: int, deadline: _Deadline) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` within the deadline.

    The resolver has no timeout of its own (a hostile or broken DNS server can hold it
    for the system's full retry schedule, tens of seconds), so it runs in a daemon thread
    and is abandoned when the deadline passes: the thread ends when the resolver gives up,
    and never holds the process open.
    """
    outcome: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except BaseException as e:  # handed to the caller
            outcome.append(e)
        finally:
            done.set()

    threading.Thread(target=lookup, name="ecert-resolve", daemon=True).start()
    if not done.wait(deadline.remaining()):
        deadline.remaining()  # raises once the deadline has passed
        raise TimeoutError(f"resolving {host} took longer than the deadline")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return list(outcome[0])


def _connect(parts: urllib.parse.SplitResult, deadline: _Deadline,
             context: ssl.SSLContext | None) -> socket.socket:
    """A connected socket (TLS for https) to the URL's origin, within the deadline.

    Name resolution and every address tried share the one deadline
    (``socket.create_connection`` would give each address the whole timeout again, and
    the resolver none).
    """
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    failure: OSError | None = None
    sock: socket.socket | None = None
    for family, kind, proto, _name, address in _resolve(host, port, deadline):
        candidate = socket.socket(family, kind, proto)
        try:
            candidate.settimeout(deadline.remaining())
            candidate.connect(address)
        except OSError as e:
            candidate.close()
            failure = e
            deadline.remaining()  # no time left: stop here, whatever addresses remain
            continue
        except BaseException:
            candidate.close()
            raise
        sock = candidate
        break
    if sock is None:
        raise failure or OSError(f"{host} has no address")
    if parts.scheme != "https":
        return sock
    try:
        context = context or ssl.create_default_context()
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        # Non-blocking, so a server dripping its handshake is bounded by the deadline too.
        tls.setblocking(False)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                ready = select.select([tls], [], [], deadline.remaining())[0]
            except ssl.SSLWantWriteError:
                ready = select.select([], [tls], [], deadline.remaining())[1]
            if not ready:
                deadline.remaining()
                raise TimeoutError("the TLS handshake did not finish in time")
    except BaseException:
        tls.close()
        raise
    return tls


def _exchange(uri: str, headers: Mapping[str, str], limit: int, deadline: _Deadline,
              context: ssl.SSLContext | None) -> tuple[int, str | None, bytes]:
    """GET ``uri`` once: ``(status, ETag or Location, body of a 200 up to limit bytes)``."""
    parts = urllib.parse.urlsplit(uri)
    sock = _connect(parts, deadline, context)
    try:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
        connection.sock = _DeadlineSocket(sock, deadline)
        connection.request("GET", parts.path or "/", headers=dict(headers))
        response = connection.getresponse()
        if response.status in _REDIRECTS:
            return response.status, response.headers.get("Location"), b""
        if response.status != 200:
            return response.status, response.headers.get("ETag"), b""
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = response.read(min(65_536, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return 200, response.headers.get("ETag"), b"".join(chunks)
    finally:
        sock.close()


def _same_origin(a: urllib.parse.SplitResult, b: urllib.parse.SplitResult) -> bool:
    def origin(p: urllib.parse.SplitResult) -> tuple[str, str, int]:
        return p.scheme, (p.hostname or "").lower(), p.port or (
            443 if p.scheme == "https" else 80)

    return origin(a) == origin(b)


class HttpSource:
    """Fetch over HTTP(S) within one deadline and a size limit; cache with ETag on disk.

    ``timeout`` bounds each whole download — connecting, the TLS handshake, the headers,
    the body and any redirects — not each network operation. Redirects are followed
    only within the same origin (scheme, host and port), at most :data:`MAX_REDIRECTS`
    times. Proxy environment variables are not used. ``ssl_context`` replaces the
    default TLS context (system CAs). Thread-safe: downloads run in parallel; only the
    bookkeeping of what was fetched and verified is under a lock, never the network.
    """

    def __init__(self, *, timeout: float = 10.0, cache_dir: Path | None = None,
                 user_agent: str = "ecert-verifier",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self._cache = MirrorSource(cache_dir) if cache_dir is not None else None
        self._etags: dict[str, str] = {}
        #: Verified documents (see :meth:`verified`).
        self._memory: dict[str, bytes] = {}
        #: Fetched, not yet verified: ``uri -> (bytes, ETag)``.
        self._pending: dict[str, tuple[bytes, str | None]] = {}
        self._user_agent = user_agent
        self._ssl_context = ssl_context
        self._lock = threading.Lock()  #: the dictionaries above; never across a download

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        """The document at ``uri`` (or a verified cached copy when the network fails)."""
        check_http_url(uri)
        cached = self._cached(uri, max_bytes)
        headers = {"User-Agent": self._user_agent, "Accept": "*/*", "Connection": "close"}
        with self._lock:
            etag = self._etags.get(uri)
        etag = etag or self._stored_etag(uri)
        if etag and cached is not None:
            headers["If-None-Match"] = etag
        try:
            status, new_etag, data = self._get(uri, headers, max_bytes + 1)
        except (OSError, http.client.HTTPException, ValueError) as e:
            # ValueError: e.g. a header line http.client cannot parse.
            if cached is not None:
                return cached  # offline: the copy's own expiry still applies
            raise OSError(f"cannot reach {uri}: {_reason(e)}") from e
        if status == 304 and cached is not None:
            return cached
        if status >= 500 and cached is not None:
            return cached  # the server is ailing; the copy's own expiry still applies
        if status != 200:
            raise OSError(f"HTTP {status} for {uri}")
        if len(data) > max_bytes:
            raise FormatError(f"{uri} exceeds {max_bytes} bytes", code="too_large")
        with self._lock:
            self._pending.pop(uri, None)
            self._pending[uri] = (data, new_etag)
            while len(self._pending) > _MAX_PENDING:  # never verified: forget the oldest
                del self._pending[next(iter(self._pending))]
        return data

    def verified(self, uri: str, data: bytes) -> None:
        """Keep ``data`` (in memory, and in the cache directory) now that it verified."""
        with self._lock:
            pending = self._pending.get(uri)
            if pending is None or pending[0] != data:
                return  # from the cache already, or not what we fetched last
            del self._pending[uri]
            self._memory[uri] = data
            etag = pending[1]
            if etag:
                self._etags[uri] = etag
            else:
                self._etags.pop(uri, None)
        if self._cache is None:
            return
        try:
            self._cache.store(uri, data)
            if etag:
                self._cache.store(uri + ".etag", etag.encode("utf-8", "replace"))
            else:
                self._cache.discard(uri + ".etag")  # an older copy's ETag must not linger
        except (OSError, FormatError) as e:
            # The copy is an optimisation and an offline fallback; verification stands.
            log.warning("cannot cache %s: %s", uri, e)

    def _get(self, uri: str, headers: dict[str, str], limit: int
             ) -> tuple[int, str | None, bytes]:
        deadline = _Deadline(self.timeout)
        current = uri
        for _ in range(MAX_REDIRECTS + 1):
            status, value, data = _exchange(current, headers, limit, deadline,
                                            self._ssl_context)
            if status not in _REDIRECTS:
                return status, value, data
            current = self._redirect_target(uri, current, value)
        raise FormatError(f"{uri}: more than {MAX_REDIRECTS} redirects",
                          code="redirect_refused")

    @staticmethod
    def _redirect_target(uri: str, current: str, location: str | None) -> str:
        """Where a redirect leads, if it stays within the origin of ``uri``."""
        if not location:
            raise FormatError(f"{uri}: a redirect without Location", code="redirect_refused")
        target = urllib.parse.urljoin(current, location.strip())
        try:
            check_http_url(target)
        except FormatError as e:
            raise FormatError(f"{uri}: refusing to follow a redirect to {target[:200]!r}: "
                              f"{e.message}", code="redirect_refused") from e
        if not _same_origin(urllib.parse.urlsplit(uri), urllib.parse.urlsplit(target)):
            # Following it would let any server make every verifier fetch what it names
            # elsewhere (another host, another scheme): a blind SSRF.
            raise FormatError(f"{uri}: refusing to follow a redirect to another origin "
                              f"({target[:200]!r})", code="redirect_refused")
        return target

    def _cached(self, uri: str, max_bytes: int) -> bytes | None:
        with self._lock:
            remembered = self._memory.get(uri)
        if remembered is not None:
            return remembered
        if self._cache is None:
            return None
        try:
            return self._cache.fetch(uri, max_bytes=max_bytes)
        except (OSError, FormatError):
            return None

    def _stored_etag(self, uri: str) -> str | None:
        if self._cache is None:
            return None
        try:
            etag = self._cache.fetch(uri + ".etag", max_bytes=1024).decode("utf-8", "replace")
        except (OSError, FormatError):
            return None
        # Only a printable value goes back into a request header.
        return etag if etag and etag.isascii() and etag.isprintable() else None


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())[:300]


class RoutedSource:
    """Send each URI to the first source whose URL prefix it starts with."""

    def __init__(self, routes: list[tuple[str, DocumentSource]],
                 fallback: DocumentSource) -> None:
        self._routes = [(prefix.rstrip("/") + "/", source) for prefix, source in routes]
        self._fallback = fallback

    def _source(self, uri: str) -> DocumentSource:
        for prefix, source in self._routes:
            if uri.startswith(prefix):
                return source
        return self._fallback

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        """Fetch from the source routed to."""
        return self._source(uri).fetch(uri, max_bytes=max_bytes)

    def verified(self, uri: str, data: bytes) -> None:
        """Tell the source routed to."""
        self._source(uri).verified(uri, data)
