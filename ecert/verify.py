"""Verification: is this token a valid certificate, by the rules of a trusted region?

:class:`Verifier` takes its trust (a verified trust list and a source of status lists)
at construction and checks tokens one by one. Hostile input never raises out of
:meth:`Verifier.verify`; it returns a :class:`VerificationResult` whose ``errors`` are
stable :class:`ErrorCode` values. The checks, in order (each fails closed):

1. size and structure: at most ``max_token_bytes``, three base64url parts, JSON objects;
2. header: ``alg`` in ecert's allow-list, no key-bearing header (``jwk``, ``jku``,
   ``x5u``, ``x5c``…), no ``crit``, ``typ`` is ``ecert+jwt``;
3. key: ``kid`` is an agency key of the trusted region, and ``alg`` matches its type;
4. signature;
5. claims: shape, issuer URI and region bound to the key's agency, the type authorized
   for that agency, the certificate id well-formed and naming that agency and type;
6. key validity: the key was valid at ``iat`` and not compromised at or before it;
7. time: ``nbf`` and ``exp`` against the clock, with leeway;
8. status: the status list is signed by a status key of the region, fresh, names the
   same URI, and holds the index; 1 is revoked, 2 suspended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

from ecert._clock import Clock, now_seconds, system_clock
from ecert._formats import bundle as _bundle
from ecert._formats import qr as _qr
from ecert._formats.certificate import CERTIFICATE_TYP, MAX_TOKEN_BYTES, CertificateClaims
from ecert._formats.copy import COPY_TYP, CopyClaims
from ecert._formats.jose import (
    ParsedJws,
    PublicKey,
    canonical_json,
    check_header,
    parse_compact,
    strict_json_loads,
    verify_signature,
)
from ecert._formats.statuslist import (
    INVALID,
    STATUS_LIST_TYP,
    SUSPENDED,
    VALID,
    StatusListToken,
    read_status_list_payload,
)
from ecert._formats.trustlist import Agreement, TrustedAgency, TrustedKey, TrustList
from ecert._sources import (
    BundleDirectory,
    DocumentSource,
    HttpSource,
    MirrorSource,
    RoutedSource,
)
from ecert._state import STATE_FILE, TrustState
from ecert.errors import (
    EcertError,
    FormatError,
    InvalidCertificateId,
    TrustListError,
    VerificationFailed,
)
from ecert.identifiers import CertificateId, CertificateIdPrefix
from ecert.models import Certificate, CertificateStatus
from ecert.trust import TrustAnchor, fetch_and_verify

__all__ = [
    "CopyInfo",
    "ErrorCode",
    "Issuer",
    "TokenKind",
    "VerificationLimits",
    "VerificationResult",
    "VerificationStatus",
    "Verifier",
]

log = logging.getLogger(__name__)



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


_FORMAT_CODES = {c.value: c for c in ErrorCode}


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


@dataclass(frozen=True, slots=True)
class CopyInfo:
    """What a verified purpose-bound copy (加注件) says beyond its original's issuer.

    A copy is not the certificate: it carries only the claims the requester is entitled
    to, for one requester (``audience``), one purpose and one case, until ``expires_at``.
    """

    id: str  #: the copy's own id (``jti``)
    copy_of: str  #: the original certificate's id
    audience: str  #: the requester it was made for, ``REGION/agency-code``
    purpose: str  #: the stated purpose (用证事由)
    case: str  #: the requester's case number (业务流水号)
    type_code: str  #: the original's type, in the issuing region
    type_version: int
    claims: Mapping[str, Any]  #: only the claims the requester's entitlement allows
    issued_at: datetime  #: when the copy was made
    expires_at: datetime  #: when the copy itself expires
    original_valid_from: datetime
    original_valid_until: datetime | None
    original_issued_at: datetime
    status_list_uri: str  #: the original's status list
    status_index: int

    def to_json(self) -> dict[str, Any]:
        """The ``copy`` member of :meth:`VerificationResult.to_json`."""
        until = self.original_valid_until
        return {
            "id": self.id, "copy_of": self.copy_of, "audience": self.audience,
            "purpose": self.purpose, "case": self.case, "type": self.type_code,
            "type_version": self.type_version, "claims": dict(self.claims),
            "issued_at": self.issued_at.isoformat(), "expires_at": self.expires_at.isoformat(),
            "original": {"issued_at": self.original_issued_at.isoformat(),
                         "valid_from": self.original_valid_from.isoformat(),
                         "valid_until": until.isoformat() if until else None},
            "status_list": {"uri": self.status_list_uri, "idx": self.status_index},
        }


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of :meth:`Verifier.verify`; truthy exactly when valid.

    ``certificate`` is built from the verified claims on first access (most callers of
    a high-volume verifier only look at ``valid``).
    """

    status: VerificationStatus
    errors: tuple[ErrorCode, ...] = ()
    issuer: Issuer | None = None
    messages: tuple[str, ...] = field(default=(), compare=False)
    #: The type the certificate counts as here: its own for home certificates, the
    #: mapped one for certificates of a recognized region.
    local_type: str | None = None
    #: The agreement a foreign certificate was accepted under (None for home ones).
    agreement: Agreement | None = None
    _certificate: Callable[[], Certificate] | None = field(
        default=None, repr=False, compare=False)
    #: Whether the input was QR text (``EC1:``) rather than the certificate token.
    qr: bool = False
    #: For QR text: the claims the QR carried (the others are bound only by ``qr_digest``).
    claims_present: tuple[str, ...] = ()
    #: For QR text: True when some claims are absent and only bound by the digest.
    digest_bound: bool = False
    #: For QR text: base64url of the first 16 bytes of SHA-256 of the full token's payload.
    qr_digest: str | None = None
    #: What was presented, once its header was read (None for input that got no further).
    kind: TokenKind | None = field(default=None, compare=False)
    #: For a purpose-bound copy that verified: what it says (``certificate`` is then None:
    #: a copy is not the certificate). ``issuer`` is the original's issuing agency, with
    #: the ``kid`` of the region's sharing key that signed the copy.
    copy: CopyInfo | None = field(default=None, compare=False)

    def qr_matches(self, token: str) -> bool:
        """Whether a full certificate token (verified separately) is the one this QR binds.

        Every field the QR asserts must agree with the token: the certificate id (type,
        agency, serial and id version), the type version, region and issuer, the holder
        name, the issue, start and expiry times, the status list and index, each claim the
        QR carries (and, for a QR carrying every claim, no other claim), and the digest of
        the token's payload. A QR is signed separately from its certificate, perhaps by
        another key of the agency, so the digest alone is not taken on trust.
        """
        cert = self.certificate if self.qr else None
        if cert is None or self.qr_digest is None or self.issuer is None:
            return False
        try:
            digest = _qr.token_digest(token)
            full = CertificateClaims.from_payload(_qr.parse_token_payload(token))
        except (FormatError, ValueError, IndexError, TypeError, AttributeError):
            return False
        carried = dict(cert.claims)
        claims_agree = all(
            name in full.claims and _same_json(full.claims[name], value)
            for name, value in carried.items()
        ) and (self.digest_bound or set(full.claims) == set(carried))
        expiry = None if cert.valid_until is None else int(cert.valid_until.timestamp())
        return (
            digest == self.qr_digest  # public values: no constant-time need
            and full.jti == cert.id
            and full.vct == cert.type_code
            and full.vct_version == cert.type_version
            and full.region == cert.region
            and full.iss == self.issuer.uri
            and full.holder_name == cert.holder_name
            and full.iat == int(cert.issued_at.timestamp())
            and full.nbf == int(cert.valid_from.timestamp())
            and full.exp == expiry
            and full.status_list_uri == cert.status_list_uri
            and full.status_index == cert.status_index
            and claims_agree
        )

    @cached_property
    def certificate(self) -> Certificate | None:
        """The certificate the token states, once its signature verified (else None)."""
        return None if self._certificate is None else self._certificate()

    @property
    def issuing_region(self) -> str | None:
        """The region that issued the certificate."""
        return None if self.issuer is None else self.issuer.region

    @property
    def valid(self) -> bool:
        """Whether the certificate is valid now."""
        return self.status is VerificationStatus.VALID and not self.errors

    def __bool__(self) -> bool:
        return self.valid

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``ecert verify --json`` prints)."""
        out: dict[str, Any] = {
            "valid": self.valid,
            "status": self.status.value,
            "errors": [e.value for e in self.errors],
            "messages": list(self.messages),
        }
        if self.certificate is not None:
            c = self.certificate
            out["certificate"] = {
                "id": c.id, "type": c.type_code, "region": c.region, "holder": c.holder,
                "holder_name": c.holder_name, "claims": dict(c.claims),
                "issued_at": c.issued_at.isoformat(), "valid_from": c.valid_from.isoformat(),
                "valid_until": c.valid_until.isoformat() if c.valid_until else None,
                "status_list": {"uri": c.status_list_uri, "idx": c.status_index},
                "supersedes": c.supersedes,
            }
        out["local_type"] = self.local_type
        out["kind"] = None if self.kind is None else self.kind.value
        if self.copy is not None:
            out["copy"] = self.copy.to_json()
        if self.qr:
            out["qr"] = {"claims_present": list(self.claims_present),
                         "digest_bound": self.digest_bound, "digest": self.qr_digest}
        out["agreement"] = None if self.agreement is None else {
            "region": self.agreement.region, "types": dict(self.agreement.types)}
        if self.issuer is not None:
            i = self.issuer
            out["issuer"] = {"region": i.region, "agency": i.agency_code, "name": i.agency_name,
                             "uscc": i.uscc, "uri": i.uri, "kid": i.kid}
        return out


class _Failure(Exception):
    """Internal: one check failed."""

    def __init__(self, status: VerificationStatus, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.kind: TokenKind | None = None


@dataclass(frozen=True, slots=True)
class _AgencyKey:
    agency: TrustedAgency
    entry: TrustedKey
    alg: str
    key: PublicKey
    issuer: Issuer


_now = now_seconds


def _certificate(claims: CertificateClaims, agency_code: str, kid: str, token: str,
                 status_value: int) -> Certificate:
    return Certificate(
        id=claims.jti, type_code=claims.vct, agency_code=agency_code,
        region=claims.region, holder=claims.sub, holder_name=claims.holder_name,
        claims=claims.claims, issued_at=_ts(claims.iat), valid_from=_ts(claims.nbf),
        valid_until=_ts(claims.exp) if claims.exp is not None else None,
        status=_REGISTRY_STATUS.get(status_value, CertificateStatus.VALID),
        status_list_uri=claims.status_list_uri, status_index=claims.status_index, kid=kid,
        token=token, type_version=claims.vct_version, supersedes=claims.supersedes,
    )


_REGISTRY_STATUS = {INVALID: CertificateStatus.REVOKED, SUSPENDED: CertificateStatus.SUSPENDED}


def _ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class _RegionTrust:
    """One region's verified trust list, indexed for lookups, with its status lists."""

    def __init__(self, trust_list: TrustList, anchor: TrustAnchor | None,
                 source: DocumentSource, limits: VerificationLimits) -> None:
        self.trust_list = trust_list
        self.anchor = anchor
        self.source = source
        self.limits = limits
        self.agency_keys: dict[str, _AgencyKey] = {}
        self.types = {t.code: t for t in trust_list.types}
        for agency in trust_list.agencies:
            for entry in agency.keys:
                alg, key = entry.public_key()
                issuer = Issuer(trust_list.region, agency.code, agency.name, agency.uscc,
                                agency.uri, entry.kid)
                self.agency_keys[entry.kid] = _AgencyKey(agency, entry, alg, key, issuer)
        self.status_keys = {k.kid: (k, *k.public_key()) for k in trust_list.status_keys}
        #: Keys that sign copies: never agency keys, so the two never stand in for each other.
        self.sharing_keys = {k.kid: (k, *k.public_key()) for k in trust_list.sharing_keys}
        self.agencies_by_uri = {a.uri: a for a in trust_list.agencies}
        # Ids each agency may issue, by type: prefix and check-character state precomputed.
        self.id_prefixes: dict[tuple[str, str], CertificateIdPrefix] = {}
        for agency in trust_list.agencies:
            for type_code in agency.type_codes:
                type_entry = self.types.get(type_code)
                if type_entry is None:
                    continue
                try:
                    self.id_prefixes[agency.code, type_code] = CertificateIdPrefix(
                        type_entry.national_type_code, agency.uscc)
                except InvalidCertificateId:
                    continue  # a malformed code in the list: such ids never verify
        self.status_lists: dict[str, tuple[StatusListToken, int]] = {}
        #: For a foreign region: the root kid our agreement pinned when we loaded it.
        self.pinned_kid: str | None = None
        #: When the list was last fetched or a refresh was last tried.
        self.checked_at = 0

    def usable(self, now: int, grace: int) -> bool:
        """Fresh, or past next update but refreshed recently and still within grace."""
        next_update = self.trust_list.next_update
        return now <= next_update or (
            now < self.checked_at + _REFRESH_RETRY_SECONDS and now <= next_update + grace)

    def check_issuer(self, claims: CertificateClaims, agency: TrustedAgency) -> None:
        region = self.trust_list.region
        if claims.iss != agency.uri:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.ISSUER_MISMATCH,
                           f"iss {claims.iss!r} is not the key's agency {agency.uri!r}")
        if claims.region != region:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.REGION_MISMATCH,
                           f"region {claims.region!r} is not {region!r}")
        self.check_type(agency, claims.vct, claims.vct_version, claims.iat, claims.jti)

    def check_type(self, agency: TrustedAgency, vct: str, vct_version: int, iat: int,
                   jti: str) -> None:
        """The agency may issue ``vct`` (at ``iat``), the version is known, and ``jti``
        is a well-formed id naming the agency and the type."""
        type_entry = self.types.get(vct)
        if not agency.authorizes(vct) or type_entry is None:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.TYPE_NOT_AUTHORIZED,
                           f"agency {agency.code} is not authorized to issue {vct}")
        _check_window(agency, vct, iat)
        if not 1 <= vct_version <= type_entry.version:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_CLAIMS,
                           f"type version {vct_version} of {vct} is unknown")
        id_prefix = self.id_prefixes.get((agency.code, vct))
        if id_prefix is None or not id_prefix.matches(jti):
            raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_CERTIFICATE_ID,
                           "certificate id is malformed, has a wrong check character, or "
                           "does not name this agency and type")

    def check_copy(self, claims: CopyClaims) -> TrustedAgency:
        """A copy is the region's (``iss``, ``region``), and names an original its agency
        may have issued: returns that agency."""
        region = self.trust_list.region
        if claims.iss != self.trust_list.base_url:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.ISSUER_MISMATCH,
                           f"iss {claims.iss!r} is not the base URL of region {region}")
        if claims.region != region:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.REGION_MISMATCH,
                           f"region {claims.region!r} is not {region!r}")
        original = claims.original
        agency = self.agencies_by_uri.get(original.iss)
        if agency is None:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.ISSUER_MISMATCH,
                           f"the original's iss {original.iss!r} is no agency of {region}")
        self.check_type(agency, original.vct, original.vct_version, original.iat,
                        claims.copy_of)
        return agency

    def status_of(self, claims: CertificateClaims | CopyClaims, now: int) -> int:
        status_list = self.status_list(claims.status_list_uri, now)
        if claims.status_index >= status_list.status_list.size:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.STATUS_INDEX_OUT_OF_RANGE,
                           "status index is outside the status list")
        return status_list.status_list[claims.status_index]

    def status_list(self, uri: str, now: int) -> StatusListToken:
        cached = self.status_lists.get(uri)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            _bundle.relative_path(self.trust_list.base_url, uri)
            data = self.source.fetch(uri, max_bytes=self.limits.max_status_list_bytes)
        except (OSError, EcertError) as e:
            # A list we cannot read means we cannot know the status: fail closed.
            raise _Failure(VerificationStatus.INVALID, ErrorCode.STATUS_LIST_UNAVAILABLE,
                           f"status list {uri} is unavailable: {e}") from e
        token = self._check_status_list(data, uri, now)
        self.source.verified(uri, data)  # only now may a cache keep it
        # ttl counts from when we fetched the list; never cache past its expiry.
        refresh_at = now + (token.ttl or 300)
        expires_at = token.expires
        if expires_at is not None:
            refresh_at = min(refresh_at, expires_at)
        self.status_lists[uri] = (token, max(refresh_at, now + 1))
        return token

    def _check_status_list(self, data: bytes, uri: str, now: int) -> StatusListToken:
        def bad(message: str) -> _Failure:
            return _Failure(VerificationStatus.INVALID, ErrorCode.STATUS_LIST_INVALID,
                            f"status list {uri}: {message}")

        try:
            parsed = parse_compact(data.decode("ascii", "replace").strip(),
                                   max_bytes=self.limits.max_status_list_bytes)
            kid = check_header(parsed.header, STATUS_LIST_TYP)
        except FormatError as e:
            raise bad(e.message) from e
        entry = self.status_keys.get(kid)
        if entry is None:
            raise bad("not signed by a status key of the region")
        key_entry, alg, key = entry
        if parsed.header["alg"] != alg or not verify_signature(
            alg, key, parsed.signing_input, parsed.signature
        ):
            raise bad("signature does not verify")
        try:
            token = read_status_list_payload(parsed.payload)
        except FormatError as e:
            raise bad(e.message) from e
        if token.uri != uri:
            raise bad("its sub does not match the certificate's status URI")
        leeway = self.limits.leeway_seconds
        refused = key_entry.refuses(token.issued_at, leeway)
        if refused == "compromised":
            raise bad("signed with a compromised key")
        if refused is not None:
            raise bad("its key was not valid when the list was issued")
        if token.issued_at > now + leeway:
            raise bad("issued in the future")
        expires_at = token.expires
        if expires_at is not None and now >= expires_at + leeway:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.STATUS_LIST_EXPIRED,
                           f"status list {uri} expired: the issuer must republish it")
        return token


class Verifier:
    """Verifies certificate tokens for one home region and the regions it recognizes.

    The home trust list is verified against a pinned anchor; foreign trust lists are
    fetched on first need from the URLs the home agreements name, verified against the
    root keys those agreements pin, and used only for the agreed types (one hop).
    """

    def __init__(
        self,
        trust_list: TrustList,
        source: DocumentSource,
        *,
        clock: Clock | None = None,
        limits: VerificationLimits | None = None,
        anchor: TrustAnchor | None = None,
        state: TrustState | None = None,
    ) -> None:
        self._clock = clock or system_clock
        self.limits = limits or VerificationLimits()
        self._home = _RegionTrust(trust_list, anchor, source, self.limits)
        self._source = source
        self._foreign: dict[str, _RegionTrust] = {}
        #: The anchor as configured: refreshes start from it (rotations are followed again
        #: from there), so what the state file remembers stays filed under this pin.
        self._pinned: TrustAnchor | None = anchor
        #: Highest sequence seen per foreign region: survives a home refresh (rollback).
        self._foreign_seen: dict[str, int] = {}
        #: Regions whose list could not be loaded at all: (when, why); not retried at once,
        #: so a stream of tokens naming an unreachable region does not hammer it.
        self._foreign_failed: dict[str, tuple[int, str]] = {}
        self._state = state

    @property
    def trust_list(self) -> TrustList:
        """The home region's verified trust list."""
        return self._home.trust_list

    @property
    def source(self) -> DocumentSource:
        """Where the verifier reads published documents (also the logs' tiles)."""
        return self._source

    def now(self) -> int:
        """The verifier's clock, in POSIX seconds."""
        return _now(self._clock)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        *,
        anchor: TrustAnchor | None = None,
        clock: Clock | None = None,
        limits: VerificationLimits | None = None,
        min_sequence: int | None = None,
        offline: str | Path | None = None,
        cache_dir: str | Path | None = None,
    ) -> Verifier:
        """A verifier over a published bundle directory of the home region.

        ``anchor`` pins the region root key; without it the bundle's own ``anchor.json``
        is used (trust on first use of that directory). ``min_sequence`` is the highest
        trust list sequence already seen: an older list is refused as a rollback. Foreign
        regions are fetched over HTTP(S), or read from ``offline`` (made by
        ``ecert trust sync``). Raises :class:`ecert.errors.TrustListError` if the trust
        list cannot be accepted.
        """
        root = Path(path)
        if anchor is None:
            anchor = TrustAnchor.load(root / _bundle.ANCHOR_FILE)
        base_url = anchor.trust_list_url.rsplit("/", 1)[0]
        elsewhere = _default_source(offline, cache_dir)
        source = RoutedSource([(base_url, BundleDirectory(root, base_url))], elsewhere)
        return cls._from_source(anchor, source, clock, limits, min_sequence, cache_dir)

    @classmethod
    def from_anchor(
        cls,
        anchor: TrustAnchor | str | Path,
        *,
        offline: str | Path | None = None,
        cache_dir: str | Path | None = None,
        clock: Clock | None = None,
        limits: VerificationLimits | None = None,
        source: DocumentSource | None = None,
    ) -> Verifier:
        """A verifier pinned to one home region's anchor, needing no registry.

        Documents come over HTTP(S) from the URLs the anchor and the trust lists name
        (cached in ``cache_dir`` honouring ETag, and used from there if the network
        fails), or only from ``offline``, a directory made by ``ecert trust sync``.
        ``cache_dir`` also keeps what the verifier has seen: trust list sequence numbers
        (rollback) and roots it followed through rotations.
        """
        if not isinstance(anchor, TrustAnchor):
            anchor = TrustAnchor.load(anchor)
        return cls._from_source(anchor, source or _default_source(offline, cache_dir), clock,
                                limits, None, cache_dir)

    @classmethod
    def _from_source(cls, anchor: TrustAnchor, source: DocumentSource, clock: Clock | None,
                     limits: VerificationLimits | None, min_sequence: int | None,
                     cache_dir: str | Path | None) -> Verifier:
        limits = limits or VerificationLimits()
        clock = clock or system_clock
        state = TrustState(Path(cache_dir) / STATE_FILE, anchor) if cache_dir else None
        trust_list, current = _load_region(anchor, source, _now(clock), limits, state,
                                           min_sequence)
        verifier = cls(trust_list, source, clock=clock, limits=limits,
                       anchor=current or anchor, state=state)
        verifier._pinned = anchor
        return verifier

    # -- verification ------------------------------------------------------------------------

    def verify(self, token: str | bytes, *, audience: str | None = None,
               purpose: str | None = None) -> VerificationResult:
        """Verify ``token``; never raises on bad input.

        ``token`` is a certificate token, its QR text, or a purpose-bound copy
        (``ecert-copy+jwt``). A copy is accepted only for the requester it was made for:
        ``audience`` (``REGION/agency-code``) is required for a copy and must be its
        ``aud`` (else ``audience_required``, ``wrong_audience``), and ``purpose``, when
        given, must be its purpose (``wrong_purpose``). Certificates and QR codes are
        bearer documents: they ignore both.
        """
        try:
            return self._verify(token, audience, purpose)
        except _Failure as f:
            return VerificationResult(f.status, (f.code,), messages=(f.message,), kind=f.kind)
        except Exception as e:  # fail closed on anything unforeseen, and say so
            log.exception("unexpected error while verifying a token")
            return VerificationResult(
                VerificationStatus.INVALID, (ErrorCode.MALFORMED,),
                messages=(f"internal error: {type(e).__name__}",),
            )

    def verify_or_raise(self, token: str | bytes, *, audience: str | None = None,
                        purpose: str | None = None) -> VerificationResult:
        """Like :meth:`verify`, but raise :class:`ecert.errors.VerificationFailed` unless valid."""
        result = self.verify(token, audience=audience, purpose=purpose)
        if not result.valid:
            raise VerificationFailed(result)
        return result

    @property
    def anchor(self) -> TrustAnchor:
        """The home anchor now in force (after any root rotation followed)."""
        anchor = self._home.anchor
        if anchor is None:  # pragma: no cover - every constructor sets it
            raise TrustListError("verifier has no anchor")
        return anchor

    def check_status_list(self, uri: str, *, region: str | None = None) -> None:
        """Fetch and check one status list (of the home region unless ``region``).

        Raises :class:`ecert.errors.FormatError` with the verification error code.
        """
        now = _now(self._clock)
        try:
            trust = self._home if region in (None, self._home.trust_list.region) else (
                self._recognized(str(region), now)[1])
            trust.status_list(uri, now)
        except _Failure as f:
            raise FormatError(f.message, code=f.code.value) from f

    def foreign_trust_list(self, region: str) -> TrustList:
        """The verified trust list of a region the home region recognizes.

        Raises :class:`ecert.errors.TrustListError` if it is not recognized or unusable.
        """
        try:
            return self._recognized(region, _now(self._clock))[1].trust_list
        except _Failure as f:
            raise TrustListError(f.message, code=f.code.value) from f

    def _verify(self, token: str | bytes, audience: str | None,
                purpose: str | None) -> VerificationResult:
        now = _now(self._clock)
        if now > self._home.trust_list.next_update:
            self._refresh_home(now)
        home = self._home
        if now > home.trust_list.next_update + self.limits.trust_list_grace_seconds:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.TRUST_LIST_EXPIRED,
                           "the trust list is past its next update; refresh it")
        if isinstance(token, bytes | bytearray):
            if len(token) > self.limits.max_token_bytes:
                raise _Failure(VerificationStatus.INVALID, ErrorCode.TOO_LARGE, "token too large")
            token = bytes(token).decode("ascii", "replace")
        # 1-2. structure and header policy (QR text: unwrapped to its exact JWS first)
        expected_typ = CERTIFICATE_TYP
        try:
            if token[:1].isspace() or token[-1:].isspace():
                token = token.strip()
            if _qr.is_qr_text(token):
                token, expected_typ = self._unwrap_qr(token, now), _qr.QR_TYP
            parsed = parse_compact(token, max_bytes=self.limits.max_token_bytes)
            if expected_typ == CERTIFICATE_TYP and parsed.header.get("typ") == COPY_TYP:
                expected_typ = COPY_TYP  # a copy: its own typ, its own keys, its own checks
            kid = check_header(parsed.header, expected_typ)
        except FormatError as e:
            raise _Failure(VerificationStatus.INVALID,
                           _FORMAT_CODES.get(e.code, ErrorCode.MALFORMED), e.message) from e
        if expected_typ == COPY_TYP:
            try:
                return self._verify_copy(parsed.payload, parsed.header["alg"], kid,
                                         parsed.signing_input, parsed.signature, now,
                                         audience, purpose)
            except _Failure as f:
                f.kind = TokenKind.COPY
                raise
        kind = TokenKind.QR if expected_typ == _qr.QR_TYP else TokenKind.CERTIFICATE
        try:
            return self._verify_certificate(parsed, kid, kind, token, now)
        except _Failure as f:
            f.kind = kind
            raise

    def _verify_certificate(self, parsed: ParsedJws, kid: str, kind: TokenKind, token: str,
                            now: int) -> VerificationResult:
        """A certificate token or the QR form of one (format sections 10.2 and 14)."""
        leeway = self.limits.leeway_seconds
        home = self._home
        qr: _qr.QrClaims | None = None
        expected_typ = _qr.QR_TYP if kind is TokenKind.QR else CERTIFICATE_TYP
        # 3. the key: only ever from a trust list (ours, or one we recognize)
        # A QR payload names its region under "r", a certificate token under "region".
        agreement, region, agency_key = self._find_key(
            kid, parsed.payload.get("r" if expected_typ == _qr.QR_TYP else "region"), now,
            _agency_keys)
        if parsed.header["alg"] != agency_key.alg:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.ALG_KEY_MISMATCH,
                           "alg does not match the key type")
        # 4. signature
        if not verify_signature(agency_key.alg, agency_key.key, parsed.signing_input,
                                parsed.signature):
            raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_SIGNATURE,
                           "signature does not verify")
        # 5. claims bound to the issuer; a foreign type only as the agreement maps it
        try:
            if expected_typ == _qr.QR_TYP:
                qr = _qr.read_qr_payload(parsed.payload)
                claims = _qr_claims(qr, agency_key.agency, region)
            else:
                claims = CertificateClaims.from_payload(parsed.payload)
        except FormatError as e:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_CLAIMS, e.message) from e
        agency = agency_key.agency
        region.check_issuer(claims, agency)
        local_type = claims.vct
        if agreement is not None:
            mapped = agreement.types.get(claims.vct)
            if mapped is None:
                raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.TYPE_NOT_RECOGNIZED,
                               f"{home.trust_list.region} does not recognize {claims.vct} "
                               f"of {agreement.region}")
            local_type = mapped
        # 6. key validity at issuance
        entry = agency_key.entry
        signed_at = claims.iat if qr is None else qr.signed_at  # a QR is signed when made
        refused = entry.refuses(signed_at, leeway)
        if refused == "compromised":
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.KEY_COMPROMISED,
                           "signed with a key compromised at or before its issue time")
        if refused is not None:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.KEY_NOT_VALID_AT_IAT,
                           "the key was not valid when the token says it was issued")
        # 7-8. lifecycle: time and status; gather all, report the gravest
        errors: list[ErrorCode] = []
        messages: list[str] = []
        if max(claims.iat, signed_at) > now + leeway:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.ISSUED_IN_FUTURE,
                           "issued in the future")
        status_value = region.status_of(claims, now)
        if status_value == INVALID:
            errors.append(ErrorCode.REVOKED)
            messages.append("revoked by its issuer")
        elif status_value == SUSPENDED:
            errors.append(ErrorCode.SUSPENDED)
            messages.append("suspended by its issuer")
        elif status_value != VALID:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.STATUS_UNKNOWN_VALUE,
                           f"unknown status value {status_value}")
        if claims.exp is not None and now >= claims.exp + leeway:
            errors.append(ErrorCode.EXPIRED)
            messages.append("expired")
        if claims.nbf > now + leeway:
            errors.append(ErrorCode.NOT_YET_VALID)
            messages.append("not yet valid")
        status = VerificationStatus.VALID
        for code, verdict in _LIFECYCLE_PRIORITY:
            if code in errors:
                status = verdict
                break
        return VerificationResult(
            status, tuple(errors), agency_key.issuer, tuple(messages), local_type=local_type,
            agreement=agreement,
            _certificate=partial(_certificate, claims, agency.code, kid, token, status_value),
            qr=qr is not None, claims_present=tuple(sorted(claims.claims)) if qr else (),
            digest_bound=qr is not None and not qr.complete,
            qr_digest=qr.digest if qr else None,
            kind=TokenKind.CERTIFICATE if qr is None else TokenKind.QR,
        )

    def _find_key(self, kid: str, claimed: Any, now: int,
                  keys: Callable[[_RegionTrust], Mapping[str, _K]]
                  ) -> tuple[Agreement | None, _RegionTrust, _K]:
        """The key ``kid`` among ``keys`` of the home region or, if the token names another
        region (``claimed``, read before the signature only to choose the list), of that
        region if we recognize it: with the agreement (None at home) and the region."""
        home = self._home
        found = keys(home).get(kid)
        if found is not None:
            return None, home, found
        if not isinstance(claimed, str) or claimed == home.trust_list.region:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.UNKNOWN_KID,
                           f"key {kid!r} is not a trusted key of region "
                           f"{home.trust_list.region}")
        agreement, region = self._recognized(claimed, now)
        found = keys(region).get(kid)
        if found is None:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.UNKNOWN_KID,
                           f"key {kid!r} is not a trusted key of region {claimed}")
        return agreement, region, found

    def _verify_copy(self, payload: Mapping[str, Any], alg: str, kid: str,
                     signing_input: bytes, signature: bytes, now: int,
                     audience: str | None, purpose: str | None) -> VerificationResult:
        """A purpose-bound copy (format section 16.2): a sharing key of its region, the
        original's issuer, type and id as that region's trust list knows them, the audience
        and purpose asked for, the original's status and validity, and the copy's expiry."""
        leeway = self.limits.leeway_seconds
        # C4. only a sharing key signs a copy (an agency key never does)
        agreement, region, (entry, key_alg, key) = self._find_key(
            kid, payload.get("region"), now, _sharing_keys)
        if alg != key_alg:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.ALG_KEY_MISMATCH,
                           "alg does not match the key type")
        if not verify_signature(key_alg, key, signing_input, signature):
            raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_SIGNATURE,
                           "signature does not verify")
        try:
            claims = CopyClaims.from_payload(payload)
        except FormatError as e:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_CLAIMS, e.message) from e
        agency = region.check_copy(claims)
        original = claims.original
        local_type: str | None = original.vct
        if agreement is not None:  # recognizing the region trusts its keys; map if we can
            local_type = agreement.types.get(original.vct)
        refused = entry.refuses(claims.iat, leeway)
        if refused == "compromised":
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.KEY_COMPROMISED,
                           "signed with a key compromised at or before the copy was made")
        if refused is not None:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.KEY_NOT_VALID_AT_IAT,
                           "the key was not valid when the copy says it was made")
        if claims.iat > now + leeway:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.ISSUED_IN_FUTURE,
                           "made in the future")
        _check_use(claims, audience, purpose)
        errors: list[ErrorCode] = []
        messages: list[str] = []
        status_value = region.status_of(claims, now)
        if status_value == INVALID:
            errors.append(ErrorCode.REVOKED)
            messages.append("the original is revoked by its issuer")
        elif status_value == SUSPENDED:
            errors.append(ErrorCode.SUSPENDED)
            messages.append("the original is suspended by its issuer")
        elif status_value != VALID:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.STATUS_UNKNOWN_VALUE,
                           f"unknown status value {status_value}")
        if original.exp is not None and now >= original.exp + leeway:
            errors.append(ErrorCode.EXPIRED)
            messages.append("the original has expired")
        if now >= claims.exp + leeway:
            errors.append(ErrorCode.COPY_EXPIRED)
            messages.append("the copy has expired")
        if original.nbf > now + leeway:
            errors.append(ErrorCode.NOT_YET_VALID)
            messages.append("the original is not yet valid")
        status = VerificationStatus.VALID
        for code, verdict in _LIFECYCLE_PRIORITY:
            if code in errors:
                status = verdict
                break
        issuer = Issuer(region.trust_list.region, agency.code, agency.name, agency.uscc,
                        agency.uri, kid)
        info = CopyInfo(
            id=claims.jti, copy_of=claims.copy_of, audience=claims.aud,
            purpose=claims.purpose, case=claims.case, type_code=original.vct,
            type_version=original.vct_version, claims=claims.claims,
            issued_at=_ts(claims.iat), expires_at=_ts(claims.exp),
            original_valid_from=_ts(original.nbf),
            original_valid_until=None if original.exp is None else _ts(original.exp),
            original_issued_at=_ts(original.iat), status_list_uri=claims.status_list_uri,
            status_index=claims.status_index)
        return VerificationResult(status, tuple(errors), issuer, tuple(messages),
                                  local_type=local_type, agreement=agreement,
                                  kind=TokenKind.COPY, copy=info)

    def _unwrap_qr(self, text: str, now: int) -> str:
        """The exact compact JWS inside QR text; its kid resolved through the trust lists.

        The container carries only the first bytes of the kid, so the key is looked up in
        the trust list of the region the payload names (``r``): ours, or one we recognize.
        Choosing the region first means a foreign key whose reference happens to collide
        with one of ours cannot shadow it. The signature itself is checked later.
        """
        unwrapped = _qr.unwrap(text)
        region = self._home
        claimed = strict_json_loads(unwrapped.payload)
        claimed = claimed.get("r") if isinstance(claimed, dict) else None
        if isinstance(claimed, str) and claimed != region.trust_list.region:
            region = self._recognized(claimed, now)[1]
        candidates = [k for k in region.agency_keys if _qr.kid_ref(k) == unwrapped.kid_ref]
        if not candidates:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.UNKNOWN_KID,
                           f"the QR key reference {unwrapped.kid_ref.hex()} names no trusted "
                           f"agency key of region {region.trust_list.region}")
        if len(candidates) == 1:  # the usual case: the signature is checked once, later
            return unwrapped.compact(candidates[0])
        for kid in candidates[:8]:  # a 4-byte reference: more than one match is rare
            token = unwrapped.compact(kid)
            entry = region.agency_keys[kid]
            if entry.alg == unwrapped.alg and verify_signature(
                    entry.alg, entry.key, token.rsplit(".", 1)[0].encode("ascii"),
                    unwrapped.signature):
                return token
        return unwrapped.compact(candidates[0])

    # -- foreign regions ---------------------------------------------------------------------

    def _recognized(self, region_code: str, now: int) -> tuple[Agreement, _RegionTrust]:
        """Our agreement with ``region_code`` and its verified trust list, or a failure."""
        agreement = self._home.trust_list.agreement_with(region_code)
        if agreement is None:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.REGION_NOT_RECOGNIZED,
                           f"{self._home.trust_list.region} does not recognize region "
                           f"{region_code}")
        if not agreement.in_force(now):
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.AGREEMENT_NOT_IN_FORCE,
                           f"the agreement with {region_code} is not in force now")
        grace = self.limits.trust_list_grace_seconds
        cached = self._foreign.get(region_code)
        if cached is not None and not _pins_same_root(cached, agreement):
            cached = None  # our agreement now pins another root: start afresh
        if cached is not None and cached.usable(now, grace):
            return agreement, cached
        failed = self._foreign_failed.get(region_code)
        if cached is None and failed is not None and now < failed[0] + _FAILED_RETRY_SECONDS:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.FOREIGN_TRUST_LIST_INVALID,
                           failed[1])
        anchor = TrustAnchor(agreement.region, agreement.name, dict(agreement.root_jwk),
                             agreement.trust_list_url)
        seen = self._foreign_seen.get(region_code)
        try:
            trust_list, current = _load_region(anchor, self._source, now, self.limits,
                                               self._state, seen)
        except TrustListError as e:
            if cached is not None and now <= cached.trust_list.next_update + grace:
                cached.checked_at = now  # refresh failed; what we have is still in grace
                return agreement, cached
            message = f"trust list of {region_code} cannot be used: {e.message}"
            self._foreign_failed[region_code] = (now, message)
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.FOREIGN_TRUST_LIST_INVALID,
                           message) from e
        trust = _RegionTrust(trust_list, current, self._source, self.limits)
        trust.pinned_kid = agreement.root_jwk["kid"]
        trust.checked_at = now
        self._foreign[region_code] = trust
        self._foreign_failed.pop(region_code, None)
        self._foreign_seen[region_code] = max(trust_list.sequence,
                                              self._foreign_seen.get(region_code, 0))
        return agreement, trust

    def _refresh_home(self, now: int) -> None:
        """Past next update: fetch the home list again (rollback still refused)."""
        home = self._home
        if home.anchor is None or home.usable(now, self.limits.trust_list_grace_seconds):
            return
        try:
            trust_list, current = _load_region(self._pinned or home.anchor, self._source, now,
                                               self.limits, self._state,
                                               home.trust_list.sequence)
        except TrustListError:
            home.checked_at = now  # keep what we have; the grace check decides
            return
        self._home = _RegionTrust(trust_list, current, self._source, self.limits)
        self._home.checked_at = now
        self._foreign.clear()  # agreements may have changed


_K = TypeVar("_K")


def _agency_keys(region: _RegionTrust) -> Mapping[str, _AgencyKey]:
    return region.agency_keys


def _sharing_keys(region: _RegionTrust) -> Mapping[str, tuple[TrustedKey, str, PublicKey]]:
    return region.sharing_keys


def _check_use(claims: CopyClaims, audience: str | None, purpose: str | None) -> None:
    """The use a copy is verified for: its requester (always stated), and its purpose
    when the caller states one. A copy is refused to anyone else."""
    if audience is None:
        raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.AUDIENCE_REQUIRED,
                       "a copy is verified only for the requester it was made for: "
                       "give the audience")
    if claims.aud != audience:
        raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.WRONG_AUDIENCE,
                       f"the copy was made for {claims.aud}, not {audience}")
    if purpose is not None and claims.purpose != purpose:
        raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.WRONG_PURPOSE,
                       f"the copy was made for the purpose {claims.purpose!r}, "
                       f"not {purpose!r}")


def _check_window(agency: TrustedAgency, type_code: str, issued_at: int) -> None:
    """Judge a certificate by the agency's window for its type in force at its ``iat``."""
    if not agency.authorizes(type_code, issued_at):
        raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.TYPE_NOT_AUTHORIZED_AT_IAT,
                       f"agency {agency.code} was not authorized to issue {type_code} when "
                       "this certificate was issued")


def _qr_claims(qr: _qr.QrClaims, agency: TrustedAgency, region: _RegionTrust
               ) -> CertificateClaims:
    """The certificate claims a QR token states, ids and URIs rebuilt from the trust list."""
    type_entry = region.types.get(qr.vct)
    if type_entry is None or not agency.authorizes(qr.vct):
        raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.TYPE_NOT_AUTHORIZED,
                       f"agency {agency.code} is not authorized to issue {qr.vct}")
    _check_window(agency, qr.vct, qr.iat)
    if qr.signed_at < qr.iat:
        raise FormatError("QR signed before its certificate was issued", code="bad_claims")
    try:
        jti = str(CertificateId(type_entry.national_type_code, agency.uscc, qr.serial,
                                qr.id_version))
    except InvalidCertificateId as e:
        raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_CERTIFICATE_ID,
                       f"QR certificate id: {e}") from e
    return CertificateClaims(
        iss=agency.uri, sub="", jti=jti, iat=qr.iat, nbf=qr.nbf, exp=qr.exp, vct=qr.vct,
        vct_version=qr.vct_version, region=qr.region, holder_name=qr.holder_name,
        claims=qr.claims, status_list_uri=_qr.status_uri(qr.status_ref,
                                                         region.trust_list.base_url),
        status_index=qr.status_index,
    )


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: ``1``, ``1.0`` and ``true`` differ, as they do on the wire."""
    try:
        return canonical_json(a) == canonical_json(b)
    except (TypeError, ValueError):
        return False


def _pins_same_root(trust: _RegionTrust, agreement: Agreement) -> bool:
    return trust.pinned_kid == agreement.root_jwk["kid"]


def _load_region(anchor: TrustAnchor, source: DocumentSource, now: int,
                 limits: VerificationLimits, state: TrustState | None,
                 min_sequence: int | None) -> tuple[TrustList, TrustAnchor]:
    """Fetch and verify a region's trust list; follow and remember root rotations."""
    effective, seen = state.pinned(anchor) if state is not None else (anchor, None)
    floor = max((s for s in (seen, min_sequence) if s is not None), default=None)
    trust_list, current = fetch_and_verify(
        effective, source, now=now, grace=limits.trust_list_grace_seconds, seen_sequence=floor,
    )
    if state is not None:
        state.record(anchor, current, trust_list.sequence)
    return trust_list, current


def _default_source(offline: str | Path | None,
                    cache_dir: str | Path | None) -> DocumentSource:
    if offline is not None:
        return MirrorSource(Path(offline))
    return HttpSource(cache_dir=Path(cache_dir) / "http" if cache_dir else None)


#: After a failed or stale refresh, how long to keep using a list before trying again.
_REFRESH_RETRY_SECONDS = 300
#: After a region's list could not be loaded at all, how long before the next attempt.
_FAILED_RETRY_SECONDS = 30

_LIFECYCLE_PRIORITY = (
    (ErrorCode.REVOKED, VerificationStatus.REVOKED),
    (ErrorCode.SUSPENDED, VerificationStatus.SUSPENDED),
    (ErrorCode.EXPIRED, VerificationStatus.EXPIRED),
    (ErrorCode.COPY_EXPIRED, VerificationStatus.EXPIRED),
    (ErrorCode.NOT_YET_VALID, VerificationStatus.NOT_YET_VALID),
)
