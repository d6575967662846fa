"""The certificate token (``typ: ecert+jwt``): claim names and their strict decoding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ecert._formats.jose import SignerLike, sign_compact
from ecert.errors import FormatError

CERTIFICATE_TYP = "ecert+jwt"
#: Default ceiling on the length of a token a verifier looks at.
MAX_TOKEN_BYTES = 64 * 1024
#: 9999-12-31T23:59:59Z: later (or negative) times are refused as malformed.
MAX_TIME = 253_402_300_799


class CertificateClaims(NamedTuple):
    """The claims of a certificate token, typed. Times are seconds since the epoch."""

    iss: str
    sub: str
    jti: str
    iat: int
    nbf: int
    exp: int | None
    vct: str
    vct_version: int
    region: str
    holder_name: str
    claims: Mapping[str, Any]
    status_list_uri: str
    status_index: int
    supersedes: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """The JWT claims set."""
        payload: dict[str, Any] = {
            "iss": self.iss,
            "sub": self.sub,
            "jti": self.jti,
            "iat": self.iat,
            "nbf": self.nbf,
            "vct": self.vct,
            "vct_version": self.vct_version,
            "region": self.region,
            "holder_name": self.holder_name,
            "claims": dict(self.claims),
            "status": {"status_list": {"idx": self.status_index, "uri": self.status_list_uri}},
        }
        if self.exp is not None:
            payload["exp"] = self.exp
        if self.supersedes is not None:
            payload["supersedes"] = self.supersedes
        return payload

    def sign(self, signer: SignerLike) -> str:
        """Sign as a compact JWS with header ``{alg, kid, typ: "ecert+jwt"}``."""
        return sign_compact(self.to_payload(), signer, CERTIFICATE_TYP)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CertificateClaims:
        """Decode a claims set, refusing anything of the wrong shape."""
        try:
            status = payload["status"]["status_list"]
            idx, uri = status["idx"], status["uri"]
        except (KeyError, TypeError) as e:
            raise FormatError("token lacks status.status_list", code="bad_claims") from e
        exp = payload.get("exp")
        supersedes = payload.get("supersedes")
        claims = payload.get("claims")
        get = payload.get
        if (
            not isinstance(get("iss"), str)
            or not isinstance(get("sub"), str)
            or not isinstance(get("jti"), str)
            or not isinstance(get("vct"), str)
            or not isinstance(get("region"), str)
            or not isinstance(get("holder_name"), str)
            or type(get("iat")) is not int
            or type(get("nbf")) is not int
            or type(get("vct_version")) is not int
            or not (exp is None or type(exp) is int)
            or not (supersedes is None or isinstance(supersedes, str))
            or not isinstance(claims, dict)
            or type(idx) is not int
            or idx < 0
            or not isinstance(uri, str)
        ):
            raise FormatError("token claims have the wrong shape", code="bad_claims")
        if not (0 <= payload["iat"] <= MAX_TIME and 0 <= payload["nbf"] <= MAX_TIME
                and (exp is None or 0 <= exp <= MAX_TIME)):
            raise FormatError("token times are outside 1970-9999", code="bad_claims")
        return cls(
            iss=payload["iss"],
            sub=payload["sub"],
            jti=payload["jti"],
            iat=payload["iat"],
            nbf=payload["nbf"],
            exp=exp,
            vct=payload["vct"],
            vct_version=payload["vct_version"],
            region=payload["region"],
            holder_name=payload["holder_name"],
            claims=claims,
            status_list_uri=uri,
            status_index=idx,
            supersedes=supersedes,
        )
