"""How certificates, types, agencies and keys look on a terminal and in JSON."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click

import ecert


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def last_day(valid_until: datetime | None) -> str:
    """The last day a certificate is valid (it expires at the start of the next second)."""
    if valid_until is None:
        return "no expiry"
    return (valid_until - timedelta(seconds=1)).date().isoformat()


def certificate_json(cert: ecert.Certificate, *, token: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": cert.id,
        "type": cert.type_code,
        "type_version": cert.type_version,
        "agency": cert.agency_code,
        "region": cert.region,
        "holder": cert.holder,
        "holder_name": cert.holder_name,
        "status": cert.status.value,
        "revocation_reason": cert.revocation_reason.value if cert.revocation_reason else None,
        "issued_at": _when(cert.issued_at),
        "valid_from": _when(cert.valid_from),
        "valid_until": _when(cert.valid_until),
        "status_list": {"uri": cert.status_list_uri, "idx": cert.status_index},
        "kid": cert.kid,
        "supersedes": cert.supersedes,
        "claims": dict(cert.claims),
    }
    if token:
        data["token"] = cert.token
    return data


def print_certificate(cert: ecert.Certificate, *, claims: bool = True) -> None:
    status = cert.status.value
    if cert.revocation_reason is not None:
        status += f" ({cert.revocation_reason.value})"
    until = last_day(cert.valid_until)
    rows = [
        ("id", cert.id),
        ("type", cert.type_code),
        ("holder", f"{cert.holder_name}  [pseudonym {cert.holder}]"),
        ("issuer", f"{cert.agency_code} ({cert.region})"),
        ("valid", f"{cert.valid_from.date().isoformat()} to {until}"),
        ("status", status),
    ]
    if cert.supersedes:
        rows.append(("supersedes", cert.supersedes))
    for label, value in rows:
        click.echo(f"{label + ':':<12} {value}")
    if claims:
        click.echo("claims:")
        for name, value in cert.claims.items():
            click.echo(f"  {name}: {value if value is not None else '-'}")


def certificate_row(cert: ecert.Certificate) -> str:
    return (f"{cert.id}  {cert.status.value:<9}  {cert.type_code:<28}  "
            f"{cert.issued_at.date().isoformat()}  {cert.holder_name}")


def type_json(value: ecert.CertificateType) -> dict[str, Any]:
    return {"code": value.code, "version": value.version, "name": value.name,
            "national_type_code": value.national_type_code,
            "validity_days": value.validity_days, "qr_claims": list(value.qr_claims),
            "holder_id_scheme": value.holder_id_scheme,
            "holder_claims": dict(value.holder_claims)}


def agency_json(value: ecert.Agency, keys: list[ecert.KeyInfo]) -> dict[str, Any]:
    return {"code": value.code, "name": value.name, "uscc": value.uscc,
            "types": list(value.types), "keys": [key_json(k) for k in keys]}


def key_json(key: ecert.KeyInfo) -> dict[str, Any]:
    return {"kid": key.kid, "alg": key.alg, "role": key.role.value, "status": key.status.value,
            "created_at": _when(key.created_at), "retired_at": _when(key.retired_at)}
