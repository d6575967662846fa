"""How certificates, types, agencies and keys look on a terminal and in JSON."""

from __future__ import annotations

import unicodedata
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
        "revoke_at": _when(cert.revoke_at),
        "status_note": cert.status_note,
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
        ("holder", f"{safe_text(cert.holder_name)}  [pseudonym {cert.holder}]"),
        ("issuer", f"{cert.agency_code} ({cert.region})"),
        ("valid", f"{cert.valid_from.date().isoformat()} to {until}"),
        ("status", status),
    ]
    if cert.revoke_at is not None and cert.status is not ecert.CertificateStatus.REVOKED:
        rows.append(("revocation", f"scheduled at {_when(cert.revoke_at)} (superseded)"))
    if cert.status_note:
        rows.append(("reason", safe_text(cert.status_note)))
    if cert.supersedes:
        rows.append(("supersedes", cert.supersedes))
    for label, value in rows:
        click.echo(f"{label + ':':<12} {value}")
    if claims:
        click.echo("claims:")
        for line in claim_lines(cert.claims, indent=1):
            click.echo(line)


def claim_lines(value: Any, indent: int = 0) -> list[str]:
    """Claims as indented lines: objects as ``name: value`` (nested ones indented
    below their name), arrays as ``- item`` lines; text escaped so it cannot fake a line."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        if not value:
            return [f"{pad}{{}}"]
        for name, item in value.items():
            label = f"{pad}{safe_text(str(name))}:"
            if isinstance(item, dict | list) and item:
                lines.append(label)
                lines.extend(claim_lines(item, indent + 1))
            else:
                lines.append(f"{label} {_scalar(item)}")
        return lines
    if isinstance(value, list):
        if not value:
            return [f"{pad}[]"]
        for item in value:
            if isinstance(item, dict | list) and item:
                nested = claim_lines(item, indent + 1)
                # The first line of a nested member follows the dash.
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return lines
    return [f"{pad}{_scalar(value)}"]


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return safe_text(str(value))


def safe_text(text: str) -> str:
    """``text`` on one line: control, line-separating and bidi-override characters are
    shown as ``\\u`` escapes, so a stored value cannot fake an output line."""
    return "".join(
        f"\\u{ord(ch):04x}" if unicodedata.category(ch) in ("Cc", "Zl", "Zp")
        or ch in _BIDI_CONTROLS else ch for ch in text)


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                           "\u200e\u200f\u061c")


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
    data = {"code": value.code, "name": value.name, "uscc": value.uscc,
            "types": list(value.types), "keys": [key_json(k) for k in keys]}
    if value.windows:  # types given only for a time
        data["type_windows"] = [{"code": w.code, "from": _when(w.start),
                                 "until": _when(w.end)} for w in value.windows]
    return data


def key_json(key: ecert.KeyInfo) -> dict[str, Any]:
    return {"kid": key.kid, "alg": key.alg, "role": key.role.value, "status": key.status.value,
            "created_at": _when(key.created_at), "retired_at": _when(key.retired_at)}
