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

from collections.abc import Mapping
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


def _set(unit: Unit, p: Mapping[str, Any]) -> ShareLimits:
    value = ShareLimits.from_json(p["limits"])
    unit.repo.set_setting(SETTING, value.to_json())
    unit.log(Action.SHARE_LIMITS, SETTING, value.to_json())
    return value


SET_LIMITS = register(Operation(Action.SHARE_LIMITS,
                                lambda _repo, _p: Target(Resource(), SETTING), _set))
