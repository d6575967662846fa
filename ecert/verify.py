"""Verification: is this token a valid certificate, by the rules of a trusted region?

This module is the verifier's edge: :class:`Verifier` holds the trust lists it fetched
and verified, caches status lists, keeps the state file, and hands them to the pure
pipeline of :mod:`ecert._verification` as a trust view. Per-format decoders (certificate
token, QR text, purpose-bound copy) and named policies live there.

:class:`Verifier` takes its trust (a verified trust list and a source of status lists)
at construction and checks tokens one by one. Hostile input never raises out of
:meth:`Verifier.verify`; it returns a :class:`VerificationResult` whose ``errors`` are
stable :class:`ErrorCode` values. The checks, in order (each fails closed):

1. size and structure: at most ``max_token_bytes``, three base64url parts, JSON objects;
2. header: ``alg`` in ecert's allow-list, no key-bearing header (``jwk``, ``jku``,
   ``x5u``, ``x5c``…), no ``crit``, ``typ`` is ``ecert+jwt`` (``ecert-copy+jwt``: a
   purpose-bound copy, checked against sharing keys and for the caller's audience and
   purpose; QR text is unwrapped to its exact JWS first: a certificate's
   ``ecert-qr+jwt`` token, or a copy);
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
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from ecert._clock import Clock, now_seconds, system_clock
from ecert._formats import bundle as _bundle
from ecert._formats import qr as _qr
from ecert._formats.certificate import CertificateClaims
from ecert._formats.jose import canonical_json
from ecert._formats.statuslist import INVALID, SUSPENDED, StatusListToken
from ecert._formats.trustlist import Agreement, TrustList
from ecert._sources import (
    BundleDirectory,
    DocumentSource,
    HttpSource,
    MirrorSource,
    RoutedSource,
)
from ecert._state import STATE_FILE, TrustState
from ecert._verification import pipeline
from ecert._verification.policies import CopyUse, PolicySet
from ecert._verification.region import RegionIndex
from ecert._verification.vocabulary import (
    ErrorCode,
    Failure,
    Issuer,
    TokenKind,
    VerificationLimits,
    VerificationStatus,
    invalid,
    untrusted,
)
from ecert.errors import EcertError, FormatError, TrustListError, VerificationFailed
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
    #: Whether the input was QR text (``EC1:``) rather than the certificate token (or,
    #: for a copy, rather than the copy token: its QR form carries the whole copy).
    qr: bool = False
    #: For QR text: the claims the QR carried (the others are bound only by ``qr_digest``;
    #: a copy's QR carries all of the copy's).
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


def _result(outcome: pipeline.Outcome) -> VerificationResult:
    """The public result of a token the pipeline accepted (valid or with lifecycle
    findings)."""
    checked = outcome.token
    copy = checked.copy
    if copy is not None:
        original = copy.original
        info = CopyInfo(
            id=copy.jti, copy_of=copy.copy_of, audience=copy.aud, purpose=copy.purpose,
            case=copy.case, type_code=original.vct, type_version=original.vct_version,
            claims=copy.claims, issued_at=_ts(copy.iat), expires_at=_ts(copy.exp),
            original_valid_from=_ts(original.nbf),
            original_valid_until=None if original.exp is None else _ts(original.exp),
            original_issued_at=_ts(original.iat), status_list_uri=copy.status_list_uri,
            status_index=copy.status_index)
        # A copy's QR form carries the whole copy: every claim present, none digest-bound.
        return VerificationResult(outcome.status, outcome.errors, checked.issuer,
                                  outcome.messages, local_type=outcome.local_type,
                                  agreement=checked.agreement, kind=checked.kind, copy=info,
                                  qr=outcome.from_qr,
                                  claims_present=tuple(sorted(copy.claims)) if outcome.from_qr
                                  else ())
    claims, qr, issuer = checked.certificate, checked.qr, checked.issuer
    assert claims is not None  # noqa: S101 - every decoder but the copy's sets it
    certificate = partial(_certificate, claims, issuer.agency_code, issuer.kid,
                          checked.token, outcome.status_value)
    if qr is None:
        # The common case, built the fast way: a frozen dataclass's __init__ sets each of
        # its 14 members through object.__setattr__ (about 3 µs, a tenth of what a
        # verifier spends beyond the signature); the same members are filled in at once.
        result = object.__new__(VerificationResult)
        result.__dict__.update(
            _RESULT_DEFAULTS, status=outcome.status, errors=outcome.errors, issuer=issuer,
            messages=outcome.messages, local_type=outcome.local_type,
            agreement=checked.agreement, _certificate=certificate, kind=TokenKind.CERTIFICATE)
        return result
    return VerificationResult(
        outcome.status, outcome.errors, issuer, outcome.messages,
        _certificate=certificate, qr=True, claims_present=tuple(sorted(claims.claims)),
        digest_bound=not qr.complete, qr_digest=qr.digest, local_type=outcome.local_type,
        agreement=checked.agreement, kind=checked.kind,
    )


#: Every member of a result with its default.
_RESULT_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(VerificationResult)
                                     if f.default is not MISSING}


class _Region:
    """One region's verified trust list (indexed for the pipeline) with what the edge
    keeps for it: where it came from, when it was checked, its status lists."""

    def __init__(self, trust_list: TrustList, anchor: TrustAnchor | None,
                 source: DocumentSource, limits: VerificationLimits) -> None:
        self.index = RegionIndex(trust_list)
        self.trust_list = trust_list
        self.anchor = anchor
        self.source = source
        self.limits = limits
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

    def status_list(self, uri: str, now: int) -> StatusListToken:
        cached = self.status_lists.get(uri)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            _bundle.relative_path(self.trust_list.base_url, uri)
            data = self.source.fetch(uri, max_bytes=self.limits.max_status_list_bytes)
        except (OSError, EcertError) as e:
            # A list we cannot read means we cannot know the status: fail closed.
            raise invalid(ErrorCode.STATUS_LIST_UNAVAILABLE,
                          f"status list {uri} is unavailable: {e}") from e
        token = self.index.check_status_list(data, uri, now, self.limits)
        self.source.verified(uri, data)  # only now may a cache keep it
        # ttl counts from when we fetched the list; never cache past its expiry.
        refresh_at = now + (token.ttl or 300)
        expires_at = token.expires
        if expires_at is not None:
            refresh_at = min(refresh_at, expires_at)
        self.status_lists[uri] = (token, max(refresh_at, now + 1))
        return token


class _View:
    """The verifier's trust as the pipeline sees it (a :class:`TrustView`)."""

    __slots__ = ("_verifier", "home")

    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier
        #: The home region's index: replaced with the home trust list (``_set_home``).
        self.home = verifier._home.index

    def recognized(self, region: str, now: int) -> tuple[Agreement, RegionIndex]:
        agreement, trust = self._verifier._recognized(region, now)
        return agreement, trust.index

    def status_list(self, region: str, uri: str, now: int) -> StatusListToken:
        verifier = self._verifier
        home = verifier._home
        trust = home if region == home.index.code else verifier._foreign[region]
        return trust.status_list(uri, now)


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
        self._home = _Region(trust_list, anchor, source, self.limits)
        self._view = _View(self)  # after _home: it reads the home index
        self._policies = PolicySet.standard(trust_list.region, self.limits.leeway_seconds)
        self._source = source
        self._foreign: dict[str, _Region] = {}
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
        (``ecert-copy+jwt``) as its token or its QR text (a printed copy's card): both
        forms of a copy are judged alike. A copy is accepted only for the requester it
        was made for: ``audience`` (``REGION/agency-code``) is required for a copy and must be its
        ``aud`` (else ``audience_required``, ``wrong_audience``), and ``purpose``, when
        given, must be its purpose (``wrong_purpose``). Certificates and QR codes are
        bearer documents: they ignore both.
        """
        try:
            return self._verify(token, audience, purpose)
        except Failure as f:
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
        except Failure as f:
            raise FormatError(f.message, code=f.code.value) from f

    def foreign_trust_list(self, region: str) -> TrustList:
        """The verified trust list of a region the home region recognizes.

        Raises :class:`ecert.errors.TrustListError` if it is not recognized or unusable.
        """
        try:
            return self._recognized(region, _now(self._clock))[1].trust_list
        except Failure as f:
            raise TrustListError(f.message, code=f.code.value) from f

    def fetch_foreign_trust_list(self, region: str, *, min_sequence: int | None = None
                                 ) -> tuple[TrustList, Agreement]:
        """Fetch and verify afresh the trust list of a region the home region recognizes
        now, against the root its agreement pins (following its rotations; a list older
        than ``min_sequence`` is a rollback), and return it with that agreement.

        Unlike :meth:`foreign_trust_list` it neither reads nor changes the verifier's own
        cache of foreign lists: several threads may call it for different regions at once
        (the sharing service refreshes each region's list in a thread of its own), as far
        as the verifier's source allows (:class:`ecert._sources.HttpSource` does). Raises
        :class:`ecert.errors.TrustListError`: ``region_not_recognized``,
        ``agreement_not_in_force``, or why the list cannot be used.
        """
        now = _now(self._clock)
        try:
            agreement = self._agreement(region, now)
        except Failure as f:
            raise TrustListError(f.message, code=f.code.value) from f
        return self._load_foreign(agreement, now, min_sequence)[0], agreement


    def _verify(self, token: str | bytes, audience: str | None,
                purpose: str | None) -> VerificationResult:
        now = _now(self._clock)
        if now > self._home.trust_list.next_update:
            self._refresh_home(now)
        if now > self._home.trust_list.next_update + self.limits.trust_list_grace_seconds:
            raise untrusted(ErrorCode.TRUST_LIST_EXPIRED,
                            "the trust list is past its next update; refresh it")
        use = _ANY_USE if audience is None and purpose is None else CopyUse(audience, purpose)
        return _result(pipeline.run(token, self._view, self.limits, now, self._policies, use))

    # -- foreign regions ---------------------------------------------------------------------

    def _agreement(self, region_code: str, now: int) -> Agreement:
        """Our agreement with ``region_code``, in force now, or a failure."""
        agreement = self._home.trust_list.agreement_with(region_code)
        if agreement is None:
            raise untrusted(ErrorCode.REGION_NOT_RECOGNIZED,
                            f"{self._home.trust_list.region} does not recognize region "
                            f"{region_code}")
        if not agreement.in_force(now):
            raise untrusted(ErrorCode.AGREEMENT_NOT_IN_FORCE,
                            f"the agreement with {region_code} is not in force now")
        return agreement

    def _load_foreign(self, agreement: Agreement, now: int, seen: int | None
                      ) -> tuple[TrustList, TrustAnchor]:
        """Fetch and verify the list of the region ``agreement`` recognizes, against the
        root it pins (:class:`TrustListError` if it cannot be used)."""
        anchor = TrustAnchor(agreement.region, agreement.name, dict(agreement.root_jwk),
                             agreement.trust_list_url)
        return _load_region(anchor, self._source, now, self.limits, self._state, seen)

    def _recognized(self, region_code: str, now: int) -> tuple[Agreement, _Region]:
        """Our agreement with ``region_code`` and its verified trust list, or a failure."""
        agreement = self._agreement(region_code, now)
        grace = self.limits.trust_list_grace_seconds
        cached = self._foreign.get(region_code)
        if cached is not None and not _pins_same_root(cached, agreement):
            cached = None  # our agreement now pins another root: start afresh
        if cached is not None and cached.usable(now, grace):
            return agreement, cached
        failed = self._foreign_failed.get(region_code)
        if cached is None and failed is not None and now < failed[0] + _FAILED_RETRY_SECONDS:
            raise untrusted(ErrorCode.FOREIGN_TRUST_LIST_INVALID, failed[1])
        seen = self._foreign_seen.get(region_code)
        try:
            trust_list, current = self._load_foreign(agreement, now, seen)
        except TrustListError as e:
            if cached is not None and now <= cached.trust_list.next_update + grace:
                cached.checked_at = now  # refresh failed; what we have is still in grace
                return agreement, cached
            message = f"trust list of {region_code} cannot be used: {e.message}"
            self._foreign_failed[region_code] = (now, message)
            raise untrusted(ErrorCode.FOREIGN_TRUST_LIST_INVALID, message) from e
        trust = _Region(trust_list, current, self._source, self.limits)
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
        self._home = _Region(trust_list, current, self._source, self.limits)
        self._home.checked_at = now
        self._view.home = self._home.index
        self._foreign.clear()  # agreements may have changed


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: ``1``, ``1.0`` and ``true`` differ, as they do on the wire."""
    try:
        return canonical_json(a) == canonical_json(b)
    except (TypeError, ValueError):
        return False


def _pins_same_root(trust: _Region, agreement: Agreement) -> bool:
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

#: A call that states no use: a copy is then refused (``audience_required``).
_ANY_USE = CopyUse()
