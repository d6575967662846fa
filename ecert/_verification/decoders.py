"""Per-format decoders: each turns one kind of token into the same checked shape.

A decoder finds the signing key through the :class:`~ecert._verification.view.TrustView`
(among the keys of the role that signs its format), checks the algorithm and the
signature, decodes the claims strictly and binds them to the issuer as the trust list
knows it. What is left — type recognition, key validity, issue time, audience and
purpose, lifecycle — is the policies' (:mod:`ecert._verification.policies`), applied to
the :class:`Checked` shape alike for every format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any, NamedTuple

from ecert._formats import qr as _qr
from ecert._formats.certificate import CERTIFICATE_TYP, CertificateClaims
from ecert._formats.copy import COPY_TYP, CopyClaims
from ecert._formats.jose import ParsedJws, strict_json_loads, verify_signature
from ecert._formats.trustlist import Agreement, TrustedAgency, TrustedKey
from ecert._verification.region import AgencyKey, PlainKey, RegionIndex, check_window
from ecert._verification.view import TrustView, find_key
from ecert._verification.vocabulary import (
    ErrorCode,
    Failure,
    Issuer,
    TokenKind,
    invalid,
    untrusted,
)
from ecert.errors import FormatError, InvalidCertificateId
from ecert.identifiers import CertificateId


class Checked(NamedTuple):
    """A token whose signature verified with a key of ``region`` and whose claims are
    bound to its issuer: what every policy judges, whatever the format. (A named tuple:
    one is made for every token verified, and it is several times cheaper to build than
    a frozen dataclass.)"""

    kind: TokenKind
    region: RegionIndex
    #: The agreement a token of a recognized region is accepted under (None at home).
    agreement: Agreement | None
    key: TrustedKey  #: the signing key's entry (its validity is a policy's)
    issuer: Issuer
    signed_at: int  #: when the key signed: ``iat``, a QR's ``a``
    issued_at: int  #: the certificate's (for a copy, the copy's) ``iat``
    type_code: str  #: the (original's) type, in its region
    valid_from: int  #: the (original) certificate's validity
    valid_until: int | None
    status_list_uri: str  #: the (original) certificate's status
    status_index: int
    token: str  #: the compact JWS verified
    certificate: CertificateClaims | None = None  #: certificate and QR
    qr: _qr.QrClaims | None = None
    copy: CopyClaims | None = None
    #: The token's own expiry, beyond its certificate's: a copy's ``exp``.
    expires_at: int | None = None


# Which keys sign which format (attrgetter: no Python frame per token).
_agency_keys: Callable[[RegionIndex], Mapping[str, AgencyKey]] = attrgetter("agency_keys")
_sharing_keys: Callable[[RegionIndex], Mapping[str, PlainKey]] = attrgetter("sharing_keys")


def _signed(alg: str, key_alg: str, key: Any, parsed: ParsedJws) -> None:
    if alg != key_alg:
        raise invalid(ErrorCode.ALG_KEY_MISMATCH, "alg does not match the key type")
    if not verify_signature(key_alg, key, parsed.signing_input, parsed.signature):
        raise invalid(ErrorCode.BAD_SIGNATURE, "signature does not verify")


class CertificateDecoder:
    """The compact certificate token (``ecert+jwt``, format section 10.2 steps 4-8e)."""

    kind = TokenKind.CERTIFICATE
    typ = CERTIFICATE_TYP
    #: The payload member naming the token's region (read only to choose a trust list).
    region_claim = "region"

    def decode(self, parsed: ParsedJws, kid: str, token: str, view: TrustView,
               now: int) -> Checked:
        """Key, signature and claims bound to the issuer; raises a failure."""
        region = view.home
        found = region.agency_keys.get(kid)
        agreement: Agreement | None = None
        if found is None:  # not ours: maybe of a region the token names
            agreement, region, agency_key = find_key(
                view, kid, parsed.payload.get(self.region_claim), now, _agency_keys)
        else:
            agency_key = found
        _signed(parsed.header["alg"], agency_key.alg, agency_key.key, parsed)
        claims, qr = self.claims(parsed.payload, agency_key.agency, region)
        region.check_issuer(claims, agency_key.agency)
        return Checked(
            self.kind, region, agreement, agency_key.entry, agency_key.issuer,
            claims.iat if qr is None else qr.signed_at,  # a QR is signed when made
            claims.iat, claims.vct, claims.nbf, claims.exp, claims.status_list_uri,
            claims.status_index, token, certificate=claims, qr=qr)

    def claims(self, payload: Mapping[str, Any], agency: TrustedAgency, region: RegionIndex
               ) -> tuple[CertificateClaims, _qr.QrClaims | None]:
        """The certificate claims the payload states."""
        try:
            return CertificateClaims.from_payload(payload), None
        except FormatError as e:
            raise invalid(ErrorCode.BAD_CLAIMS, e.message) from e


class QrDecoder(CertificateDecoder):
    """QR text (``EC1:`` around an ``ecert-qr+jwt`` JWS, format section 14). Its
    :meth:`unwrap` also opens the QR form of a copy (section 17.4), which the
    :class:`CopyDecoder` then judges exactly as the copy token."""

    kind = TokenKind.QR
    typ = _qr.QR_TYP
    region_claim = "r"

    def unwrap(self, text: str, view: TrustView, now: int) -> str:
        """The exact compact JWS inside QR text; its kid resolved through the trust lists.

        The container carries only the first bytes of the kid. A QR token's key is looked
        up among the agency keys of the region its payload names (``r``): ours, or one we
        recognize. Choosing the region first means a foreign key whose reference happens
        to collide with one of ours cannot shadow it. A copy's (format section 17.4) is
        looked up as its token's kid is: among our sharing keys, then those of the region
        it names. The signature itself is checked later, by the decoder of the JWS's
        ``typ``.
        """
        unwrapped = _qr.unwrap(text)
        if unwrapped.typ == COPY_TYP:
            return _copy_token(unwrapped, view, now)
        region = view.home
        claimed = _claimed(unwrapped, "r")
        if isinstance(claimed, str) and claimed != region.code:
            region = view.recognized(claimed, now)[1]
        candidates = _matching(unwrapped, region.agency_keys)
        if not candidates:
            raise _unknown_ref(unwrapped, "agency", region.code)
        return _pick(unwrapped, candidates)

    def claims(self, payload: Mapping[str, Any], agency: TrustedAgency, region: RegionIndex
               ) -> tuple[CertificateClaims, _qr.QrClaims | None]:
        """The certificate claims a QR token states, ids and URIs rebuilt from the trust
        list."""
        try:
            qr = _qr.read_qr_payload(payload)
            return _qr_claims(qr, agency, region), qr
        except FormatError as e:
            raise invalid(ErrorCode.BAD_CLAIMS, e.message) from e


def _claimed(unwrapped: _qr.Unwrapped, member: str) -> Any:
    """What the payload says in ``member`` (read before the signature is checked, only to
    choose a trust list)."""
    payload = strict_json_loads(unwrapped.payload)
    return payload.get(member) if isinstance(payload, dict) else None


def _matching(unwrapped: _qr.Unwrapped, keys: Mapping[str, AgencyKey | PlainKey]
              ) -> list[tuple[str, AgencyKey | PlainKey]]:
    """The keys whose kid starts with the container's reference."""
    return [(kid, entry) for kid, entry in keys.items()
            if _qr.kid_ref(kid) == unwrapped.kid_ref]


def _pick(unwrapped: _qr.Unwrapped, candidates: list[tuple[str, AgencyKey | PlainKey]]
          ) -> str:
    """The compact JWS under the right one of ``candidates`` (not empty): the only one,
    or the first whose signature verifies, else the first (the decoder then refuses it)."""
    if len(candidates) == 1:  # the usual case: the signature is checked once, later
        return unwrapped.compact(candidates[0][0])
    for kid, entry in candidates[:8]:  # a 4-byte reference: more than one match is rare
        token = unwrapped.compact(kid)
        if entry.alg == unwrapped.alg and verify_signature(
                entry.alg, entry.key, token.rsplit(".", 1)[0].encode("ascii"),
                unwrapped.signature):
            return token
    return unwrapped.compact(candidates[0][0])


def _unknown_ref(unwrapped: _qr.Unwrapped, role: str, region: str) -> Failure:
    return untrusted(ErrorCode.UNKNOWN_KID,
                     f"the QR key reference {unwrapped.kid_ref.hex()} names no trusted "
                     f"{role} key of region {region}")


def _copy_token(unwrapped: _qr.Unwrapped, view: TrustView, now: int) -> str:
    """The copy token in a copy's QR form, its kid resolved as the token's would be
    (:func:`~ecert._verification.view.find_key`): our sharing keys first, then those of
    the region the copy names, if we recognize it — so that both forms of a copy get the
    same verdict."""
    home = view.home
    candidates = _matching(unwrapped, home.sharing_keys)
    claimed = _claimed(unwrapped, "region")
    if isinstance(claimed, str) and claimed != home.code:
        try:
            region = view.recognized(claimed, now)[1]
        except Failure as f:
            if not candidates:  # as for the token: none of our keys, nor a region we know
                f.kind = TokenKind.COPY
                raise
        else:
            candidates += _matching(unwrapped, region.sharing_keys)
    if not candidates:
        # A copy from its flags on, as the token is from its header: both forms of a copy
        # report the same kind. (A QR token's key reference failing leaves ``kind``
        # unset, as before it was known which token the code held.)
        failure = _unknown_ref(unwrapped, "sharing", home.code if not isinstance(
            claimed, str) else claimed)
        failure.kind = TokenKind.COPY
        raise failure
    return _pick(unwrapped, candidates)


def _qr_claims(qr: _qr.QrClaims, agency: TrustedAgency, region: RegionIndex
               ) -> CertificateClaims:
    type_entry = region.types.get(qr.vct)
    if type_entry is None or not agency.authorizes(qr.vct):
        raise untrusted(ErrorCode.TYPE_NOT_AUTHORIZED,
                        f"agency {agency.code} is not authorized to issue {qr.vct}")
    check_window(agency, qr.vct, qr.iat)
    if qr.signed_at < qr.iat:
        raise FormatError("QR signed before its certificate was issued", code="bad_claims")
    try:
        jti = str(CertificateId(type_entry.national_type_code, agency.uscc, qr.serial,
                                qr.id_version))
    except InvalidCertificateId as e:
        raise invalid(ErrorCode.BAD_CERTIFICATE_ID, f"QR certificate id: {e}") from e
    return CertificateClaims(
        iss=agency.uri, sub="", jti=jti, iat=qr.iat, nbf=qr.nbf, exp=qr.exp, vct=qr.vct,
        vct_version=qr.vct_version, region=qr.region, holder_name=qr.holder_name,
        claims=qr.claims, status_list_uri=_qr.status_uri(qr.status_ref,
                                                         region.trust_list.base_url),
        status_index=qr.status_index,
    )


class CopyDecoder:
    """A purpose-bound copy (``ecert-copy+jwt``, format section 17.2 steps C4-C8f)."""

    kind = TokenKind.COPY
    typ = COPY_TYP

    def decode(self, parsed: ParsedJws, kid: str, token: str, view: TrustView,
               now: int) -> Checked:
        """Only a sharing key signs a copy (an agency key never does); the original as
        the trust list knows it."""
        agreement, region, key = find_key(view, kid, parsed.payload.get("region"), now,
                                          _sharing_keys)
        _signed(parsed.header["alg"], key.alg, key.key, parsed)
        try:
            claims = CopyClaims.from_payload(parsed.payload)
        except FormatError as e:
            raise invalid(ErrorCode.BAD_CLAIMS, e.message) from e
        agency = region.check_copy(claims)
        original = claims.original
        issuer = Issuer(region.code, agency.code, agency.name, agency.uscc, agency.uri, kid)
        return Checked(
            self.kind, region, agreement, key.entry, issuer, claims.iat, claims.iat,
            original.vct, original.nbf, original.exp, claims.status_list_uri,
            claims.status_index, token, copy=claims, expires_at=claims.exp)


CERTIFICATE = CertificateDecoder()
QR = QrDecoder()
COPY = CopyDecoder()
