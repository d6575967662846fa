"""Batch issuance against the bare signing rate of the same key, side by side in one process.

Run: python bench/bench_batch.py [--rows N] [--chunk N] [--database-url URL]
                                  [--alg ES256|Ed25519] [--profile] [--rss]

Writes a CSV of N valid business licences (the legacy export's shape: ``row_id``,
``holder_id``, ``holder_name``, ``claims``), issues it through ``Registry.issue_file``
(``--id-column row_id``) and reports:

* the rate, alternating rounds of the batch (``--round`` rows each) with rounds of the
  bare signature of the same agency key over a token-sized input (``Signer.sign``), and
  the median of the per-round ratios — the issue's target is >= 0.25 (at least 0.2) —
  in this process's CPU time (on a shared machine the fair measure: other processes do
  not enter it, the database's I/O waits do not either) and in wall-clock time;
* ``--profile``: where the time goes (cProfile over one round; shares, not rates);
* ``--rss``: peak RSS (ru_maxrss) and current RSS as the file is issued, to show that
  memory stays flat (the file is streamed; a chunk's rows are all that is held).

The process pins itself to one core (``--cores``); PostgreSQL's server runs beside it.
The machine's load average is printed at the start and the end: other work on the
machine slows both sides of a ratio alike only when it is steady.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench_core import _scratch_schema  # the scripts of bench/ run from that folder

import ecert
from ecert import _samples
from ecert import keys as ecert_keys
from ecert.batch import RowStatus, open_rows
from ecert.models import KeyRole

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc(number: int) -> str:
    """A valid unified social credit code numbered ``number``."""
    body = f"91440300{number:09d}"[:17]
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(body, _USCC_WEIGHTS, strict=True))
    return body + _USCC_ALPHABET[(31 - total % 31) % 31]


def write_csv(path: Path, rows: int) -> None:
    """``rows`` valid business licences, streamed to ``path``."""
    import csv

    base = _samples.claims("business-licence-gd")
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["row_id", "holder_id", "holder_name", "claims"])
        for i in range(rows):
            code = uscc(i)
            name = f"{base['name'][:-6]}{i:06d}有限公司"
            claims = {**base, "uscc": code, "name": name}
            out.writerow([f"BENCH-{i:08d}", code, name, json.dumps(claims, ensure_ascii=False)])


def rss_now() -> int:
    """Resident set size now, bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """Peak resident set size so far, bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000, help="rows in the file")
    parser.add_argument("--round", type=int, default=2_000, help="rows per measured round")
    parser.add_argument("--chunk", type=int, default=500, help="rows per unit of work")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--alg", default="ES256", choices=["ES256", "Ed25519"])
    parser.add_argument("--profile", action="store_true", help="where the time goes")
    parser.add_argument("--rss", action="store_true",
                        help="issue the whole file once, reporting memory as it goes")
    parser.add_argument("--cores", default="0", help="CPUs to pin to ('' for none)")
    args = parser.parse_args()
    if args.cores:
        os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})
    ecert_keys.DEFAULT_KDF_ROUNDS = 10_000  # key-file encryption is not what we measure
    print(f"load average at start: {load()} on {os.cpu_count()} CPUs")
    if args.database_url:
        with _scratch_schema(args.database_url) as url:
            bench(args, url)
    else:
        bench(args, None)
    print(f"load average at end: {load()}")


def bench(args: argparse.Namespace, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data = Path(tmp) / "rows.csv"
        write_csv(data, args.rows)
        print(f"wrote {args.rows} rows ({data.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - start:.1f} s")
        sample = _samples.region("GD")
        registry = ecert.Registry.init(
            Path(tmp) / "home", region="GD", name=sample["name"], base_url=sample["base_url"],
            passphrase="bench", database_url=database_url,
            admin=ecert.OperatorCredential("bench", passphrase="bench operator"))
        with registry:
            _samples.populate(registry)
            if args.alg != "ES256":
                registry.rotate_agency_key("gd-amr", alg=args.alg)
            backend = "PostgreSQL" if database_url else "SQLite"
            if args.rss:
                memory(registry, data, args)
            else:
                rates(registry, data, args, backend)


def _signer(registry: ecert.Registry) -> ecert_keys.Signer:
    key = next(k for k in registry.keys("gd-amr") if k.role is KeyRole.AGENCY
               and k.retired_at is None)
    return registry._ctx.signer(key.kid)  # the very key the batch signs with


def rates(registry: ecert.Registry, data: Path, args: argparse.Namespace,
          backend: str) -> None:
    signer = _signer(registry)
    message = b"x" * 1500  # a business licence's signing input is about this long
    rows = iter(open_rows(data, id_column="row_id"))
    outcomes = registry.issue_batch("cn.business-licence", "gd-amr", _take(rows, 200),
                                    chunk_size=args.chunk)
    assert all(o.status is RowStatus.ISSUED for o in outcomes)  # warm: keys, caches
    batch_rates: list[float] = []
    sign_rates: list[float] = []
    ratios: list[float] = []
    wall_rates: list[float] = []
    wall_ratios: list[float] = []
    profiler = cProfile.Profile() if args.profile else None
    issued = 200
    while issued + args.round <= args.rows:
        n_sign = 3000
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n_sign):
            signer.sign(message)
        sign_wall = n_sign / (time.perf_counter() - t0)
        sign_rate = n_sign / (time.process_time() - c0)
        if profiler is not None and len(batch_rates) == 1:
            profiler.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        done = list(registry.issue_batch("cn.business-licence", "gd-amr",
                                         _take(rows, args.round), chunk_size=args.chunk))
        batch_wall = len(done) / (time.perf_counter() - t0)
        batch_rate = len(done) / (time.process_time() - c0)
        if profiler is not None:
            profiler.disable()
        assert all(o.status is RowStatus.ISSUED for o in done), done[:3]
        issued += len(done)
        batch_rates.append(batch_rate)
        sign_rates.append(sign_rate)
        ratios.append(batch_rate / sign_rate)
        wall_rates.append(batch_wall)
        wall_ratios.append(batch_wall / sign_wall)
    median = statistics.median
    print("rates per second of this process's CPU time (what other work on the machine "
          "does not change) and of wall-clock time:")
    print(f"{'':<46} {'CPU':>9} {'x bare':>7} {'wall':>9} {'x bare':>7}")
    print(f"{'bare signature (' + signer.alg + ', same key)':<46} {median(sign_rates):>9.0f} "
          f"{1.0:>7.3f}")
    print(f"{'issue_batch on ' + backend + f' ({args.chunk} per unit)':<46} "
          f"{median(batch_rates):>9.0f} {median(ratios):>7.3f} {median(wall_rates):>9.0f} "
          f"{median(wall_ratios):>7.3f}")
    print(f"rounds: {len(ratios)} of {args.round} rows; CPU ratios "
          f"{min(ratios):.3f}-{max(ratios):.3f}; {issued} certificates issued")
    print(f"peak RSS {peak_rss() / 2**20:.0f} MiB")
    if profiler is not None:
        where(profiler)


def _take(rows: Iterator[ecert.batch.BatchRow], n: int) -> Iterator[ecert.batch.BatchRow]:
    for _ in range(n):
        row = next(rows, None)
        if row is None:
            return
        yield row


#: (label, function name as pstats shows it), in the order a row meets them.
_PHASES = [
    ("read the file (CSV)", "_csv_records"),
    ("idempotency key (HMAC)", "key"),
    ("holder id scheme, pseudonym, claims JSON (outside the unit)", "prepare"),
    ("look up earlier runs' keys", "issue_keys_of"),
    ("input rules: schema, text, holder claims", "check_input"),
    ("status-list slots", "_take_slots"),
    ("token: payload JSON and signature", "sign"),
    ("  of which the bare signature", "raw_signature"),
    ("short QR form (bound)", "check_short_form_bounded"),
    ("log entries: commitments", "log"),
    ("unit: encode entries, operator signature", "sealed_leaves"),
    ("insert certificates", "add_certificates"),
    ("insert log entries", "append_log"),
    ("insert idempotency keys", "add_issue_keys"),
    ("commit", "commit"),
]


def where(profiler: cProfile.Profile) -> None:
    stats = pstats.Stats(profiler)
    total = max(v[3] for v in stats.stats.values())  # type: ignore[attr-defined]
    cumulative: dict[str, float] = {}
    for (_file, _line, name), value in stats.stats.items():  # type: ignore[attr-defined]
        cumulative[name] = cumulative.get(name, 0.0) + value[3]
    print("\nwhere the time goes (cProfile over one round; shares of its total):")
    for label, name in _PHASES:
        print(f"  {label:<62} {cumulative.get(name, 0.0) / total:>6.1%}")


def memory(registry: ecert.Registry, data: Path, args: argparse.Namespace) -> None:
    print(f"{'rows':>10} {'rows/s':>8} {'RSS MiB':>8} {'peak MiB':>9}")
    start = time.perf_counter()
    step = max(args.rows // 10, 1)
    outcomes = registry.issue_file("cn.business-licence", "gd-amr", data, id_column="row_id",
                                   chunk_size=args.chunk)
    for count, outcome in enumerate(outcomes, start=1):
        assert outcome.status is RowStatus.ISSUED, outcome
        if count % step == 0:
            rate = count / (time.perf_counter() - start)
            print(f"{count:>10} {rate:>8.0f} {rss_now() / 2**20:>8.0f} "
                  f"{peak_rss() / 2**20:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
