"""One region's verified trust list, indexed for the checks the pipeline makes.

Pure: it is built from a :class:`~ecert._formats.trustlist.TrustList` already verified
(by the edge) and checks what tokens and status lists say against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecert._formats.certificate import CertificateClaims
from ecert._formats.copy import CopyClaims
from ecert._formats.jose import PublicKey, check_header, parse_compact, verify_signature
from ecert._formats.statuslist import STATUS_LIST_TYP, StatusListToken, read_status_list_payload
from ecert._formats.trustlist import TrustedAgency, TrustedKey, TrustList
from ecert._verification.vocabulary import (
    ErrorCode,
    Failure,
    Issuer,
    VerificationLimits,
    invalid,
    untrusted,
)
from ecert.errors import FormatError, InvalidCertificateId
from ecert.identifiers import CertificateIdPrefix


@dataclass(frozen=True, slots=True)
class AgencyKey:
    """An agency's certificate key, with what verifying with it needs."""

    agency: TrustedAgency
    entry: TrustedKey
    alg: str
    key: PublicKey
    issuer: Issuer


@dataclass(frozen=True, slots=True)
class PlainKey:
    """A status or sharing key of the region."""

    entry: TrustedKey
    alg: str
    key: PublicKey


class RegionIndex:
    """A verified trust list, indexed: keys by role, types, agencies, id prefixes."""

    def __init__(self, trust_list: TrustList) -> None:
        self.trust_list = trust_list
        self.code = trust_list.region
        self.agency_keys: dict[str, AgencyKey] = {}
        self.types = {t.code: t for t in trust_list.types}
        for agency in trust_list.agencies:
            for entry in agency.keys:
                alg, key = entry.public_key()
                issuer = Issuer(trust_list.region, agency.code, agency.name, agency.uscc,
                                agency.uri, entry.kid)
                self.agency_keys[entry.kid] = AgencyKey(agency, entry, alg, key, issuer)
        self.status_keys = {k.kid: PlainKey(k, *k.public_key()) for k in trust_list.status_keys}
        #: Keys that sign copies: never agency keys, so the two never stand in for each other.
        self.sharing_keys = {k.kid: PlainKey(k, *k.public_key())
                             for k in trust_list.sharing_keys}
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

    def check_issuer(self, claims: CertificateClaims, agency: TrustedAgency) -> None:
        """A certificate's ``iss`` and ``region`` are its key's, its type and id the
        agency's (format steps 8a-8e)."""
        region = self.trust_list.region
        if claims.iss != agency.uri:
            raise untrusted(ErrorCode.ISSUER_MISMATCH,
                            f"iss {claims.iss!r} is not the key's agency {agency.uri!r}")
        if claims.region != region:
            raise untrusted(ErrorCode.REGION_MISMATCH,
                            f"region {claims.region!r} is not {region!r}")
        self.check_type(agency, claims.vct, claims.vct_version, claims.iat, claims.jti)

    def check_type(self, agency: TrustedAgency, vct: str, vct_version: int, iat: int,
                   jti: str) -> None:
        """The agency may issue ``vct`` (at ``iat``), the version is known, and ``jti``
        is a well-formed id naming the agency and the type."""
        type_entry = self.types.get(vct)
        if not agency.authorizes(vct) or type_entry is None:
            raise untrusted(ErrorCode.TYPE_NOT_AUTHORIZED,
                            f"agency {agency.code} is not authorized to issue {vct}")
        check_window(agency, vct, iat)
        if not 1 <= vct_version <= type_entry.version:
            raise invalid(ErrorCode.BAD_CLAIMS, f"type version {vct_version} of {vct} is unknown")
        id_prefix = self.id_prefixes.get((agency.code, vct))
        if id_prefix is None or not id_prefix.matches(jti):
            raise invalid(ErrorCode.BAD_CERTIFICATE_ID,
                          "certificate id is malformed, has a wrong check character, or "
                          "does not name this agency and type")

    def check_copy(self, claims: CopyClaims) -> TrustedAgency:
        """A copy is the region's (``iss``, ``region``), and names an original its agency
        may have issued: returns that agency (format steps C8a-C8f)."""
        region = self.trust_list.region
        if claims.iss != self.trust_list.base_url:
            raise untrusted(ErrorCode.ISSUER_MISMATCH,
                            f"iss {claims.iss!r} is not the base URL of region {region}")
        if claims.region != region:
            raise untrusted(ErrorCode.REGION_MISMATCH,
                            f"region {claims.region!r} is not {region!r}")
        original = claims.original
        agency = self.agencies_by_uri.get(original.iss)
        if agency is None:
            raise untrusted(ErrorCode.ISSUER_MISMATCH,
                            f"the original's iss {original.iss!r} is no agency of {region}")
        self.check_type(agency, original.vct, original.vct_version, original.iat,
                        claims.copy_of)
        return agency

    def check_status_list(self, data: bytes, uri: str, now: int,
                          limits: VerificationLimits) -> StatusListToken:
        """A status list token read from ``uri``, checked (format section 10.3)."""
        def bad(message: str) -> Failure:
            return invalid(ErrorCode.STATUS_LIST_INVALID, f"status list {uri}: {message}")

        try:
            parsed = parse_compact(data.decode("ascii", "replace").strip(),
                                   max_bytes=limits.max_status_list_bytes)
            kid = check_header(parsed.header, STATUS_LIST_TYP)
        except FormatError as e:
            raise bad(e.message) from e
        entry = self.status_keys.get(kid)
        if entry is None:
            raise bad("not signed by a status key of the region")
        if parsed.header["alg"] != entry.alg or not verify_signature(
            entry.alg, entry.key, parsed.signing_input, parsed.signature
        ):
            raise bad("signature does not verify")
        try:
            token = read_status_list_payload(parsed.payload)
        except FormatError as e:
            raise bad(e.message) from e
        if token.uri != uri:
            raise bad("its sub does not match the certificate's status URI")
        leeway = limits.leeway_seconds
        refused = entry.entry.refuses(token.issued_at, leeway)
        if refused == "compromised":
            raise bad("signed with a compromised key")
        if refused is not None:
            raise bad("its key was not valid when the list was issued")
        if token.issued_at > now + leeway:
            raise bad("issued in the future")
        expires_at = token.expires
        if expires_at is not None and now >= expires_at + leeway:
            raise invalid(ErrorCode.STATUS_LIST_EXPIRED,
                          f"status list {uri} expired: the issuer must republish it")
        return token


def check_window(agency: TrustedAgency, type_code: str, issued_at: int) -> None:
    """Judge a certificate by the agency's window for its type in force at its ``iat``."""
    if not agency.authorizes(type_code, issued_at):
        raise untrusted(ErrorCode.TYPE_NOT_AUTHORIZED_AT_IAT,
                        f"agency {agency.code} was not authorized to issue {type_code} when "
                        "this certificate was issued")
