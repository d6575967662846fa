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
from ecert._formats.sharing import UseKind
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
from ecert.models import OperatorGrant, Role
from ecert.registry._core import Operation, Target, Unit, decoded, register

#: Crockford's base32 alphabet (no I, L, O, U).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_READ_AS = {"O": "0", "I": "1", "L": "1"}
#: 16 characters of 5 bits: 80 bits of randomness.
CODE_CHARS = 16
#: The kinds of use record: a fetch (``share.fetch``) or a check (核验, ``share.check``).
FETCH_KIND = UseKind.FETCH.value
CHECK_KIND = UseKind.CHECK.value
#: What a use record says in place of a consent id when the entitlement needs none.
BY_STATUTE = "by statute"
CLERK_CHANNEL = "clerk"
HOLDER_CHANNEL = "holder"
#: The longest a consent may live, and the shortest.
MAX_CONSENT_TTL = 30 * 24 * 3600
MIN_CONSENT_TTL = 60
#: Failed consent codes allowed per window, per requester and per (requester, holder)
#: pair; beyond either, a request that carries a code is answered ``too_many_requests``
#: without looking at it. Never per holder alone: a code is bound to one requester, so
#: another requester's wrong guesses bring no one closer to it, and a count per holder
#: would let any entitled requester deny the holder's consents to everyone.
FAILURE_WINDOW = 3600
MAX_FAILURES_PER_REQUESTER = 20
MAX_FAILURES_PER_PAIR = 5


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


def failure_scopes(requester: str, holder: str) -> tuple[str, str]:
    """The counts a wrong consent code adds to: the requester's, and the requester's for
    this holder (``holder``: the pseudonym)."""
    return f"requester:{requester}", f"pair:{requester}|{holder}"


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


#: The version of the consent and use entries this release writes (format 15.4): 2 scopes a
#: consent to the agencies it releases and names the channel of a revocation; a use
#: entry commits to its consent's terms and to its copies. Entries without ``version``
#: are version 1 and are read as they were written.
ENTRY_VERSION = 2

#: Who may act on each channel: a clerk at the window acts only through their clerk
#: grants, the holder's channel only through the ``service`` role (the holder
#: authenticated by the deployment's identity hook). Neither may act on the other's.
CHANNEL_ROLES = {CLERK_CHANNEL: Role.CLERK, HOLDER_CHANNEL: Role.SERVICE}


def channel_grants(grants: Iterable[OperatorGrant], channel: Any) -> list[OperatorGrant]:
    """The grants through which an operator acts on ``channel`` (none for an unknown one):
    the ``service`` operator cannot pass for a clerk, nor a clerk for the holder."""
    role = CHANNEL_ROLES.get(channel) if isinstance(channel, str) else None
    return [g for g in grants if g.role is role]


def _channel_scope(unit: Unit, action: Action, types: Iterable[str],
                   channel: str) -> list[list[str]]:
    """The ``[agency, type]`` pairs a consent of ``types`` made (or revoked) on ``channel``
    by the acting operator covers: for each type, every agency that issues it and is
    within the grants of the channel's role. A clerk's consent releases only their
    agencies' certificates, as their other work is only for their agencies; the holder's
    own consent (through the service, unscoped) releases every agency's."""
    grants = channel_grants(unit.operator.grants, channel)
    if not grants:
        raise PermissionDenied(
            f"operator {unit.operator.name} may not {action.value} on the {channel} channel "
            "(the window's channel is a clerk's, the holder's channel the service's)")
    scope: list[list[str]] = []
    agencies = unit.repo.list_agencies()
    for type_code in types:
        if unit.repo.get_type(type_code) is None:
            raise NotFound(f"no certificate type {type_code!r}")
        allowed = [a.code for a in agencies if type_code in a.types
                   and permits(grants, action, Resource(a.code, type_code))]
        if not allowed:
            raise PermissionDenied(f"operator {unit.operator.name} may not {action.value} "
                                   f"for type {type_code}")
        scope += [[code, type_code] for code in sorted(allowed)]
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
    #: The ``(agency, type)`` pairs whose certificates it releases; None for a consent
    #: granted before consents were scoped (its types, of any agency).
    scope: tuple[tuple[str, str], ...] | None = None

    @classmethod
    def from_row(cls, row: Any) -> Consent:
        """From a ``consents`` row."""
        return cls(row.id, row.requester, tuple(row.types), row.purpose, row.channel,
                   int(row.created_at), int(row.expires_at),
                   None if row.used_at is None else int(row.used_at),
                   None if row.revoked_at is None else int(row.revoked_at),
                   scope_of(row.scope))


def scope_of(value: Any) -> tuple[tuple[str, str], ...] | None:
    """A consent's scope as stored or logged (a list of ``[agency, type]``), as pairs."""
    if value is None:
        return None
    return tuple((str(a), str(t)) for a, t in value)


def _grant(unit: Unit, p: Mapping[str, Any]) -> ConsentCode:
    # Attributed to the signing operator in the role of its channel: the holder's channel
    # is the service relaying the identity hook's holder, the window's is a clerk's.
    scope = _channel_scope(unit, Action.CONSENT_GRANT, p["types"], p["channel"])
    code = new_code()
    expires = unit.now + p["ttl"]
    unit.repo.add_consent(
        id=p["id"], code_hash=code_hash(unit.ctx.consent_key, code), holder=p["holder"],
        requester=p["requester"], types=list(p["types"]), purpose=p["purpose"],
        channel=p["channel"], created_at=unit.now, expires_at=expires, scope=scope)
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
            "purpose": purpose, "expires": expires, "channel": p["channel"], "scope": scope,
            "version": ENTRY_VERSION}


def _withdraw(unit: Unit, p: Mapping[str, Any]) -> str:
    row = unit.repo.get_consent(p["id"])
    if row is None or (p.get("holder") is not None and row.holder != p["holder"]):
        raise NotFound(f"no consent {p['id']!r}")
    # The holder's channel names its holder; without one it is a clerk at the window.
    channel = CLERK_CHANNEL if p.get("holder") is None else HOLDER_CHANNEL
    scope = _channel_scope(unit, Action.CONSENT_REVOKE, row.types, channel)
    logged = logged_consent(unit.repo, str(row.id))
    if row.revoked_at is not None or row.used_at is not None or row.expires_at <= unit.now \
            or logged is None or logged.revoked or logged.spent:
        raise InvalidTransition(f"consent {p['id']} is used, revoked or expired already",
                                code="consent_not_open")
    unit.repo.revoke_consent(row.id, unit.now)
    unit.log(Action.CONSENT_REVOKE, row.id,
             {"scope": scope, "channel": channel, "version": ENTRY_VERSION}, private=True)
    return str(row.id)


class LoggedConsent(NamedTuple):
    """A consent as the log makes it: its grant's details, and whether a
    ``consent.revoke`` entry or a granted use closed it."""

    details: Mapping[str, Any]
    revoked: bool
    spent: bool


def logged_consent(repo: Repository, consent_id: str) -> LoggedConsent | None:
    """What the log says of a consent (None: no single grant that decodes — trust none).

    The ``consents`` row is a cache an insider can edit (clear ``used_at`` or
    ``revoked_at``); the log's rows are append-only and their leaves signed. One query of
    two indexed look-ups: the grant and revocations by subject, the spends by ``ref``
    (whose leaves need no reading: any entry that claims the spend closes the consent)."""
    grant: Mapping[str, Any] | None = None
    revoked = spent = False
    for row in repo.consent_log_rows(consent_id, [Action.CONSENT_GRANT.value,
                                                  Action.CONSENT_REVOKE.value]):
        if row.ref == consent_id:
            spent = True
            continue
        entry = decoded(row)
        if entry is None:
            return None
        if entry.action == Action.CONSENT_GRANT.value:
            if grant is not None:
                return None  # granted twice: trust neither
            grant = entry.details
        else:
            revoked = True
    if grant is None:
        return None
    return LoggedConsent(grant, revoked, spent)


GRANT_CONSENT = register(Operation(Action.CONSENT_GRANT, _consent_target, _grant,
                                   guarded=False, self_authorizing=True, private=True))
REVOKE_CONSENT = register(Operation(
    Action.CONSENT_REVOKE, lambda _repo, p: Target(Resource(), p["id"]), _withdraw,
    guarded=False, self_authorizing=True, private=True))


# -- use records -------------------------------------------------------------------------------


#: How the subject of a use record's log entry begins.
USE_PREFIX = "use:"


def use_subject(use_id: int) -> str:
    """The subject of a use record's log entry (published as its commitment)."""
    return f"{USE_PREFIX}{use_id}"


def use_details(key: bytes, row: Mapping[str, Any], salt: str) -> dict[str, Any]:
    """What a ``share.fetch`` entry says of a ``uses`` row: commitments of everything that
    would tell who fetched whose certificate (and, in ``record``, of the whole row: staff,
    service item, case, purpose, time); the outcome, problem code and types in clear. The
    holder, requester and certificates are committed with ``salt`` (the entry's subject),
    so that no two entries show equal values for them.

    Version 2 (a row with ``copies``, format 15.4) adds ``copies``, the hashes of the
    copies answered, which bind each copy to this entry (a copy the log does not hold was
    not served here), and ``terms``: for a use on a consent, the holder, requester and
    purpose salted with the consent's id — the very commitments of its ``consent.grant``
    entry, so that anyone replaying the log checks that the use kept to the consent."""
    fields = [row[name] for name in _USE_FIELDS]
    details = {
        "holder": salted(key, salt, row["holder"]),
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
    copies = row.get("copies")
    if copies is None:  # a use recorded before version 2
        return details
    terms = None
    if row["consent"] is not None and not row["by_statute"]:
        holder, requester, purpose = consent_commitments(
            key, str(row["consent"]), row["holder"], row["requester"], row["purpose"])
        terms = {"holder": holder, "requester": requester, "purpose": purpose}
    return {**details, "version": ENTRY_VERSION, "terms": terms, "copies": list(copies)}


#: The columns of a use record ``record`` commits to, in this order.
_USE_FIELDS = ("at", "holder", "requester", "staff_id", "staff_role", "service_item",
               "case_no", "purpose", "types", "certificates", "consent", "by_statute",
               "outcome", "problem", "request_hash", "response_hash")
