"""Immutable values of the ecert domain: regions, types, agencies, keys, certificates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Agency",
    "Certificate",
    "CertificateStatus",
    "CertificateType",
    "KeyInfo",
    "KeyRole",
    "KeyStatus",
    "Region",
    "RevocationReason",
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


@dataclass(frozen=True, slots=True)
class Agency:
    """An issuing agency and the types it may issue."""

    code: str
    name: str
    uscc: str
    types: tuple[str, ...]


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
