"""Publication that keeps itself fresh: the loop behind ``ecert publish DIR --watch``.

Every cycle the watcher renews its lease, then publishes when something is due:

* ``start`` — its first cycle (a restarted service always publishes once);
* ``expiring`` — less than a third of the shortest published lifetime (status lists,
  one day by default; the trust list, seven) remains, so a few failed cycles in a row
  still leave hours before anything lapses;
* ``changed`` — the log has entries since its last publication (other than publications
  themselves, or two watchers' entries would keep each other busy).

Checkpoints have no lifetime of their own: a new one is signed whenever the log changed,
which the ``changed`` rule publishes. It then sleeps until the next cycle (``every``) or
the refresh point, whichever comes first.

One watcher per registry: the lease is a row of the database (holder id, host, pid,
expiry) taken and renewed by one conditional UPDATE, so it holds across hosts on
PostgreSQL as on one SQLite file; a holder that crashed stops renewing and its lease
expires. The publication itself re-checks the lease inside its own transaction, so a
watcher that was paused past its lease (a suspended VM) cannot take a sequence number
after another took over.

Errors in a cycle (database down, disk full, a network share gone) are reported and
retried with exponential backoff; an error of access (the operator was disabled, the
lease was lost without ``wait``) ends the loop, as it will not go away by waiting. Time
comes from the registry's clock and waiting from ``sleep``, both injectable.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from ecert._authority import Action
from ecert._clock import from_seconds, to_seconds
from ecert.errors import AccessError, EcertError, InputError, LeaseHeld
from ecert.models import Lease
from ecert.registry._core import _Context
from ecert.registry._publication import LEASE_NAME, PublishReport

#: Republish when less than this share of the shortest lifetime is left.
REFRESH_REMAINING = 1 / 3
#: First wait after a failed cycle; doubled after each further failure…
BACKOFF_FIRST_SECONDS = 5
#: …up to this (and never longer than the cycle itself).
BACKOFF_MAX_SECONDS = 300
#: A lease lasts three cycles, and at least this long (a slow publication must not lose it).
LEASE_MIN_SECONDS = 300


class WatchOutcome(StrEnum):
    """What one cycle of the watcher did."""

    #: The lease was taken (at start, or after waiting for another watcher).
    LEASE_TAKEN = "lease_taken"
    #: Another watcher holds the lease; waiting for it (``wait``).
    WAITING = "waiting"
    #: Another watcher took the lease over (this one had paused too long).
    LEASE_LOST = "lease_lost"
    #: The bundle was published (``reason`` says why).
    PUBLISHED = "published"
    #: Nothing was due.
    UNCHANGED = "unchanged"
    #: The cycle failed; it is retried at ``next_at``.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class WatchCycle:
    """One cycle of :meth:`ecert.Registry.watch`, as reported to ``on_cycle``."""

    at: datetime
    outcome: WatchOutcome
    #: When the next cycle runs.
    next_at: datetime
    #: Why it published: ``start``, ``expiring`` or ``changed``.
    reason: str | None = None
    report: PublishReport | None = None
    error: EcertError | None = None
    #: Failed cycles in a row (0 after a good one).
    failures: int = 0
    #: The other watcher's lease (``waiting``, ``lease_lost``).
    lease: Lease | None = None
    #: When what this watcher last published expires (its shortest lifetime).
    expires_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """One line of ``ecert publish --watch --json``."""
        out: dict[str, Any] = {"at": self.at.isoformat(), "outcome": self.outcome.value,
                               "next_at": self.next_at.isoformat(), "reason": self.reason,
                               "failures": self.failures,
                               "expires_at": None if self.expires_at is None
                               else self.expires_at.isoformat()}
        if self.report is not None:
            out["sequence"] = self.report.sequence
            out["log_size"] = self.report.log_size
            out["status_lists"] = self.report.status_lists
            out["alerts"] = list(self.report.alerts)
        if self.error is not None:
            out["error"] = {"code": self.error.code, "message": self.error.message}
        if self.lease is not None:
            out["lease"] = self.lease.to_json()
        return out


def backoff(failures: int, every: int) -> int:
    """Seconds to wait after ``failures`` failed cycles in a row."""
    doubled: int = BACKOFF_FIRST_SECONDS << min(max(failures - 1, 0), 16)
    return max(1, min(doubled, BACKOFF_MAX_SECONDS, every))


def _error(e: Exception) -> EcertError:
    return e if isinstance(e, EcertError) else EcertError(
        f"{getattr(e, 'strerror', None) or e}", code="os_error")


def watch(ctx: _Context, directory: str | Path, *, publish: Callable[[str], PublishReport],
          every: timedelta, lifetime: timedelta, wait: bool,
          sleep: Callable[[float], None], should_stop: Callable[[], bool],
          on_cycle: Callable[[WatchCycle], None] | None) -> None:
    """See :meth:`ecert.Registry.watch`; ``publish(holder)`` publishes under the lease."""
    every_s = int(every.total_seconds())
    lifetime_s = int(lifetime.total_seconds())
    if every_s < 1:
        raise InputError("the watch interval must be at least one second",
                         code="invalid_interval")
    if lifetime_s < 3:
        raise InputError("published documents must live at least a few seconds",
                         code="invalid_interval")
    refresh_after = lifetime_s - int(lifetime_s * REFRESH_REMAINING)
    ttl = max(3 * every_s, LEASE_MIN_SECONDS)
    holder = secrets.token_hex(8)
    host, pid = socket.gethostname()[:255], os.getpid()
    where = str(Path(directory).resolve())
    tell = on_cycle or (lambda _cycle: None)

    def take() -> Lease | None:
        """None when this watcher holds the lease now; else the lease another holds."""
        now = ctx.now()
        with ctx._write() as repo:  # bookkeeping, not a change of the registry: not logged
            if repo.take_lease(LEASE_NAME, holder, host=host, pid=pid, directory=where,
                               now=now, expires_at=now + ttl):
                return None
            return repo.get_lease(LEASE_NAME)

    def nap(until: int) -> None:
        seconds = until - ctx.now()
        if seconds > 0 and not should_stop():
            sleep(seconds)

    last: PublishReport | None = None
    failures = 0
    held = False

    def expires() -> datetime | None:
        return None if last is None else from_seconds(to_seconds(last.issued_at) + lifetime_s)

    def failed(now: int, e: Exception) -> None:
        nonlocal failures
        failures += 1
        next_at = ctx.now() + backoff(failures, every_s)
        tell(WatchCycle(from_seconds(now), WatchOutcome.FAILED, from_seconds(next_at),
                        error=_error(e), failures=failures, expires_at=expires()))
        nap(next_at)

    try:
        while not should_stop():
            now = ctx.now()
            try:
                other = take()
            except AccessError:
                raise
            except (EcertError, OSError) as e:  # the database is down: keep trying
                failed(now, e)
                continue
            if other is not None:
                lost, held = held, False
                if not wait:
                    raise LeaseHeld(_held_message(other, lost), lease=other)
                next_try = min(now + every_s, max(now + 1, to_seconds(other.expires_at)))
                tell(WatchCycle(from_seconds(now),
                                WatchOutcome.LEASE_LOST if lost else WatchOutcome.WAITING,
                                from_seconds(next_try), lease=other, expires_at=expires()))
                nap(next_try)
                continue
            if not held:
                held = True
                tell(WatchCycle(from_seconds(now), WatchOutcome.LEASE_TAKEN,
                                from_seconds(now), expires_at=expires()))
            try:
                reason = _due(ctx, last, now, refresh_after)
                report = publish(holder) if reason is not None else None
            except LeaseHeld as e:  # another watcher took over while this one paused
                held = False
                if not wait:
                    raise
                tell(WatchCycle(from_seconds(now), WatchOutcome.LEASE_LOST,
                                from_seconds(now), lease=e.lease, expires_at=expires()))
                continue
            except AccessError:
                raise
            except (EcertError, OSError) as e:
                failed(now, e)
                continue
            failures = 0
            if report is not None:
                last = report
            assert last is not None  # noqa: S101 - the first cycle always publishes
            after = ctx.now()
            next_at = max(after + 1, min(after + every_s,
                                         to_seconds(last.issued_at) + refresh_after))
            tell(WatchCycle(from_seconds(now), WatchOutcome.PUBLISHED if report is not None
                            else WatchOutcome.UNCHANGED, from_seconds(next_at), reason=reason,
                            report=report, expires_at=expires()))
            nap(next_at)
    finally:
        if held:
            _release(ctx, holder)


def _due(ctx: _Context, last: PublishReport | None, now: int, refresh_after: int
         ) -> str | None:
    """Why to publish now, or None."""
    if last is None:
        return "start"
    if now >= to_seconds(last.issued_at) + refresh_after:
        return "expiring"
    with ctx.read() as repo:
        if repo.logged_since(last.log_size, except_action=Action.REGISTRY_PUBLISH.value):
            return "changed"
    return None


def _held_message(lease: Lease, lost: bool) -> str:
    what = "lost the publication lease to" if lost else "the publication lease is held by"
    return (f"{what} another watcher on {lease.host} (pid {lease.pid}, publishing to "
            f"{lease.directory}) until {lease.expires_at.isoformat()}: one watcher per "
            "registry (--wait to wait for it)")


#: How long a one-off ``publish`` holds the lease at most (released when it ends).
ONE_OFF_LEASE_SECONDS = 3600


@contextmanager
def one_off_lease(ctx: _Context, directory: str | Path) -> Iterator[str]:
    """The publication lease for one ``publish`` (not ``--watch``), released after it.

    A publication by hand while a watcher runs would race it: two publications writing
    one bundle, each with its own trust list sequence. So a one-off publication takes
    the lease too, and is refused (:class:`LeaseHeld`, exit 4) while a watcher holds it.
    """
    holder = secrets.token_hex(8)
    now = ctx.now()
    with ctx._write() as repo:  # bookkeeping, not a change of the registry: not logged
        taken = repo.take_lease(LEASE_NAME, holder, host=socket.gethostname()[:255],
                                pid=os.getpid(), directory=str(Path(directory).resolve()),
                                now=now, expires_at=now + ONE_OFF_LEASE_SECONDS)
        other = None if taken else repo.get_lease(LEASE_NAME)
    if other is not None:
        raise LeaseHeld(
            f"the publication lease is held by another publisher on {other.host} (pid "
            f"{other.pid}, publishing to {other.directory}) until "
            f"{other.expires_at.isoformat()}: it keeps the bundle published; stop it "
            "first to publish by hand", lease=other)
    try:
        yield holder
    finally:
        _release(ctx, holder)


def _release(ctx: _Context, holder: str) -> None:
    """Give the lease up on the way out, so a successor need not wait for it to expire."""
    try:
        with ctx._write() as repo:
            repo.release_lease(LEASE_NAME, holder, ctx.now())
    except EcertError:  # the database is gone: the lease expires by itself
        pass


def current_lease(ctx: _Context) -> Lease | None:
    """Who holds the publication lease (expired or not), or None."""
    with ctx.read() as repo:
        return repo.get_lease(LEASE_NAME)
