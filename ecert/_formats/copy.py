"""The purpose-bound copy (加注件, ``typ: ecert-copy+jwt``): claim names and strict decoding.

A sharing service answers a requester with copies, never with the certificate itself. A
copy is signed by a registry **sharing** key (``sharing_keys`` of the trust list, never an
agency key), carries no top-level ``vct`` and another ``typ``, so no verifier can take it
for a certificate. It names the original (``copy_of``, and under ``original`` its issuer,
type and validity), the original's status reference (a revoked original invalidates its
copies), only the claims the requester's entitlement allows, the requester as audience
(``aud``: ``REGION/agency-code``), the stated purpose (用证事由), the case number (业务流水号)
and a short expiry of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ecert._formats.certificate import MAX_TIME
from ecert._formats.jose import SignerLike, sign_compact
from ecert.errors import FormatError

COPY_TYP = "ecert-copy+jwt"
#: The default lifetime of a copy: 24 hours.
DEFAULT_COPY_TTL = 24 * 3600
#: No copy lives longer than this (a verifier refuses one that claims to).
MAX_COPY_TTL = 7 * 24 * 3600
#: Longest purpose and case number, in characters.
MAX_PURPOSE = 200
MAX_CASE = 100


class OriginalRef(NamedTuple):
    """What a copy says of its original certificate."""

    iss: str  #: the issuing agency's URI
    vct: str  #: its type code (in the serving region)
    vct_version: int
    iat: int
    nbf: int
    exp: int | None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"iss": self.iss, "vct": self.vct,
                                 "vct_version": self.vct_version, "iat": self.iat,
                                 "nbf": self.nbf}
        if self.exp is not None:
            entry["exp"] = self.exp
        return entry


class CopyClaims(NamedTuple):
    """The claims of a purpose-bound copy. Times are seconds since the epoch."""

    iss: str  #: the serving region's base URL
    jti: str  #: the copy's own id
    iat: int
    exp: int
    region: str
    aud: str  #: the requester, ``REGION/agency-code``
    purpose: str
    case: str
    copy_of: str  #: the original certificate's id
    original: OriginalRef
    claims: Mapping[str, Any]  #: only those the entitlement allows
    status_list_uri: str  #: the original's status list
    status_index: int

    def to_payload(self) -> dict[str, Any]:
        """The JWT claims set."""
        return {
            "iss": self.iss, "jti": self.jti, "iat": self.iat, "exp": self.exp,
            "region": self.region, "aud": self.aud, "purpose": self.purpose,
            "case": self.case, "copy_of": self.copy_of, "original": self.original.to_json(),
            "claims": dict(self.claims),
            "status": {"status_list": {"idx": self.status_index, "uri": self.status_list_uri}},
        }

    def sign(self, signer: SignerLike) -> str:
        """Sign as a compact JWS with header ``{alg, kid, typ: "ecert-copy+jwt"}``."""
        return sign_compact(self.to_payload(), signer, COPY_TYP)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CopyClaims:
        """Decode a claims set, refusing anything of the wrong shape (``bad_claims``)."""

        def bad(what: str) -> FormatError:
            return FormatError(f"copy: {what}", code="bad_claims")

        if "vct" in payload:
            # A copy never states a type at the top: that is the certificate's shape.
            raise bad("a copy has no top-level vct")
        try:
            status = payload["status"]["status_list"]
            idx, uri = status["idx"], status["uri"]
            original = payload["original"]
        except (KeyError, TypeError) as e:
            raise bad("lacks status.status_list or original") from e
        get = payload.get
        strings = ("iss", "jti", "region", "aud", "purpose", "case", "copy_of")
        if not all(isinstance(get(name), str) and get(name) for name in strings):
            raise bad(f"{', '.join(strings)} are non-empty strings")
        if not (type(get("iat")) is int and type(get("exp")) is int):
            raise bad("iat and exp are integers")
        if not (isinstance(get("claims"), dict) and isinstance(original, dict)
                and type(idx) is int and idx >= 0 and isinstance(uri, str)):
            raise bad("claims and original are objects, the status index an integer")
        if len(payload["purpose"]) > MAX_PURPOSE or len(payload["case"]) > MAX_CASE:
            raise bad("purpose or case number too long")
        o_exp = original.get("exp")
        if not (isinstance(original.get("iss"), str) and isinstance(original.get("vct"), str)
                and type(original.get("vct_version")) is int
                and type(original.get("iat")) is int and type(original.get("nbf")) is int
                and (o_exp is None or type(o_exp) is int)):
            raise bad("original needs iss, vct, vct_version, iat, nbf")
        times = (payload["iat"], payload["exp"], original["iat"], original["nbf"])
        if not all(0 <= t <= MAX_TIME for t in times) or not (
                o_exp is None or 0 <= o_exp <= MAX_TIME):
            raise bad("times are outside 1970-9999")
        if not 0 < payload["exp"] - payload["iat"] <= MAX_COPY_TTL:
            raise bad("a copy expires after it is made, within 7 days")
        return cls(
            iss=payload["iss"], jti=payload["jti"], iat=payload["iat"], exp=payload["exp"],
            region=payload["region"], aud=payload["aud"], purpose=payload["purpose"],
            case=payload["case"], copy_of=payload["copy_of"],
            original=OriginalRef(original["iss"], original["vct"], original["vct_version"],
                                 original["iat"], original["nbf"], o_exp),
            claims=payload["claims"], status_list_uri=uri, status_index=idx,
        )
