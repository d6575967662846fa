"""Sharing: entitlements (用证清单) and consent codes (用证码).

An entitlement says which requesting agency (``REGION/agency-code``) or region may fetch
which types, for which purposes, receiving which claims; it is logged in full and
published in the trust list, so everyone sees who may receive what. One that lets the
requester fetch without the holder's consent (by statute, 依职能用证) always needs two
operators (:func:`ecert._authority.minimum_approvals`), whatever the policies say.

A consent code is what the holder hands the requester: 80 random bits in Crockford
base32, typed in four groups of four (``7KQ2-M9XD-4HBT-ZR0C``). The registry keeps only
its keyed hash (HMAC-SHA-256 under a secret of the key store), bound to the holder's
pseudonym, the requester, the types, the purpose and the expiry; it is used once.
The log shows a consent only as commitments: who consented is not public.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from ecert._authority import Action, Resource, permits
from ecert._formats.copy import MAX_PURPOSE
from ecert._formats.jose import canonical_json
from ecert._formats.log import commitment
from ecert._formats.trustlist import Entitlement, check_requester
from ecert._storage.repository import Repository
from ecert.errors import (
    AlreadyExists,
    FormatError,
    InputError,
    InvalidTransition,
    NotFound,
    PermissionDenied,
)
from ecert.models import Role
from ecert.registry._core import Operation, Target, Unit, register

#: Crockford's base32 alphabet (no I, L, O, U).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_READ_AS = {"O": "0", "I": "1", "L": "1"}
#: 16 characters of 5 bits: 80 bits of randomness.
CODE_CHARS = 16
#: The kinds of use record: a fetch (``share.fetch``) or a check (核验, ``share.check``).
FETCH_KIND = "fetch"
CHECK_KIND = "check"
#: What a use record says in place of a consent id when the entitlement needs none.
BY_STATUTE = "by statute"
CLERK_CHANNEL = "clerk"
HOLDER_CHANNEL = "holder"
#: The longest a consent may live, and the shortest.
MAX_CONSENT_TTL = 30 * 24 * 3600
MIN_CONSENT_TTL = 60
#: Failed consent codes allowed per window, per requester and per holder; beyond them a
#: request that carries a code is answered ``too_many_requests`` without looking at it.
FAILURE_WINDOW = 3600
MAX_FAILURES_PER_REQUESTER = 20
MAX_FAILURES_PER_HOLDER = 5


# -- entitlements ------------------------------------------------------------------------------


def _names(what: str, values: Iterable[str], *, limit: int = 100) -> list[str]:
    """Distinct, non-empty names as typed (NFC, no outer space), in the order given."""
    if isinstance(values, str):  # one name, not its characters
        values = [values]
    out: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise InputError(f"{what} must be text", code="invalid_entitlement")
        text = unicodedata.normalize("NFC", value).strip()
        if not text or len(text) > limit or not text.isprintable():
            raise InputError(f"{what} {value!r} is empty, too long or not printable",
                             code="invalid_entitlement")
        if text not in out:
            out.append(text)
    if not out:
        raise InputError(f"an entitlement names at least one of its {what}",
                         code="invalid_entitlement")
    return out


def entitlement_params(requester: str, types: Iterable[str], purposes: Iterable[str],
                       claims: Iterable[str] | None, without_consent: bool,
                       valid_until: int | None) -> dict[str, Any]:
    """Checked parameters of ``share.allow`` (the id is chosen here, so that a four-eyes
    request and the entitlement it becomes name the same one)."""
    try:
        requester = check_requester(requester.strip() if isinstance(requester, str)
                                    else requester)
    except FormatError as e:
        raise InputError(f"requester {requester!r}: use REGION or REGION/agency-code",
                         code="invalid_requester") from e
    return {"id": "e-" + secrets.token_hex(6), "requester": requester,
            "types": _names("types", types), "purposes": _names("purposes", purposes,
                                                                limit=MAX_PURPOSE),
            "claims": None if claims is None else _names("claims", claims),
            "without_consent": bool(without_consent), "valid_until": valid_until}


def _allow(unit: Unit, p: Mapping[str, Any]) -> Entitlement:
    repo = unit.repo
    if repo.get_entitlement(p["id"]) is not None:
        raise AlreadyExists(f"entitlement {p['id']} exists already")
    known: set[str] = set()
    for code in p["types"]:
        cert_type = repo.get_type(code)
        if cert_type is None:
            raise NotFound(f"no certificate type {code!r}")
        known |= set(cert_type.schema.get("properties", {}))
    unknown = [c for c in p["claims"] or () if c not in known]
    if unknown:
        raise InputError(f"no type of the entitlement has claim(s) {', '.join(unknown)}",
                         code="invalid_entitlement")
    if p["valid_until"] is not None and p["valid_until"] <= unit.now:
        raise InputError("an entitlement must end after it starts", code="invalid_entitlement")
    value = Entitlement(p["id"], p["requester"], tuple(p["types"]), tuple(p["purposes"]),
                        None if p["claims"] is None else tuple(p["claims"]),
                        p["without_consent"], unit.now, p["valid_until"])
    repo.add_entitlement(value)
    # The flag at the top too: the replay's four-eyes rule reads it where it reads params.
    unit.log(Action.SHARE_ALLOW, value.id, {"entitlement": value.to_json(),
                                            "without_consent": value.without_consent})
    return value


def _revoke(unit: Unit, p: Mapping[str, Any]) -> Entitlement:
    repo = unit.repo
    value = repo.get_entitlement(p["id"])
    if value is None:
        raise NotFound(f"no entitlement {p['id']!r}")
    if not value.in_force(unit.now) and value.valid_from <= unit.now:
        raise InvalidTransition(f"entitlement {value.id} has ended already",
                                code="not_in_force")
    repo.end_entitlement(value.id, unit.now)
    unit.log(Action.SHARE_REVOKE, value.id, {"valid_until": unit.now})
    ended = repo.get_entitlement(value.id)
    assert ended is not None  # noqa: S101 - the row was just updated
    return ended


ALLOW = register(Operation(Action.SHARE_ALLOW,
                           lambda _repo, p: Target(Resource(), p["id"]), _allow))
REVOKE = register(Operation(Action.SHARE_REVOKE,
                            lambda _repo, p: Target(Resource(), p["id"]), _revoke))


def covering(entitlements: Iterable[Entitlement], requester: str, type_code: str,
             purpose: str | None, at: int) -> list[Entitlement]:
    """Those of ``entitlements`` that let ``requester`` fetch ``type_code`` at ``at``
    (for ``purpose``; None: for any purpose)."""
    return [e for e in entitlements
            if e.names(requester) and type_code in e.types
            and e.in_force(at) and (purpose is None or purpose in e.purposes)]


# -- consent codes -----------------------------------------------------------------------------


def new_code() -> str:
    """80 random bits, Crockford base32, four groups of four."""
    value = secrets.randbits(5 * CODE_CHARS)
    chars = [ALPHABET[(value >> (5 * i)) & 31] for i in range(CODE_CHARS)]
    return "-".join("".join(chars[i:i + 4]) for i in range(0, CODE_CHARS, 4))


def normalize_code(code: str) -> str | None:
    """A code as typed (any case, dashes, spaces, O for 0, I or L for 1) in its canonical
    form, or None if it cannot be one."""
    if not isinstance(code, str):
        return None
    text = "".join(c for c in unicodedata.normalize("NFKC", code).upper()
                   if c not in "- ")
    text = "".join(_READ_AS.get(c, c) for c in text)
    if len(text) != CODE_CHARS or any(c not in ALPHABET for c in text):
        return None
    return "-".join(text[i:i + 4] for i in range(0, CODE_CHARS, 4))


def code_hash(key: bytes, code: str) -> str:
    """What the registry keeps of a code: HMAC-SHA-256 under the consent secret."""
    return hmac.new(key, code.encode("ascii"), hashlib.sha256).hexdigest()


def agency_requester(requester: str) -> str:
    """A requester that is one agency, ``REGION/agency-code`` (consents and fetches name
    one; only entitlements may name a whole region)."""
    try:
        check_requester(requester)
    except FormatError as e:
        raise InputError(f"requester {requester!r}: use REGION/agency-code",
                         code="invalid_requester") from e
    if "/" not in requester:
        raise InputError(f"requester {requester!r} is a region: name one agency, "
                         "REGION/agency-code", code="invalid_requester")
    return requester


def consent_params(holder: str, requester: str, types: Iterable[str], purpose: str,
                   ttl: int, channel: str) -> dict[str, Any]:
    """Checked parameters of ``consent.grant`` (``holder``: the holder's pseudonym)."""
    requester = agency_requester(requester)
    if not MIN_CONSENT_TTL <= ttl <= MAX_CONSENT_TTL:
        raise InputError(f"a consent lives from {MIN_CONSENT_TTL} seconds to "
                         f"{MAX_CONSENT_TTL // 86400} days", code="invalid_ttl")
    return {"id": "c-" + secrets.token_hex(8), "holder": holder, "requester": requester,
            "types": _names("types", types),
            "purpose": _names("purpose", [purpose], limit=MAX_PURPOSE)[0], "ttl": ttl,
            "channel": channel}


def _consent_target(repo: Repository, p: Mapping[str, Any]) -> Target:
    # Authorized by _grant itself: a clerk needs every type within their grant.
    return Target(Resource(type=p["types"][0]), p["id"])


def _require_types(unit: Unit, action: Action, types: Iterable[str]) -> list[list[str]]:
    """The (agency, type) pairs that authorize ``action``: for each type, an agency that
    issues it and is within the operator's grant (any, for the service)."""
    scope: list[list[str]] = []
    agencies = unit.repo.list_agencies()
    for type_code in types:
        if unit.repo.get_type(type_code) is None:
            raise NotFound(f"no certificate type {type_code!r}")
        issuers = [a.code for a in agencies if type_code in a.types]
        allowed = [a for a in issuers
                   if permits(unit.operator.grants, action, Resource(a, type_code))]
        if not allowed:
            raise PermissionDenied(f"operator {unit.operator.name} may not {action.value} "
                                   f"for type {type_code}")
        scope.append([allowed[0], type_code])
    return scope


class ConsentCode(NamedTuple):
    """A consent code as made: shown once (the registry keeps only its keyed hash)."""

    id: str  #: the consent's id (in use records and to revoke it)
    code: str  #: what the holder gives the requester: ``XXXX-XXXX-XXXX-XXXX``
    expires_at: int


class Consent(NamedTuple):
    """A consent as the registry keeps it (never the code)."""

    id: str
    requester: str
    types: tuple[str, ...]
    purpose: str
    channel: str  #: ``clerk`` (at the service window) or ``holder`` (their own channel)
    created_at: int
    expires_at: int
    used_at: int | None
    revoked_at: int | None

    @classmethod
    def from_row(cls, row: Any) -> Consent:
        """From a ``consents`` row."""
        return cls(row.id, row.requester, tuple(row.types), row.purpose, row.channel,
                   int(row.created_at), int(row.expires_at),
                   None if row.used_at is None else int(row.used_at),
                   None if row.revoked_at is None else int(row.revoked_at))


def _grant(unit: Unit, p: Mapping[str, Any]) -> ConsentCode:
    if p["channel"] == HOLDER_CHANNEL and Role.SERVICE not in unit.operator.roles:
        # The holder's channel is the service relaying the identity hook's holder.
        raise PermissionDenied(f"operator {unit.operator.name} is not the service: only it "
                               "grants consent for the holder's own channel")
    scope = _require_types(unit, Action.CONSENT_GRANT, p["types"])
    code = new_code()
    expires = unit.now + p["ttl"]
    unit.repo.add_consent(
        id=p["id"], code_hash=code_hash(unit.ctx.consent_key, code), holder=p["holder"],
        requester=p["requester"], types=list(p["types"]), purpose=p["purpose"],
        channel=p["channel"], created_at=unit.now, expires_at=expires)
    unit.log(Action.CONSENT_GRANT, p["id"], _consent_details(unit, p, expires, scope),
             private=True)
    return ConsentCode(p["id"], code, expires)


def salted(key: bytes, salt: str, value: str) -> str:
    """A commitment to ``value`` that is this record's alone (format section 15.3).

    A plain keyed commitment of a holder or a requester is the same in every entry that
    names them: the public log would show which consents and fetches concern one holder,
    and link a refused fetch (which names the holder asked about) to a granted one. Salted
    with the record's own subject, equal values give unrelated commitments; the registry,
    which has the key, still checks them.
    """
    return commitment(key, f"{salt}\x00{value}")


def consent_commitments(key: bytes, consent_id: str, holder: str, requester: str,
                        purpose: str) -> tuple[str, str, str]:
    """The holder, requester and purpose of a consent as its log entry commits to them."""
    return (salted(key, consent_id, holder), salted(key, consent_id, requester),
            salted(key, consent_id, purpose))


def _consent_details(unit: Unit, p: Mapping[str, Any], expires: int,
                     scope: list[list[str]]) -> dict[str, Any]:
    """What the log says of a consent: its terms, the holder, requester and purpose only
    as this consent's own commitments."""
    holder, requester, purpose = consent_commitments(
        unit.ctx.commitment_key, str(p["id"]), p["holder"], p["requester"], p["purpose"])
    return {"holder": holder, "requester": requester, "types": list(p["types"]),
            "purpose": purpose, "expires": expires, "channel": p["channel"], "scope": scope}


def _withdraw(unit: Unit, p: Mapping[str, Any]) -> str:
    row = unit.repo.get_consent(p["id"])
    if row is None or (p.get("holder") is not None and row.holder != p["holder"]):
        raise NotFound(f"no consent {p['id']!r}")
    scope = _require_types(unit, Action.CONSENT_REVOKE, row.types)
    if row.revoked_at is not None or row.used_at is not None or row.expires_at <= unit.now:
        raise InvalidTransition(f"consent {p['id']} is used, revoked or expired already",
                                code="consent_not_open")
    unit.repo.revoke_consent(row.id, unit.now)
    unit.log(Action.CONSENT_REVOKE, row.id, {"scope": scope}, private=True)
    return str(row.id)


GRANT_CONSENT = register(Operation(Action.CONSENT_GRANT, _consent_target, _grant,
                                   guarded=False, self_authorizing=True, private=True))
REVOKE_CONSENT = register(Operation(
    Action.CONSENT_REVOKE, lambda _repo, p: Target(Resource(), p["id"]), _withdraw,
    guarded=False, self_authorizing=True, private=True))


# -- use records -------------------------------------------------------------------------------


def use_subject(use_id: int) -> str:
    """The subject of a use record's log entry (published as its commitment)."""
    return f"use:{use_id}"


def use_details(key: bytes, row: Mapping[str, Any], salt: str) -> dict[str, Any]:
    """What a ``share.fetch`` entry says of a ``uses`` row: commitments of everything that
    would tell who fetched whose certificate (and, in ``record``, of the whole row: staff,
    service item, case, purpose, time); the outcome, problem code and types in clear. The
    holder, requester and certificates are committed with ``salt`` (the entry's subject),
    so that no two entries show equal values for them."""
    fields = [row[name] for name in _USE_FIELDS]
    return {"holder": salted(key, salt, row["holder"]),
            "requester": salted(key, salt, row["requester"]),
            "certificates": [salted(key, salt, c) for c in row["certificates"]],
            "consent": BY_STATUTE if row["by_statute"] else (
                None if row["consent"] is None else commitment(key, row["consent"])),
            "outcome": row["outcome"], "problem": row["problem"], "types": list(row["types"]),
            "request": commitment(key, row["request_hash"]),
            "response": None if row["response_hash"] is None
            else commitment(key, row["response_hash"]),
            "record": commitment(key, canonical_json(fields).decode("utf-8")),
            # Only a check says its kind (entries made before checks existed are fetches).
            **({} if row.get("kind", FETCH_KIND) == FETCH_KIND else {"kind": row["kind"]})}


#: The columns of a use record ``record`` commits to, in this order.
_USE_FIELDS = ("at", "holder", "requester", "staff_id", "staff_role", "service_item",
               "case_no", "purpose", "types", "certificates", "consent", "by_statute",
               "outcome", "problem", "request_hash", "response_hash")
