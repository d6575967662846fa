"""The sharing service's documents: signed requests' JSON bodies and problem details.

* A **fetch request** (``POST /v1/copies``) asks for a holder's certificates of some
  types, stating the purpose (用证事由, mandatory), the case number (业务流水号), the
  service item code (事项编码), the staff member and role handling the case, and the
  holder's consent code (用证码) where the entitlement needs one. A **check request**
  (核验, ``POST /v1/checks``) asks only whether submitted values match a valid
  certificate. The requester (``REGION/agency-code``) is never in the body: it is the
  owner of the key that signed the request (:mod:`ecert._formats.httpsig`).
* Bodies are strict JSON (:func:`ecert._formats.jose.strict_json_loads`: no duplicate
  members, no NaN) of a bounded size, with no unknown members, and their text passes the
  same checks as certificate text (no control, bidi or invisible characters).
* Refusals are RFC 9457 problem details (``application/problem+json``) with a stable
  ``code`` member; the codes of :data:`PROBLEM_CODES` are checked in that order.
* Requests are fresh: a signature ``created`` within :data:`FRESHNESS_WINDOW` of the
  service's clock and a nonce not seen from that requester within it
  (:class:`NonceStore`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from ecert._clock import Clock, now_seconds, system_clock
from ecert._formats.jose import canonical_json, strict_json_loads
from ecert._formats.text import check_text
from ecert.errors import FormatError, TextInvalid


class UseKind(StrEnum):
    """What a request to the service is, by the endpoint it called: what its use record
    (and log entry) says it was, granted or refused."""

    FETCH = "fetch"  #: ``POST /v1/copies``: copies handed out (``share.fetch``)
    CHECK = "check"  #: ``POST /v1/checks``: a check, 核验 (``share.check``)


#: Media types of the service.
REQUEST_MEDIA_TYPE = "application/json"
PROBLEM_MEDIA_TYPE = "application/problem+json"
#: The header field of a fetch's answer naming the log index of its use record's entry,
#: which commits to the hash of every copy in the body (format 16.2, 17.3).
LOG_INDEX_HEADER = "Ecert-Log-Index"
#: The largest request body a service accepts by default, in bytes.
MAX_REQUEST_BYTES = 16 * 1024
#: Seconds a request's ``created`` may be from the service's clock, either way.
FRESHNESS_WINDOW = 300
#: At most this many types in one request.
MAX_TYPES = 16
#: At most this many submitted values in one check request.
MAX_VALUES = 16
MAX_PURPOSE = 200  # as in a copy (ecert/_formats/copy.py)
MAX_CASE = 100
MAX_FIELD = 100

_CODE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_CONSENT = re.compile(r"[A-Za-z0-9-]{4,64}")
_PROBLEM_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _bad(message: str) -> FormatError:
    return FormatError(message, code="malformed")


def _text(body: Mapping[str, Any], name: str, max_length: int) -> str:
    try:
        return check_text(body.get(name), label=name, max_length=max_length, required=True)
    except TextInvalid as e:
        raise _bad(e.message) from e


def _code(value: Any, what: str) -> str:
    if not isinstance(value, str) or _CODE.fullmatch(value) is None:
        raise _bad(f"{what} is a code of lower-case letters, digits, '-', '.', '_'")
    return value


def _object(data: bytes, allowed: frozenset[str], max_bytes: int) -> dict[str, Any]:
    if len(data) > max_bytes:
        raise FormatError(f"a request body has at most {max_bytes} bytes", code="too_large")
    body = strict_json_loads(data)
    if not isinstance(body, dict):
        raise _bad("a request body is a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _bad(f"unknown member {unknown[0][:40]!r}")
    return body


@dataclass(frozen=True, slots=True)
class CaseContext:
    """Who handles which case, and why: in every request, and in every use record."""

    purpose: str  #: 用证事由, mandatory
    case: str  #: 业务流水号
    service_item: str  #: 事项编码
    staff_id: str
    staff_role: str
    consent: str | None = None  #: 用证码, where the entitlement needs the holder's consent

    def to_json(self) -> dict[str, Any]:
        """The members of a request body this context contributes."""
        body: dict[str, Any] = {"purpose": self.purpose, "case": self.case,
                                "service_item": self.service_item,
                                "staff_id": self.staff_id, "staff_role": self.staff_role}
        if self.consent is not None:
            body["consent"] = self.consent
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CaseContext:
        """Decode the context members of a request body (``FormatError``)."""
        consent = body.get("consent")
        if consent is not None and (not isinstance(consent, str)
                                    or _CONSENT.fullmatch(consent) is None):
            raise _bad("consent is a code of 4 to 64 letters, digits and '-'")
        return cls(purpose=_text(body, "purpose", MAX_PURPOSE),
                   case=_text(body, "case", MAX_CASE),
                   service_item=_text(body, "service_item", MAX_FIELD),
                   staff_id=_text(body, "staff_id", MAX_FIELD),
                   staff_role=_text(body, "staff_role", MAX_FIELD),
                   consent=consent)


_CONTEXT_MEMBERS = frozenset({"purpose", "case", "service_item", "staff_id", "staff_role",
                              "consent"})


@dataclass(frozen=True, slots=True)
class ShareRequest:
    """A fetch request: a holder's certificates of ``types``, as purpose-bound copies."""

    holder_id: str
    types: tuple[str, ...]
    context: CaseContext

    def to_json(self) -> bytes:
        """The request body (canonical JSON)."""
        return canonical_json({"holder_id": self.holder_id, "types": list(self.types),
                               **self.context.to_json()})

    @classmethod
    def from_json(cls, data: bytes, *, max_bytes: int = MAX_REQUEST_BYTES) -> ShareRequest:
        """Decode a request body strictly; raise :class:`FormatError`."""
        body = _object(data, _CONTEXT_MEMBERS | {"holder_id", "types"}, max_bytes)
        types = body.get("types")
        if not isinstance(types, list) or not 1 <= len(types) <= MAX_TYPES:
            raise _bad(f"types is a list of 1 to {MAX_TYPES} type codes")
        codes = tuple(_code(t, "a type") for t in types)
        if len(set(codes)) != len(codes):
            raise _bad("a type is listed twice")
        return cls(holder_id=_text(body, "holder_id", MAX_FIELD), types=codes,
                   context=CaseContext.from_json(body))


#: The values that identify what a check request is about: one of them is required.
CHECK_KEYS = ("certificate_id", "holder_id")


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """A check request (核验): do ``values`` match a valid certificate of ``type``?

    ``values`` are flat text values by claim name; the certificate id or the holder id
    must be among them (so the check is about one known subject, never a search).
    """

    type: str
    values: Mapping[str, str]
    context: CaseContext

    def to_json(self) -> bytes:
        """The request body (canonical JSON)."""
        return canonical_json({"type": self.type, "values": dict(self.values),
                               **self.context.to_json()})

    @classmethod
    def from_json(cls, data: bytes, *, max_bytes: int = MAX_REQUEST_BYTES) -> CheckRequest:
        """Decode a request body strictly; raise :class:`FormatError`."""
        body = _object(data, _CONTEXT_MEMBERS | {"type", "values"}, max_bytes)
        values = body.get("values")
        if not isinstance(values, dict) or not 1 <= len(values) <= MAX_VALUES:
            raise _bad(f"values is an object of 1 to {MAX_VALUES} members")
        if not any(key in values for key in CHECK_KEYS):
            raise _bad("values name the certificate_id or the holder_id")
        checked = {_code(name, "a value's name"): _text(values, name, MAX_FIELD * 10)
                   for name in values}
        return cls(type=_code(body.get("type"), "type"), values=checked,
                   context=CaseContext.from_json(body))


# -- requester key ids ----------------------------------------------------------------------

_KEYID = re.compile(r"([A-Z]{2,8})/([a-z0-9][a-z0-9.-]{0,99})#([A-Za-z0-9_-]{43})")


def requester_keyid(requester: str, kid: str) -> str:
    """The ``keyid`` of a sharing request: ``REGION/agency-code#kid``.

    It names where the key is published (the agency's ``requester_keys`` in its region's
    trust list), so a service looks in one trust list only; the name is believed only
    because the key is found there.
    """
    keyid = f"{requester}#{kid}"
    if _KEYID.fullmatch(keyid) is None:
        raise _bad("a requester keyid is REGION/agency-code#kid")
    return keyid


def split_requester_keyid(keyid: str) -> tuple[str, str, str]:
    """``(region, agency_code, kid)`` of a requester keyid; ``FormatError`` otherwise."""
    match = _KEYID.fullmatch(keyid) if isinstance(keyid, str) else None
    if match is None:
        raise _bad("a requester keyid is REGION/agency-code#kid")
    return match.group(1), match.group(2), match.group(3)


# -- problem details (RFC 9457) --------------------------------------------------------------

#: The refusals of a sharing request, in the order they are checked (issue 10).
PROBLEM_CODES = ("not_authenticated", "region_not_recognized", "not_entitled",
                 "purpose_not_permitted", "consent_required", "consent_invalid", "replay",
                 "too_many_requests")
#: Refusals of the transport, before a request is understood.
TRANSPORT_CODES = ("malformed_request", "payload_too_large", "headers_too_large",
                   "request_timeout", "unsupported_media_type", "not_found",
                   "method_not_allowed", "internal_error")
#: Refusals of the holder's channel (besides ``not_authenticated`` and the transport's).
HOLDER_CODES = ("consent_not_open",)

#: Status and title of every problem code.
PROBLEMS: dict[str, tuple[int, str]] = {
    "not_authenticated": (401, "The request's signature could not be verified"),
    "region_not_recognized": (403, "The requester's region is not recognized"),
    "not_entitled": (403, "The requester is not entitled to this type"),
    "purpose_not_permitted": (403, "The purpose is not among the entitlement's"),
    "consent_required": (403, "The holder's consent is required"),
    "consent_invalid": (403, "The consent code is not valid for this request"),
    "replay": (401, "The request was seen before"),
    "too_many_requests": (429, "Too many requests"),
    "malformed_request": (400, "The request is malformed"),
    "payload_too_large": (413, "The request body is too large"),
    "headers_too_large": (431, "The request's header fields are too large"),
    "request_timeout": (408, "The request did not arrive in time"),
    "unsupported_media_type": (415, "The request body is not application/json"),
    "not_found": (404, "No such resource"),
    "method_not_allowed": (405, "Method not allowed"),
    "internal_error": (500, "Internal error"),
    "not_implemented": (501, "Not answered by this service yet"),
    "consent_not_open": (409, "The consent is used, revoked or expired already"),
}

#: Where a problem's ``type`` points: a page on the service describing the code.
PROBLEM_TYPE_PREFIX = "/problems/"


@dataclass(frozen=True, slots=True)
class Problem:
    """An RFC 9457 problem document with ecert's stable ``code``."""

    code: str
    status: int
    title: str
    detail: str | None = None

    @classmethod
    def of(cls, code: str, detail: str | None = None) -> Problem:
        """The problem of a known code, with its status and title."""
        status, title = PROBLEMS[code]
        return cls(code, status, title, detail)

    @property
    def type(self) -> str:
        """The problem type URI (a relative reference to the service's page)."""
        return PROBLEM_TYPE_PREFIX + self.code

    def to_json(self) -> bytes:
        """The ``application/problem+json`` body."""
        body: dict[str, Any] = {"type": self.type, "title": self.title,
                                "status": self.status, "code": self.code}
        if self.detail is not None:
            body["detail"] = self.detail
        return canonical_json(body)

    @classmethod
    def from_json(cls, data: bytes, *, max_bytes: int = MAX_REQUEST_BYTES) -> Problem:
        """Decode a problem document (a client reading a refusal); unknown codes are kept
        (a newer service may add some), unknown members ignored (RFC 9457 §3.2)."""
        if len(data) > max_bytes:
            raise FormatError("a problem document is too large", code="too_large")
        body = strict_json_loads(data)
        if not isinstance(body, dict):
            raise _bad("a problem document is a JSON object")
        code, status = body.get("code"), body.get("status")
        if not isinstance(code, str) or _PROBLEM_CODE.fullmatch(code) is None:
            raise _bad("a problem document has a code")
        if type(status) is not int or not 400 <= status <= 599:
            raise _bad("a problem's status is an HTTP error status")
        if body.get("type") != PROBLEM_TYPE_PREFIX + code:
            raise _bad("a problem's type names its code")
        title, detail = body.get("title"), body.get("detail")
        if not isinstance(title, str) or not (detail is None or isinstance(detail, str)):
            raise _bad("a problem's title and detail are text")
        try:
            check_text(title, label="title", max_length=500)
            if detail is not None:
                check_text(detail, label="detail", max_length=2000)
        except TextInvalid as e:
            raise _bad(e.message) from e
        return cls(code, status, title, detail)


# -- nonces ----------------------------------------------------------------------------------


class NonceStore(Protocol):
    """Where a service remembers the nonces it has seen, per requester.

    ``remember`` returns False if ``nonce`` was seen from ``requester`` and is not yet
    forgotten; otherwise it keeps it until ``expires_at`` (seconds since the epoch) and
    returns True. Atomic: of two concurrent calls with the same nonce, one wins. Several
    workers or hosts share one store (the registry's database).
    """

    def remember(self, requester: str, nonce: str, expires_at: int) -> bool:
        """Keep ``nonce``; False if it was already kept."""
        ...


class MemoryNonceStore:
    """A :class:`NonceStore` in one process's memory (tests, one-worker services)."""

    def __init__(self, clock: Clock = system_clock, *, sweep_above: int = 1024) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._sweep_above = sweep_above

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, requester: str, nonce: str, expires_at: int) -> bool:
        """Keep ``nonce``; False if it was already kept and has not expired."""
        now = now_seconds(self._clock)
        with self._lock:
            if len(self._seen) > self._sweep_above:
                # Forget what expired, now and then: the store stays as large as the
                # requests of one freshness window.
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            key = (requester, nonce)
            seen = self._seen.get(key)
            if seen is not None and seen > now:
                return False
            self._seen[key] = expires_at
            return True
