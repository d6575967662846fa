"""The one clock of ecert, and the time helpers every module shares.

A clock is any callable returning a timezone-aware :class:`~datetime.datetime`; the
registry, the verifier and the CLI take one as a parameter (tests inject a fake one,
the CLI's composition root passes :func:`system_clock`). Times inside ecert are integer
seconds since the epoch, UTC, as in every signed document.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ecert.errors import InputError

__all__ = ["DEFAULT_TZ", "Clock", "end_of_day", "from_seconds", "now_seconds", "start_of_day",
           "system_clock", "to_seconds", "zone"]

#: The time zone a registry lives in unless ``init`` says otherwise.
DEFAULT_TZ = "Asia/Shanghai"


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


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Asia/Shanghai``); an unknown one is an InputError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise InputError(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)",
                         code="invalid_tz") from e


def start_of_day(day: date, tz: tzinfo = UTC) -> int:
    """A date typed by a person as a start (``--valid-from``) means from the first second
    of that day where the person is (``tz``, the registry's zone)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def end_of_day(day: date, tz: tzinfo = UTC) -> int:
    """A date typed by a person as an end (``--valid-until 2030-12-31``) means through the
    end of that day where the person is: the first second of the next local day. So a
    licence shown in that zone as ending on 12-31 does end on 12-31 (and not at 08:00
    on 12-31 as UTC midnight would be in Beijing)."""
    if day == date.max:  # no next day to name; days are 24 h there in every zone in use
        return start_of_day(day, tz) + 86_400
    return start_of_day(day + timedelta(days=1), tz)
