"""``audit monitor`` over many new log entries (target: 10,000 in under 5 s).

A GD registry (SQLite, in a temporary directory) is created by its first admin and
populated with the sample catalog; the first publication is monitored (small). Then
``--entries`` new entries are logged — certificates issued in units of one, as clerks
would, and a suspension every tenth — and published; the bench times the second,
incremental monitor run, which fetches the new entry bundles and tiles, recomputes the
tree, replays every unit (operator signature and authority), and compares the status
lists and the trust list with the replay. Documents are read from the bundle directory
(no network), so the time is the monitor's own work.

Run: ``python bench/bench_log.py [--entries 10000] [--profile] [--keep DIR]`` (``--keep``
keeps the registry and bundle in DIR and reuses them on the next run, to time only the
monitor).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import ecert
from ecert import _samples
from ecert.monitor import Monitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=None,
                        help="signature worker processes (default: the CPUs but one; 1: none)")
    args = parser.parse_args()
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def clock() -> datetime:
        return now

    with tempfile.TemporaryDirectory(prefix="ecert-bench-log-") as scratch:
        root = args.keep or Path(scratch)
        if (root / "built").exists():
            shutil.rmtree(root / "state", ignore_errors=True)
            time_monitor(root, clock, args.profile, "(registry kept from an earlier run)",
                         args.workers)
            return
        sample = _samples.region("GD")
        registry = ecert.Registry.init(
            root / "home", region="GD", name=sample["name"], base_url=sample["base_url"],
            admin=ecert.OperatorCredential("bench-admin", passphrase="bench admin"),
            passphrase="bench only", clock=clock, kdf_rounds=1_000)
        with registry:
            _samples.populate(registry)
            registry.publish(root / "www")
            state = root / "state"
            first = Monitor.from_bundle(root / "www", state_dir=state, clock=clock).run()
            assert first.consistent, first.findings
            claims = _samples.claims("business-licence-gd")
            start = time.perf_counter()
            logged = registry.events()[-1].seq + 1
            target = logged + args.entries - 1  # the publish entry makes the last one
            n = 0
            while logged < target:
                cert = registry.issue("cn.business-licence", "gd-amr",
                                      holder_id=claims["uscc"],
                                      holder_name=claims["name"], claims=claims)
                logged += 1
                if n % 10 == 9 and logged < target:
                    registry.suspend(cert.id)
                    logged += 1
                n += 1
            report = registry.publish(root / "www")
            setup = time.perf_counter() - start
            shutil.copytree(state, root / "state-0")
            (root / "built").write_text("ok")
        time_monitor(root, clock, args.profile,
                     f"setup: {n} certificates issued and published in {setup:.1f} s "
                     f"(log of {report.log_size} entries)", args.workers)


def time_monitor(root: Path, clock: Callable[[], datetime], profiling: bool,
                 setup: str, workers: int | None = None) -> None:
    """Time the incremental run from the state of the first publication."""
    state = root / "state"
    shutil.rmtree(state, ignore_errors=True)
    shutil.copytree(root / "state-0", state)
    monitor = Monitor.from_bundle(root / "www", state_dir=state, clock=clock, workers=workers)
    profile = cProfile.Profile() if profiling else None
    cpu = time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    if profile is not None:
        profile.enable()
    second = monitor.run()
    if profile is not None:
        profile.disable()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    assert second.consistent, second.findings
    state_bytes = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
    print(setup)
    print(f"audit monitor: {second.new_entries} new entries in {elapsed:.2f} s "
          f"({elapsed / max(second.new_entries, 1) * 1e6:.0f} us/entry, "
          f"{monitor.workers} signature worker(s)); CPU {cpu:.2f} s in the monitor "
          f"+ {workers_cpu:.2f} s in workers; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs; state {state_bytes / 1024:.0f} KiB")
    start = time.perf_counter()
    third = Monitor.from_bundle(root / "www", state_dir=state, clock=clock).run()
    print(f"audit monitor again (nothing new): {third.new_entries} new entries in "
          f"{time.perf_counter() - start:.2f} s")
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
