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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from ecert._formats import bundle as _bundle
from ecert._formats.certificate import CERTIFICATE_TYP, MAX_TOKEN_BYTES, CertificateClaims
from ecert._formats.jose import (
    PublicKey,
    check_header,
    parse_compact,
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
from ecert._formats.trustlist import TrustedAgency, TrustedKey, TrustList
from ecert._sources import BundleDirectory, DocumentSource
from ecert.errors import (
    EcertError,
    FormatError,
    InvalidCertificateId,
    TrustListError,
    VerificationFailed,
)
from ecert.identifiers import CertificateIdPrefix
from ecert.models import Certificate, CertificateStatus
from ecert.trust import TrustAnchor, load_trust_list

__all__ = [
    "ErrorCode",
    "Issuer",
    "VerificationLimits",
    "VerificationResult",
    "VerificationStatus",
    "Verifier",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _system_clock() -> datetime:
    return datetime.now(UTC)


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
    BAD_CERTIFICATE_ID = "bad_certificate_id"
    KEY_NOT_VALID_AT_IAT = "key_not_valid_at_iat"
    KEY_COMPROMISED = "key_compromised"
    ISSUED_IN_FUTURE = "issued_in_future"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    TRUST_LIST_EXPIRED = "trust_list_expired"
    STATUS_LIST_UNAVAILABLE = "status_list_unavailable"
    STATUS_LIST_INVALID = "status_list_invalid"
    STATUS_LIST_EXPIRED = "status_list_expired"
    STATUS_INDEX_OUT_OF_RANGE = "status_index_out_of_range"
    STATUS_UNKNOWN_VALUE = "status_unknown_value"
    REVOKED = "revoked"
    SUSPENDED = "suspended"


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
class VerificationResult:
    """The outcome of :meth:`Verifier.verify`; truthy exactly when valid."""

    status: VerificationStatus
    errors: tuple[ErrorCode, ...] = ()
    certificate: Certificate | None = None
    issuer: Issuer | None = None
    messages: tuple[str, ...] = field(default=(), compare=False)

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


@dataclass(frozen=True, slots=True)
class _AgencyKey:
    agency: TrustedAgency
    entry: TrustedKey
    alg: str
    key: PublicKey
    issuer: Issuer


def _now(clock: Clock) -> int:
    now = clock()
    if now.tzinfo is None:
        raise TypeError("the verifier clock must return timezone-aware datetimes")
    return int(now.timestamp())


def _ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Verifier:
    """Verifies certificate tokens against one trusted region."""

    def __init__(
        self,
        trust_list: TrustList,
        source: DocumentSource,
        *,
        clock: Clock | None = None,
        limits: VerificationLimits | None = None,
    ) -> None:
        self.trust_list = trust_list
        self._source = source
        self._clock = clock or _system_clock
        self.limits = limits or VerificationLimits()
        self._agency_keys: dict[str, _AgencyKey] = {}
        self._types = {t.code: t for t in trust_list.types}
        for agency in trust_list.agencies:
            for entry in agency.keys:
                alg, key = entry.public_key()
                issuer = Issuer(trust_list.region, agency.code, agency.name, agency.uscc,
                                agency.uri, entry.kid)
                self._agency_keys[entry.kid] = _AgencyKey(agency, entry, alg, key, issuer)
        self._status_keys = {k.kid: (k, *k.public_key()) for k in trust_list.status_keys}
        # Ids each agency may issue, by type: prefix and check-character state precomputed.
        self._id_prefixes: dict[tuple[str, str], CertificateIdPrefix] = {}
        for agency in trust_list.agencies:
            for type_code in agency.types:
                type_entry = self._types.get(type_code)
                if type_entry is None:
                    continue
                try:
                    self._id_prefixes[agency.code, type_code] = CertificateIdPrefix(
                        type_entry.national_type_code, agency.uscc)
                except InvalidCertificateId:
                    continue  # a malformed code in the list: such ids never verify
        self._status_lists: dict[str, tuple[StatusListToken, int]] = {}

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
    ) -> Verifier:
        """A verifier over a published bundle directory.

        ``anchor`` pins the region root key; without it the bundle's own ``anchor.json``
        is used (trust on first use of that directory). ``min_sequence`` is the highest
        trust list sequence already seen: an older list is refused as a rollback. Raises
        :class:`ecert.errors.TrustListError` if the trust list cannot be accepted.
        """
        root = Path(path)
        if anchor is None:
            anchor = TrustAnchor.load(root / _bundle.ANCHOR_FILE)
        limits = limits or VerificationLimits()
        clock = clock or _system_clock
        base_url = anchor.trust_list_url.rsplit("/", 1)[0]
        source = BundleDirectory(root, base_url)
        try:
            data = source.fetch(anchor.trust_list_url, max_bytes=4 * 1024 * 1024)
        except (OSError, FormatError) as e:
            raise TrustListError(f"cannot read the trust list in {root}: {e}",
                                 code="trust_list_unavailable") from e
        trust_list = load_trust_list(
            data.decode("ascii", "replace"),
            anchor,
            now=_now(clock),
            grace=limits.trust_list_grace_seconds,
            seen_sequence=min_sequence,
        )
        return cls(trust_list, source, clock=clock, limits=limits)

    # -- verification ------------------------------------------------------------------------

    def verify(self, token: str | bytes) -> VerificationResult:
        """Verify ``token``; never raises on bad input."""
        try:
            return self._verify(token)
        except _Failure as f:
            return VerificationResult(f.status, (f.code,), messages=(f.message,))
        except Exception as e:  # fail closed on anything unforeseen, and say so
            log.exception("unexpected error while verifying a token")
            return VerificationResult(
                VerificationStatus.INVALID, (ErrorCode.MALFORMED,),
                messages=(f"internal error: {type(e).__name__}",),
            )

    def verify_or_raise(self, token: str | bytes) -> VerificationResult:
        """Like :meth:`verify`, but raise :class:`ecert.errors.VerificationFailed` unless valid."""
        result = self.verify(token)
        if not result.valid:
            raise VerificationFailed(result)
        return result

    def _verify(self, token: str | bytes) -> VerificationResult:
        now = _now(self._clock)
        leeway = self.limits.leeway_seconds
        if now > self.trust_list.next_update + self.limits.trust_list_grace_seconds:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.TRUST_LIST_EXPIRED,
                           "the trust list is past its next update; refresh it")
        if isinstance(token, bytes | bytearray):
            if len(token) > self.limits.max_token_bytes:
                raise _Failure(VerificationStatus.INVALID, ErrorCode.TOO_LARGE, "token too large")
            token = bytes(token).decode("ascii", "replace")
        # 1-2. structure and header policy
        try:
            if token[:1].isspace() or token[-1:].isspace():
                token = token.strip()
            parsed = parse_compact(token, max_bytes=self.limits.max_token_bytes)
            kid = check_header(parsed.header, CERTIFICATE_TYP)
        except FormatError as e:
            raise _Failure(VerificationStatus.INVALID,
                           _FORMAT_CODES.get(e.code, ErrorCode.MALFORMED), e.message) from e
        # 3. the key: only ever from the trust list
        agency_key = self._agency_keys.get(kid)
        if agency_key is None:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.UNKNOWN_KID,
                           f"key {kid!r} is not a trusted key of region {self.trust_list.region}")
        if parsed.header["alg"] != agency_key.alg:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.ALG_KEY_MISMATCH,
                           "alg does not match the key type")
        # 4. signature
        if not verify_signature(agency_key.alg, agency_key.key, parsed.signing_input,
                                parsed.signature):
            raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_SIGNATURE,
                           "signature does not verify")
        # 5. claims bound to the issuer
        try:
            claims = CertificateClaims.from_payload(parsed.payload)
        except FormatError as e:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_CLAIMS, e.message) from e
        agency = agency_key.agency
        self._check_issuer(claims, agency)
        # 6. key validity at issuance
        entry = agency_key.entry
        if entry.compromised_since is not None and claims.iat >= entry.compromised_since:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.KEY_COMPROMISED,
                           "signed with a key compromised at or before its issue time")
        if claims.iat < entry.valid_from - leeway or (
            entry.valid_until is not None and claims.iat > entry.valid_until
        ):
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.KEY_NOT_VALID_AT_IAT,
                           "the key was not valid when the token says it was issued")
        # 7-8. lifecycle: time and status; gather all, report the gravest
        errors: list[ErrorCode] = []
        messages: list[str] = []
        if claims.iat > now + leeway:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.ISSUED_IN_FUTURE,
                           "issued in the future")
        status_value = self._status_of(claims, now)
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
        registry_status = {INVALID: CertificateStatus.REVOKED,
                           SUSPENDED: CertificateStatus.SUSPENDED}.get(status_value,
                                                                        CertificateStatus.VALID)
        certificate = Certificate(
            id=claims.jti, type_code=claims.vct, agency_code=agency.code,
            region=claims.region, holder=claims.sub, holder_name=claims.holder_name,
            claims=claims.claims, issued_at=_ts(claims.iat), valid_from=_ts(claims.nbf),
            valid_until=_ts(claims.exp) if claims.exp is not None else None,
            status=registry_status, status_list_uri=claims.status_list_uri,
            status_index=claims.status_index, kid=kid, token=token,
            type_version=claims.vct_version, supersedes=claims.supersedes,
        )
        issuer = agency_key.issuer
        return VerificationResult(status, tuple(errors), certificate, issuer, tuple(messages))

    def _check_issuer(self, claims: CertificateClaims, agency: TrustedAgency) -> None:
        if claims.iss != agency.uri:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.ISSUER_MISMATCH,
                           f"iss {claims.iss!r} is not the key's agency {agency.uri!r}")
        if claims.region != self.trust_list.region:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.REGION_MISMATCH,
                           f"region {claims.region!r} is not {self.trust_list.region!r}")
        type_entry = self._types.get(claims.vct)
        if claims.vct not in agency.types or type_entry is None:
            raise _Failure(VerificationStatus.UNTRUSTED, ErrorCode.TYPE_NOT_AUTHORIZED,
                           f"agency {agency.code} is not authorized to issue {claims.vct}")
        if not 1 <= claims.vct_version <= type_entry.version:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_CLAIMS,
                           f"type version {claims.vct_version} of {claims.vct} is unknown")
        id_prefix = self._id_prefixes.get((agency.code, claims.vct))
        if id_prefix is None or not id_prefix.matches(claims.jti):
            raise _Failure(VerificationStatus.INVALID, ErrorCode.BAD_CERTIFICATE_ID,
                           "certificate id is malformed, has a wrong check character, or "
                           "does not name this agency and type")

    # -- status lists ------------------------------------------------------------------------

    def check_status_list(self, uri: str) -> None:
        """Fetch and check one status list of the region; raise :class:`FormatError` if bad."""
        try:
            self._status_list(uri, _now(self._clock))
        except _Failure as f:
            raise FormatError(f.message, code=f.code.value) from f

    def _status_of(self, claims: CertificateClaims, now: int) -> int:
        status_list = self._status_list(claims.status_list_uri, now)
        if claims.status_index >= status_list.status_list.size:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.STATUS_INDEX_OUT_OF_RANGE,
                           "status index is outside the status list")
        return status_list.status_list[claims.status_index]

    def _status_list(self, uri: str, now: int) -> StatusListToken:
        cached = self._status_lists.get(uri)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            data = self._source.fetch(uri, max_bytes=self.limits.max_status_list_bytes)
        except (OSError, EcertError) as e:
            # A list we cannot read means we cannot know the status: fail closed.
            raise _Failure(VerificationStatus.INVALID, ErrorCode.STATUS_LIST_UNAVAILABLE,
                           f"status list {uri} is unavailable: {e}") from e
        token = self._check_status_list(data, uri, now)
        # ttl counts from when we fetched the list; never cache past its expiry.
        refresh_at = now + (token.ttl or 300)
        if token.expires_at is not None:
            refresh_at = min(refresh_at, token.expires_at)
        self._status_lists[uri] = (token, max(refresh_at, now + 1))
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
        entry = self._status_keys.get(kid)
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
        compromised_since = key_entry.compromised_since
        if compromised_since is not None and token.issued_at >= compromised_since:
            raise bad("signed with a compromised key")
        leeway = self.limits.leeway_seconds
        if token.issued_at < key_entry.valid_from - leeway or (
            key_entry.valid_until is not None and token.issued_at > key_entry.valid_until
        ):
            raise bad("its key was not valid when the list was issued")
        if token.issued_at > now + leeway:
            raise bad("issued in the future")
        # Without exp, ttl bounds how old a list may be: fail closed rather than trust forever.
        expires_at = token.expires_at
        if expires_at is None and token.ttl is not None:
            expires_at = token.issued_at + token.ttl
        if expires_at is not None and now >= expires_at + leeway:
            raise _Failure(VerificationStatus.INVALID, ErrorCode.STATUS_LIST_EXPIRED,
                           f"status list {uri} expired: the issuer must republish it")
        return token


_LIFECYCLE_PRIORITY = (
    (ErrorCode.REVOKED, VerificationStatus.REVOKED),
    (ErrorCode.SUSPENDED, VerificationStatus.SUSPENDED),
    (ErrorCode.EXPIRED, VerificationStatus.EXPIRED),
    (ErrorCode.NOT_YET_VALID, VerificationStatus.NOT_YET_VALID),
)
