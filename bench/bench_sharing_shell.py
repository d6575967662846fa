"""The sharing service's HTTP shell alone: signed requests per second through uvicorn.

Run: python bench/bench_sharing_shell.py [--seconds 5] [--concurrency 16]

Measures (1) RFC 9421 signing and verifying a request in-process, and (2) the shell's
throughput and latency on loopback: one uvicorn worker in a subprocess serving
``create_app`` with an in-memory nonce store and a backend that answers at once (no
database, no copies made), loaded by this process with ``--concurrency`` threads on
keep-alive ``http.client`` connections, each request freshly signed (Ed25519). It bounds
what the shell costs; the issue's load target (copies/s with PostgreSQL and 2 workers)
needs the registry backend and is measured there. The load generator runs on the same
2 cores as the server.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import threading
import time

from cryptography.hazmat.primitives.asymmetric import ed25519

from ecert._formats import httpsig
from ecert._formats.sharing import CaseContext, Problem, ShareRequest
from ecert.keys import LocalSigner

# A fixed key, so the server subprocess knows the client's key without being told.
KEY = LocalSigner(ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
REQUEST = ShareRequest("91440300MA5F3K2L8G", ("cn.business-licence",), CaseContext(
    "跨省迁移登记", "ZJ2026120100001", "330000-SX-0001", "zj-0042", "受理员"))


def serve() -> None:
    """The server side: one uvicorn worker, printing its port."""
    import socket

    import uvicorn

    from ecert.sharing import FetchResult, MemoryNonceStore, ResolvedKey
    from ecert.sharing.app import create_app
    from ecert.sharing.server import uvicorn_config

    public = KEY._key.public_key()  # type: ignore[attr-defined]

    class Keys:
        def resolve(self, keyid: str, signed_at: int) -> ResolvedKey | Problem:
            from ecert._formats.trustlist import TrustedKey

            return ResolvedKey("ZJ/zj-amr", public, TrustedKey(KEY.public_jwk, 0))

    class Backend:
        def fetch(self, request: object, body: object) -> FetchResult:
            return FetchResult(("header.payload.signature",))

        def check(self, request: object, body: object) -> Problem:
            return Problem.of("not_entitled")

        def refused(self, requester: object, problem: object, request_hash: str, *,
                    kind: object) -> None:
            pass

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(keys=Keys(), nonces=MemoryNonceStore(), backend=Backend(),
                     base_url=f"http://127.0.0.1:{port}")
    print(port, flush=True)
    uvicorn.Server(uvicorn_config(app, access_log=False)).run(sockets=[sock])


def pure(seconds: float) -> None:
    body = REQUEST.to_json()
    url = "http://127.0.0.1:8000/v1/copies"
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 2:
        headers = httpsig.sign_request(method="POST", url=url, body=body,
                                       content_type="application/json", signer=KEY,
                                       created=1_800_000_000, nonce=f"nonce-{n:012d}-xx")
        n += 1
    signing = n / (time.perf_counter() - start)
    fields = dict(headers)
    message = httpsig.HttpMessage(tuple(headers), method="POST", target_uri=url)
    public = KEY._key.public_key()  # type: ignore[attr-defined]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 2:
        httpsig.check_content_digest(fields["Content-Digest"], body)
        parsed = httpsig.parse_signature(fields["Signature-Input"], fields["Signature"])
        httpsig.verify_message(message, parsed, public)
        n += 1
    verifying = n / (time.perf_counter() - start)
    print(f"sign a request: {signing:,.0f}/s; parse and verify one: {verifying:,.0f}/s")


def load(seconds: float, concurrency: int) -> None:
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/v1/copies"
        body = REQUEST.to_json()
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        stop = time.perf_counter() + seconds

        def client(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            n = 0
            while time.perf_counter() < stop:
                headers = dict(httpsig.sign_request(
                    method="POST", url=url, body=body, content_type="application/json",
                    signer=KEY, created=int(time.time()),
                    nonce=f"bench-{index:04d}-{n:012d}", keyid="ZJ/zj-amr#bench"))
                n += 1
                began = time.perf_counter()
                connection.request("POST", "/v1/copies", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                took = time.perf_counter() - began
                with lock:
                    latencies.append(took)
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        time.sleep(0.5)
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(f"shell, 1 worker, concurrency {concurrency}: {len(latencies) / elapsed:,.0f} "
              f"requests/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, statuses {statuses}")
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    pure(args.seconds)
    load(args.seconds, args.concurrency)


if __name__ == "__main__":
    main()
