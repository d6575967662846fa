"""A registry at national scale: lookups, single changes and publication as it grows.

Run: python bench/bench_scale.py --database-url postgresql+psycopg://… \
         --size 10000 [--size 1000000 --size 10000000] [--home DIR --reuse] [--profile]

Builds a GD registry on PostgreSQL through the batch API (``Registry.issue_batch``,
valid business licences, ``--chunk`` rows per unit of work), growing it to each
``--size`` in turn, and at each size reports:

* holder lookup (``find(holder_id=…)`` of a random holder; median of 20, ms);
* list by type, first page (``find_page(type_code=…, limit=100)``; median of 10, ms);
* a single issue and a single revoke (median of 5, ms);
* a full publish (into an empty directory), the same with ``full=True`` into that
  directory again (every status list built from the database, every tile looked for)
  and an incremental one (the same directory, after one revocation), then another after
  a batch of 10,000 issues (whose units it replays), seconds; with ``--profile`` where
  each spends its time;
* verifier memory: a ``Verifier`` over the published bundle after it read every status
  list (one token per list), as traced allocations (tracemalloc) and RSS growth.

Without ``--home`` the registry lives in a temporary home and a scratch schema that are
dropped at the end. With ``--home DIR --reuse`` the registry in DIR (and the database
URL given, which must be the one it was built on) is opened and only grown: a built
10^7 registry is measured again without rebuilding it. One JSON line per size on
standard output, after the human lines.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench_batch import load, rss_now, uscc  # the scripts of bench/ run from that folder
from bench_core import _scratch_schema

import ecert
from ecert import _samples
from ecert import keys as ecert_keys
from ecert.batch import BatchRow, RowStatus

BL = "cn.business-licence"
AGENCY = "gd-amr"
PASSPHRASE = "bench"
OPERATOR = ecert.OperatorCredential("bench", passphrase="bench operator")


def rows(start: int, stop: int) -> Iterator[BatchRow]:
    """Valid business licences numbered ``start`` … ``stop - 1`` (holder ``uscc(i)``)."""
    base = _samples.claims("business-licence-gd")
    for i in range(start, stop):
        code = uscc(i)
        name = f"{base['name'][:-6]}{i:06d}有限公司"
        yield BatchRow(i + 1, code, name, {**base, "uscc": code, "name": name},
                       key=f"SCALE-{i:09d}")


def median_ms(action: Callable[[], Any], times: int) -> float:
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


def grow(registry: ecert.Registry, size: int, chunk: int) -> tuple[float, int]:
    """Issue licences until the registry holds ``size`` of them; seconds taken, issued."""
    have = registry.count()
    if have >= size:
        return 0.0, 0
    start = time.perf_counter()
    done = 0
    last = start
    for outcome in registry.issue_batch(BL, AGENCY, rows(have, size), chunk_size=chunk):
        if outcome.status is RowStatus.REJECTED:
            raise SystemExit(f"row {outcome.line} rejected: {outcome.reason}")
        done += 1
        now = time.perf_counter()
        if now - last > 30:
            last = now
            print(f"  … {have + done} of {size} ({done / (now - start):.0f}/s)", flush=True)
    return time.perf_counter() - start, done


def measure(registry: ecert.Registry, size: int, work: Path, rng: random.Random,
            profile: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"size": registry.count()}
    holders = [uscc(rng.randrange(size)) for _ in range(20)]
    it = iter(holders)
    result["holder_lookup_ms"] = median_ms(
        lambda: registry.find(holder_id=next(it)), len(holders))
    result["list_by_type_first_page_ms"] = median_ms(
        lambda: registry.find_page(type_code=BL, limit=100), 10)
    extra = iter(rows(10**9 + size, 10**9 + size + 5))
    issued: list[str] = []

    def issue_one() -> None:
        row = next(extra)
        assert isinstance(row.claims, dict)
        issued.append(registry.issue(BL, AGENCY, holder_id=row.holder_id,
                                     holder_name=row.holder_name, claims=row.claims).id)

    result["single_issue_ms"] = median_ms(issue_one, 5)
    victims = iter(issued)
    result["single_revoke_ms"] = median_ms(
        lambda: registry.revoke(next(victims), "unspecified"), 5)

    out = work / f"published-{size}"
    report, result["full_publish_s"] = timed(
        lambda: registry.publish(out, collect=False), profile and "full publish", size)
    result["status_lists"] = report.status_lists
    _report, result["rebuild_publish_s"] = timed(
        lambda: registry.publish(out, collect=False, full=True),
        profile and "full=True publish into the same directory", size)
    one = registry.find(status=ecert.CertificateStatus.VALID, limit=1)[0]
    registry.revoke(one.id, "unspecified")
    report, result["incremental_publish_s"] = timed(
        lambda: registry.publish(out, collect=False), profile and "incremental publish", size)
    result["status_lists_encoded"] = report.status_lists_encoded
    # The issues since the previous lists are judged by replaying their units: the cost
    # of an incremental publication after a batch grows with the batch, not the registry.
    batch = 10_000
    for _outcome in registry.issue_batch(BL, AGENCY, rows(2 * 10**9 + size,
                                                          2 * 10**9 + size + batch)):
        pass
    report, result["incremental_after_batch_publish_s"] = timed(
        lambda: registry.publish(out, collect=False),
        profile and f"incremental publish after {batch} issues", size)
    result["incremental_after_batch_alerts"] = len(report.alerts)

    result.update(verifier_memory(registry, out))
    return result


def analyze(registry: ecert.Registry) -> float:
    """``VACUUM ANALYZE`` the registry's tables, seconds taken: what autovacuum does after
    a bulk load on a default server (it is off on some, this machine's included), without
    which the planner has no statistics (a range of a million log entries was sorted on
    disk) and index-only scans visit the table."""
    from sqlalchemy import text

    start = time.perf_counter()
    with registry.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - start


def timed(action: Callable[[], Any], profile: str | bool, size: int) -> tuple[Any, float]:
    """``action()`` and the seconds it took; with ``profile`` (a title), where they went."""
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    value = action()
    if profiler is not None:
        profiler.disable()
    seconds = round(time.perf_counter() - start, 2)
    if profiler is not None:
        print(f"  where the {profile} at {size} goes (cumulative):")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)
    return value, seconds


def verifier_memory(registry: ecert.Registry, bundle: Path) -> dict[str, Any]:
    """Traced allocations and RSS growth of a verifier holding every status list."""
    # One token per status list (the lists a verifier would have to read), straight from
    # the table: paging through every certificate for them took minutes at 10^7.
    from sqlalchemy import text

    with registry.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT min(id) FROM certificates GROUP BY status_list_id")).scalars().all()
    tokens: dict[str, str] = {}
    for cert_id in rows:
        cert = registry.get(cert_id)
        tokens.setdefault(cert.status_list_uri, cert.token)
    rss_before = rss_now()
    tracemalloc.start()
    verifier = ecert.Verifier.from_bundle(bundle)
    for token in tokens.values():
        verifier.verify(token)
    traced, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"verifier_status_lists": len(tokens),
            "verifier_traced_mb": round(traced / 2**20, 2),
            "verifier_traced_peak_mb": round(peak / 2**20, 2),
            "verifier_rss_delta_mb": round((rss_now() - rss_before) / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="PostgreSQL URL")
    parser.add_argument("--size", type=int, action="append", required=True,
                        help="a size to measure at (repeat: 10000, 1000000, 10000000)")
    parser.add_argument("--home", type=Path, default=None,
                        help="the registry's home (kept; default: a temporary one)")
    parser.add_argument("--reuse", action="store_true",
                        help="open the registry built in --home before (same URL) and grow it")
    parser.add_argument("--chunk", type=int, default=1000, help="rows per unit of work")
    parser.add_argument("--profile", action="store_true",
                        help="where each publication spends its time")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work", type=Path, default=None,
                        help="where the publications are written (default: a temporary "
                             "directory in $TMPDIR; put it on the disk a web server would "
                             "serve from)")
    args = parser.parse_args()
    if args.reuse and args.home is None:
        parser.error("--reuse needs --home")
    ecert_keys.DEFAULT_KDF_ROUNDS = 10_000  # key-file encryption is not what we measure
    print(f"load average at start: {load()} on {os.cpu_count()} CPUs")
    rng = random.Random(args.seed)
    results = []
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.work)))
        if args.home is None:
            url = stack.enter_context(_scratch_schema(args.database_url))
            home = work / "home"
        else:
            url, home = args.database_url, args.home
        if args.reuse and (home / "keys").exists():
            registry = ecert.Registry.open(home, passphrase=PASSPHRASE, database_url=url,
                                           operator=OPERATOR)
        else:
            sample = _samples.region("GD")
            registry = ecert.Registry.init(
                home, region="GD", name=sample["name"], base_url=sample["base_url"],
                passphrase=PASSPHRASE, database_url=url, admin=OPERATOR)
            _samples.populate(registry)
        with registry:
            for size in sorted(args.size):
                seconds, added = grow(registry, size, args.chunk)
                if added:
                    print(f"built to {size}: {added} issued in {seconds:.0f} s "
                          f"({added / max(seconds, 1e-9):.0f}/s)", flush=True)
                print(f"  VACUUM ANALYZE after the bulk load: {analyze(registry):.0f} s",
                      flush=True)
                result = measure(registry, size, work, rng, args.profile)
                result["build_s"] = round(seconds, 1)
                results.append(result)
                print("  " + ", ".join(f"{k} {v}" for k, v in result.items()), flush=True)
    print(f"load average at end: {load()}")
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
