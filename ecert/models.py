"""Immutable values of the ecert domain: regions, types, agencies, keys, certificates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Agency",
    "ApprovalRequest",
    "Certificate",
    "CertificateStatus",
    "CertificateType",
    "KeyInfo",
    "KeyRole",
    "KeyStatus",
    "LogEntry",
    "Operator",
    "OperatorGrant",
    "Region",
    "RequestStatus",
    "RevocationReason",
    "Role",
    "TypeWindow",
]


class CertificateStatus(StrEnum):
    """Lifecycle status of an issued certificate as the registry records it."""

    VALID = "valid"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class RevocationReason(StrEnum):
    """Why a certificate was revoked; named after RFC 5280 CRLReason.

    ``certificateHold`` is not here: that is :meth:`ecert.Registry.suspend`.
    """

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key-compromise"
    AFFILIATION_CHANGED = "affiliation-changed"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation-of-operation"
    PRIVILEGE_WITHDRAWN = "privilege-withdrawn"


class KeyRole(StrEnum):
    """What a registry key signs."""

    ROOT = "root"  #: the region's trust list
    STATUS = "status"  #: the region's status list tokens
    AGENCY = "agency"  #: certificates of one agency
    LOG = "log"  #: checkpoints of the region's public log (Ed25519)
    WITNESS = "witness"  #: cosignatures on other regions' checkpoints (Ed25519)
    #: purpose-bound copies (``ecert-copy+jwt``) the sharing service hands out; a registry
    #: key, never an agency's, so a copy can never pass for the certificate itself
    SHARING = "sharing"
    #: HTTP message signatures (RFC 9421) of one agency's requests to other registries'
    #: sharing services; separate from the agency key, so case-handling systems hold no
    #: key that signs certificates
    REQUESTER = "requester"


class KeyStatus(StrEnum):
    """Whether a key may sign, only verify what it signed, or is not trusted from a time on."""

    ACTIVE = "active"
    RETIRED = "retired"
    COMPROMISED = "compromised"


@dataclass(frozen=True, slots=True)
class Region:
    """The region a registry belongs to."""

    code: str
    name: str
    base_url: str
    #: IANA time zone of the people using it: dates they type (``valid_until``) end at
    #: local midnight, and the CLI shows times in it.
    tz: str = "Asia/Shanghai"

    def agency_uri(self, agency_code: str) -> str:
        """The ``iss`` of certificates signed by ``agency_code``."""
        return f"{self.base_url}/agencies/{agency_code}"


@dataclass(frozen=True, slots=True)
class CertificateType:
    """A certificate type of the catalog; its claims must satisfy ``schema``."""

    code: str
    name: str
    national_type_code: str
    schema: Mapping[str, Any]
    version: int = 1
    validity_days: int | None = None
    qr_claims: tuple[str, ...] = ()
    #: Scheme holder ids must follow: ``resident-id``, ``uscc``, ``pattern:<regex>``, or
    #: None (any id). See :mod:`ecert.holder_ids`.
    holder_id_scheme: str | None = None
    #: Which claims name the holder: ``{"holder_id": claim, "holder_name": claim}`` (either
    #: may be left out); issuance refuses holder ids and names that disagree with them.
    holder_claims: Mapping[str, str] = field(default_factory=dict)
    #: Catalog fields ecert itself does not interpret (kept with the type's version and
    #: written back by ``catalog export``).
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TypeWindow:
    """When an agency may issue a type: from ``start`` (inclusive) until ``end`` (exclusive).

    ``None`` is an open end. Certificates are judged by the window in force at their
    issue time, so denying a type from a date on leaves what was issued before valid.
    """

    code: str
    start: datetime | None = None
    end: datetime | None = None

    def covers(self, at: datetime) -> bool:
        """Whether a certificate issued at ``at`` falls inside the window."""
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)


@dataclass(frozen=True, slots=True)
class Agency:
    """An issuing agency and the types it may issue.

    ``types`` names every type the agency was ever given; a type with ``windows`` may be
    issued only inside one of them, any other type without limit in time.
    """

    code: str
    name: str
    uscc: str
    types: tuple[str, ...]
    windows: tuple[TypeWindow, ...] = ()

    def may_issue(self, type_code: str, at: datetime) -> bool:
        """Whether the agency may issue ``type_code`` at ``at``."""
        if type_code not in self.types:
            return False
        limits = [w for w in self.windows if w.code == type_code]
        return not limits or any(w.covers(at) for w in limits)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Public facts about a signing key."""

    kid: str
    alg: str
    role: KeyRole
    public_jwk: Mapping[str, str]
    created_at: datetime
    agency_code: str | None = None
    retired_at: datetime | None = None
    compromised_since: datetime | None = None

    @property
    def status(self) -> KeyStatus:
        """Active, retired (verifies what it signed before ``retired_at``) or compromised."""
        if self.compromised_since is not None:
            return KeyStatus.COMPROMISED
        if self.retired_at is not None:
            return KeyStatus.RETIRED
        return KeyStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Certificate:
    """An electronic certificate: what the token states, plus registry status."""

    id: str
    type_code: str
    agency_code: str
    region: str
    holder: str  #: keyed pseudonym of the holder id; the raw id is never stored
    holder_name: str
    claims: Mapping[str, Any]
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime | None
    status: CertificateStatus
    status_list_uri: str
    status_index: int
    kid: str
    token: str = field(repr=False)
    type_version: int = 1
    revocation_reason: RevocationReason | None = None
    supersedes: str | None = None
    #: When a scheduled revocation (a renewal's ``at_start``) takes effect; once that
    #: instant passed, ``status`` reads revoked (reason ``superseded``).
    revoke_at: datetime | None = None
    #: The free-text reason given with the latest suspension or reinstatement.
    status_note: str | None = None


class Role(StrEnum):
    """What an operator may do. An operator may hold several roles."""

    ADMIN = "admin"  #: registry set-up, operators, four-eyes policies
    KEY_ADMIN = "key-admin"  #: agency key rotation and compromise, the region root
    TRUST_ADMIN = "trust-admin"  #: types, agencies, recognition agreements, publication
    CLERK = "clerk"  #: issue, suspend, reinstate (for their agencies and types)
    OFFICER = "officer"  #: revoke and redact (for their agencies and types)
    AUDITOR = "auditor"  #: read and audit only
    SERVICE = "service"  #: unattended work: publication, witnessing


@dataclass(frozen=True, slots=True)
class OperatorGrant:
    """One role, limited to some agencies and types (``None``: all of them)."""

    role: Role
    agencies: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """The grant as published in the log."""
        return {"role": self.role.value,
                "agencies": None if self.agencies is None else sorted(self.agencies),
                "types": None if self.types is None else sorted(self.types)}


@dataclass(frozen=True, slots=True)
class Operator:
    """A named account that acts on the registry, with a personal signing key."""

    name: str
    kid: str
    public_jwk: Mapping[str, str]
    grants: tuple[OperatorGrant, ...]
    active: bool
    created_at: datetime

    @property
    def roles(self) -> tuple[Role, ...]:
        """The roles the operator holds, without their scopes."""
        return tuple(dict.fromkeys(g.role for g in self.grants))


class RequestStatus(StrEnum):
    """Where a four-eyes request stands."""

    PENDING = "pending"
    APPROVED = "approved"  #: approved by enough operators, and carried out
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A change waiting for (or decided by) the approval of other operators."""

    id: int
    action: str
    subject: str
    requested_by: str
    created_at: datetime
    expires_at: datetime
    status: RequestStatus
    approvals_needed: int
    approved_by: tuple[str, ...] = ()
    decided_by: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """What ``--json`` prints of a request."""
        return {"id": self.id, "action": self.action, "subject": self.subject,
                "requested_by": self.requested_by,
                "created_at": self.created_at.isoformat(),
                "expires_at": self.expires_at.isoformat(), "status": self.status.value,
                "approvals_needed": self.approvals_needed,
                "approved_by": list(self.approved_by), "decided_by": self.decided_by,
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of the registry's log, as the registry sees it (subject in clear)."""

    seq: int
    at: datetime
    operator: str  #: the operator's name (``legacy`` for migrated events)
    operator_kid: str | None
    action: str
    subject: str
    details: Mapping[str, Any]
    leaf: bytes = field(repr=False, default=b"")
    #: The entry's free-text reason (kept by the registry; the log has its keyed hash).
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a registry-wide lease (today only ``publish``: ``ecert publish --watch``).

    ``holder`` is a random id per running instance; ``host`` and ``pid`` say where it
    runs. The holder renews it every cycle; past ``expires_at`` (a crashed holder) anyone
    may take it.
    """

    name: str
    holder: str
    host: str
    pid: int
    directory: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        """What ``--json`` prints of a lease."""
        return {"name": self.name, "holder": self.holder, "host": self.host, "pid": self.pid,
                "directory": self.directory, "acquired_at": self.acquired_at.isoformat(),
                "renewed_at": self.renewed_at.isoformat(),
                "expires_at": self.expires_at.isoformat()}
