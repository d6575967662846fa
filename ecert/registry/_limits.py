"""The sharing service's rate limits, counted in the registry's database.

Every worker and host of a service shares one registry database, so the counts are rows
there (``request_counts``: scope, fixed one-hour window, count), incremented atomically
(the row lock of one ``UPDATE … RETURNING``), never per-process memory. A fixed window may
let a requester make up to twice its limit across a window's edge; the limits are there
to bound a runaway or stolen requester key and an oracle, not to shape traffic.

The numbers are a registry setting (``settings`` row ``share.limits``), set by a trust
admin as a logged ``share.limits`` change (:meth:`ecert.Registry.set_share_limits`): all
workers read the same numbers at each request, and who changed them when is in the log
— a per-process option could differ between workers and leave no trace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ecert._authority import Action, Resource
from ecert._storage.repository import Repository, WriteRepository
from ecert.errors import InputError
from ecert.registry._core import Operation, Target, Unit, logged_entries, register

#: The fixed window the limits count in, in seconds.
WINDOW = 3600
#: The ``settings`` row of the limits.
SETTING = "share.limits"


@dataclass(frozen=True, slots=True)
class ShareLimits:
    """Requests the sharing service answers per one-hour window (0: none at all).

    The defaults: an agency's case-handling system fetching for thousands of cases an
    hour stays well within ``fetches_per_hour``; checks (核验) are fewer and each answers
    one bit, so fewer are allowed, and at most ``checks_per_subject`` per certificate or
    holder named (from all requesters together), which bounds guessing a low-entropy value
    of one holder to that many tries an hour. A holder grants a few consent codes an hour;
    ``grants_per_holder`` bounds what a stolen login can mint.
    """

    #: Fetches (``POST /v1/copies``) per requester.
    fetches_per_hour: int = 10_000
    #: Checks (``POST /v1/checks``) per requester.
    checks_per_hour: int = 1_000
    #: Checks per subject: the certificate id, or else the holder, a check names.
    checks_per_subject: int = 10
    #: Consent codes a holder grants on their own channel (the identity hook's holder).
    grants_per_holder: int = 20

    def to_json(self) -> dict[str, int]:
        """As the setting and the ``share.limits`` entry keep it."""
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> ShareLimits:
        """From the setting (defaults for members it lacks)."""
        known = {f.name for f in fields(cls)}
        given = {k: int(v) for k, v in value.items() if k in known} \
            if isinstance(value, Mapping) else {}
        return cls(**given)


def limits_params(current: ShareLimits, changes: Mapping[str, int | None]) -> dict[str, Any]:
    """Checked parameters of ``share.limits``: ``current`` with ``changes`` applied."""
    known = {f.name for f in fields(ShareLimits)}
    value = current.to_json()
    for name, number in changes.items():
        if name not in known:
            raise InputError(f"no sharing limit {name!r}", code="invalid_limit")
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, int) \
                or not 0 <= number <= 10_000_000:
            raise InputError(f"{name} is a whole number from 0 to 10000000",
                             code="invalid_limit")
        value[name] = number
    return {"limits": value}


def current_limits(repo: Repository) -> ShareLimits:
    """The limits in force (the defaults until a trust admin sets them), as the newest
    ``share.limits`` entry of the log says: the ``settings`` row is only its copy, and a
    row raised in the database (to lift the bound on guessing through checks) changes
    nothing."""
    logged = logged_limits(repo)
    return ShareLimits() if logged is None else ShareLimits.from_json(logged)


def logged_limits(repo: Repository) -> dict[str, Any] | None:
    """The details of the newest ``share.limits`` entry; None when there is none (or it
    does not decode: then the defaults hold, never a row's numbers)."""
    entries = logged_entries(repo, SETTING, [Action.SHARE_LIMITS])
    return None if not entries or entries[-1] is None else dict(entries[-1].details)


def window_of(now: int) -> int:
    """The start of the window ``now`` falls in."""
    return now - now % WINDOW


def take(repo: WriteRepository, scope: str, limit: int, now: int) -> bool:
    """Count one request of ``scope``; whether it is within ``limit`` this window."""
    return repo.count_request(scope, window_of(now)) <= limit


#: Most requests one lease takes at once.
MAX_LEASE = 32


def lease_size(limit: int) -> int:
    """How many requests a worker counts in the database at once for ``limit``: 1 (every
    request counted by itself, exact) for small limits, up to :data:`MAX_LEASE` for large
    ones, so that at most 1/256 of a limit sits unused in one worker's lease."""
    return max(1, min(MAX_LEASE, limit // 256))


def lease(repo: WriteRepository, scope: str, limit: int, size: int, now: int) -> int:
    """Count ``size`` requests of ``scope`` at once; how many of them are within ``limit``
    (0 to ``size``): the database's count grows by ``size`` whatever the answer, so a
    refused lease leaves it at or above the limit."""
    counted = repo.count_request(scope, window_of(now), size)
    return max(0, min(size, limit - (counted - size)))


class QuotaLeases:
    """One process's unused part of the blocks of requests it counted in the database.

    Counting every request is a transaction of its own (the count is shared by every
    worker and host, so it lives in the database): at hundreds of requests a second that
    is a large part of a request's cost. Instead a worker counts a block of requests at
    once (:func:`lease_size`) and hands them out from memory until the block is used.
    The database's count is still the bound: no worker hands out a request the count did
    not take, so all workers together never exceed the limit. What a worker holds unused
    when the window ends, or when it stops, is lost (at most one lease per worker and
    scope: the limit is then a little lower, never higher). Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left: dict[str, tuple[int, int]] = {}  #: scope -> (window, requests left)

    def take(self, scope: str, now: int, count: Callable[[], int]) -> bool:
        """Hand out one request of ``scope`` from the current lease, else from a new one
        that ``count`` takes in the database (returning how many it got)."""
        window = window_of(now)
        with self._lock:
            held, left = self._left.get(scope, (window, 0))
            if held == window and left > 0:
                self._left[scope] = (window, left - 1)
                return True
        got = count()  # outside the lock: a database round trip
        if got <= 0:
            return False
        with self._lock:
            held, left = self._left.get(scope, (window, 0))
            left = left if held == window else 0
            self._left[scope] = (window, left + got - 1)
            if len(self._left) > 4096:  # scopes of windows gone by: forget them
                self._left = {k: v for k, v in self._left.items() if v[0] == window}
        return True


def _set(unit: Unit, p: Mapping[str, Any]) -> ShareLimits:
    value = ShareLimits.from_json(p["limits"])
    unit.repo.set_setting(SETTING, value.to_json())
    unit.log(Action.SHARE_LIMITS, SETTING, value.to_json())
    return value


SET_LIMITS = register(Operation(Action.SHARE_LIMITS,
                                lambda _repo, _p: Target(Resource(), SETTING), _set))
