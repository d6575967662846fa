"""Issuing the reference sample certificates."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import ecert
from ecert import _samples

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc(number: int, prefix: str = "91440300MA") -> str:
    """A valid unified social credit code (GB 32100 check character computed here, apart
    from the library's): ``prefix`` + ``number`` in 7 digits + the check character."""
    body = f"{prefix}{number:07d}"[:17]
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(body, _USCC_WEIGHTS, strict=True))
    return body + _USCC_ALPHABET[(31 - total % 31) % 31]


_RESIDENT_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id(number: int, prefix: str = "33010619850101") -> str:
    """A valid resident identity number (GB 11643 check character computed here):
    ``prefix`` (region code and birth date) + ``number`` in 3 digits + the check."""
    body = f"{prefix}{number % 1000:03d}"
    total = sum(int(c) * w for c, w in zip(body, _RESIDENT_WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


def distinct_holder(claims: dict[str, Any], tag: str) -> dict[str, Any]:
    """``claims`` with the claim naming the holder id replaced by a valid id derived from
    ``tag`` (types bind the holder id to that claim, so another holder needs both)."""
    number = zlib.crc32(tag.encode())
    if "uscc" in claims:
        return {**claims, "uscc": uscc(number % 10_000_000)}
    field = "licence_number" if "licence_number" in claims and "id_number" not in claims \
        else "id_number"
    return {**claims, field: resident_id(number)}


def issue_business_licence(registry: ecert.Registry, **overrides: Any) -> ecert.Certificate:
    """Issue the reference GD business licence; another ``holder_id`` is also put in the
    ``uscc`` claim (which the type binds to the holder id), and another ``holder_name`` in
    the ``name`` claim, unless claims are given."""
    claims = _samples.claims("business-licence-gd")
    if "holder_id" in overrides and "claims" not in overrides:
        claims["uscc"] = overrides["holder_id"]
    if "holder_name" in overrides and "claims" not in overrides:
        claims["name"] = overrides["holder_name"]
    args: dict[str, Any] = {
        "holder_id": claims["uscc"], "holder_name": claims["name"], "claims": claims,
    }
    args.update(overrides)
    return registry.issue("cn.business-licence", "gd-amr", **args)


def write_card_of(registry: ecert.Registry, cert: ecert.Certificate, path: Path,
                  **options: Any) -> Any:
    """``ecert.card.write_card`` for a registry's certificate, as ``ecert card`` does."""
    from ecert import card

    allow_invalid = bool(options.get("allow_invalid"))
    token, state = registry.sign_qr(cert.id, allow_invalid=allow_invalid)
    options.setdefault("verify_url", registry.region.base_url + "/verify/")
    return card.write_card(cert, registry.get_type(cert.type_code),
                           registry.get_agency(cert.agency_code), token, path, state=state,
                           **options)
