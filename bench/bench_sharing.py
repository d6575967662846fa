"""The sharing service under load: copies per second and latency over loopback HTTP.

Run: ECERT_TEST_DATABASE_URL=postgresql+psycopg://… python bench/bench_sharing.py
         [--seconds 10] [--max-requests 20000] [--concurrency 16] [--workers 2]
     (without the URL: SQLite, which serializes the workers' writes)

Builds the sample regions (tests/support/sharing_world.py: GD serving, ZJ requesting, in
scratch schemas dropped at the end) plus a by-statute entitlement for ZJ/zj-amr (so that
every request is granted without a single-use consent code), starts a real
``ecert serve --workers 2`` process as GD's service operator, and loads it from this
process with ``--concurrency`` threads, each on its own keep-alive connection, each
request freshly signed (ES256, ZJ's requester key) with a new nonce, for ``--seconds``
or ``--max-requests``, whichever comes first (after a one-second warm-up that is not
counted). Every granted request makes one copy, one use record and one log entry.

The load generator runs on the same machine (and cores) as the server and the
database: the report says how the CPU time divided between them.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ecert
from ecert._formats import httpsig
from ecert._formats.sharing import CaseContext, ShareRequest, requester_keyid
from tests.support import PG_URL, serve
from tests.support.constants import PASSPHRASE
from tests.support.regions import BL
from tests.support.registries import as_operator
from tests.support.sharing_world import (
    SECOND_PASSPHRASE,
    SERVICE_OPERATOR,
    SERVICE_PASSPHRASE,
    build,
    close,
)

PURPOSE = "社会保险登记"  # the bench's by-statute purpose
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds of ``pids`` (those still there)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of each of PostgreSQL's processes, by pid (none without PostgreSQL)."""
    return {pid: cpu_seconds([pid]) for pid in postgres_pids()} if PG_URL else {}


class Snapshot(NamedTuple):
    """CPU seconds so far: this process's, PostgreSQL's by process, each service process's."""

    own: float
    database: dict[int, float]
    workers: tuple[float, ...]


def children(pid: int) -> list[int]:
    """``pid`` and its descendants (the workers of ``ecert serve``)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            listed = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo += [int(p) for p in listed]
    return out


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def by_statute(world: object, tmp: Path) -> None:
    """A without-consent entitlement for ZJ/zj-amr (needs a second operator), and a
    fetch limit the load cannot reach."""
    gd = world["GD"]  # type: ignore[index]
    try:
        gd.share_allow("ZJ/zj-amr", [BL], [PURPOSE], ["name", "uscc", "address"],
                       without_consent=True)
    except ecert.PendingApproval as pending:  # the world's second trust admin approves
        with as_operator(gd, "trust-b", SECOND_PASSPHRASE, gd.clock) as other:
            other.approve(pending.request.id)
    # One requester makes every request: past the default 10,000 fetches an hour it
    # would be answered too_many_requests (docs/format.md, section 15.14).
    gd.set_share_limits(fetches_per_hour=10_000_000)
    world.publish("GD")  # type: ignore[attr-defined]


def start_server(world: object, workers: int) -> tuple[subprocess.Popen[str], int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {**os.environ, "ECERT_HOME": str(world["GD"].home),  # type: ignore[index]
           "ECERT_OPERATOR": SERVICE_OPERATOR, "ECERT_PASSPHRASE": PASSPHRASE,
           "ECERT_OPERATOR_PASSPHRASE": SERVICE_PASSPHRASE, "ECERT_LANG": "en"}
    url = world.database_urls["GD"]  # type: ignore[attr-defined]
    if url:
        env["ECERT_DATABASE_URL"] = url
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("ecert")), "serve", "--port", str(port),
         "--workers", str(workers)], env=env, stdout=subprocess.PIPE, text=True)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        # One worker answering is not all of them listening: connections opened now
        # would all land on the first one up (each worker listens on a socket of its own).
        if listening(port) >= workers:
            return server, port
        time.sleep(0.05)
    server.kill()
    raise SystemExit("ecert serve did not start")


def listening(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (one per worker: SO_REUSEPORT)."""
    wanted = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
            count += 1
    return count




def load(world: object, port: int, seconds: float, max_requests: int, concurrency: int,
         snapshot: Callable[[], Snapshot], presign: bool = False
         ) -> tuple[list[float], dict[int, int], float, int, Snapshot, Snapshot]:
    """Latencies of the counted requests, statuses, elapsed seconds, copies made, and
    ``snapshot()`` (CPU seconds) when the counted part began and when it ended.
    ``presign``: each thread's requests are signed before the load starts (as a load
    generator replaying prepared requests would send them), not while it runs."""
    signer = world.signer("ZJ/zj-amr")  # type: ignore[attr-defined]
    keyid = requester_keyid("ZJ/zj-amr", signer.kid)
    url = f"http://127.0.0.1:{port}/v1/copies"
    holder = world.holder_id  # type: ignore[attr-defined]

    def signed(index: int, n: int) -> tuple[bytes, dict[str, str]]:
        body = ShareRequest(holder, (BL,), CaseContext(
            PURPOSE, f"BENCH-{index:02d}-{n:07d}", "440000-SB-0003", "bench",
            "受理员")).to_json()
        return body, dict(httpsig.sign_request(
            method="POST", url=url, body=body, content_type="application/json",
            signer=signer, created=int(time.time()), nonce=f"bench{index:03d}n{n:010d}",
            keyid=keyid))

    # Enough for the warm-up second and the counted requests at up to 1,000/s.
    each = min(max_requests // concurrency + 1, int(1000 * (seconds + 1) / concurrency) + 1)
    prepared = [[signed(i, n) for n in range(each)] if presign else []
                for i in range(concurrency)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    copies = 0
    lock = threading.Lock()
    warm_until = time.perf_counter() + 1.0
    stop = warm_until + seconds
    issued = 0

    def client(index: int) -> None:
        nonlocal issued, copies
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = 0
        while True:
            now = time.perf_counter()
            counted = now >= warm_until
            with lock:
                if now >= stop or (counted and issued >= max_requests):
                    break
                if counted:
                    issued += 1
            if presign and n >= len(prepared[index]):
                break
            body, headers = prepared[index][n] if presign else signed(index, n)
            n += 1
            began = time.perf_counter()
            connection.request("POST", "/v1/copies", body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            took = time.perf_counter() - began
            if counted:
                with lock:
                    latencies.append(took)
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    copies += data.count(b'"token"')
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, warm_until - time.perf_counter()))
    before = snapshot()  # the warm-up's CPU is not the counted requests'
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return (latencies, statuses, time.perf_counter() - started, copies, before,
            snapshot())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--presign", action="store_true",
                        help="sign every request before the load starts")
    args = parser.parse_args()
    schemas: list[Iterator[str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        for static in serve(tmp / "www"):
            world = build(tmp, static, schemas)
            server = None
            try:
                by_statute(world, tmp)
                server, port = start_server(world, args.workers)
                pids = children(server.pid)

                def snapshot(pids: list[int] = pids) -> Snapshot:
                    mine = os.times()
                    return Snapshot(mine.user + mine.system, postgres_cpu(),
                                    tuple(cpu_seconds([pid]) for pid in pids))

                latencies, statuses, elapsed, copies, before, after = load(
                    world, port, args.seconds, args.max_requests, args.concurrency,
                    snapshot, args.presign)
            finally:
                if server is not None:
                    server.send_signal(signal.SIGTERM)
                    server.wait(30)
                close(world)
                for gen in schemas:
                    next(gen, None)
    latencies.sort()
    own = after.own - before.own
    # PostgreSQL's processes by pid: a backend that started during the load (a pool
    # growing) counts in full, one that ended meanwhile not at all — other work's backends
    # must not make this negative.
    database = sum(cpu - before.database.get(pid, 0.0) for pid, cpu in after.database.items())
    each = [a - b for a, b in zip(after.workers, before.workers, strict=True)]
    served = sum(each)
    db = "PostgreSQL" if PG_URL else "SQLite"
    print(f"{db}, {args.workers} worker(s), concurrency {args.concurrency}, "
          f"{len(latencies)} requests in {elapsed:.1f} s (load generator on the same "
          f"{os.cpu_count()} cores, requests signed "
          f"{'before the load' if args.presign else 'as sent'})")
    print(f"copies/s {copies / elapsed:,.0f}; requests/s {len(latencies) / elapsed:,.0f}; "
          f"p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000:.1f} ms; "
          f"statuses {statuses}")
    per = 1000 / max(1, len(latencies))
    print(f"CPU per request: service workers {served * per:.2f} ms, "
          f"load generator {own * per:.2f} ms, PostgreSQL (all its processes on the "
          f"machine) {database * per:.2f} ms "
          f"(of {elapsed * (os.cpu_count() or 1) * per:.2f} ms available)")
    busy = sorted((c for c in each if c > 0.01 * max(served, 1e-9)), reverse=True)
    print("service processes' share of its CPU: "
          + " / ".join(f"{100 * c / max(served, 1e-9):.0f}%" for c in busy))


if __name__ == "__main__":
    main()
