"""The one clock of ecert, and the time helpers every module shares.

A clock is any callable returning a timezone-aware :class:`~datetime.datetime`; the
registry, the verifier and the CLI take one as a parameter (tests inject a fake one,
the CLI's composition root passes :func:`system_clock`). Times inside ecert are integer
seconds since the epoch, UTC, as in every signed document.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Protocol

from ecert.errors import InputError

__all__ = ["Clock", "end_of_day", "from_seconds", "now_seconds", "system_clock", "to_seconds"]


class Clock(Protocol):
    """Returns the current time, timezone-aware."""

    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    """The machine's clock, in UTC."""
    return datetime.now(UTC)


def now_seconds(clock: Clock) -> int:
    """``clock()`` as integer seconds; a naive datetime is a programming error."""
    now = clock()
    if now.tzinfo is None:
        raise InputError("the clock must return timezone-aware datetimes")
    return int(now.timestamp())


def to_seconds(value: datetime, what: str = "time") -> int:
    """A timezone-aware datetime as integer seconds."""
    if value.tzinfo is None:
        raise InputError(f"{what} must be timezone-aware")
    return int(value.timestamp())


def from_seconds(seconds: int) -> datetime:
    """Integer seconds as a UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def end_of_day(day: date) -> int:
    """A date typed by a person means through the end of that day (UTC)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) + 86_400
