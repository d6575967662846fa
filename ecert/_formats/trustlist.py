"""The region trust list (``typ: ecert-trustlist+jwt``), signed by the region root key.

It names the region, a strictly increasing sequence number, when it was issued and
when verifiers must refresh it, the region's agencies with their keys and authorized
types, the keys that sign status lists, the type catalog, and recognition agreements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecert._formats.jose import (
    PublicKey,
    SignerLike,
    jwk_thumbprint,
    key_from_jwk,
    sign_compact,
)
from ecert.errors import FormatError

TRUST_LIST_TYP = "ecert-trustlist+jwt"
_KEY_STATUSES = frozenset({"active", "retired", "compromised"})


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise FormatError(f"trust list: {what}", code="malformed")


def _opt_int(value: Any) -> int | None:
    _require(value is None or type(value) is int, "times are integers")
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key with its validity window and status."""

    jwk: Mapping[str, str]
    valid_from: int
    valid_until: int | None = None
    status: str = "active"
    compromised_since: int | None = None

    @property
    def kid(self) -> str:
        """RFC 7638 thumbprint."""
        return self.jwk["kid"]

    def public_key(self) -> tuple[str, PublicKey]:
        """``(alg, key)``."""
        return key_from_jwk(self.jwk)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"jwk": dict(self.jwk), "valid_from": self.valid_from,
                                 "status": self.status}
        if self.valid_until is not None:
            entry["valid_until"] = self.valid_until
        if self.compromised_since is not None:
            entry["compromised_since"] = self.compromised_since
        return entry

    @classmethod
    def from_json(cls, value: Any) -> TrustedKey:
        _require(isinstance(value, dict), "a key entry is an object")
        jwk = value.get("jwk")
        _require(isinstance(jwk, dict) and all(isinstance(v, str) for v in jwk.values()),
                 "key entry needs a jwk")
        key_from_jwk(jwk)  # refuses private, malformed and unsupported keys
        _require(jwk.get("kid") == jwk_thumbprint(jwk), "kid is not the JWK thumbprint")
        valid_from = value.get("valid_from")
        _require(type(valid_from) is int, "key entry needs valid_from")
        status = value.get("status")
        _require(isinstance(status, str) and status in _KEY_STATUSES,
                 "key status is active, retired or compromised")
        compromised_since = _opt_int(value.get("compromised_since"))
        _require((status == "compromised") == (compromised_since is not None),
                 "compromised keys, and only they, carry compromised_since")
        return cls(jwk, valid_from, _opt_int(value.get("valid_until")), status, compromised_since)


@dataclass(frozen=True, slots=True)
class TrustedAgency:
    """An agency as the trust list describes it."""

    code: str
    name: str
    uscc: str
    uri: str
    types: tuple[str, ...]
    keys: tuple[TrustedKey, ...]

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "uscc": self.uscc, "uri": self.uri,
                "types": list(self.types), "keys": [k.to_json() for k in self.keys]}

    @classmethod
    def from_json(cls, value: Any) -> TrustedAgency:
        _require(isinstance(value, dict), "an agency is an object")
        code, name, uscc, uri = (value.get(n) for n in ("code", "name", "uscc", "uri"))
        _require(isinstance(code, str) and isinstance(name, str) and isinstance(uscc, str)
                 and isinstance(uri, str), "agency needs code, name, uscc, uri")
        types, keys = value.get("types"), value.get("keys")
        _require(isinstance(types, list) and all(isinstance(t, str) for t in types),
                 "agency types are a list of strings")
        _require(isinstance(keys, list), "agency keys are a list")
        return cls(code, name, uscc, uri, tuple(types),
                   tuple(TrustedKey.from_json(k) for k in keys))


@dataclass(frozen=True, slots=True)
class TypeEntry:
    """A catalog type as published: enough to check ids and map types across regions."""

    code: str
    version: int
    name: str
    national_type_code: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "version": self.version, "name": self.name,
                "national_type_code": self.national_type_code}

    @classmethod
    def from_json(cls, value: Any) -> TypeEntry:
        _require(isinstance(value, dict), "a type is an object")
        code, name, ntc = value.get("code"), value.get("name"), value.get("national_type_code")
        version = value.get("version")
        _require(isinstance(code, str) and isinstance(name, str) and isinstance(ntc, str)
                 and type(version) is int, "type needs code, version, name, national_type_code")
        return cls(code, version, name, ntc)


@dataclass(frozen=True, slots=True)
class TrustList:
    """The content of a region's trust list."""

    region: str
    name: str
    base_url: str
    sequence: int
    issued_at: int
    next_update: int
    agencies: tuple[TrustedAgency, ...]
    status_keys: tuple[TrustedKey, ...]
    types: tuple[TypeEntry, ...]
    agreements: tuple[Mapping[str, Any], ...] = ()
    #: URIs of every status list of the region, so mirrors know what to fetch.
    status_lists: tuple[str, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        return {
            "iss": self.base_url,
            "region": {"code": self.region, "name": self.name, "base_url": self.base_url},
            "seq": self.sequence,
            "iat": self.issued_at,
            "next_update": self.next_update,
            "agencies": [a.to_json() for a in self.agencies],
            "status_keys": [k.to_json() for k in self.status_keys],
            "types": [t.to_json() for t in self.types],
            "agreements": [dict(a) for a in self.agreements],
            "status_lists": list(self.status_lists),
        }

    def sign(self, signer: SignerLike) -> str:
        """Sign with the region root key."""
        return sign_compact(self.to_payload(), signer, TRUST_LIST_TYP)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> TrustList:
        region = payload.get("region")
        if not isinstance(region, dict):
            raise FormatError("trust list: region is an object", code="malformed")
        code, name, base = region.get("code"), region.get("name"), region.get("base_url")
        seq, iat, nxt = payload.get("seq"), payload.get("iat"), payload.get("next_update")
        agencies, status_keys = payload.get("agencies"), payload.get("status_keys")
        types, agreements = payload.get("types"), payload.get("agreements")
        if not (isinstance(code, str) and isinstance(name, str) and isinstance(base, str)):
            raise FormatError("trust list: region needs code, name, base_url", code="malformed")
        if not (type(seq) is int and type(iat) is int and type(nxt) is int and nxt > iat):
            raise FormatError("trust list: seq, iat and next_update are integers, "
                              "next_update after iat", code="malformed")
        if not (isinstance(agencies, list) and isinstance(status_keys, list)
                and isinstance(types, list) and isinstance(agreements, list)):
            raise FormatError("trust list: agencies, status_keys, types and agreements are "
                              "lists", code="malformed")
        _require(all(isinstance(a, dict) for a in agreements), "agreements are objects")
        status_lists = payload.get("status_lists", [])
        _require(isinstance(status_lists, list) and all(isinstance(u, str) for u in status_lists),
                 "status_lists is a list of URIs")
        return cls(
            region=code, name=name, base_url=base, sequence=seq, issued_at=iat,
            next_update=nxt,
            agencies=tuple(TrustedAgency.from_json(a) for a in agencies),
            status_keys=tuple(TrustedKey.from_json(k) for k in status_keys),
            types=tuple(TypeEntry.from_json(t) for t in types),
            agreements=tuple(agreements),
            status_lists=tuple(status_lists),
        )
