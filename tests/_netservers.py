"""Hostile little servers on 127.0.0.1 for network tests: they drip, redirect, babble.

Every server listens on an ephemeral port of 127.0.0.1 only, serves from daemon
threads, and bounds everything it does in time (a dripping handler gives up after
``MAX_SECONDS`` or when the client hangs up), so a test that fails cannot hang the run.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: No handler runs longer than this.
MAX_SECONDS = 20.0
#: The pause between two dripped bytes.
DRIP_INTERVAL = 0.05

#: A handler: the connected socket and the server's stop event.
Behaviour = Callable[[socket.socket, threading.Event], None]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    behaviour: Behaviour
    stopping: threading.Event
    requests: list[bytes]


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(2.0)
        # OSError: the client hung up, which is what these servers are waiting for.
        with contextlib.suppress(OSError):
            self.server.behaviour(sock, self.server.stopping)


def read_request(sock: socket.socket) -> bytes:
    """The request head (up to the blank line), read within a bounded time."""
    data = b""
    deadline = time.monotonic() + 2.0
    while b"\r\n\r\n" not in data and len(data) < 65_536 and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def drip(sock: socket.socket, stopping: threading.Event, data: bytes) -> None:
    """Send ``data`` a byte at a time, ``DRIP_INTERVAL`` apart, until done or stopped."""
    end = time.monotonic() + MAX_SECONDS
    for byte in data:
        if stopping.is_set() or time.monotonic() > end:
            return
        sock.sendall(bytes([byte]))
        stopping.wait(DRIP_INTERVAL)


def drip_headers(sock: socket.socket, stopping: threading.Event) -> None:
    """Answer with headers that never end: one byte every ``DRIP_INTERVAL``."""
    read_request(sock)
    drip(sock, stopping, b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 10_000)


def drip_body(sock: socket.socket, stopping: threading.Event) -> None:
    """Prompt headers, then a 100 kB body dripped a byte at a time."""
    read_request(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    drip(sock, stopping, b"e" * 100_000)


def drip_tls_handshake(sock: socket.socket, stopping: threading.Event) -> None:
    """A TLS record header announcing 16 kB of handshake, whose body then drips."""
    sock.recv(4096)  # the ClientHello
    sock.sendall(b"\x16\x03\x03\x40\x00")
    drip(sock, stopping, b"\x00" * 16_384)


def silent(sock: socket.socket, stopping: threading.Event) -> None:
    """Accept and say nothing (until stopped or the client leaves)."""
    read_request(sock)
    stopping.wait(MAX_SECONDS)


def babble(sock: socket.socket, stopping: threading.Event) -> None:
    """Answer something that is not HTTP."""
    read_request(sock)
    sock.sendall(b"HELLO THERE\r\n\r\n")


def answer(sock: socket.socket, status: int, headers: dict[str, str], body: bytes = b"") -> None:
    """Send an HTTP answer (the request already read)."""
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(head.encode("latin-1") + b"\r\n" + body)


def respond(status: int, headers: dict[str, str], body: bytes = b"") -> Behaviour:
    """A fixed HTTP answer."""
    def behaviour(sock: socket.socket, stopping: threading.Event) -> None:
        read_request(sock)
        answer(sock, status, headers, body)

    return behaviour


class RawServer:
    """A TCP server on 127.0.0.1 whose every connection is handled by ``behaviour``."""

    def __init__(self, behaviour: Behaviour) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.behaviour = behaviour
        self._server.stopping = threading.Event()
        self._server.requests = []
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def url(self, path: str = "doc.jwt", scheme: str = "http") -> str:
        """A URL of this server."""
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def stop(self) -> None:
        """Stop serving and release every dripping handler."""
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextmanager
def raw_server(behaviour: Behaviour) -> Iterator[RawServer]:
    """A :class:`RawServer` for the duration."""
    server = RawServer(behaviour)
    try:
        yield server
    finally:
        server.stop()


class CountingServer(RawServer):
    """Answers 200 with ``body`` and counts the connections it got."""

    def __init__(self, body: bytes = b"hello") -> None:
        self.hits = 0
        answer = respond(200, {}, body)

        def behaviour(sock: socket.socket, stopping: threading.Event) -> None:
            self.hits += 1
            answer(sock, stopping)

        super().__init__(behaviour)


@contextmanager
def counting_server(body: bytes = b"hello") -> Iterator[CountingServer]:
    """A :class:`CountingServer` for the duration."""
    server = CountingServer(body)
    try:
        yield server
    finally:
        server.stop()


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``tmp``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@contextmanager
def tls_server(tmp: Path, behaviour: Behaviour) -> Iterator[tuple[RawServer, ssl.SSLContext]]:
    """A :class:`RawServer` speaking TLS, and a client context that trusts it."""
    cert_file, key_file = self_signed(tmp)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)

    def wrapped(sock: socket.socket, stopping: threading.Event) -> None:
        with server_context.wrap_socket(sock, server_side=True) as tls:
            behaviour(tls, stopping)

    client_context = ssl.create_default_context(cafile=str(cert_file))
    with raw_server(wrapped) as server:
        yield server, client_context
