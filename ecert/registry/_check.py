"""The check (核验): do a requester's values match a valid certificate? Nothing else.

The HTTP layer authenticates the request as for a fetch and calls
:meth:`ecert.Registry.share_check` as the ``service`` operator. The registry first counts
the request against the requester's hourly budget of checks (``too_many_requests``
before anything is looked at; see :mod:`ecert.registry._limits`), then decides in one
unit of work, answering the first problem:

1. ``not_entitled`` — no entitlement in force lets the requester have the type;
2. ``purpose_not_permitted`` — none for the stated purpose;
3. ``not_entitled`` — a submitted value names a claim the entitlements do not let the
   requester receive, or the holder's name (which no copy carries) where they do not
   allow every claim: a check must not reveal, one bit at a time, what a fetch would
   not hand out;
4. ``too_many_requests`` — the subject (the certificate id, or else the holder) was
   checked ``checks_per_subject`` times this hour, by all requesters together: the
   bound on guessing one holder's low-entropy values;
5. the consent, exactly as a fetch's (``consent_required``, ``too_many_requests`` after
   too many wrong codes, ``consent_invalid``): a check tells whether a holder has a
   certificate, so it needs what a fetch of the type needs — the holder's consent unless
   the entitlement is by statute; a consent code a check uses is spent.

A granted check answers only ``match``: true when one certificate of the type, valid now,
matches *every* submitted value (its id, its holder, its holder name, its claims). Which
members matched is never said: per-member answers would let a guesser confirm each value
on its own, turning one guess of all the values into separate guesses of each.

Every check is a use record of kind ``check`` and a ``share.check`` log entry (keyed
commitments only in public), granted or refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, NamedTuple

from ecert._authority import Action, Resource
from ecert._formats.jose import b64url_encode, canonical_json
from ecert.errors import InputError
from ecert.models import Certificate
from ecert.registry._core import Operation, Target, Unit, register
from ecert.registry._fetch import (
    GRANTED,
    REFUSED,
    _decide,
    _Decision,
    _text,
    _valid_now,
    fetch_params,
    record_use,
    remember_nonce,
)
from ecert.registry._lifecycle import effective
from ecert.registry._limits import current_limits, take
from ecert.registry._sharing import BY_STATUTE, CHECK_KIND

#: The values that name what is checked (one of them is required) and the holder's name;
#: every other value names a claim.
CERTIFICATE_ID = "certificate_id"
HOLDER_ID = "holder_id"
HOLDER_NAME = "holder_name"
#: At most this many values, each at most this long.
MAX_VALUES = 16
MAX_VALUE = 1000
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


class CheckOutcome(NamedTuple):
    """What a check answers (and what its use record says)."""

    outcome: str  #: ``granted`` or ``refused``
    problem: str | None  #: the problem code of a refusal
    match: bool  #: whether the values match a valid certificate (False when refused)
    use_id: int
    #: The consent used, or ``"by statute"``; None for a refusal.
    consent: str | None
    response_hash: str

    @property
    def granted(self) -> bool:
        """Whether the check was answered (matching or not)."""
        return self.outcome == GRANTED

    def answer(self) -> Any:
        """The sharing service's answer: a :class:`ecert.sharing.CheckResult`, or the
        :class:`ecert.sharing.Problem` to answer with (what a
        :class:`ecert.sharing.SharingBackend`'s ``check`` returns)."""
        from ecert._formats.sharing import Problem
        from ecert.sharing._service import CheckResult

        if self.problem is not None:
            return Problem.of(self.problem)
        return CheckResult(self.match)


def check_response_hash(match: bool | None, problem: str | None) -> str:
    """base64url SHA-256 of the canonical JSON of the answer: ``{"match": bool}`` or
    ``{"problem": code}``."""
    body: dict[str, Any] = {"problem": problem} if problem else {"match": bool(match)}
    return b64url_encode(hashlib.sha256(canonical_json(body)).digest())


def _value(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def check_params(*, requester: str, holder: str | None, type_code: str,
                 values: Mapping[str, str], purpose: str, case: str, service_item: str,
                 staff_id: str, staff_role: str, consent: str | None,
                 request_hash: str, nonce: tuple[str, int] | None = None) -> dict[str, Any]:
    """Checked parameters of ``share.check`` (``holder``: the pseudonym of the submitted
    holder id, if any; ``values`` without it)."""
    if not isinstance(values, Mapping) or not 1 <= len(values) <= MAX_VALUES:
        raise InputError(f"a check submits 1 to {MAX_VALUES} values", code="invalid_request")
    checked: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            raise InputError("a value's name is a claim name (lower-case letters, digits, "
                             "'-', '.', '_')", code="invalid_request")
        checked[name] = _value(_text(f"value {name!r}", value, MAX_VALUE))
    checked.pop(HOLDER_ID, None)
    if holder is None and CERTIFICATE_ID not in checked:
        raise InputError("a check names the certificate_id or the holder_id",
                         code="invalid_request")
    p = fetch_params(requester=requester, holder=holder or "-", types=[type_code],
                     purpose=purpose, case=case, service_item=service_item,
                     staff_id=staff_id, staff_role=staff_role, consent=consent,
                     request_hash=request_hash, ttl=1, nonce=nonce)
    p.pop("ttl")
    return {**p, "values": checked, "by_holder": holder is not None}


def _stated(cert: Certificate, name: str) -> str | None:
    """What ``cert`` says for a submitted value's ``name``, as text (None: nothing)."""
    if name == CERTIFICATE_ID:
        return cert.id
    if name == HOLDER_NAME:
        return _value(cert.holder_name)
    if name not in cert.claims:
        return None
    value = cert.claims[name]
    if isinstance(value, str):
        return _value(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _matches(cert: Certificate, p: Mapping[str, Any], now: int) -> bool:
    cert = effective(cert, now)
    if cert.type_code != p["types"][0] or not _valid_now(cert, now):
        return False
    if p["by_holder"] and cert.holder != p["holder"]:
        return False
    return all(_stated(cert, name) == value for name, value in p["values"].items())


def _check(unit: Unit, p: Mapping[str, Any]) -> CheckOutcome:
    remember_nonce(unit, p)
    repo, now = unit.repo, unit.now
    type_code, values = p["types"][0], p["values"]
    named = None
    if CERTIFICATE_ID in values:
        named = repo.get_certificate(values[CERTIFICATE_ID])
    # Whose check it is (the record shows it to that holder): the submitted holder, or
    # the named certificate's.
    holder = p["holder"] if p["by_holder"] else (named.holder if named else "-")
    p = {**p, "holder": holder}
    subject = values.get(CERTIFICATE_ID) or holder

    def gate(claims: Mapping[str, tuple[str, ...] | None]) -> str | None:
        allowed = claims[type_code]
        # The holder's name is in no copy: only an entitlement to every claim covers it.
        asked = set(values) - {CERTIFICATE_ID}
        if allowed is not None and not asked <= set(allowed):
            return "not_entitled"
        limit = current_limits(repo).checks_per_subject
        return None if take(repo, f"check-subject:{subject}", limit, now) \
            else "too_many_requests"

    refused = p.get("refused")
    decision = _Decision(refused, {}, None, False) if refused else _decide(unit, p, gate)
    match = False
    certificates: list[str] = []
    if decision.problem is None:
        if named is not None:
            candidates = [named]
        elif p["by_holder"]:
            candidates = repo.find_certificates(holder=holder, type_code=type_code,
                                                status=None, agency_code=None, limit=100,
                                                now=now)
        else:
            candidates = []
        found = [c for c in candidates if _matches(c, p, now)]
        match = bool(found)
        certificates = [found[0].id] if found else (
            [named.id] if named is not None and named.holder == holder else [])
    answer = check_response_hash(match, decision.problem)
    use_id = record_use(unit, p, decision, certificates, answer, holder=holder,
                        kind=CHECK_KIND)
    consent = BY_STATUTE if decision.by_statute else decision.consent_id
    outcome = REFUSED if decision.problem else GRANTED
    return CheckOutcome(outcome, decision.problem, match, use_id, consent, answer)


CHECK = register(Operation(
    Action.SHARE_CHECK, lambda _repo, _p: Target(Resource(), Action.SHARE_CHECK.value),
    _check, guarded=False, private=True))

__all__ = ["CHECK", "CheckOutcome"]
