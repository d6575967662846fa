"""``Registry.share_fetch`` and ``share_check`` in-process: calls per second and latency,
granted and refused, and the rate limit's count alone.

Run: python bench/bench_fetch.py [N]   (SQLite in a scratch home)
     ECERT_TEST_DATABASE_URL=postgresql+psycopg://… python bench/bench_fetch.py [N]
     (PostgreSQL, in a scratch schema dropped at the end)

One process, one caller, no HTTP: what the sharing service's worker spends in the
registry per request. A granted call (by statute, or on a consent code looked up in the
log: its grant, revocation and spends) verifies the stored certificate against its key and
the log, signs one copy with the sharing key, writes a use record and signs its log
entry; a refused one (no consent) only records. A check compares the values with the
holder's certificates and records. Every call first counts itself against the
requester's hourly limit in a short transaction of its own (the last row: that alone).
Then ``audit verify`` over the result.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ecert
from ecert.registry import FetchResult
from tests.support import (
    PG_URL,
    create_registry,
    issue_business_licence,
    pg_schema_url,
)
from tests.support.registries import as_operator


def timed(n: int, call: Callable[[int], Any]) -> tuple[float, float, float]:
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        began = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - began)
    total = time.perf_counter() - start
    latencies.sort()
    return n / total, latencies[n // 2] * 1000, latencies[int(n * 0.99)] * 1000


def check(service: ecert.Registry, holder: str) -> Callable[[int], Any]:
    def call(i: int) -> Any:
        return service.share_check(
            "GD/gd-hrss", "cn.business-licence", {"holder_id": holder, "uscc": holder},
            purpose="社会保险登记", case=f"CHK-{i}", service_item="440000-SB-0003",
            staff_id="s-1", staff_role="受理", request_hash=f"c-{i}")
    return call


def main(n: int) -> None:
    schemas = pg_schema_url() if PG_URL else None
    url = next(schemas) if schemas is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        registry = create_registry(Path(tmp) / "home", region="GD", database_url=url,
                                   clock=None, kdf_rounds=1000, populate=True)
        try:
            cert = issue_business_licence(registry)
            registry.add_operator("trust-b", roles=["trust-admin"], passphrase="b pass")
            registry.add_operator("svc", roles=["service"], passphrase="svc pass")
            try:
                registry.share_allow("GD/gd-hrss", ["cn.business-licence"], ["社会保险登记"],
                                     ["name", "uscc", "address"], without_consent=True)
            except ecert.PendingApproval as pending:
                with as_operator(registry, "trust-b", "b pass", None) as other:
                    other.approve(pending.request.id)
            registry.share_allow("ZJ/zj-amr", ["cn.business-licence"], ["跨省迁移登记"])
            holder = str(cert.claims["uscc"])
            registry.set_share_limits(fetches_per_hour=10 * n, checks_per_hour=10 * n,
                                      checks_per_subject=10 * n)
            with as_operator(registry, "svc", "svc pass", None) as service:
                def fetch(requester: str, purpose: str) -> Callable[[int], FetchResult]:
                    def call(i: int) -> FetchResult:
                        return service.share_fetch(
                            requester, holder, ["cn.business-licence"], purpose=purpose,
                            case=f"CASE-{i}", service_item="440000-SB-0003",
                            staff_id="s-1", staff_role="受理", request_hash=f"h-{i}")
                    return call

                # One consent code per call (granted beforehand, at the window): each fetch
                # looks its consent up in the log (grant, revocation, spends) and spends it.
                codes = [registry.consent_grant(holder, "ZJ/zj-amr", ["cn.business-licence"],
                                                "跨省迁移登记").code for _ in range(n)]

                def on_consent(i: int) -> FetchResult:
                    return service.share_fetch(
                        "ZJ/zj-amr", holder, ["cn.business-licence"], purpose="跨省迁移登记",
                        case=f"CON-{i}", service_item="330000-SX-0001", staff_id="z-1",
                        staff_role="受理", request_hash=f"k-{i}", consent=codes[i])

                fetch("GD/gd-hrss", "社会保险登记")(0)  # warm: keys loaded, caches filled
                db = "PostgreSQL" if url else "SQLite"
                for label, call in (("granted (1 copy)", fetch("GD/gd-hrss", "社会保险登记")),
                                    ("granted on a consent", on_consent),
                                    ("refused (no consent)", fetch("ZJ/zj-amr", "跨省迁移登记")),
                                    ("check (matching)", check(service, holder)),
                                    ("rate count alone", lambda i: service._take_request(
                                        "fetch", "GD/gd-other"))):
                    rate, p50, p99 = timed(n, call)
                    print(f"{db:<10} {label:<22} {rate:7.0f}/s  p50 {p50:6.1f} ms  "
                          f"p99 {p99:6.1f} ms")
            began = time.perf_counter()
            report = registry.audit()
            print(f"audit verify after {4 * n + 1} fetches and checks: intact={report.intact} "
                  f"in {time.perf_counter() - began:.2f} s")
        finally:
            registry.close()
            if schemas is not None:
                next(schemas, None)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
