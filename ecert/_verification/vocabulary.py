"""What verification reports: statuses, stable error codes, token kinds, limits, issuers.

Public through :mod:`ecert.verify` (and :mod:`ecert`), which re-exports them; they live
here so the pure pipeline can use them without importing the verifier's edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ecert._formats.certificate import MAX_TOKEN_BYTES


class VerificationStatus(StrEnum):
    """The overall verdict."""

    VALID = "valid"
    REVOKED = "revoked"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    UNTRUSTED = "untrusted"  #: well-formed, but no trusted key or authority vouches for it
    INVALID = "invalid"  #: malformed, tampered, or its status could not be established


class ErrorCode(StrEnum):
    """Stable, documented reasons a token did not verify."""

    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    UNSUPPORTED_ALG = "unsupported_alg"
    EMBEDDED_KEY = "embedded_key"
    UNSUPPORTED_CRIT = "unsupported_crit"
    WRONG_TYP = "wrong_typ"
    UNKNOWN_KID = "unknown_kid"
    ALG_KEY_MISMATCH = "alg_key_mismatch"
    BAD_SIGNATURE = "bad_signature"
    BAD_CLAIMS = "bad_claims"
    ISSUER_MISMATCH = "issuer_mismatch"
    REGION_MISMATCH = "region_mismatch"
    TYPE_NOT_AUTHORIZED = "type_not_authorized"
    #: The agency may issue the type, but not at the certificate's issue time (denied).
    TYPE_NOT_AUTHORIZED_AT_IAT = "type_not_authorized_at_iat"
    BAD_CERTIFICATE_ID = "bad_certificate_id"
    KEY_NOT_VALID_AT_IAT = "key_not_valid_at_iat"
    KEY_COMPROMISED = "key_compromised"
    ISSUED_IN_FUTURE = "issued_in_future"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    TRUST_LIST_EXPIRED = "trust_list_expired"
    REGION_NOT_RECOGNIZED = "region_not_recognized"
    AGREEMENT_NOT_IN_FORCE = "agreement_not_in_force"
    TYPE_NOT_RECOGNIZED = "type_not_recognized"
    FOREIGN_TRUST_LIST_INVALID = "foreign_trust_list_invalid"
    STATUS_LIST_UNAVAILABLE = "status_list_unavailable"
    STATUS_LIST_INVALID = "status_list_invalid"
    STATUS_LIST_EXPIRED = "status_list_expired"
    STATUS_INDEX_OUT_OF_RANGE = "status_index_out_of_range"
    STATUS_UNKNOWN_VALUE = "status_unknown_value"
    REVOKED = "revoked"
    SUSPENDED = "suspended"
    QR_MALFORMED = "qr_malformed"  #: QR text that does not unwrap (bad base45, container)
    QR_UNKNOWN_VERSION = "qr_unknown_version"  #: a QR container version we do not read
    QR_TOO_LARGE = "qr_too_large"  #: a QR body that inflates past its bound
    #: A purpose-bound copy verified without saying for whom (``audience``).
    AUDIENCE_REQUIRED = "audience_required"
    #: A copy made for another requester than the ``audience`` given.
    WRONG_AUDIENCE = "wrong_audience"
    #: A copy made for another purpose than the ``purpose`` given.
    WRONG_PURPOSE = "wrong_purpose"
    #: A copy past its own ``exp`` (its original may still be valid: fetch a new copy).
    COPY_EXPIRED = "copy_expired"


class TokenKind(StrEnum):
    """What was presented: the certificate token, its QR form, or a purpose-bound copy."""

    CERTIFICATE = "certificate"
    QR = "qr"
    COPY = "copy"


@dataclass(frozen=True, slots=True)
class VerificationLimits:
    """Bounds and tolerances of a verifier. Defaults suit offline QR and online use."""

    max_token_bytes: int = MAX_TOKEN_BYTES
    #: Tolerated clock skew for ``iat``, ``nbf``, ``exp`` and status list expiry.
    leeway_seconds: int = 60
    #: How long past ``next_update`` a trust list is still used (then refused: freeze).
    trust_list_grace_seconds: int = 86_400
    #: Largest status list token fetched.
    max_status_list_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Issuer:
    """Who issued a verified certificate."""

    region: str
    agency_code: str
    agency_name: str
    uscc: str
    uri: str
    kid: str


# Documented, and pickled, under the module that makes them public.
for _public in (VerificationStatus, ErrorCode, TokenKind, VerificationLimits, Issuer):
    _public.__module__ = "ecert.verify"


class Failure(Exception):
    """One check failed: the verdict, its stable code, and a message for people."""

    def __init__(self, status: VerificationStatus, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        #: What was presented, once known (set where the token's kind was decided).
        self.kind: TokenKind | None = None


def untrusted(code: ErrorCode, message: str) -> Failure:
    """A failure of status ``untrusted``."""
    return Failure(VerificationStatus.UNTRUSTED, code, message)


def invalid(code: ErrorCode, message: str) -> Failure:
    """A failure of status ``invalid``."""
    return Failure(VerificationStatus.INVALID, code, message)
