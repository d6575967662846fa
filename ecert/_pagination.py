"""Keyset pagination: a page of a listing, and its opaque cursor.

A listing fetches ``limit + 1`` rows in its sort order after the cursor; the extra row
only says that there are more (never a count over millions of rows). The cursor is
the sort key of the last row shown, as base64url JSON: opaque to callers, checked
when read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ecert._formats.jose import b64url_decode, b64url_encode
from ecert.errors import FormatError, InputError

__all__ = ["Page", "decode_cursor", "encode_cursor", "page_of"]

T = TypeVar("T")
#: A cursor longer than this is not one ecert made.
MAX_CURSOR_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing: its ``items``, whether ``more`` follow, and the cursor
    (``next``) that continues after the last item (``None`` when nothing follows)."""

    items: tuple[T, ...]
    more: bool
    next: str | None

    def to_json(self, item: Callable[[T], Any]) -> dict[str, Any]:
        """``{"items": [...], "more": bool, "next": cursor-or-null}``."""
        return {"items": [item(i) for i in self.items], "more": self.more, "next": self.next}


def encode_cursor(key: Sequence[str | int]) -> str:
    """The opaque cursor of a sort key (strings and integers)."""
    return b64url_encode(json.dumps(list(key), ensure_ascii=False,
                                    separators=(",", ":")).encode("utf-8"))


def decode_cursor(cursor: str, shape: Sequence[type]) -> tuple[Any, ...]:
    """The sort key of ``cursor``, whose members have the types of ``shape``.

    Raises :class:`InputError` (code ``invalid_cursor``) for anything else.
    """
    def bad() -> InputError:
        return InputError(f"--after {cursor[:40]!r} is not a cursor of this listing",
                          code="invalid_cursor")

    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_CHARS:
        raise bad()
    try:
        value = json.loads(b64url_decode(cursor).decode("utf-8"))
    except (FormatError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad() from e
    if not isinstance(value, list) or len(value) != len(shape) or not all(
            type(v) is t for v, t in zip(value, shape, strict=True)):
        raise bad()
    # Every sort key is a database integer (64 bits) or text: a larger number would
    # overflow in the query (a 500, not the input error it is).
    if any(type(v) is int and not -(1 << 63) <= v < (1 << 63) for v in value):
        raise bad()
    return tuple(value)


def page_of(rows: Sequence[T], limit: int, key: Callable[[T], Sequence[str | int]]
            ) -> Page[T]:
    """The page of ``rows`` (fetched with ``limit + 1``): the extra row means more."""
    more = len(rows) > limit
    shown = tuple(rows[:limit])
    return Page(shown, more, encode_cursor(key(shown[-1])) if more and shown else None)


def page_in_memory(values: Sequence[T], limit: int, after: str | None,
                   key: Callable[[T], Sequence[str | int]], shape: Sequence[type]) -> Page[T]:
    """A page of a short listing read whole (types, agencies, operators, policies),
    sorted by ``key``, with the same cursor semantics as a database listing."""
    ordered = sorted(values, key=lambda v: tuple(key(v)))
    if after is not None:
        start = decode_cursor(after, shape)
        ordered = [v for v in ordered if tuple(key(v)) > start]
    return page_of(ordered[:limit + 1], limit, key)
