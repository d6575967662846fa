"""Who may do what: the one copy of the registry's authorization rules.

Pure: no storage, no I/O. The registry's unit of work asks :func:`permits` and
:func:`approvals_needed` before it changes anything; the log replay (``audit verify``,
``audit monitor``, publication's proof of keys) asks the same functions about every
past entry, so a rule cannot hold at write time and be forgotten at audit time.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ecert.models import OperatorGrant, Role

__all__ = [
    "ADMIN_CHANGES",
    "Action",
    "Resource",
    "approvals_needed",
    "grants_from_json",
    "minimum_approvals",
    "permits",
    "revocations_digest",
]


class Action(StrEnum):
    """The vocabulary of log entries (and of what an operator asks to do)."""

    REGISTRY_INIT = "registry.init"
    REGISTRY_ADOPT = "registry.adopt"
    REGISTRY_PUBLISH = "registry.publish"
    #: Every certificate written to a file (``ecert export``): who, how many, the file's
    #: SHA-256; logged once the file is complete.
    REGISTRY_EXPORT = "registry.export"
    OPERATOR_ADD = "operator.add"
    OPERATOR_DISABLE = "operator.disable"
    OPERATOR_GRANT = "operator.grant"
    OPERATOR_ROTATE_KEY = "operator.rotate_key"
    OPERATOR_RESET = "operator.reset"
    OPERATOR_PASSWD = "operator.passwd"  # noqa: S105 - an action name
    POLICY_SET = "policy.set"
    REQUEST_CREATE = "request.create"
    REQUEST_APPROVE = "request.approve"
    REQUEST_REJECT = "request.reject"
    ACCESS_REFUSED = "access.refused"
    TYPE_ADD = "type.add"
    TYPE_UPDATE = "type.update"
    CATALOG_IMPORT = "catalog.import"
    AGENCY_ADD = "agency.add"
    AGENCY_RENAME = "agency.rename"
    AGENCY_ALLOW_TYPE = "agency.allow_type"
    AGENCY_DENY_TYPE = "agency.deny_type"
    KEY_CREATE = "key.create"
    KEY_ROTATE = "key.rotate"
    KEY_RETIRE = "key.retire"
    KEY_COMPROMISE = "key.compromise"
    ROOT_ROTATE = "root.rotate"
    AGREEMENT_ADD = "agreement.add"
    AGREEMENT_UPDATE = "agreement.update"
    AGREEMENT_WITHDRAW = "agreement.withdraw"
    CERT_ISSUE = "certificate.issue"
    CERT_SUSPEND = "certificate.suspend"
    CERT_REINSTATE = "certificate.reinstate"
    CERT_REVOKE = "certificate.revoke"
    CERT_REDACT = "certificate.redact"
    #: The head of a revocation batch (``ecert revoke-batch``): one unit, or one four-eyes
    #: request, for many ``certificate.revoke`` entries; its subject is the digest of what
    #: they revoke (:func:`revocations_digest`), which the replay recomputes from them.
    CERT_REVOKE_BATCH = "certificate.revoke_batch"
    #: A QR code of a certificate was signed (``Registry.qr_token``, ``ecert qr``/``card``).
    CERT_QR = "certificate.qr"
    #: The revocation (reason ``superseded``) of a renewed or reissued certificate, in the
    #: unit that issues its successor; authorized by the permission to issue that one.
    CERT_SUPERSEDE = "certificate.supersede"
    WITNESS_COSIGN = "witness.cosign"
    #: An entitlement (用证清单 entry) was given; one ``without_consent`` always needed
    #: four-eyes approval.
    SHARE_ALLOW = "share.allow"
    SHARE_REVOKE = "share.revoke"
    #: A consent code (用证码) was made, by a clerk at the window or the holder's channel.
    CONSENT_GRANT = "consent.grant"
    CONSENT_REVOKE = "consent.revoke"
    #: A requester's fetch through the sharing service, granted or refused (a use record).
    SHARE_FETCH = "share.fetch"
    #: A requester's check (核验) through the sharing service, granted or refused (a use
    #: record of kind ``check``).
    SHARE_CHECK = "share.check"
    #: The sharing service's rate limits were set (per requester and hour; per subject).
    SHARE_LIMITS = "share.limits"
    LEGACY = "legacy"


#: The roles that may ask for each action. Scoped roles (clerk, officer) also need the
#: resource's agency and type inside their grant.
_PERMISSIONS: Mapping[Action, frozenset[Role]] = {
    Action.REGISTRY_PUBLISH: frozenset({Role.TRUST_ADMIN, Role.SERVICE}),
    # A bulk copy of everyone's personal data: the registry's admins and its auditors.
    Action.REGISTRY_EXPORT: frozenset({Role.ADMIN, Role.AUDITOR}),
    Action.OPERATOR_ADD: frozenset({Role.ADMIN}),
    Action.OPERATOR_DISABLE: frozenset({Role.ADMIN}),
    Action.OPERATOR_GRANT: frozenset({Role.ADMIN}),
    Action.OPERATOR_RESET: frozenset({Role.ADMIN}),
    Action.POLICY_SET: frozenset({Role.ADMIN}),
    Action.TYPE_ADD: frozenset({Role.TRUST_ADMIN}),
    Action.TYPE_UPDATE: frozenset({Role.TRUST_ADMIN}),
    Action.CATALOG_IMPORT: frozenset({Role.TRUST_ADMIN}),
    Action.AGENCY_ADD: frozenset({Role.TRUST_ADMIN}),
    Action.AGENCY_RENAME: frozenset({Role.TRUST_ADMIN}),
    Action.AGENCY_ALLOW_TYPE: frozenset({Role.TRUST_ADMIN}),
    Action.AGENCY_DENY_TYPE: frozenset({Role.TRUST_ADMIN}),
    Action.AGREEMENT_ADD: frozenset({Role.TRUST_ADMIN}),
    Action.AGREEMENT_UPDATE: frozenset({Role.TRUST_ADMIN}),
    Action.AGREEMENT_WITHDRAW: frozenset({Role.TRUST_ADMIN}),
    Action.KEY_ROTATE: frozenset({Role.KEY_ADMIN}),
    Action.KEY_COMPROMISE: frozenset({Role.KEY_ADMIN}),
    Action.ROOT_ROTATE: frozenset({Role.KEY_ADMIN}),
    Action.CERT_ISSUE: frozenset({Role.CLERK}),
    Action.CERT_SUSPEND: frozenset({Role.CLERK}),
    Action.CERT_REINSTATE: frozenset({Role.CLERK}),
    Action.CERT_REVOKE: frozenset({Role.OFFICER}),
    Action.CERT_REDACT: frozenset({Role.OFFICER}),
    Action.CERT_REVOKE_BATCH: frozenset({Role.OFFICER}),
    # Printing a QR or card is desk work: whoever issues or revokes for the agency and type.
    Action.CERT_QR: frozenset({Role.CLERK, Role.OFFICER}),
    Action.WITNESS_COSIGN: frozenset({Role.SERVICE, Role.TRUST_ADMIN}),
    Action.SHARE_ALLOW: frozenset({Role.TRUST_ADMIN}),
    Action.SHARE_REVOKE: frozenset({Role.TRUST_ADMIN}),
    # A clerk at the window for the agencies and types of the consent; the service for the
    # holder's own channel (the holder authenticated by the deployment's identity hook).
    Action.CONSENT_GRANT: frozenset({Role.CLERK, Role.SERVICE}),
    Action.CONSENT_REVOKE: frozenset({Role.CLERK, Role.SERVICE}),
    Action.SHARE_FETCH: frozenset({Role.SERVICE}),
    Action.SHARE_CHECK: frozenset({Role.SERVICE}),
    Action.SHARE_LIMITS: frozenset({Role.TRUST_ADMIN}),
}

_SCOPED = frozenset({Role.CLERK, Role.OFFICER})

#: Changes to who may act. Once a registry has two admins these always need a second
#: admin, so that one admin cannot create a sock puppet to approve their own requests.
ADMIN_CHANGES = frozenset({Action.OPERATOR_ADD, Action.OPERATOR_GRANT, Action.OPERATOR_RESET,
                           Action.OPERATOR_DISABLE, Action.POLICY_SET})

#: Actions a four-eyes policy may be set on.
GUARDED = frozenset(_PERMISSIONS) - {Action.REGISTRY_PUBLISH, Action.REGISTRY_EXPORT,
                                     Action.WITNESS_COSIGN,
                                     Action.CERT_QR, Action.CONSENT_GRANT,
                                     Action.CONSENT_REVOKE, Action.SHARE_FETCH,
                                     Action.SHARE_CHECK}


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action touches: the agency and type it concerns, if any."""

    agency: str | None = None
    type: str | None = None


def permits(grants: Iterable[OperatorGrant], action: Action, resource: Resource) -> bool:
    """Whether an operator holding ``grants`` may ``action`` on ``resource``."""
    allowed = _PERMISSIONS.get(action)
    if allowed is None:
        return False
    for grant in grants:
        if grant.role not in allowed:
            continue
        if grant.role not in _SCOPED:
            return True
        if _within(grant.agencies, resource.agency) and _within(grant.types, resource.type):
            return True
    return False


def _within(scope: tuple[str, ...] | None, value: str | None) -> bool:
    return scope is None or (value is not None and value in scope)


def approvals_needed(policies: Mapping[tuple[str, str], int], action: Action,
                     type_code: str | None, admin_count: int) -> int:
    """How many operators must agree (1: the one acting is enough).

    ``policies`` maps ``(action, type)`` — type ``""`` for every type — to a count.
    """
    needed = max(policies.get((action.value, type_code or ""), 0),
                 policies.get((action.value, ""), 0), 1)
    if action in ADMIN_CHANGES and admin_count >= 2:
        needed = max(needed, 2)
    return needed


def minimum_approvals(action: Action | str, details: Mapping[str, Any]) -> int:
    """Operators a change needs whatever the policies say: an entitlement to fetch without
    the holder's consent (by statute, 依职能用证) always needs two. ``details`` are the
    operation's parameters or, in a replay, its logged details (both carry the flag)."""
    if action == Action.SHARE_ALLOW and details.get("without_consent") is True:
        return 2
    return 1


def grants_from_json(value: Any) -> tuple[OperatorGrant, ...]:
    """Grants as the log publishes them (see :meth:`OperatorGrant.to_json`)."""
    if not isinstance(value, list):
        raise ValueError("grants are a list")
    grants = []
    for item in value:
        if not isinstance(item, dict):
            raise ValueError("a grant is an object")
        agencies, types = item.get("agencies"), item.get("types")
        for scope in (agencies, types):
            if scope is not None and not (
                    isinstance(scope, list) and all(isinstance(v, str) for v in scope)):
                raise ValueError("a grant's scope is null or a list of codes")
        grants.append(OperatorGrant(Role(str(item.get("role"))),
                                    None if agencies is None else tuple(agencies),
                                    None if types is None else tuple(types)))
    return tuple(grants)


ALL_ROLES = tuple(OperatorGrant(role) for role in Role)


def revocations_digest(revoked: Iterable[tuple[str, str]]) -> str:
    """The subject of a revocation batch: ``revocations:`` and the base64url SHA-256 of
    the canonical JSON list of ``[certificate subject as the log shows it, reason]``, in
    the order of their ``certificate.revoke`` entries. The registry names the batch by it
    before anything is revoked (a four-eyes request's subject); the replay recomputes it
    from the entries the batch's unit holds, so what was carried out is what was asked."""
    import hashlib
    import json

    data = json.dumps([[subject, reason] for subject, reason in revoked],
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "revocations:" + digest.decode("ascii")
