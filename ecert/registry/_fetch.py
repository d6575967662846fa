"""The fetch: a requester's call to the sharing service, granted or refused, and its record.

The HTTP layer authenticates the request (its signature by a requester key the trust
lists publish, its region's recognition, its nonce) and then calls
:meth:`ecert.Registry.share_fetch` as the ``service`` operator with the requester's
name. This module checks, in this order, and answers the first problem:

1. ``not_entitled`` — no entitlement in force lets the requester fetch one of the types;
2. ``purpose_not_permitted`` — none of them for the stated purpose;
3. ``consent_required`` — an entitlement needs the holder's consent and no code came;
4. ``too_many_requests`` — the requester had too many wrong consent codes in the current
   hour, in all or for this holder: any code is then refused *without being looked at*,
   so that a guess past the limit learns nothing (this is the one place the order
   differs: a guesser must not tell a right code from a wrong one). Counted per requester
   and per (requester, holder), never per holder alone, so that no requester's guesses
   deny the holder's consent to the others;
5. ``consent_invalid`` — the code is unknown, expired, used, revoked, or for another
   holder, requester, type or purpose (one answer for all, and one more failure counted
   for the requester, and for the requester with this holder).

Otherwise it signs a purpose-bound copy (``ecert-copy+jwt``, with the registry's sharing
key) of each of the holder's certificates of those types that is valid now, carrying
only the claims the entitlements allow. A holder with none gets an empty list.

Every call is one unit of work: a ``uses`` row and a ``share.fetch`` log entry whose
public form shows only keyed commitments (who fetched whose certificate is not public),
plus the outcome and problem code.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from ecert._authority import Action, Resource
from ecert._formats.copy import (
    DEFAULT_COPY_TTL,
    MAX_CASE,
    MAX_COPY_TTL,
    MAX_PURPOSE,
    CopyClaims,
    OriginalRef,
)
from ecert._formats.jose import b64url_encode, canonical_json
from ecert._formats.log import Entry, token_hash
from ecert._formats.trustlist import Entitlement
from ecert._storage.repository import StoredCertificate
from ecert.errors import InputError, RecordTampered, Replayed
from ecert.models import Certificate, CertificateStatus
from ecert.registry._audit import check_stored_token
from ecert.registry._core import (
    Operation,
    Target,
    Unit,
    decoded_leaves,
    logged_entries,
    register,
)
from ecert.registry._lifecycle import effective
from ecert.registry._sharing import (
    BY_STATUTE,
    CHECK_KIND,
    ENTRY_VERSION,
    FAILURE_WINDOW,
    FETCH_KIND,
    MAX_FAILURES_PER_PAIR,
    MAX_FAILURES_PER_REQUESTER,
    agency_requester,
    code_hash,
    consent_commitments,
    covering,
    failure_scopes,
    logged_consent,
    normalize_code,
    scope_of,
    use_details,
    use_subject,
)

log = logging.getLogger("ecert.registry")

GRANTED = "granted"
REFUSED = "refused"
#: Longest staff id, staff role and service item code accepted.
MAX_FIELD = 100


class Copy(NamedTuple):
    """One purpose-bound copy handed out."""

    token: str  #: the signed ``ecert-copy+jwt``
    copy_of: str  #: the original certificate's id
    type: str
    expires_at: int


class FetchResult(NamedTuple):
    """What the service answers (and what the use record says)."""

    outcome: str  #: ``granted`` or ``refused``
    problem: str | None  #: the problem code of a refusal
    copies: tuple[Copy, ...]
    use_id: int
    #: The consent used, or ``"by statute"``; None for a refusal.
    consent: str | None
    response_hash: str
    #: The log index of the use record's entry, which commits to every copy's hash: what
    #: ``ecert verify COPY --require-inclusion --leaf-index N`` looks up (format 17.3).
    log_index: int | None = None

    @property
    def granted(self) -> bool:
        """Whether the fetch was granted (possibly with no copy)."""
        return self.outcome == GRANTED


class UseRecord(NamedTuple):
    """A use record, as the holder sees it (``Registry.uses``)."""

    id: int
    at: int
    requester: str
    staff_id: str
    staff_role: str
    service_item: str
    case: str
    purpose: str
    types: tuple[str, ...]
    certificates: tuple[str, ...]
    consent: str | None  #: a consent id, ``"by statute"``, or None (refused)
    outcome: str
    problem: str | None
    request_hash: str
    response_hash: str | None
    #: ``fetch`` (copies handed out) or ``check`` (核验: whether values matched)
    kind: str = FETCH_KIND

    @classmethod
    def from_row(cls, row: Any) -> UseRecord:
        """From a ``uses`` row."""
        consent = BY_STATUTE if row.by_statute else row.consent
        return cls(int(row.id), int(row.at), row.requester, row.staff_id, row.staff_role,
                   row.service_item, row.case_no, row.purpose, tuple(row.types),
                   tuple(row.certificates), consent, row.outcome, row.problem,
                   row.request_hash, row.response_hash, row.kind)

    def to_json(self) -> dict[str, Any]:
        """As ``ecert uses --json`` lists it."""
        return self._asdict()


def response_hash(copies: Sequence[str], problem: str | None) -> str:
    """base64url SHA-256 of the canonical JSON of the answer: for granted copies
    ``{"copies": [{"token": …}, …]}``, the very bytes the sharing service answers; for a
    refusal ``{"problem": code}`` (the decision: the service's problem document adds
    human text)."""
    body: dict[str, Any] = ({"problem": problem} if problem
                            else {"copies": [{"token": t} for t in copies]})
    return b64url_encode(hashlib.sha256(canonical_json(body)).digest())


def _text(what: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit \
            or not value.isprintable():
        raise InputError(f"{what} is empty, too long or not printable", code="invalid_request")
    return value.strip()


def fetch_params(*, requester: str, holder: str, types: Sequence[str], purpose: str,
                 case: str, service_item: str, staff_id: str, staff_role: str,
                 consent: str | None, request_hash: str, ttl: int,
                 nonce: tuple[str, int] | None = None) -> dict[str, Any]:
    """Checked parameters of ``share.fetch`` (``holder``: the holder's pseudonym;
    ``nonce``: the request's nonce and when it may be forgotten, to remember in the
    unit's own transaction)."""
    agency_requester(requester)
    if nonce is not None and (
            not isinstance(nonce, tuple) or len(nonce) != 2
            or not isinstance(nonce[0], str) or not 0 < len(nonce[0]) <= 200
            or type(nonce[1]) is not int):
        raise InputError("a nonce is 1 to 200 characters, with its expiry",
                         code="invalid_request")
    if not types or len(types) > 20:
        raise InputError("a fetch asks for 1 to 20 types", code="invalid_request")
    if not 0 < ttl <= MAX_COPY_TTL:
        raise InputError("a copy lives at most 7 days", code="invalid_ttl")
    return {
        "requester": requester, "holder": holder,
        "types": list(dict.fromkeys(_text("type", t, MAX_FIELD) for t in types)),
        "purpose": _text("purpose", purpose, MAX_PURPOSE),
        "case": _text("case number", case, MAX_CASE),
        "service_item": _text("service item", service_item, MAX_FIELD),
        "staff_id": _text("staff id", staff_id, MAX_FIELD),
        "staff_role": _text("staff role", staff_role, MAX_FIELD),
        "consent": None if consent is None or not str(consent).strip() else str(consent),
        "request_hash": _text("request hash", request_hash, 128), "ttl": ttl,
        "nonce": None if nonce is None else list(nonce),
    }


#: Refusals the HTTP layer decides before the registry is asked (recorded all the same).
SERVICE_PROBLEMS = frozenset({"not_authenticated", "region_not_recognized", "replay",
                              "too_many_requests", "bad_request"})


def _claimed(value: Any, limit: int) -> str:
    """A field as an unauthenticated or malformed request claimed it, fit to record:
    printable characters only, at most ``limit``, ``-`` when there is nothing."""
    text = "".join(c for c in str(value if value is not None else "") if c.isprintable())
    return text.strip()[:limit] or "-"


def refusal_params(problem: str, *, requester: Any, holder: str, types: Any, purpose: Any,
                   case: Any, service_item: Any, staff_id: Any, staff_role: Any,
                   request_hash: Any) -> dict[str, Any]:
    """Parameters of a ``share.fetch`` the HTTP layer refused with ``problem``: whatever
    the request claimed, cut to size (it may come from anyone). A refused check's are
    :func:`ecert.registry._check.refusal_params`."""
    if problem not in SERVICE_PROBLEMS:
        raise InputError(f"{problem!r} is not a refusal of the service: use one of "
                         f"{', '.join(sorted(SERVICE_PROBLEMS))}", code="invalid_request")
    listed = types if isinstance(types, list | tuple) else [types]
    return {
        "requester": _claimed(requester, 120), "holder": holder,
        "types": list(dict.fromkeys(_claimed(t, MAX_FIELD) for t in listed[:20])) or ["-"],
        "purpose": _claimed(purpose, MAX_PURPOSE), "case": _claimed(case, MAX_CASE),
        "service_item": _claimed(service_item, MAX_FIELD),
        "staff_id": _claimed(staff_id, MAX_FIELD), "staff_role": _claimed(staff_role, MAX_FIELD),
        "consent": None, "request_hash": _claimed(request_hash, 128), "ttl": DEFAULT_COPY_TTL,
        "refused": problem,
    }


class _Decision(NamedTuple):
    problem: str | None
    claims: dict[str, tuple[str, ...] | None]  #: per type: the claims allowed (None: all)
    consent_id: str | None
    by_statute: bool
    #: The ``(agency, type)`` pairs the consent releases (None: no consent, or one granted
    #: before consents were scoped).
    scope: tuple[tuple[str, str], ...] | None = None


#: A further check between the purpose and the consent (a check's claims and subject
#: limit): given the claims allowed per type, the problem code or None.
Gate = Callable[[Mapping[str, "tuple[str, ...] | None"]], "str | None"]


def _decide(unit: Unit, p: Mapping[str, Any], gate: Gate | None = None) -> _Decision:
    """The checks, in order (see the module's docstring)."""
    repo, now = unit.repo, unit.now
    requester, purpose = p["requester"], p["purpose"]
    # Only entitlements whose row is what the log made of them count: one inserted or
    # widened in the database (a without-consent flag, a purpose, a claim) releases
    # nothing, even before an audit finds it.
    in_force = [e for e, leaves in repo.entitlements_with_log(
        requester, in_force_at=now, allow_action=Action.SHARE_ALLOW.value,
        revoke_action=Action.SHARE_REVOKE.value)
        if e.names(requester) and _as_logged(unit, e, decoded_leaves(leaves))]
    per_type: dict[str, list[Entitlement]] = {}
    for type_code in p["types"]:
        if not covering(in_force, requester, type_code, None, now):
            return _Decision("not_entitled", {}, None, False)
        per_type[type_code] = covering(in_force, requester, type_code, purpose, now)
    if not all(per_type.values()):
        return _Decision("purpose_not_permitted", {}, None, False)
    claims = {t: _allowed_claims(es) for t, es in per_type.items()}
    problem = None if gate is None else gate(claims)
    if problem is not None:
        return _Decision(problem, {}, None, False)
    # By statute only where an entitlement for that type and purpose says so, for every
    # type asked: one that needs consent makes the whole request need it.
    if all(any(e.without_consent for e in es) for es in per_type.values()):
        return _Decision(None, claims, None, True)
    if p["consent"] is None:
        return _Decision("consent_required", {}, None, False)
    window = now - now % FAILURE_WINDOW
    requester_scope, pair_scope = failure_scopes(requester, p["holder"])
    if (repo.failures([requester_scope], window) >= MAX_FAILURES_PER_REQUESTER
            or repo.failures([pair_scope], window) >= MAX_FAILURES_PER_PAIR):
        return _Decision("too_many_requests", {}, None, False)
    code = normalize_code(p["consent"])
    row = None if code is None else repo.consent_by_hash(
        code_hash(unit.ctx.consent_key, code), for_update=True)
    if (row is None or not _consent_as_logged(unit, row)
            or row.holder != p["holder"] or row.requester != requester
            or row.purpose != purpose or not set(p["types"]) <= set(row.types)
            or row.expires_at <= now or row.used_at is not None
            or row.revoked_at is not None or not repo.use_consent(row.id, now)):
        repo.count_failure(requester_scope, window)
        repo.count_failure(pair_scope, window)
        return _Decision("consent_invalid", {}, None, False)
    return _Decision(None, claims, str(row.id), False, scope_of(row.scope))


def _as_logged(unit: Unit, entitlement: Entitlement,
               entries: Sequence[Entry | None] | None = None) -> bool:
    """Whether an entitlement row is the one its ``share.allow`` entry logged (ended, if
    at all, by its ``share.revoke``): the log, signed by the operators who approved it,
    is the authority; the row is only an index of it. ``entries``: its allow and revoke
    entries, oldest first, if the caller read them already."""
    # Checked every time, never cached by content: a revoked entitlement put back in the
    # database as it was before its revocation has content checked once already.
    logged: dict[str, Any] | None = None
    if entries is None:
        entries = logged_entries(unit.repo, entitlement.id,
                                 [Action.SHARE_ALLOW, Action.SHARE_REVOKE])
    for entry in entries:
        if entry is None:
            return False
        if entry.action == Action.SHARE_ALLOW.value:
            found = entry.details.get("entitlement")
            if logged is not None or not isinstance(found, dict):
                return False  # allowed twice, or not an entitlement: trust neither
            logged = dict(found)
        elif logged is not None and type(entry.details.get("valid_until")) is int:
            logged["valid_until"] = entry.details["valid_until"]
    if logged is None or logged != entitlement.to_json():
        log.warning("entitlement %s in the database differs from the log: not used",
                    entitlement.id)
        return False
    return True


def _consent_as_logged(unit: Unit, row: Any) -> bool:
    """Whether a consent row binds what its ``consent.grant`` entry logged — the holder,
    requester and purpose (as the log's commitments), the types, the expiry and the
    agencies it releases — and whether the log has it still open: neither revoked by a
    ``consent.revoke`` entry nor spent by a granted use. The row's ``used_at`` and
    ``revoked_at`` are only a cache an insider can clear; the log decides."""
    logged = logged_consent(unit.repo, str(row.id))
    if logged is None:
        log.warning("consent %s has no logged grant: not used", row.id)
        return False
    d = logged.details
    holder, requester, purpose = consent_commitments(
        unit.ctx.commitment_key, str(row.id), row.holder, row.requester, row.purpose)
    if not (d.get("holder") == holder and d.get("requester") == requester
            and d.get("purpose") == purpose and d.get("types") == list(row.types)
            and d.get("expires") == row.expires_at and _same_scope(d, row.scope)):
        log.warning("consent %s in the database differs from the log: not used", row.id)
        return False
    if logged.revoked or logged.spent:
        if row.revoked_at is None and row.used_at is None:
            log.warning("consent %s is open in the database but %s in the log: not used",
                        row.id, "revoked" if logged.revoked else "spent")
        return False
    return True


def _same_scope(details: Mapping[str, Any], scope: Any) -> bool:
    """The row's scope is the logged one (a grant of version 1 had none: the row neither)."""
    if details.get("version") != ENTRY_VERSION:
        return scope is None
    return scope is not None and details.get("scope") == [list(pair) for pair in scope]


def released(certs: Sequence[Certificate], scope: tuple[tuple[str, str], ...] | None
             ) -> list[Certificate]:
    """Those of ``certs`` a consent of ``scope`` releases (None: all of them)."""
    if scope is None:
        return list(certs)
    return [c for c in certs if (c.agency_code, c.type_code) in scope]


def _allowed_claims(entitlements: Sequence[Entitlement]) -> tuple[str, ...] | None:
    """The claims any of ``entitlements`` allows (None: all of them)."""
    if any(e.claims is None for e in entitlements):
        return None
    return tuple(dict.fromkeys(c for e in entitlements for c in e.claims or ()))


def _valid_now(cert: Certificate, now: int) -> bool:
    return (cert.status is CertificateStatus.VALID
            and int(cert.valid_from.timestamp()) <= now
            and (cert.valid_until is None or now < int(cert.valid_until.timestamp())))


def _copies(unit: Unit, p: Mapping[str, Any], decision: _Decision) -> list[Copy]:
    repo, now, region = unit.repo, unit.now, unit.region
    claims = decision.claims
    found: list[tuple[Certificate, StoredCertificate]] = []
    for type_code in p["types"]:
        # Each row with its key and issue entry, to check it against both (one query).
        for stored in repo.certificates_with_proof(
                holder=p["holder"], type_code=type_code, status=CertificateStatus.VALID,
                now=now, limit=100, issue_action=Action.CERT_ISSUE.value):
            cert = effective(stored.certificate, now)
            if _valid_now(cert, now):
                found.append((cert, stored))
    released_ids = {c.id for c in released([c for c, _ in found], decision.scope)}
    kept = [(c, s) for c, s in found if c.id in released_ids]
    if not kept:
        return []
    kid = kept[0][1].sharing_kid  # the active sharing key, read with the certificates
    if kid is None:
        raise InputError("this registry has no sharing key: run 'ecert key rotate-sharing'",
                         code="no_sharing_key")
    signer = unit.ctx.signer(kid)
    out = []
    for cert, stored in kept:
        try:
            check_stored_token(unit.ctx, repo, cert, key=stored.key,
                               issue_leaves=stored.issue_leaves)
        except RecordTampered as e:  # never sign a copy of an edited row
            log.error("no copy of %s: %s", cert.id, e.message)
            continue
        allowed = claims[cert.type_code]
        given = {k: v for k, v in cert.claims.items() if allowed is None or k in allowed}
        exp = now + p["ttl"]
        copy = CopyClaims(
            iss=region.base_url, jti=secrets.token_urlsafe(16), iat=now, exp=exp,
            region=region.code, aud=p["requester"], purpose=p["purpose"], case=p["case"],
            copy_of=cert.id,
            original=OriginalRef(region.agency_uri(cert.agency_code), cert.type_code,
                                 cert.type_version, int(cert.issued_at.timestamp()),
                                 int(cert.valid_from.timestamp()),
                                 None if cert.valid_until is None
                                 else int(cert.valid_until.timestamp())),
            claims=given, status_list_uri=cert.status_list_uri,
            status_index=cert.status_index)
        out.append(Copy(copy.sign(signer), cert.id, cert.type_code, exp))
    return out


def record_use(unit: Unit, p: Mapping[str, Any], decision: _Decision,
               certificates: Sequence[str], answer: str, *, holder: str,
               kind: str = FETCH_KIND, copies: Sequence[str] = ()) -> int:
    """The use record of a fetch or check and its log entry; the record's id.
    ``copies``: the tokens a granted fetch answers (the entry commits to their hashes)."""
    row: dict[str, Any] = {
        "at": unit.now, "holder": holder, "requester": p["requester"],
        "staff_id": p["staff_id"], "staff_role": p["staff_role"],
        "service_item": p["service_item"], "case_no": p["case"], "purpose": p["purpose"],
        "types": list(p["types"]), "certificates": list(certificates),
        "consent": decision.consent_id, "by_statute": int(decision.by_statute),
        "outcome": REFUSED if decision.problem else GRANTED, "problem": decision.problem,
        "request_hash": p["request_hash"], "response_hash": answer, "kind": kind,
        "copies": [token_hash(t) for t in copies]}
    use_id = unit.repo.add_use(**row)
    # The spent consent is the entry's second lookup key: the next use of that consent
    # finds this entry in the log (an indexed look-up), whatever the consents row says.
    unit.log(Action.SHARE_CHECK if kind == CHECK_KIND else Action.SHARE_FETCH,
             use_subject(use_id), use_details(unit.ctx.commitment_key, row,
                                              use_subject(use_id)), private=True,
             ref=decision.consent_id)
    return use_id


def remember_nonce(unit: Unit, p: Mapping[str, Any]) -> None:
    """Keep the request's nonce (if the service passed it) in this unit's transaction;
    :class:`~ecert.errors.Replayed`, undoing the unit, if it was seen before. The row is
    written whatever the unit decides, so a refused request cannot be replayed either."""
    if p.get("nonce") is None:
        return
    nonce, expires_at = p["nonce"]
    if not unit.repo.remember_nonce(p["requester"], nonce, expires_at, unit.now):
        raise Replayed("this nonce was seen before")


def _fetch(unit: Unit, p: Mapping[str, Any]) -> FetchResult:
    remember_nonce(unit, p)
    refused = p.get("refused")
    decision = _Decision(refused, {}, None, False) if refused else _decide(unit, p)
    copies = [] if decision.problem else _copies(unit, p, decision)
    answer = response_hash([c.token for c in copies], decision.problem)
    use_id = record_use(unit, p, decision, [c.copy_of for c in copies], answer,
                        holder=p["holder"], copies=[c.token for c in copies])
    consent = BY_STATUTE if decision.by_statute else decision.consent_id
    outcome = REFUSED if decision.problem else GRANTED
    return FetchResult(outcome, decision.problem, tuple(copies), use_id, consent, answer)


def _placed(result: FetchResult, seqs: list[int]) -> FetchResult:
    """The result with its use entry's log index (the unit's one entry)."""
    return result._replace(log_index=seqs[-1])


FETCH = register(Operation(
    Action.SHARE_FETCH, lambda _repo, _p: Target(Resource(), Action.SHARE_FETCH.value),
    _fetch, guarded=False, private=True, placed=_placed))

__all__ = ["BY_STATUTE", "DEFAULT_COPY_TTL", "FETCH", "Copy", "FetchResult", "UseRecord"]
