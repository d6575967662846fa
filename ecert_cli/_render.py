"""How certificates, types, agencies and keys look on a terminal and in JSON."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

import ecert
from ecert_cli._errors import localized
from ecert_cli._i18n import _, is_chinese, pgettext

#: The time zone of human output when neither the registry nor ECERT_TZ names one.
DEFAULT_TZ = "Asia/Shanghai"
_TZ_KEY = "ecert.tz"

# What could make a value print as more than it is: C0 and C1 controls (line feed,
# carriage return, escape sequences…), DEL, the line and paragraph separators, and the
# bidirectional marks, embeddings, overrides and isolates (U+202E can reorder a line).
# ZWJ/ZWNJ and variation selectors stay: minority-language names need them.
_UNSAFE = frozenset([*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029,
                     0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def safe(value: object) -> str:
    """``value`` as one line that cannot pass for anything else: every character that
    could break or reorder a line is shown escaped (``\\n``, ``\\x1b``, ``\\u202e``).

    Every value from data (names, claims, subjects, messages) goes through this before
    a terminal sees it; :func:`fmt` does it for the values of a message.
    """
    text = value if isinstance(value, str) else str(value)
    if not any(ord(c) in _UNSAFE for c in text):
        return text
    out = []
    for c in text:
        code = ord(c)
        if code not in _UNSAFE:
            out.append(c)
        elif c in _NAMED:
            out.append(_NAMED[c])
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def fmt(message: str, /, **values: object) -> str:
    """``message`` translated, with its ``{name}`` placeholders filled by escaped values
    (numbers as they are)."""
    return _(message).format(**{k: v if isinstance(v, int | float) else safe(v)
                                for k, v in values.items()})


def say(message: str, /, **values: object) -> None:
    """Print :func:`fmt` of ``message``."""
    click.echo(fmt(message, **values))


# -- time ----------------------------------------------------------------------------------


def zone_name() -> str:
    """The time zone of human output: ECERT_TZ, else the registry's (once a command opened
    it), else Asia/Shanghai."""
    env = os.environ.get("ECERT_TZ", "").strip()
    if env:
        return env
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(_TZ_KEY):
        return str(ctx.meta[_TZ_KEY])
    return DEFAULT_TZ


def use_registry_zone(name: str) -> None:
    """Remember the opened registry's zone for this command's output."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_TZ_KEY] = name


def zone() -> ZoneInfo:
    """:func:`zone_name` as a ZoneInfo; an unknown name is a usage error."""
    return load_zone(zone_name())


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. Asia/Shanghai)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise _input_error("unknown time zone {name} (an IANA name such as Asia/Shanghai)",
                           code="invalid_tz", name=name) from e


def _input_error(message: str, /, code: str | None = None,
                 **values: object) -> ecert.InputError:
    from ecert_cli._i18n import in_english

    with in_english():
        english = fmt(message, **values)
    error = ecert.InputError(fmt(message, **values), code=code)
    localized(error, english)
    return error


def day_text(value: date) -> str:
    """A date as a clerk writes it: 2030-12-31, or 2030年12月31日."""
    if is_chinese():
        return f"{value.year}年{value.month}月{value.day}日"
    return value.isoformat()


def local_day(value: datetime) -> str:
    """The local date of an instant."""
    return day_text(value.astimezone(zone()).date())


def local_time(value: datetime | None) -> str:
    """An instant in the local zone, to the minute: 2030-12-31 23:59, 2030年12月31日 23:59."""
    if value is None:
        return "-"
    local = value.astimezone(zone())
    return f"{day_text(local.date())} {local:%H:%M}"


def day_instant(value: date | datetime | None, *, end: bool) -> datetime | None:
    """A date a clerk typed as the instant it means in the registry's zone (ECERT_TZ
    wins): the end of that day for an end (``--valid-until``), its start for a start
    (``--valid-from``). Times and None pass through. Call it once the registry is open."""
    if value is None or isinstance(value, datetime):
        return value
    from ecert._clock import end_of_day, from_seconds, start_of_day

    try:
        return from_seconds((end_of_day if end else start_of_day)(value, zone()))
    except (OverflowError, ValueError, OSError) as e:
        raise _input_error("{day} is out of range", day=value.isoformat()) from e


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def last_day(valid_until: datetime | None) -> str:
    """The last local day a certificate is valid (it expires at the start of the next
    second)."""
    if valid_until is None:
        return _("no expiry")
    return local_day(valid_until - timedelta(seconds=1))


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


def status_text(value: str) -> str:
    """A certificate status in the current language (the JSON keeps the code)."""
    names = {"valid": pgettext("status", "valid"), "suspended": pgettext("status", "suspended"),
             "revoked": pgettext("status", "revoked")}
    return names.get(value, value)


def width(text: str) -> int:
    """Terminal columns of ``text`` (CJK characters take two)."""
    return sum(2 if ord(c) >= 0x2E80 else 1 for c in text)


def pad(text: str, columns: int) -> str:
    """``text`` padded with spaces to ``columns`` terminal columns."""
    return text + " " * max(0, columns - width(text))


def label(text: str, columns: int = 12) -> str:
    """A row label (already translated) with its colon, padded: ``holder:     ``."""
    return pad(text + ("：" if is_chinese() else ":"), columns) + " "


def print_certificate(cert: ecert.Certificate, *, claims: bool = True,
                      shown_claims: Mapping[str, Any] | None = None) -> None:
    """A certificate as labelled lines; its claims (``shown_claims`` in their place, the
    holder's id masked) unless ``claims`` is false."""
    status = status_text(cert.status.value)
    if cert.revocation_reason is not None:
        status += f" ({cert.revocation_reason.value})"
    until = last_day(cert.valid_until)
    rows = [
        (pgettext("label", "id"), safe(cert.id)),
        (pgettext("label", "type"), safe(cert.type_code)),
        (pgettext("label", "holder"), fmt("{name}  [pseudonym {pseudonym}]", name=cert.holder_name,
                       pseudonym=cert.holder)),
        (pgettext("label", "issuer"), fmt("{agency} ({region})", agency=cert.agency_code,
                                          region=cert.region)),
        (pgettext("label", "valid"), fmt("{start} to {end}", start=local_day(cert.valid_from),
                                         end=until)),
        (pgettext("label", "status"), status),
    ]
    if cert.revoke_at is not None and cert.status is not ecert.CertificateStatus.REVOKED:
        rows.append((pgettext("label", "revocation"),
                     fmt("scheduled at {when} (superseded)", when=local_time(cert.revoke_at))))
    if cert.status_note:
        rows.append((pgettext("label", "reason"), safe(cert.status_note)))
    if cert.supersedes:
        rows.append((pgettext("label", "supersedes"), safe(cert.supersedes)))
    for name, value in rows:
        click.echo(f"{label(name)}{value}")
    if claims:
        click.echo(label(pgettext("label", "claims"), 0).rstrip())
        for line in claim_lines(dict(cert.claims if shown_claims is None else shown_claims),
                                indent=1):
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
            label = f"{pad}{safe(str(name))}:"
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
        return _("yes") if value else _("no")
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return safe(str(value))


def certificate_row(cert: ecert.Certificate) -> str:
    return (f"{safe(cert.id)}  {pad(status_text(cert.status.value), 9)}  "
            f"{safe(cert.type_code):<28}  {local_day(cert.issued_at)}  {safe(cert.holder_name)}")


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
