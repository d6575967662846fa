"""Replaying a region's log: who had authority, and what the registry's state must be.

Pure: entries in, state and findings out. Three callers share it, so one set of rules
judges the past everywhere:

* publication replays the trust-relevant entries and publishes only keys, agencies,
  types and agreements whose creation a permitted operator signed;
* ``ecert audit verify`` replays everything and compares the result with the database;
* ``ecert audit monitor`` replays the public tiles and compares the result with the
  published trust list and status lists, with no database at all.

Authority is rebuilt from the registry's first unit (its first admin) on: an operator
inserted into a database, a role widened there, or a key planted there gains nothing,
because none of it was signed by someone who held the authority at that point.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from ecert import _windows
from ecert._authority import (
    ADMIN_CHANGES,
    ALL_ROLES,
    Action,
    Resource,
    approvals_needed,
    grants_from_json,
    minimum_approvals,
    permits,
    revocations_digest,
)
from ecert._clock import DEFAULT_TZ
from ecert._formats.jose import jwk_thumbprint, key_from_jwk
from ecert._formats.log import LEGACY_OPERATOR, Entry, unit_message, verify_unit
from ecert._formats.statuslist import INVALID, SUSPENDED, VALID
from ecert._formats.trustlist import Agreement, Entitlement
from ecert.errors import FormatError
from ecert.models import OperatorGrant, Role

__all__ = ["Finding", "FindingKind", "KeyState", "Replay"]

#: How far an entry's time may run behind the one before (clock skew between hosts).
TIME_TOLERANCE_SECONDS = 300


#: Actions whose units may legitimately repeat, or whose repetition the replay refuses
#: by itself: they are not remembered against copies.
_REPEATABLE: Final = frozenset((Action.CERT_ISSUE.value, Action.ACCESS_REFUSED.value,
                                Action.CERT_QR.value))


class FindingKind:
    """The kinds of finding (documented in docs/format.md, "Audit findings")."""

    MALFORMED = "entry_malformed"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_OPERATOR = "unknown_operator"
    NO_AUTHORITY = "no_authority"
    MISSING_APPROVAL = "missing_approval"
    BAD_GENESIS = "bad_genesis"
    BACKDATED = "backdated"
    INVALID_TRANSITION = "invalid_transition"
    REPLAYED = "replayed_unit"


@dataclass(frozen=True, slots=True)
class Finding:
    """Something the log or the state does not account for."""

    kind: str
    subject: str
    seq: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        """As ``audit --json`` prints it."""
        return {"kind": self.kind, "subject": self.subject, "seq": self.seq,
                "detail": self.detail}


@dataclass
class OperatorState:
    subject: str
    kid: str
    jwk: Mapping[str, str]
    grants: tuple[OperatorGrant, ...]
    active: bool = True


@dataclass
class KeyState:
    """A registry key as the log proves it."""

    kid: str
    role: str
    agency: str | None
    jwk: Mapping[str, str]
    created_at: int
    retired_at: int | None = None
    compromised_since: int | None = None


@dataclass
class CertificateState:
    agency: str
    type: str
    list: int
    idx: int
    token: str
    status: int = VALID
    redacted: bool = False
    #: A revocation scheduled by a renewal's ``at_start``: the status reads INVALID from
    #: this time on (the status stays as last set, as in the database).
    revoke_at: int | None = None
    #: The batch idempotency key its issue entry carries (None: issued alone).
    key: str | None = None

    def status_at(self, time: int) -> int:
        """The status in effect at ``time``."""
        return INVALID if self.revoke_at is not None and time >= self.revoke_at else self.status


@dataclass
class ConsentState:
    """A consent code as the log has it (commitments where the entry has them)."""

    holder: str  #: commitment to the holder's pseudonym
    requester: str  #: commitment to the requester
    types: tuple[str, ...]
    purpose: str  #: commitment to the purpose
    expires: int
    channel: str
    revoked_at: int | None = None
    used_at: int | None = None
    #: The ``[agency, type]`` pairs it releases (a version 2 grant); None: any agency.
    scope: tuple[tuple[str, str], ...] | None = None


@dataclass
class RequestState:
    action: str
    subject: str
    agency: str | None
    type: str | None
    requester: str  #: operator subject
    needed: int
    expires: int
    approvals: set[str] = field(default_factory=set)
    open: bool = True


# The replay compares every entry's action with many of these: plain strings, because an
# enum member's ``.value`` is a descriptor call (about 30 per certificate entry).
_V_AGENCY_ADD: Final = Action.AGENCY_ADD.value
_V_AGREEMENT_ADD: Final = Action.AGREEMENT_ADD.value
_V_AGREEMENT_UPDATE: Final = Action.AGREEMENT_UPDATE.value
_V_AGREEMENT_WITHDRAW: Final = Action.AGREEMENT_WITHDRAW.value
_V_CERT_ISSUE: Final = Action.CERT_ISSUE.value
_V_CERT_REDACT: Final = Action.CERT_REDACT.value
_V_CERT_REINSTATE: Final = Action.CERT_REINSTATE.value
_V_CERT_REVOKE: Final = Action.CERT_REVOKE.value
_V_CERT_REVOKE_BATCH: Final = Action.CERT_REVOKE_BATCH.value
_V_CERT_SUSPEND: Final = Action.CERT_SUSPEND.value
_V_KEY_COMPROMISE: Final = Action.KEY_COMPROMISE.value
_V_KEY_CREATE: Final = Action.KEY_CREATE.value
_V_KEY_RETIRE: Final = Action.KEY_RETIRE.value
_V_KEY_ROTATE: Final = Action.KEY_ROTATE.value
_V_OPERATOR_ADD: Final = Action.OPERATOR_ADD.value
_V_OPERATOR_DISABLE: Final = Action.OPERATOR_DISABLE.value
_V_OPERATOR_GRANT: Final = Action.OPERATOR_GRANT.value
_V_OPERATOR_RESET: Final = Action.OPERATOR_RESET.value
_V_OPERATOR_ROTATE_KEY: Final = Action.OPERATOR_ROTATE_KEY.value
_V_POLICY_SET: Final = Action.POLICY_SET.value
_V_REGISTRY_ADOPT: Final = Action.REGISTRY_ADOPT.value
_V_REGISTRY_INIT: Final = Action.REGISTRY_INIT.value
_V_REGISTRY_PUBLISH: Final = Action.REGISTRY_PUBLISH.value
_V_REQUEST_APPROVE: Final = Action.REQUEST_APPROVE.value
_V_REQUEST_CREATE: Final = Action.REQUEST_CREATE.value
_V_REQUEST_REJECT: Final = Action.REQUEST_REJECT.value
_V_ROOT_ROTATE: Final = Action.ROOT_ROTATE.value
_V_TYPE_ADD: Final = Action.TYPE_ADD.value
_V_WITNESS_COSIGN: Final = Action.WITNESS_COSIGN.value
_ACTIONS: Final = {a.value: a for a in Action}


def _action(value: str) -> Action:
    """``Action(value)``, without the enum machinery (the same ValueError)."""
    try:
        return _ACTIONS[value]
    except (KeyError, TypeError):
        raise ValueError(f"{value!r} is not a valid Action") from None


_KEY_MAKERS = frozenset({Action.REGISTRY_INIT, Action.REGISTRY_ADOPT, Action.AGENCY_ADD,
                         Action.KEY_ROTATE, Action.KEY_COMPROMISE, Action.ROOT_ROTATE})
_EFFECTS = frozenset({Action.KEY_CREATE, Action.KEY_RETIRE})
_SELF_SERVICE = frozenset({Action.OPERATOR_ROTATE_KEY, Action.OPERATOR_PASSWD})
_NO_AUTHORITY_NEEDED = frozenset({Action.ACCESS_REFUSED})
_KEY_MAKER_VALUES: Final = frozenset(a.value for a in _KEY_MAKERS)
_EFFECT_VALUES: Final = frozenset(a.value for a in _EFFECTS)
_TRANSITIONS = {
    _V_CERT_SUSPEND: ({VALID}, SUSPENDED),
    _V_CERT_REINSTATE: ({SUSPENDED}, VALID),
    _V_CERT_REVOKE: ({VALID, SUSPENDED}, INVALID),
    Action.CERT_SUPERSEDE.value: ({VALID}, INVALID),
}


class Replay:
    """Apply units of work in log order; read the state and the findings."""

    #: How a unit's operator signature is checked (a monitor may check them ahead, in
    #: parallel, and answer from what it found).
    verify_unit = staticmethod(verify_unit)

    def __init__(self, *, certificates: bool = True,
                 only: frozenset[str] | None = None,
                 issued_from: int | None = None) -> None:
        self.track_certificates = certificates
        #: The certificates followed (their subjects as the log shows them), None for
        #: all: publication replays only the units about the certificates whose status
        #: changed, and other certificates' entries in those units are not errors.
        self.only = only
        #: With ``only``: also follow every certificate whose issue entry is at this
        #: index of the log or later (publication judges the issues since its previous
        #: lists this way).
        self.issued_from = issued_from
        #: The certificates followed through ``issued_from``: subject -> the index of the
        #: issue entry the replay accepted, in log order.
        self.issued: dict[str, int] = {}
        self.size = 0
        self.region: str | None = None
        self.origin: str | None = None
        self.base_url: str | None = None
        self.region_name: str | None = None
        #: The registry's time zone as the genesis unit set it (logs from before the zone
        #: was logged: the default every older registry was given).
        self.tz: str = DEFAULT_TZ
        self.operators: dict[str, OperatorState] = {}  # by subject
        self.operator_kids: dict[str, str] = {}  # current kid -> subject
        self.policies: dict[tuple[str, str], int] = {}
        self.requests: dict[int, RequestState] = {}
        self.types: dict[str, dict[str, Any]] = {}
        #: Every logged version of every type: ``(code, version) -> details``.
        self.type_versions: dict[tuple[str, int], dict[str, Any]] = {}
        self.agencies: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, KeyState] = {}
        self.agreements: dict[str, Agreement] = {}
        #: Entitlements (用证清单) by id, ended ones included.
        self.entitlements: dict[str, Entitlement] = {}
        #: Consent codes by the commitment the log shows (tracked with the certificates).
        self.consents: dict[str, ConsentState] = {}
        #: Use records (``share.fetch`` details) by the commitment the log shows.
        self.uses: dict[str, dict[str, Any]] = {}
        self.root_rotations: list[str] = []
        self.certificates: dict[str, CertificateState] = {}
        #: list id -> {index: status value}; only indices the log allocated.
        self.statuses: dict[int, dict[int, int]] = {}
        #: list id -> {index: time}: scheduled revocations not overtaken by another one.
        self.scheduled: dict[int, dict[int, int]] = {}
        #: certificate subject -> (agency, type) of the successor issued in the current
        #: unit (an issue entry's ``replaces``), which its certificate.supersede must match.
        self._replacing: dict[str, tuple[str, str]] = {}
        self.cosigned: dict[str, tuple[int, str]] = {}
        self.publications: list[dict[str, Any]] = []
        self.findings: list[Finding] = []
        #: Digests of the signed messages of the units applied that change state: a
        #: unit's signature covers its entries, not its place in the log, so the same
        #: unit appended again after later ones is refused. Units of repeatable entries
        #: only are left out (an issue repeated is refused anyway, as issued twice; a
        #: refusal or a QR signed twice in one second is legitimately the same unit;
        #: keeping batch units out keeps this set as small as the changes).
        self.applied: set[bytes] = set()
        self._last_time = 0
        self._genesis = False

    # -- input -------------------------------------------------------------------------------

    def apply_leaves(self, leaves: Iterable[tuple[int, bytes]]) -> None:
        """Apply leaves in order, grouping them into units (a unit ends at its ``sig``).

        A unit's entries are consecutive: where the leaves given skip some of the log (a
        publication replays only the units it needs), an unfinished unit before the gap
        is reported, never joined to what follows it."""
        unit: list[tuple[int, Entry]] = []
        last: int | None = None
        for seq, leaf in leaves:
            if unit and last is not None and seq != last + 1:
                self._find(FindingKind.MALFORMED, unit[0][1].subject, unit[0][0],
                           "a unit of work without its signature (truncated or edited)")
                unit = []
            last = seq
            try:
                entry = Entry.decode(leaf)
            except FormatError as e:
                self._find(FindingKind.MALFORMED, "", seq, e.message)
                continue
            if entry.operator == LEGACY_OPERATOR:
                self._legacy(seq, entry)
                continue
            unit.append((seq, entry))
            if entry.sig is not None:
                self.apply_unit(unit)
                unit = []
        if unit:
            self._find(FindingKind.MALFORMED, unit[0][1].subject, unit[0][0],
                       "a unit of work without its signature (truncated or edited)")

    def apply_unit(self, unit: Sequence[tuple[int, Entry]]) -> None:
        """Check one signed unit's signature and authority, then apply its effects."""
        first_seq, first = unit[0]
        entries = [e for _, e in unit]
        self.size = max(self.size, unit[-1][0] + 1)
        if first.time < self._last_time - TIME_TOLERANCE_SECONDS:
            self._find(FindingKind.BACKDATED, first.subject, first_seq,
                       f"time {first.time} runs behind earlier entries ({self._last_time})")
        behind = first.time < self._last_time
        self._last_time = max(self._last_time, first.time)
        if not self._genesis:
            self._apply_genesis(unit)
            return
        subject = self.operator_kids.get(first.operator)
        operator = self.operators.get(subject) if subject else None
        if operator is None or not operator.active:
            self._find(FindingKind.UNKNOWN_OPERATOR, first.subject, first_seq,
                       f"signed by {first.operator}, which is no active operator at this point")
            return
        if not self.verify_unit(entries, operator.jwk):
            self._find(FindingKind.BAD_SIGNATURE, first.subject, first_seq,
                       "the unit's operator signature does not verify")
            return
        if not self._authorized(operator, unit) or not self._batches_match(unit):
            return
        digest = None
        if any(e.action not in _REPEATABLE for e in entries):
            digest = hashlib.sha256(unit_message(entries)).digest()[:16]
            # The same unit again with later units between (its time behind theirs): a
            # copy. Twice in a row within one second is a setting made twice, harmless.
            if behind and digest in self.applied:
                self._find(FindingKind.REPLAYED, first.subject, first_seq,
                           "a unit applied before, appended again after later units "
                           "(not applied)")
                return
        self._replacing = {}
        for seq, entry in unit:
            self._effect(seq, entry, operator)
        self._replacing = {}
        if digest is not None:
            self.applied.add(digest)

    # -- authority -----------------------------------------------------------------------

    def _authorized(self, operator: OperatorState, unit: Sequence[tuple[int, Entry]]) -> bool:
        seq, first = unit[0]
        try:
            action = _action(first.action)
        except ValueError:
            self._find(FindingKind.MALFORMED, first.subject, seq, f"unknown action {first.action}")
            return False
        if action in _NO_AUTHORITY_NEEDED:
            return True
        if action in _SELF_SERVICE:
            if first.subject != operator.subject:
                return self._deny(first, seq, "changed another operator's key")
            return True
        if action in (Action.REQUEST_APPROVE, Action.REQUEST_REJECT):
            return self._decision(operator, unit, action)
        if action is Action.REQUEST_CREATE:
            details = first.details
            try:
                requested = _action(str(details.get("action")))
            except ValueError:
                return self._deny(first, seq, "request for an unknown action")
            resource = Resource(details.get("agency"), details.get("type"))
            if not permits(operator.grants, requested, resource):
                return self._deny(first, seq, f"may not request {requested.value}")
            return True
        makes_keys = any(e.action in _KEY_MAKER_VALUES for _, e in unit)
        # A batch's unit holds a thousand certificate entries of one agency and type: each
        # (action, agency, type) is judged once (the operator, policies and admin count
        # do not change within a unit).
        judged: set[tuple[str, str | None, str | None]] = set()
        for entry_seq, entry in unit:
            if entry.action.startswith("certificate."):
                agency, type_code = entry.details.get("agency"), entry.details.get("type")
                if isinstance(agency, str | None) and isinstance(type_code, str | None):
                    memo = (entry.action, agency, type_code)
                    if memo in judged:
                        continue
                    judged.add(memo)
            try:
                entry_action = _action(entry.action)
            except ValueError:
                self._find(FindingKind.MALFORMED, entry.subject, entry_seq,
                           f"unknown action {entry.action}")
                return False
            if entry_action in _EFFECTS:
                if not makes_keys:
                    return self._deny(entry, entry_seq, f"{entry.action} outside a key change")
                continue
            if entry_action in (Action.REGISTRY_INIT, Action.REGISTRY_ADOPT):
                return self._deny(entry, entry_seq, "a second genesis")
            if entry_action is Action.CERT_SUPERSEDE:
                # Authorized by the issue of its successor in the same unit (checked on
                # that entry); the pairing is checked where the effect is applied.
                continue
            if entry_action in _SCOPED_BY_DETAILS:
                why = _consent_authority(operator.grants, entry_action, entry.details)
                if why is not None:
                    return self._deny(entry, entry_seq, why)
                continue
            resource = _resource(entry)
            if not permits(operator.grants, entry_action, resource):
                return self._deny(entry, entry_seq, f"may not {entry.action}")
            # Only changes of the admins themselves depend on how many there are; counting
            # them for every certificate would cost O(operators) per unit.
            admins = self._admin_count() if entry_action in ADMIN_CHANGES else 0
            needed = max(approvals_needed(self.policies, _policy_action(entry_action),
                                          resource.type, admins),
                         minimum_approvals(entry_action, entry.details))
            if needed > 1:
                self._find(FindingKind.MISSING_APPROVAL, entry.subject, entry_seq,
                           f"{entry.action} needs {needed} operators but was not approved")
                return False
        return True

    def _batches_match(self, unit: Sequence[tuple[int, Entry]]) -> bool:
        """A revocation batch's head names, by its subject, exactly the revocations that
        follow it in the unit (so an approved batch is the batch that was asked for)."""
        for i, (seq, entry) in enumerate(unit):
            if entry.action != _V_CERT_REVOKE_BATCH:
                continue
            revoked = []
            for _seq, following in unit[i + 1:]:
                if following.action != _V_CERT_REVOKE:
                    break
                revoked.append((following.subject, str(following.details.get("reason"))))
            if (revocations_digest(revoked) != entry.subject
                    or entry.details.get("count") != len(revoked)):
                return self._deny(entry, seq, "a revocation batch whose entries are not the "
                                              "ones it names")
        return True

    def _admin_count(self) -> int:
        return sum(1 for o in self.operators.values()
                   if o.active and any(g.role is Role.ADMIN for g in o.grants))

    def _decision(self, operator: OperatorState, unit: Sequence[tuple[int, Entry]],
                  action: Action) -> bool:
        seq, first = unit[0]
        request_id = first.details.get("request")
        request = self.requests.get(request_id) if type(request_id) is int else None
        if request is None or not request.open:
            return self._deny(first, seq, "decides a request that is not pending")
        if first.time >= request.expires:
            return self._deny(first, seq, "decides an expired request")
        if operator.subject == request.requester or operator.subject in request.approvals:
            return self._deny(first, seq, "an operator approved their own request")
        try:
            requested = _action(request.action)
        except ValueError:
            return self._deny(first, seq, "request for an unknown action")
        if not permits(operator.grants, requested, Resource(request.agency, request.type)):
            return self._deny(first, seq, f"may not decide on {request.action}")
        if action is Action.REQUEST_REJECT:
            if len(unit) != 1:
                return self._deny(first, seq, "a rejection that changes something")
            return True
        final = len(request.approvals) + 2 >= request.needed
        effects = [e for _, e in unit[1:] if e.action not in _EFFECT_VALUES]
        if not final and effects:
            return self._deny(first, seq, "carried out a request before enough approvals")
        if final and (not effects or effects[0].action not in (request.action,
                                                                  _update_of(request.action))
                      or (effects[0].subject != request.subject
                          and request.action != _V_CERT_ISSUE)):
            return self._deny(first, seq, "carried out something other than the request")
        return True

    def _deny(self, entry: Entry, seq: int, why: str) -> bool:
        self._find(FindingKind.NO_AUTHORITY, entry.subject, seq, why)
        return False

    # -- effects ---------------------------------------------------------------------------

    def _apply_genesis(self, unit: Sequence[tuple[int, Entry]]) -> None:
        seq, first = unit[0]
        if first.action not in (_V_REGISTRY_INIT, _V_REGISTRY_ADOPT):
            self._find(FindingKind.BAD_GENESIS, first.subject, seq,
                       "the log does not start with registry.init or registry.adopt")
            return
        admins = [e for _, e in unit if e.action == _V_OPERATOR_ADD]
        admin = admins[0] if admins else None
        key = admin.details.get("key") if admin else None
        if admin is None or not isinstance(key, dict) or key.get("kid") != first.operator:
            self._find(FindingKind.BAD_GENESIS, first.subject, seq,
                       "the first unit is not signed by the first admin it adds")
            return
        if not self.verify_unit([e for _, e in unit], key):
            self._find(FindingKind.BAD_SIGNATURE, first.subject, seq,
                       "the first unit's signature does not verify")
            return
        self._genesis = True
        self.region = first.subject
        self.origin = first.details.get("origin")
        self.base_url = first.details.get("base_url")
        self.region_name = first.details.get("name")
        self.tz = str(first.details.get("tz", DEFAULT_TZ))
        operator = OperatorState(admin.subject, first.operator, key, ALL_ROLES)
        for entry_seq, entry in unit:
            self._effect(entry_seq, entry, operator)

    def _effect(self, seq: int, entry: Entry, operator: OperatorState) -> None:
        d = entry.details
        action = entry.action
        try:
            # The commonest entries first (no other branch matches a certificate action).
            if action.startswith("certificate."):
                if self.track_certificates:
                    recent = (action == _V_CERT_ISSUE and self.issued_from is not None
                              and seq >= self.issued_from)
                    if (self.only is None or recent or entry.subject in self.only
                            or entry.subject in self.issued):
                        self._certificate(seq, entry)
                        if recent:
                            self.issued[entry.subject] = seq  # only once accepted
                    elif action == _V_CERT_ISSUE and d.get("replaces") is not None:
                        # A successor not followed still pairs with its predecessor.
                        self._replacing[str(d["replaces"])] = (d["agency"], d["type"])
            elif action == _V_OPERATOR_ADD:
                jwk = d["key"]
                key_from_jwk(jwk)
                state = OperatorState(entry.subject, jwk["kid"], jwk, grants_from_json(d["grants"]))
                self.operators[entry.subject] = state
                self.operator_kids[state.kid] = entry.subject
            elif action in (_V_OPERATOR_ROTATE_KEY, _V_OPERATOR_RESET):
                target = self.operators[entry.subject]
                key_from_jwk(d["key"])
                self.operator_kids.pop(target.kid, None)
                target.kid, target.jwk = d["key"]["kid"], d["key"]
                self.operator_kids[target.kid] = entry.subject
            elif action == _V_OPERATOR_GRANT:
                self.operators[entry.subject].grants = grants_from_json(d["grants"])
            elif action == _V_OPERATOR_DISABLE:
                self.operators[entry.subject].active = False
            elif action == _V_POLICY_SET:
                key = (entry.subject, d.get("type") or "")
                if d["approvals"] > 1:
                    self.policies[key] = d["approvals"]
                else:
                    self.policies.pop(key, None)
            elif action == _V_REQUEST_CREATE:
                self.requests[d["request"]] = RequestState(
                    d["action"], entry.subject, d.get("agency"), d.get("type"),
                    operator.subject, d["approvals"], d["expires"])
            elif action == _V_REQUEST_APPROVE:
                request = self.requests[d["request"]]
                request.approvals.add(operator.subject)
                if d.get("final"):
                    request.open = False
            elif action == _V_REQUEST_REJECT:
                self.requests[d["request"]].open = False
            elif action == _V_TYPE_ADD:
                if entry.subject in self.types:
                    raise ValueError("type added twice")
                self.types[entry.subject] = dict(d)
                self.type_versions[(entry.subject, d["version"])] = dict(d)
            elif action == Action.TYPE_UPDATE.value:
                previous = self.types[entry.subject]
                if d["version"] <= previous["version"] or (
                        d["national_type_code"] != previous["national_type_code"]):
                    raise ValueError("a type update needs a newer version of the same type")
                self.types[entry.subject] = dict(d)
                self.type_versions[(entry.subject, d["version"])] = dict(d)
            elif action == Action.CATALOG_IMPORT.value:
                pass  # its type.add / type.update entries follow in the same unit
            elif action == _V_AGENCY_ADD:
                self.agencies[entry.subject] = {"name": d["name"], "uscc": d["uscc"],
                                                "types": tuple(d["types"]), "windows": {}}
            elif action == Action.AGENCY_RENAME.value:
                if not isinstance(d["name"], str):
                    raise ValueError("an agency name is a string")
                self.agencies[entry.subject]["name"] = d["name"]
            elif action in (Action.AGENCY_ALLOW_TYPE.value, Action.AGENCY_DENY_TYPE.value):
                self._agency_type(entry.subject, d)
            elif action == _V_KEY_CREATE:
                jwk = d["jwk"]
                key_from_jwk(jwk)
                if jwk.get("kid") != jwk_thumbprint(jwk) or jwk["kid"] != entry.subject:
                    raise ValueError("key id is not the key's thumbprint")
                self.keys[entry.subject] = KeyState(entry.subject, d["role"], d.get("agency"),
                                                    jwk, entry.time)
            elif action == _V_KEY_RETIRE:
                self.keys[entry.subject].retired_at = entry.time
            elif action == _V_KEY_COMPROMISE:
                compromised = self.keys[entry.subject]
                compromised.compromised_since = d["since"]
                if compromised.retired_at is None:
                    compromised.retired_at = entry.time
            elif action == _V_ROOT_ROTATE:
                self.keys[entry.subject].retired_at = entry.time
                self.root_rotations.append(d["statement"])
            elif action in (_V_AGREEMENT_ADD, _V_AGREEMENT_UPDATE):
                self.agreements[entry.subject] = Agreement.from_json(d["agreement"])
            elif action == _V_AGREEMENT_WITHDRAW:
                self.agreements.pop(entry.subject, None)
            elif action == Action.SHARE_ALLOW.value:
                value = Entitlement.from_json(d["entitlement"])
                if value.id != entry.subject or value.id in self.entitlements:
                    raise ValueError("an entitlement is allowed once, under its own id")
                if d["without_consent"] is not value.without_consent:
                    raise ValueError("the entitlement's without_consent differs from the "
                                     "entry's")
                self.entitlements[value.id] = value
            elif action == Action.SHARE_REVOKE.value:
                value = self.entitlements[entry.subject]
                until = d["valid_until"]
                if type(until) is not int or until < value.valid_from:
                    raise ValueError("an entitlement ends after it starts")
                # Only ever earlier, and not later than the revocation: the audit judges
                # past uses by the entitlements' final state (registry/_audit.py).
                if until > entry.time or (value.valid_until is not None
                                          and until > value.valid_until):
                    raise ValueError("a revocation ends an entitlement at the latest then")
                self.entitlements[value.id] = replace(value, valid_until=until)
            elif action == Action.CONSENT_GRANT.value:
                if self.track_certificates:
                    if entry.subject in self.consents:
                        raise ValueError("a consent granted twice")
                    self.consents[entry.subject] = ConsentState(
                        str(d["holder"]), str(d["requester"]), tuple(d["types"]),
                        str(d["purpose"]), int(d["expires"]), str(d["channel"]),
                        scope=_consent_scope(d))
            elif action == Action.CONSENT_REVOKE.value:
                if self.track_certificates:
                    self.consents[entry.subject].revoked_at = entry.time
            elif action in (Action.SHARE_FETCH.value, Action.SHARE_CHECK.value):
                if self.track_certificates:
                    self._fetch(seq, entry)
            elif action == _V_WITNESS_COSIGN:
                self.cosigned[d["origin"]] = (d["size"], d["root"])
            elif action == _V_REGISTRY_PUBLISH:
                self.publications.append(dict(d))
        except (KeyError, TypeError, ValueError, FormatError) as e:
            self._find(FindingKind.MALFORMED, entry.subject, seq,
                       f"{action} entry cannot be applied: {e}")

    def _fetch(self, seq: int, entry: Entry) -> None:
        d = entry.details
        if entry.subject in self.uses:
            raise ValueError("a use recorded twice")
        if (entry.action == Action.SHARE_CHECK.value) != (d.get("kind", "fetch") == "check"):
            raise ValueError("a check's use record is of kind check, a fetch's of none")
        if d["outcome"] not in ("granted", "refused") or (
                (d["outcome"] == "refused") != isinstance(d["problem"], str)):
            raise ValueError("a use is granted, or refused with a problem code")
        if "version" in d:
            _check_use_v2(entry)
        consent = d["consent"]
        if d["outcome"] == "granted" and isinstance(consent, str) and consent != "by statute":
            state = self.consents.get(consent)
            if state is None or state.used_at is not None or state.revoked_at is not None \
                    or entry.time >= state.expires:
                self._find(FindingKind.INVALID_TRANSITION, entry.subject, seq,
                           "a fetch granted on a consent that was not open")
            else:
                state.used_at = entry.time
                why = _outside_consent(d, state)
                if why is not None:
                    self._find(FindingKind.INVALID_TRANSITION, entry.subject, seq, why)
        self.uses[entry.subject] = dict(d)

    def _agency_type(self, code: str, d: Mapping[str, Any]) -> None:
        agency = self.agencies[code]
        type_code = d["type"]
        if not isinstance(type_code, str) or type_code not in self.types:
            raise ValueError(f"no type {type_code!r}")
        windows = _windows.parse(d["windows"])
        all_windows = dict(agency.get("windows") or {})
        if windows is None:
            all_windows.pop(type_code, None)
        else:
            all_windows[type_code] = windows
        agency["windows"] = all_windows
        agency["types"] = tuple(sorted({*agency["types"], type_code}))

    def agency_may_issue(self, code: str, type_code: str, at: int) -> bool:
        """Whether the log gave agency ``code`` the type at time ``at``."""
        agency = self.agencies.get(code)
        if agency is None or type_code not in agency["types"]:
            return False
        return _windows.covers((agency.get("windows") or {}).get(type_code), at)

    def _certificate(self, seq: int, entry: Entry) -> None:
        d = entry.details
        if entry.action == _V_CERT_ISSUE:
            if entry.subject in self.certificates:
                raise ValueError("issued twice")
            slots = self.statuses.setdefault(d["list"], {})
            if d["idx"] in slots:
                raise ValueError(f"status slot {d['list']}/{d['idx']} allocated twice")
            slots[d["idx"]] = VALID
            key = d.get("key")
            if key is not None and not isinstance(key, str):
                raise ValueError("a batch key is text")
            self.certificates[entry.subject] = CertificateState(
                d["agency"], d["type"], d["list"], d["idx"], d["token"], key=key)
            if not self.agency_may_issue(d["agency"], d["type"], entry.time):
                self._find(FindingKind.NO_AUTHORITY, entry.subject, seq,
                           f"agency {d['agency']} was not given {d['type']} at that time")
            replaces = d.get("replaces")
            if replaces is not None:
                self._replacing[str(replaces)] = (d["agency"], d["type"])
            return
        if entry.action == _V_CERT_REVOKE_BATCH:
            return  # the head of the revocations that follow (checked with its unit)
        cert = self.certificates.get(entry.subject)
        if cert is None:
            raise ValueError("a certificate the log never issued")
        if entry.action == _V_CERT_REDACT:
            cert.redacted = True
            return
        if entry.action == Action.CERT_QR.value:
            # A QR signed as "valid" while the log says otherwise was an unmarked print of
            # a certificate nobody may rely on.
            if cert.redacted:
                raise ValueError("a QR code of a redacted certificate")
            if d["standing"] == "valid" and cert.status_at(entry.time) != VALID:
                self._find(FindingKind.INVALID_TRANSITION, entry.subject, seq,
                           f"{entry.action} signed as valid for a certificate whose status "
                           f"is {cert.status_at(entry.time)}")
            return
        if entry.action in _TRANSITIONS:
            if (d.get("agency"), d.get("type")) != (cert.agency, cert.type):
                # The authority was judged for the agency and type the entry names.
                self._find(FindingKind.NO_AUTHORITY, entry.subject, seq,
                           f"{entry.action} names {d.get('agency')}/{d.get('type')}, but the "
                           f"certificate was issued as {cert.agency}/{cert.type}")
                return
            if (d.get("list"), d.get("idx")) != (cert.list, cert.idx):
                # Applied to the certificate's own slot; the entry's copy came from a row.
                self._find(FindingKind.MALFORMED, entry.subject, seq,
                           f"{entry.action} names slot {d.get('list')}/{d.get('idx')}, not "
                           f"the certificate's {cert.list}/{cert.idx}")
        if entry.action == Action.CERT_SUPERSEDE.value:
            if self._replacing.pop(entry.subject, None) != (cert.agency, cert.type):
                self._find(FindingKind.NO_AUTHORITY, entry.subject, seq,
                           "superseded without a successor of its agency and type issued "
                           "in the same unit")
                return
            if cert.revoke_at is not None:
                self._find(FindingKind.INVALID_TRANSITION, entry.subject, seq,
                           "superseded twice")
                return
        allowed, value = _TRANSITIONS[entry.action]
        status = cert.status_at(entry.time)
        if status not in allowed:
            # Changes nothing: a revocation is final, whatever a row was made to say
            # before the registry was asked to reinstate it (publication reads this).
            self._find(FindingKind.INVALID_TRANSITION, entry.subject, seq,
                       f"{entry.action} of a certificate whose status is {status}")
            return
        at = d.get("at") if entry.action == Action.CERT_SUPERSEDE.value else None
        if at is not None:
            if type(at) is not int:
                raise ValueError("a scheduled revocation's time is not an integer")
            if at > entry.time:
                cert.revoke_at = at
                self.scheduled.setdefault(cert.list, {})[cert.idx] = at
                return
        cert.status = value
        self.statuses[cert.list][cert.idx] = value
        if value == INVALID and cert.revoke_at is not None:
            cert.revoke_at = None  # revoked now: nothing left scheduled
            self.scheduled.get(cert.list, {}).pop(cert.idx, None)

    def _legacy(self, seq: int, entry: Entry) -> None:
        if self._genesis:
            self._find(FindingKind.NO_AUTHORITY, entry.subject, seq,
                       "an unsigned legacy entry after the log began")
        self.size = max(self.size, seq + 1)

    def _find(self, kind: str, subject: str, seq: int | None, detail: str) -> None:
        self.findings.append(Finding(kind, subject, seq, detail))

    # -- output ----------------------------------------------------------------------------

    def status_value(self, list_id: int, index: int, at: int | None = None) -> int:
        """What a published status list must say at an index: unallocated ones are invalid;
        with ``at`` (the list's ``iat``), scheduled revocations due by then read invalid."""
        if at is not None and self.scheduled.get(list_id, {}).get(index, at + 1) <= at:
            return INVALID
        return self.statuses.get(list_id, {}).get(index, INVALID)

    def entitlements_at(self, at: int) -> tuple[Entitlement, ...]:
        """The entitlements a trust list issued at ``at`` carries: those not ended by then,
        by id (publication and the monitor ask the same)."""
        return tuple(sorted((e for e in self.entitlements.values()
                             if e.valid_until is None or e.valid_until > at),
                            key=lambda e: e.id))

    def statuses_at(self, list_id: int, at: int) -> dict[int, int]:
        """The allocated indices of a list and their status at ``at`` (a list's ``iat``)."""
        slots = dict(self.statuses.get(list_id, {}))
        for index, when in self.scheduled.get(list_id, {}).items():
            if when <= at:
                slots[index] = INVALID
        return slots


def _resource(entry: Entry) -> Resource:
    d = entry.details
    action = entry.action
    if action.startswith("certificate."):
        return Resource(d.get("agency"), d.get("type"))
    if action in (_V_AGENCY_ADD, _V_KEY_ROTATE,
                  Action.AGENCY_RENAME.value):
        return Resource(agency=entry.subject)
    if action in (Action.AGENCY_ALLOW_TYPE.value, Action.AGENCY_DENY_TYPE.value):
        return Resource(agency=entry.subject, type=d.get("type"))
    if action == Action.TYPE_UPDATE.value:
        return Resource(type=entry.subject)
    if action == _V_KEY_COMPROMISE:
        return Resource(agency=d.get("agency"))
    if action == _V_TYPE_ADD:
        return Resource(type=entry.subject)
    return Resource()


#: Actions whose entries name the (agency, type) pairs that authorize them.
_SCOPED_BY_DETAILS = frozenset({Action.CONSENT_GRANT, Action.CONSENT_REVOKE})
#: The role through which each channel acts (``registry/_sharing.py``, CHANNEL_ROLES).
_CHANNEL_ROLES: Final = {"clerk": Role.CLERK, "holder": Role.SERVICE}


def _consent_authority(grants: Iterable[OperatorGrant], action: Action,
                       details: Mapping[str, Any]) -> str | None:
    """Why the operator holding ``grants`` had no authority for a consent entry (None: it
    had): on a channel (every grant; a revocation of version 1 names none), only the
    grants of the channel's role count — the service is never a clerk, a clerk never the
    holder's channel — and they must permit every ``[agency, type]`` of its scope."""
    channel = details.get("channel")
    if channel is None and action is Action.CONSENT_REVOKE and "version" not in details:
        counted = list(grants)
    else:
        role = _CHANNEL_ROLES.get(channel) if isinstance(channel, str) else None
        counted = [g for g in grants if g.role is role]
        if not counted:
            return f"a consent on the {channel} channel by an operator without its role"
    if not _scope_permitted(counted, action, details):
        return f"may not {action.value} for every agency and type of its scope"
    return None


def _scope_permitted(grants: Iterable[OperatorGrant], action: Action,
                     details: Mapping[str, Any]) -> bool:
    """Whether ``grants`` permit ``action`` on every ``[agency, type]`` of its scope."""
    scope = details.get("scope")
    if not isinstance(scope, list) or not scope:
        return False
    for pair in scope:
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(v, str) for v in pair)):
            return False
        if not permits(grants, action, Resource(pair[0], pair[1])):
            return False
    return True


def _consent_scope(details: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """The pairs a consent releases: its scope from version 2 on (None before: any agency
    of its types)."""
    if details.get("version") is None:
        return None
    if details["version"] != 2:
        raise ValueError(f"unknown consent entry version {details['version']!r}")
    return tuple((a, t) for a, t in details["scope"])


def _check_use_v2(entry: Entry) -> None:
    """A use entry of version 2 has the shape of format 15.4 (ValueError otherwise)."""
    d = entry.details
    if d["version"] != 2:
        raise ValueError(f"unknown use entry version {d['version']!r}")
    copies, terms = d["copies"], d["terms"]
    if not isinstance(copies, list) or not all(isinstance(c, str) and c for c in copies):
        raise ValueError("copies is a list of hashes")
    if copies and (d["outcome"] != "granted" or entry.action != Action.SHARE_FETCH.value
                   or len(copies) != len(d["certificates"])):
        raise ValueError("a granted fetch names one copy per certificate, nothing else any")
    on_consent = d["outcome"] == "granted" and d["consent"] not in (None, "by statute")
    if on_consent != isinstance(terms, dict) or (
            terms is not None and set(terms) != {"holder", "requester", "purpose"}):
        raise ValueError("a use on a consent states its terms, no other use any")


def _outside_consent(d: Mapping[str, Any], state: ConsentState) -> str | None:
    """How a granted use departs from the consent it spent (None: it keeps to it): types
    beyond the consent's, or (version 2, whose ``terms`` the consent's grant salted) another
    holder, requester or purpose."""
    if not set(d["types"]) <= set(state.types):
        return "a use of types its consent does not name"
    terms = d.get("terms")
    if isinstance(terms, dict) and (terms.get("holder"), terms.get("requester"),
                                    terms.get("purpose")) != (state.holder, state.requester,
                                                              state.purpose):
        return "a use for another holder, requester or purpose than its consent's"
    return None


def _policy_action(action: Action) -> Action:
    # An update of an agreement is governed by the policy on recognizing a region.
    return Action.AGREEMENT_ADD if action is Action.AGREEMENT_UPDATE else action


def _update_of(action: str) -> str:
    # A recognition request may turn into an update of an existing agreement.
    return _V_AGREEMENT_UPDATE if action == _V_AGREEMENT_ADD else action
