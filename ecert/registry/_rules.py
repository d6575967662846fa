"""Small rules the registry's services share (one copy of each)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from ecert._clock import DEFAULT_TZ, end_of_day, to_seconds, zone
from ecert._formats.jose import b64url_encode, canonical_json
from ecert.errors import InputError

_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


def check_code(kind: str, code: str, max_length: int = 100) -> str:
    """Type, agency and operator codes: lower-case letters, digits, '-', '.', '_'."""
    if (not isinstance(code, str) or not code or len(code) > max_length
            or not _CODE_CHARS.issuperset(code) or code[0] in "-._"):
        raise InputError(f"{kind} code {code!r} must be lower-case letters, digits, "
                         f"'-', '.', '_' (at most {max_length})", code="invalid_code")
    return code


def schema_digest(schema: Mapping[str, Any]) -> str:
    """How the log names a JSON Schema: base64url SHA-256 of its canonical JSON."""
    return b64url_encode(hashlib.sha256(canonical_json(dict(schema))).digest())


def until_seconds(valid_until: datetime | date | None, tz: str = DEFAULT_TZ) -> int | None:
    """When something ends: an aware time as is, a date typed by a person through the end
    of that day in the registry's time zone ``tz``, None for "not given"."""
    if isinstance(valid_until, datetime):
        return to_seconds(valid_until, "valid_until")
    if isinstance(valid_until, date):
        return end_of_day(valid_until, zone(tz))
    return None


#: The end date clerks write for 长期 (no end): ``--valid-until 9999-12-31``.
NO_END = date(9999, 12, 31)


def is_no_end(valid_until: datetime | date | None) -> bool:
    """Whether ``valid_until`` is 9999-12-31, the usual way to write 长期: no end."""
    return isinstance(valid_until, date) and (
        valid_until.year, valid_until.month, valid_until.day) == (9999, 12, 31)


def list_id_of(status_list_uri: str) -> int:
    """The list number of one of our status list URIs (``…/status/<n>.jwt``)."""
    return int(status_list_uri.rsplit("/", 1)[1].removesuffix(".jwt"))
