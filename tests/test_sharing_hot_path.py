"""What the sharing service's per-request path saves, and that the savings change nothing:
the nonce kept in the fetch's own transaction, the hourly counts taken in leases, and
each worker process listening on a socket of its own."""

from __future__ import annotations

import pickle
import select
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

import ecert
from ecert._storage.schema import request_counts, uses
from ecert.registry import _limits
from ecert.sharing import MemoryNonceStore, Problem
from ecert.sharing.app import create_app
from ecert.sharing.backend import RegistryBackend
from tests.support import FakeClock
from tests.support.registries import as_operator
from tests.support.sharing_registry import HOLDER, LICENCE, Sharing

STATUTE, STATUTE_PURPOSE = "GD/gd-hrss", "社会保险登记"


def use_count(registry: ecert.Registry) -> int:
    with registry.engine.begin() as conn:
        return int(conn.execute(sql_select(func.count()).select_from(uses)).scalar_one())


def fetch(sharing: Sharing, nonce: str, *, expires: int, requester: str = STATUTE
          ) -> ecert.registry.FetchResult:
    return sharing.service.share_fetch(
        requester, HOLDER, [LICENCE], purpose=STATUTE_PURPOSE, case="CASE-" + nonce,
        service_item="440000-SB-0003", staff_id="s-1", staff_role="受理",
        request_hash="h-" + nonce, nonce=(nonce, expires))


def test_a_nonce_kept_by_the_fetch_is_refused_the_second_time_and_records_nothing(
        sharing: Sharing, registry: ecert.Registry, clock: FakeClock) -> None:
    expires = int(clock().timestamp()) + 300
    assert fetch(sharing, "n-1", expires=expires).granted
    before = use_count(registry)
    with pytest.raises(ecert.Replayed) as replayed:
        fetch(sharing, "n-1", expires=expires)
    assert replayed.value.code == "replay"
    assert use_count(registry) == before  # the replay's unit was undone: no record
    # The same nonce of another requester is another request.
    # (ZJ may not fetch for this purpose: refused, and recorded.)
    assert fetch(sharing, "n-1", expires=expires, requester="ZJ/zj-amr").problem \
        == "purpose_not_permitted"
    # Kept even when the request is refused: a refused request cannot be replayed either.
    with pytest.raises(ecert.Replayed):
        fetch(sharing, "n-1", expires=expires, requester="ZJ/zj-amr")
    # A check keeps its nonce in its own unit too, in the same store.
    values = {"holder_id": HOLDER}
    assert sharing.service.share_check(
        STATUTE, LICENCE, values, purpose=STATUTE_PURPOSE, case="C-2",
        service_item="440000-SB-0003", staff_id="s-1", staff_role="核验",
        request_hash="c-2", nonce=("n-2", expires)).match
    with pytest.raises(ecert.Replayed):
        sharing.service.share_check(
            STATUTE, LICENCE, values, purpose=STATUTE_PURPOSE, case="C-2",
            service_item="440000-SB-0003", staff_id="s-1", staff_role="核验",
            request_hash="c-2", nonce=("n-2", expires))
    assert not registry.remember_nonce(STATUTE, "n-2", expires)  # one store for both
    # Once expired the nonce may be used again (the request is stale by then anyway).
    clock.advance(seconds=301)
    assert fetch(sharing, "n-1", expires=expires + 600).granted
    for bad in (("", expires), ("x" * 201, expires), ("n", "soon")):
        with pytest.raises(ecert.InputError):
            fetch(sharing, bad[0], expires=bad[1])  # type: ignore[arg-type]
    assert registry.audit().intact


def test_concurrent_fetches_with_one_nonce_are_granted_once(sharing: Sharing,
                                                            clock: FakeClock) -> None:
    expires = int(clock().timestamp()) + 300
    barrier = threading.Barrier(4)

    def worker(_: int) -> str:
        barrier.wait()
        try:
            return "granted" if fetch(sharing, "same", expires=expires).granted else "refused"
        except ecert.Replayed:
            return "replay"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(worker, range(4)))
    assert outcomes == ["granted", "replay", "replay", "replay"]


def test_the_app_needs_exactly_one_keeper_of_nonces(registry: ecert.Registry) -> None:
    class Keys:
        def resolve(self, keyid: str, signed_at: int) -> Problem:
            return Problem.of("not_authenticated")

    remembering = RegistryBackend(registry)
    leaving = RegistryBackend(registry, remember_nonces=False)
    with pytest.raises(ValueError, match="replays would go through"):
        create_app(keys=Keys(), nonces=None, backend=leaving, base_url="http://127.0.0.1")
    with pytest.raises(ValueError, match="seen twice"):
        create_app(keys=Keys(), nonces=MemoryNonceStore(), backend=remembering,
                   base_url="http://127.0.0.1")
    create_app(keys=Keys(), nonces=None, backend=remembering, base_url="http://127.0.0.1")
    create_app(keys=Keys(), nonces=MemoryNonceStore(), backend=leaving,
               base_url="http://127.0.0.1")


def test_lease_sizes_keep_small_limits_exact() -> None:
    assert [_limits.lease_size(n) for n in (0, 1, 255, 256, 1024, 10_000, 10**7)] \
        == [1, 1, 1, 1, 4, 32, 32]


def test_leased_counts_never_let_workers_past_the_limit(sharing: Sharing,
                                                        registry: ecert.Registry) -> None:
    """Two service processes (two registry objects, each its own leases) share one
    limit: together they hand out exactly the limit, in blocks, and not one more."""
    registry.set_share_limits(fetches_per_hour=1024)  # leases of 4
    assert _limits.lease_size(1024) == 4
    with as_operator(registry, "svc", "service passphrase", sharing.clock) as other:
        workers = [sharing.service, other]
        granted = [0, 0]
        for i in range(1100):
            granted[i % 2] += workers[i % 2]._take_request("fetch", "ZJ/zj-lease")
        assert granted == [512, 512]
        # Each database count was one lease of 4, not one request.
        with registry.engine.begin() as conn:
            count = conn.execute(sql_select(request_counts.c.count).where(
                request_counts.c.scope == "fetch:ZJ/zj-lease")).scalar_one()
        assert count >= 1024 and count % 4 == 0
        # Another requester has its own budget.
        assert other._take_request("fetch", "ZJ/zj-other")


def test_leased_counts_hold_under_concurrency(sharing: Sharing,
                                              registry: ecert.Registry) -> None:
    registry.set_share_limits(checks_per_hour=512)  # leases of 2
    with as_operator(registry, "svc", "service passphrase", sharing.clock) as other:
        workers = [sharing.service, other]
        barrier = threading.Barrier(4)

        def worker(index: int) -> int:
            barrier.wait()
            return sum(workers[index % 2]._take_request("check", "ZJ/zj-many")
                       for _ in range(160))

        with ThreadPoolExecutor(4) as pool:
            total = sum(pool.map(worker, range(4)))
    # 640 asked: at most the limit, and at most one unused lease per worker short of it.
    assert 512 - 2 * 2 <= total <= 512


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="Linux's SO_REUSEPORT")
def test_each_worker_listens_on_a_socket_of_its_own() -> None:
    """What ``ecert serve --workers N`` hands each worker: pickled (as uvicorn sends it
    to a spawned worker) it becomes a listening socket of the worker's own on the
    service's port, and new connections are spread over the workers' sockets, none to
    the parent's, which only holds the port."""
    from ecert.sharing import serve

    with serve._reusing_port("127.0.0.1", 0) as held:
        port = held.getsockname()[1]
        handed = serve._WorkerSockets("127.0.0.1", port, 128)
        workers = [pickle.loads(pickle.dumps(handed))[0] for _ in range(2)]
        clients = []
        try:
            for sock in workers:
                assert sock.getsockname()[1] == port
                sock.setblocking(False)
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
            accepted = [0, 0]
            while sum(accepted) < 32:
                ready, _, _ = select.select(workers, [], [], 5)
                assert ready, f"only {sum(accepted)} of 32 connections arrived"
                for sock in ready:
                    conn, _ = sock.accept()
                    conn.close()
                    accepted[workers.index(sock)] += 1
            assert min(accepted) > 0, accepted  # spread, not all on one
        finally:
            for c in clients:
                c.close()
            for sock in workers:
                sock.close()
