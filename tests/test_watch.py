"""``ecert publish DIR --watch``: publication that keeps itself fresh.

The loop runs on the test's clock: its ``sleep`` advances the fake clock (no test sleeps in
real time), so days of service are simulated in a moment. The lease is tested between two
registries opened on the same database (the SQLite file, or PostgreSQL), and between two
real processes.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import assume, given
from hypothesis import strategies as st

import ecert
from ecert import doctor
from ecert.registry import _core, _publication, _watch
from ecert_cli import cli
from ecert_cli._app import Runtime
from ecert_cli._duration import parse_duration
from tests.support import (
    OPERATOR,
    OPERATOR_PASSPHRASE,
    PASSPHRASE,
    FakeClock,
    as_operator,
    database_url_of,
    issue_business_licence,
)
from tests.support.cli import assert_no_traceback, assert_one_line_error

MINUTE = 60
HOUR = 3600
DAY = 86_400


def seconds(moment: datetime) -> int:
    return int(moment.timestamp())


class Loop:
    """Drives :meth:`ecert.Registry.watch` on a fake clock.

    ``sleep`` advances the clock and runs the actions scheduled meanwhile; the watch stops
    once the clock reaches ``until`` (or after ``cycles`` reports).
    """

    def __init__(self, clock: FakeClock, *, until: timedelta | None = None,
                 cycles: int | None = None) -> None:
        self.clock = clock
        self.start = clock.now
        self.until = None if until is None else clock.now + until
        self.max_cycles = cycles
        self.cycles: list[ecert.WatchCycle] = []
        self.sleeps: list[float] = []
        self.actions: list[tuple[datetime, Callable[[], None]]] = []
        #: Called after every sleep with the new time (e.g. to judge the bundle then).
        self.observe: Callable[[], None] | None = None

    def at(self, offset: timedelta, action: Callable[[], None]) -> None:
        self.actions.append((self.start + offset, action))
        self.actions.sort(key=lambda a: a[0])

    def on_cycle(self, cycle: ecert.WatchCycle) -> None:
        self.cycles.append(cycle)

    def sleep(self, duration: float) -> None:
        assert duration > 0
        self.sleeps.append(duration)
        end = self.clock.now + timedelta(seconds=duration)
        while self.actions and self.actions[0][0] <= end:
            when, action = self.actions.pop(0)
            self.clock.now = max(self.clock.now, when)
            action()
        self.clock.now = max(self.clock.now, end)  # an action may move the clock on
        if self.observe is not None:
            self.observe()

    def should_stop(self) -> bool:
        if self.max_cycles is not None and len(self.cycles) >= self.max_cycles:
            return True
        return self.until is not None and self.clock.now >= self.until

    def run(self, registry: ecert.Registry, directory: Path, **options: Any) -> None:
        registry.watch(directory, sleep=self.sleep, should_stop=self.should_stop,
                       on_cycle=self.on_cycle, collect=False, **options)

    def outcomes(self) -> list[str]:
        return [c.outcome.value for c in self.cycles]

    def published(self) -> list[tuple[str | None, int]]:
        """(reason, seconds since the start) of every publication."""
        return [(c.reason, seconds(c.at) - seconds(self.start)) for c in self.cycles
                if c.outcome is ecert.WatchOutcome.PUBLISHED]


def not_lapsing(bundle: Path, clock: FakeClock) -> None:
    """The bundle is valid now and doctor (default threshold) sees nothing near expiry."""
    findings = doctor.check_bundle(bundle, now=seconds(clock.now))
    assert [f.code for f in findings if f.severity is not doctor.Severity.INFO] == [], findings


# -- the loop ------------------------------------------------------------------------------------


def test_watch_publishes_on_change_and_before_expiry_for_three_days(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    loop = Loop(clock, until=timedelta(days=3))
    issued: list[ecert.Certificate] = []
    loop.at(timedelta(hours=1, minutes=3), lambda: issued.append(issue_business_licence(registry)))
    loop.at(timedelta(hours=30), lambda: registry.revoke(issued[0].id, "cessation-of-operation"))
    loop.observe = lambda: not_lapsing(bundle, clock)
    loop.run(registry, bundle, every=timedelta(minutes=10))

    # Start; the licence issued at 1:03 at the next cycle (1:10); then every 16 hours (a
    # third of the status lists' day left) unless a change came first (the revocation).
    assert loop.published() == [
        ("start", 0), ("changed", HOUR + 10 * MINUTE),
        ("expiring", 17 * HOUR + 10 * MINUTE), ("changed", 30 * HOUR),
        ("expiring", 46 * HOUR), ("expiring", 62 * HOUR)]
    assert max(loop.sleeps) <= 10 * MINUTE
    assert set(loop.outcomes()) == {"lease_taken", "published", "unchanged"}
    assert loop.outcomes()[:2] == ["lease_taken", "published"]
    assert len(loop.cycles) > 400  # one per ten minutes
    # What verifiers see at the end: the revocation.
    verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
    assert verifier.verify(issued[0].token).status == "revoked"
    assert registry.publication_lease() is None  # released on the way out


def test_a_long_interval_still_republishes_before_expiry(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    loop = Loop(clock, until=timedelta(days=2))
    loop.observe = lambda: not_lapsing(bundle, clock)
    loop.run(registry, bundle, every=timedelta(days=1),
             status_list_validity=timedelta(hours=6))
    # Status lists live six hours: republished every four, whatever --every says.
    assert [r for r, _ in loop.published()] == ["start"] + ["expiring"] * 11
    assert all(t % (4 * HOUR) == 0 for _, t in loop.published())
    assert max(loop.sleeps) <= 4 * HOUR


def test_cycle_json_and_interval_checks(registry: ecert.Registry, clock: FakeClock,
                                        tmp_path: Path) -> None:
    loop = Loop(clock, cycles=3)
    loop.run(registry, tmp_path / "bundle", every=timedelta(minutes=5))
    taken, first, second = (c.to_json() for c in loop.cycles)
    assert taken["outcome"] == "lease_taken"
    assert first["outcome"] == "published" and first["reason"] == "start"
    assert first["sequence"] >= 1 and first["alerts"] == []
    assert first["expires_at"] == (clock.now - timedelta(minutes=5)
                                   + timedelta(days=1)).isoformat()
    assert second["outcome"] == "unchanged" and "sequence" not in second
    for every in (timedelta(0), timedelta(milliseconds=500)):
        with pytest.raises(ecert.InputError):
            registry.watch(tmp_path / "x", every=every, should_stop=lambda: True)


# -- failures: retried with backoff, never fatal unless access is refused ------------------------


def test_a_failing_cycle_is_retried_with_backoff(registry: ecert.Registry, clock: FakeClock,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "bundle"
    real_write = _publication.write_bundle
    real_enter = _core._Transaction.__enter__
    state = {"disk_full": 2, "db_down": 0}

    def write_bundle(out: Path, documents: Any, **options: Any) -> None:
        if state["disk_full"]:
            state["disk_full"] -= 1
            raise ecert.PublishError(f"cannot write bundle to {out}: No space left on device")
        real_write(out, documents, **options)

    def enter(self: Any) -> Any:
        if state["db_down"]:
            state["db_down"] -= 1
            raise ecert.StorageError("database unavailable: connection refused")
        return real_enter(self)

    monkeypatch.setattr(_publication, "write_bundle", write_bundle)
    monkeypatch.setattr(_core._Transaction, "__enter__", enter)
    loop = Loop(clock, until=timedelta(days=1))
    # The database goes away for three attempts shortly before the refresh is due.
    loop.at(timedelta(hours=15, minutes=55), lambda: state.update(db_down=3))
    loop.run(registry, bundle, every=timedelta(minutes=10))

    failed = [c for c in loop.cycles if c.outcome is ecert.WatchOutcome.FAILED]
    assert [(c.error.code, c.failures) for c in failed if c.error] == [
        ("publish_failed", 1), ("publish_failed", 2),
        ("storage_error", 1), ("storage_error", 2), ("storage_error", 3)]
    # Backoff doubles from five seconds.
    assert [seconds(c.next_at) - seconds(c.at) for c in failed] == [5, 10, 5, 10, 20]
    assert "No space left" in failed[0].error.message  # type: ignore[union-attr]
    # Published once the disk had room (5 + 10 s), and when the database was back at the
    # refresh point (5 + 10 + 20 s after it).
    assert loop.published()[:2] == [("start", 15), ("expiring", 16 * HOUR + 15 + 35)]
    assert loop.outcomes()[-1] == "unchanged"
    not_lapsing(bundle, clock)


def test_backoff_is_bounded_by_the_interval() -> None:
    assert [_watch.backoff(n, 600) for n in (1, 2, 3, 6, 7, 50)] == [5, 10, 20, 160, 300, 300]
    assert _watch.backoff(9, 30) == 30
    assert _watch.backoff(1, 1) == 1


def test_disk_full_leaves_the_old_bundle_and_no_temporaries(
        published: tuple[ecert.Registry, ecert.Certificate, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    registry, _, bundle = published
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(ecert.PublishError, match="No space left on device"):
        registry.publish(bundle, collect=False)
    monkeypatch.undo()
    files = [p for p in bundle.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")]
    # The trust list is written last: still the old one, naming files that exist.
    trust_list = bundle / "trustlist.jwt"
    assert trust_list.read_bytes() == before[trust_list]
    assert doctor.check_bundle(bundle, now=seconds(registry._ctx.clock())) == []
    registry.publish(bundle, collect=False)
    assert trust_list.read_bytes() != before[trust_list]


def test_a_refused_operator_ends_the_watch(registry: ecert.Registry, clock: FakeClock,
                                           tmp_path: Path) -> None:
    registry.add_operator("svc", roles=["service"], passphrase="svc passphrase")
    service = as_operator(registry, "svc", "svc passphrase", clock)
    loop = Loop(clock, until=timedelta(days=1))
    loop.at(timedelta(minutes=15), lambda: registry.disable_operator("svc"))
    with service, pytest.raises(ecert.NotAuthenticated):
        loop.run(service, tmp_path / "bundle", every=timedelta(minutes=10))
    assert loop.outcomes() == ["lease_taken", "published", "unchanged"]
    assert registry.publication_lease() is None  # released on the way out
    # An operator without the right never takes the lease.
    registry.add_operator("clerk2", roles=["clerk"], passphrase="clerk passphrase")
    with as_operator(registry, "clerk2", "clerk passphrase", clock) as clerk:
        loop = Loop(clock, until=timedelta(hours=1))
        with pytest.raises(ecert.PermissionDenied):
            loop.run(clerk, tmp_path / "bundle", every=timedelta(minutes=10))
    assert registry.publication_lease() is None
    with as_operator(registry, "svc", "wrong", clock) as wrong, pytest.raises(
            ecert.NotAuthenticated):
        wrong.watch(tmp_path / "bundle", should_stop=lambda: False)


# -- the lease -----------------------------------------------------------------------------------


def plant_lease(registry: ecert.Registry, *, holder: str = "dead", host: str = "old-host",
                pid: int = 4242, ttl: int = 300) -> int:
    """A lease left by a watcher that crashed (it will never renew or release it)."""
    now = seconds(registry._ctx.clock())
    with registry._ctx._write() as repo:
        assert repo.take_lease("publish", holder, host=host, pid=pid, directory="/srv/old",
                               now=now, expires_at=now + ttl)
    return now + ttl


def test_second_registry_on_the_same_database_refuses_while_the_first_watches(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    second = as_operator(registry, OPERATOR, OPERATOR_PASSPHRASE, clock)
    refused: list[ecert.LeaseHeld] = []

    def try_second() -> None:
        with pytest.raises(ecert.LeaseHeld) as caught:
            second.watch(tmp_path / "other", should_stop=lambda: False)
        refused.append(caught.value)

    loop = Loop(clock, until=timedelta(minutes=30))
    loop.at(timedelta(minutes=5), try_second)
    with second:
        loop.run(registry, tmp_path / "bundle", every=timedelta(minutes=10))
        assert len(refused) == 1
        lease = refused[0].lease
        assert isinstance(lease, ecert.Lease)
        assert (lease.host, lease.pid) == (socket.gethostname(), os.getpid())
        assert lease.directory == str((tmp_path / "bundle").resolve())
        assert lease.acquired_at == loop.start
        assert lease.expires_at == loop.start + timedelta(minutes=30)  # three cycles
        assert refused[0].code == "lease_held"
        assert "--wait" in refused[0].message
        # Released when the first stopped: the second takes it at once.
        assert second.publication_lease() is None
        Loop(clock, cycles=2).run(second, tmp_path / "other")


def test_a_crashed_holders_lease_expires(registry: ecert.Registry, clock: FakeClock,
                                         tmp_path: Path) -> None:
    expires = plant_lease(registry)
    with pytest.raises(ecert.LeaseHeld, match="old-host"):
        registry.watch(tmp_path / "bundle", should_stop=lambda: False)
    held = registry.publication_lease()
    assert held is not None and (held.holder, held.pid) == ("dead", 4242)
    loop = Loop(clock, until=timedelta(minutes=20))
    loop.run(registry, tmp_path / "bundle", every=timedelta(minutes=1), wait=True)
    # It polls every cycle (a minute) and takes the lease once it expired (five minutes).
    assert loop.outcomes()[:8] == ["waiting"] * 5 + ["lease_taken", "published", "unchanged"]
    waiting, taken = loop.cycles[0], loop.cycles[5]
    assert waiting.lease is not None and waiting.lease.host == "old-host"
    assert seconds(waiting.next_at) == seconds(loop.start) + MINUTE
    assert seconds(taken.at) == expires
    clock.advance(hours=1)  # an expired lease no one released: anyone may take it
    plant_lease(registry, ttl=60)
    clock.advance(seconds=61)
    Loop(clock, cycles=2).run(registry, tmp_path / "bundle")


def test_a_watcher_that_lost_its_lease_stops_or_waits(registry: ecert.Registry,
                                                      clock: FakeClock, tmp_path: Path) -> None:
    def take_over() -> None:
        # This watcher paused (a suspended VM) past its lease; another took over.
        clock.advance(hours=1)
        plant_lease(registry, holder="newer", host="other-host", ttl=15 * MINUTE)

    loop = Loop(clock, until=timedelta(hours=3))
    loop.at(timedelta(minutes=5), take_over)
    with pytest.raises(ecert.LeaseHeld, match="lost the publication lease"):
        loop.run(registry, tmp_path / "bundle", every=timedelta(minutes=10))
    assert loop.outcomes() == ["lease_taken", "published"]
    # With wait it goes back to waiting, and takes over when the other lease expires.
    clock.advance(minutes=20)
    loop = Loop(clock, until=timedelta(hours=3))
    loop.at(timedelta(minutes=5), take_over)
    loop.run(registry, tmp_path / "bundle2", every=timedelta(minutes=10), wait=True)
    assert loop.outcomes()[:5] == ["lease_taken", "published", "lease_lost", "waiting",
                                   "lease_taken"]
    lost = loop.cycles[2]
    assert lost.lease is not None and lost.lease.host == "other-host"
    assert lost.next_at == min(lost.at + timedelta(minutes=10), lost.lease.expires_at)


def test_publishing_by_hand_takes_the_lease_and_gives_it_back(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-off publish while a watcher holds the lease would race it: refused (exit 4
    in the CLI), nothing logged or written; otherwise it holds the lease while it runs."""
    events = len(registry.events())
    expires = plant_lease(registry, holder="watcher", host="watch-host")
    with pytest.raises(ecert.LeaseHeld, match="watch-host") as caught:
        registry.publish(tmp_path / "b")
    assert caught.value.lease.holder == "watcher"
    assert len(registry.events()) == events and not (tmp_path / "b").exists()
    clock.advance(seconds=expires - seconds(clock()) + 1)  # the watcher died
    seen: list[ecert.Lease | None] = []
    real = _publication.publish

    def publish(*args: Any, **kwargs: Any) -> Any:
        seen.append(registry.publication_lease())
        return real(*args, **kwargs)

    monkeypatch.setattr(_publication, "publish", publish)
    assert registry.publish(tmp_path / "b").ok
    assert len(seen) == 1 and seen[0] is not None and seen[0].pid == os.getpid()
    assert registry.publication_lease() is None  # released at the end
    Loop(clock, cycles=2).run(registry, tmp_path / "b")  # so a watcher starts at once


def test_publication_checks_the_lease_in_its_own_transaction(
        registry: ecert.Registry, tmp_path: Path) -> None:
    """A watcher publishes only while it holds the lease, checked where the sequence
    number is taken: one that lost it cannot publish in between."""
    ctx = registry._ctx
    options: dict[str, Any] = {
        "trust_list_validity": timedelta(days=7), "status_list_validity": timedelta(days=1),
        "status_list_ttl": timedelta(hours=1), "progress": None}
    events = len(registry.events())
    with pytest.raises(ecert.LeaseHeld):
        _publication.publish(ctx, tmp_path / "b", lease="not-held", **options)
    plant_lease(registry, holder="someone")
    with pytest.raises(ecert.LeaseHeld, match="old-host"):
        _publication.publish(ctx, tmp_path / "b", lease="mine", **options)
    assert len(registry.events()) == events  # nothing logged, no sequence taken
    assert not (tmp_path / "b").exists()
    report = _publication.publish(ctx, tmp_path / "b", lease="someone", **options)
    assert report.ok


# -- the command ---------------------------------------------------------------------------------


class Stopper:
    """The CLI's injected sleep: advances the fake clock, and after ``calls`` sleeps sends
    this process ``signum`` (as systemd or Ctrl-C would)."""

    def __init__(self, clock: FakeClock, calls: int, signum: int = signal.SIGTERM) -> None:
        self.clock, self.calls, self.signum = clock, calls, signum
        self.slept: list[float] = []

    def __call__(self, duration: float) -> None:
        self.slept.append(duration)
        self.clock.advance(seconds=duration)
        if len(self.slept) == self.calls:
            os.kill(os.getpid(), self.signum)


def run_cli(registry: ecert.Registry, clock: FakeClock, *args: str,
            sleep: Callable[[float], None] | None = None,
            env: dict[str, str | None] | None = None) -> Result:
    root = ["--home", str(registry.home)]
    url = database_url_of(registry)
    if url:
        root += ["--database-url", url]
    base: dict[str, str | None] = {
        "ECERT_PASSPHRASE": PASSPHRASE, "ECERT_OPERATOR": OPERATOR,
        "ECERT_OPERATOR_PASSPHRASE": OPERATOR_PASSPHRASE, "ECERT_HOME": None,
        "ECERT_DATABASE_URL": None, "ECERT_PASSPHRASE_FILE": None,
        "ECERT_OPERATOR_PASSPHRASE_FILE": None}
    result = CliRunner().invoke(cli, [*root, *args], env={**base, **(env or {})},
                                prog_name="ecert", obj=Runtime(clock, sleep))
    assert_no_traceback(result)
    return result


LOCAL_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d"


@pytest.fixture
def shanghai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time zone is Asia/Shanghai (UTC+8, no daylight saving)."""
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_cli_watch_one_line_per_cycle_until_sigterm(registry: ecert.Registry,
                                                    clock: FakeClock, tmp_path: Path,
                                                    shanghai: None) -> None:
    import re

    handlers = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    stopper = Stopper(clock, 3)
    result = run_cli(registry, clock, "publish", str(tmp_path / "www"), "--watch",
                     "--every", "10m", "--no-collect", sleep=stopper)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5, lines  # taken, published, unchanged twice, stopped
    assert all(re.match(LOCAL_TIME + " ", line) for line in lines), lines
    # Local time: the clock starts at midnight UTC, eight in the morning in Shanghai.
    assert lines[0].startswith("2026-01-01 08:00:00+08:00 ")
    assert lines[4].startswith("2026-01-01 08:30:00+08:00 ")
    assert " watching " in lines[0] and f"as {OPERATOR} " in lines[0]
    assert f"pid {os.getpid()}" in lines[0]
    assert re.search(r"published trust list #\d+ \(start\): 0 status list\(s\), log size \d+; "
                     "valid until " + LOCAL_TIME + "; next check " + LOCAL_TIME, lines[1])
    assert all(" nothing to publish; valid until " in line for line in lines[2:4])
    assert lines[4].endswith(" stopped (SIGTERM); publication lease released")
    assert stopper.slept == [600.0] * 3
    assert result.stderr == ""
    assert registry.publication_lease() is None
    # The command put the signal handlers back as they were.
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers
    assert doctor.check_bundle(tmp_path / "www", now=seconds(clock.now)) == []


def test_cli_watch_ctrl_c_and_json(registry: ecert.Registry, clock: FakeClock,
                                   tmp_path: Path) -> None:
    result = run_cli(registry, clock, "publish", str(tmp_path / "www"), "--watch",
                     "--no-collect", "--json", sleep=Stopper(clock, 1, signal.SIGINT))
    assert result.exit_code == 130, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["outcome"] for line in lines] == ["lease_taken", "published", "stopped"]
    assert lines[1]["reason"] == "start" and lines[1]["status_lists"] == 0
    assert lines[-1]["signal"] == "SIGINT"
    assert registry.publication_lease() is None


def test_cli_watch_refuses_a_second_watcher(registry: ecert.Registry, clock: FakeClock,
                                            tmp_path: Path) -> None:
    plant_lease(registry, host="pub-1.example", pid=777)
    result = run_cli(registry, clock, "publish", str(tmp_path / "www"), "--watch",
                     "--no-collect")
    message = assert_one_line_error(result, exit_code=4)
    assert "held by another watcher on pub-1.example (pid 777" in message
    assert "--wait" in message
    result = run_cli(registry, clock, "publish", str(tmp_path / "www"), "--watch",
                     "--no-collect", "--json")
    assert result.exit_code == 4
    assert json.loads(result.stdout)["error"]["code"] == "lease_held"
    # --wait waits (here: until the lease expired, five minutes later), then publishes.
    result = run_cli(registry, clock, "publish", str(tmp_path / "www"), "--watch",
                     "--no-collect", "--every", "1m", "--wait", sleep=Stopper(clock, 7))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [" waiting: " in line for line in lines[:5]] == [True] * 5
    assert "pub-1.example (pid 777) until" in lines[0]
    assert " watching " in lines[5] and " published trust list " in lines[6]


def test_cli_watch_usage_errors(registry: ecert.Registry, clock: FakeClock,
                                tmp_path: Path) -> None:
    www = str(tmp_path / "www")
    for args in (["--every", "10m"], ["--wait"], ["--watch", "--every", "0s"],
                 ["--watch", "--every", "ten minutes"], ["--watch", "--every", "-5m"]):
        message = assert_one_line_error(run_cli(registry, clock, "publish", www, *args))
        assert "--every" in message or "--watch" in message, message
    assert not (tmp_path / "www").exists()


def test_passphrases_from_files(registry: ecert.Registry, clock: FakeClock,
                                tmp_path: Path) -> None:
    """systemd's LoadCredential= hands secrets over as files: ``*_PASSPHRASE_FILE``."""
    secrets_dir = tmp_path / "credentials"
    secrets_dir.mkdir(mode=0o700)
    (secrets_dir / "registry").write_text(PASSPHRASE + "\n", "utf-8")
    (secrets_dir / "operator").write_text(OPERATOR_PASSPHRASE, "utf-8")
    env: dict[str, str | None] = {
        "ECERT_PASSPHRASE": None, "ECERT_OPERATOR_PASSPHRASE": None,
        "ECERT_PASSPHRASE_FILE": str(secrets_dir / "registry"),
        "ECERT_OPERATOR_PASSPHRASE_FILE": str(secrets_dir / "operator")}
    result = run_cli(registry, clock, "publish", str(tmp_path / "www"), "--no-collect",
                     env=env)
    assert result.exit_code == 0, result.output
    missing = run_cli(registry, clock, "publish", str(tmp_path / "www"), "--no-collect",
                      env={**env, "ECERT_OPERATOR_PASSPHRASE_FILE": str(secrets_dir / "none")})
    message = assert_one_line_error(missing, exit_code=4)  # not authenticated
    assert "cannot read ECERT_OPERATOR_PASSPHRASE_FILE" in message and "none" in message
    (secrets_dir / "empty").write_text("\n", "utf-8")
    empty = run_cli(registry, clock, "publish", str(tmp_path / "www"), "--no-collect",
                    env={**env, "ECERT_PASSPHRASE_FILE": str(secrets_dir / "empty")})
    assert "is empty" in assert_one_line_error(empty)


# -- two real processes --------------------------------------------------------------------------


def _lines(proc: subprocess.Popen[str]) -> Iterator[str]:
    assert proc.stdout is not None
    for line in proc.stdout:
        yield line.rstrip("\n")


def test_two_processes_one_lease(registry: ecert.Registry, clock: FakeClock,
                                 tmp_path: Path) -> None:
    """A real ``ecert publish --watch`` process holds the lease in the database (the SQLite
    file, or PostgreSQL); another process is refused with exit 4, and SIGTERM stops the
    first with exit 0, releasing the lease."""
    root = ["--home", str(registry.home)]
    url = database_url_of(registry)
    if url:
        root += ["--database-url", url]
    env = {**os.environ, "ECERT_PASSPHRASE": PASSPHRASE, "ECERT_OPERATOR": OPERATOR,
           "ECERT_OPERATOR_PASSPHRASE": OPERATOR_PASSPHRASE, "PYTHONUNBUFFERED": "1"}
    for name in ("ECERT_HOME", "ECERT_DATABASE_URL", "ECERT_PASSPHRASE_FILE",
                 "ECERT_OPERATOR_PASSPHRASE_FILE"):
        env.pop(name, None)
    command = [sys.executable, "-m", "ecert_cli", *root, "publish"]
    first = subprocess.Popen([*command, str(tmp_path / "a"), "--watch", "--every", "1s",
                              "--no-collect"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, first.kill)  # never hang the suite
    watchdog.start()
    try:
        lines = _lines(first)
        assert " watching " in next(lines)
        assert " published trust list " in next(lines)
        second = subprocess.run([*command, str(tmp_path / "b"), "--watch", "--no-collect"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 4, (second.stdout, second.stderr)
        assert second.stderr.count("\n") == 1
        assert f"(pid {first.pid}, publishing to {(tmp_path / 'a').resolve()})" in second.stderr
        assert next(lines)  # it goes on: a cycle a second
        first.send_signal(signal.SIGTERM)
        rest = list(lines)
        assert first.wait(timeout=60) == 0
        assert rest[-1].endswith(" stopped (SIGTERM); publication lease released"), rest
        assert first.stderr is not None and "Traceback" not in first.stderr.read()
    finally:
        watchdog.cancel()
        if first.poll() is None:
            first.kill()
        first.wait()
        for stream in (first.stdout, first.stderr):
            if stream is not None:
                stream.close()
    assert registry.publication_lease() is None


# -- durations as typed (--every, --warn-before) -------------------------------------------------


@given(st.lists(st.tuples(st.integers(0, 9_999_999), st.sampled_from(["", "s", "m", "h", "d"])),
                min_size=1, max_size=4))
def test_parse_duration_reads_what_it_is_given(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assume(all(unit for _, unit in parts[:-1]))  # "1 2" would run into one number
    size = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
    assert parse_duration(text) == timedelta(seconds=sum(n * size[u] for n, u in parts))
    assert parse_duration(f" {text.upper()} ") == parse_duration(text)


@given(st.text(max_size=40))
def test_parse_duration_refuses_anything_else_with_value_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert isinstance(value, timedelta) and value >= timedelta(0)
    assert unicodedata.normalize("NFKC", text).strip()[:1] in "0123456789"


def test_parse_duration_examples() -> None:
    assert parse_duration("10m") == timedelta(minutes=10)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("１０ｍ") == timedelta(minutes=10)  # a Chinese keyboard's
    for bad in ("", "m", "10 m", "-5m", "1.5h", "10q", "1h 30m", "٣m", "10mm"):
        with pytest.raises(ValueError):
            parse_duration(bad)
