"""Per-type validity windows of an agency: the one copy of how they change and read.

Pure. A type an agency may issue without limit in time has no windows; a type it was
denied (from some time on), or given again after that, has a list of half-open windows
``[start, end)`` in integer seconds, ``None`` for an open end, oldest first. The registry
(rows), the log replay (entries) and the trust list (``type_windows``) all use this form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ecert._clock import from_seconds, to_seconds
from ecert.errors import InputError, InvalidTransition
from ecert.models import Agency, TypeWindow

__all__ = ["Window", "allow", "covers", "deny", "from_agency", "parse", "to_models"]

Window = tuple[int | None, int | None]


def covers(windows: Sequence[Window] | None, at: int) -> bool:
    """Whether a certificate issued at ``at`` falls in one of ``windows`` (None: always)."""
    if windows is None:
        return True
    for start, end in windows:  # a loop, not any(): the replay asks this for every issue
        if (start is None or start <= at) and (end is None or at < end):
            return True
    return False


def allow(windows: Sequence[Window] | None, now: int, known: bool) -> list[Window] | None:
    """The windows after giving the type at ``now`` (``known``: the agency had it before).

    A type given for the first time is given without limit in time. Raises
    :class:`InvalidTransition` when the agency may issue it from now on already.
    """
    if not known:
        return None
    if windows is None:
        raise InvalidTransition("the agency may issue this type already", code="unchanged")
    current = list(windows)
    start, end = current[-1]
    if end is None:
        raise InvalidTransition("the agency may issue this type already", code="unchanged")
    if end > now:  # a denial not yet in force is called off
        current[-1] = (start, None)
    else:
        current.append((now, None))
    return current


def deny(windows: Sequence[Window] | None, since: int, now: int) -> list[Window]:
    """The windows after denying the type from ``since`` on (never before ``now``)."""
    if since < now:
        raise InputError("a type can be denied from now or a later time only: what the agency "
                         "issued before stays valid", code="invalid_date")
    current: list[Window] = [(None, None)] if windows is None else list(windows)
    start, end = current[-1]
    if end is not None and end <= since:
        raise InvalidTransition("the agency is denied this type already from that time",
                                code="unchanged")
    if start is not None and since <= start:
        raise InputError("deny a type from after the time it was last given",
                         code="invalid_date")
    current[-1] = (start, since)
    return current


def parse(value: Any) -> list[Window] | None:
    """Windows as a log entry carries them (``null`` or ``[[start, end], …]``)."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError("windows are null or a non-empty list")
    result: list[Window] = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2
                and all(v is None or type(v) is int for v in item)):
            raise ValueError("a window is [start, end], each an integer or null")
        start, end = item
        if start is not None and end is not None and end <= start:
            raise ValueError("a window ends after it starts")
        result.append((start, end))
    return result


def to_json(windows: Sequence[Window] | None) -> list[list[int | None]] | None:
    """As a log entry carries them."""
    return None if windows is None else [[s, e] for s, e in windows]


def to_models(windows: Mapping[str, Sequence[Window]]) -> tuple[TypeWindow, ...]:
    """Windows by type code as :class:`TypeWindow` values, sorted by code."""
    return tuple(TypeWindow(code, None if s is None else from_seconds(s),
                            None if e is None else from_seconds(e))
                 for code in sorted(windows) for s, e in windows[code])


def from_agency(agency: Agency) -> dict[str, list[Window]]:
    """An agency's windows by type code (restricted types only)."""
    result: dict[str, list[Window]] = {}
    for w in agency.windows:
        result.setdefault(w.code, []).append(
            (None if w.start is None else to_seconds(w.start),
             None if w.end is None else to_seconds(w.end)))
    return result


def of_type(windows: Iterable[TypeWindow], code: str) -> list[Window] | None:
    """One type's windows in seconds, or None when it is not limited in time."""
    found = [(None if w.start is None else to_seconds(w.start),
              None if w.end is None else to_seconds(w.end)) for w in windows if w.code == code]
    return found or None


def matches(agency: Agency, logged: Mapping[str, Any] | None) -> bool:
    """Whether an agency row (with its types and windows) is what the log replay says."""
    if logged is None:
        return False
    windows = {code: [tuple(w) for w in ws] for code, ws in (logged.get("windows") or {}).items()}
    return (logged["name"], logged["uscc"], tuple(logged["types"]), windows) == (
        agency.name, agency.uscc, agency.types, from_agency(agency))


def published(logged: Mapping[str, Any]) -> tuple[tuple[str, ...], list[tuple[str, Window]]]:
    """An agency of the log replay as a trust list publishes it: its types without limit
    in time, and ``(code, window)`` for the others."""
    windows = logged.get("windows") or {}
    unlimited = tuple(code for code in logged["types"] if code not in windows)
    limited = [(code, (w[0], w[1])) for code in sorted(windows) for w in windows[code]]
    return unlimited, limited
