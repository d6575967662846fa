"""``ecert type …`` and ``ecert agency …``: the catalog and the issuing agencies."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from ecert_cli._app import cli, emit, input_error, json_option, settings
from ecert_cli._i18n import _, ngettext
from ecert_cli._render import agency_json, fmt, key_json, local_time, safe, say, type_json


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def read_json_file(path: str) -> object:
    """A JSON document from a file or ``-`` (stdin), errors as one clear line."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except OSError as e:
        raise input_error("cannot read {file}: {error}", file=path, error=e.strerror) from e
    except UnicodeDecodeError as e:
        raise input_error("{file} is not UTF-8 text", file=path) from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise input_error("{file} is not valid JSON: {error} at line {line}", file=path,
                          error=e.msg, line=e.lineno) from e


@cli.group("type")
def type_group() -> None:
    """Certificate types of the catalog."""


@type_group.command("add")
@click.argument("code")
@click.option("--name", required=True, help="Display name, e.g. 营业执照.")
@click.option("--schema", "schema_file", required=True, metavar="FILE",
              help="JSON Schema of the claims.")
@click.option("--national-code", required=True,
              help="GB/T 36904 national type code (21 characters).")
@click.option("--validity-days", type=click.IntRange(min=1), default=None,
              help="Default validity; omit for certificates without expiry.")
@click.option("--qr-claims", default=None, metavar="A,B,…",
              help="Claims a verifier must see offline (carried in QR codes).")
@click.option("--version", "type_version", type=click.IntRange(min=1), default=1,
              show_default=True, help="Type version.")
@json_option
def type_add(code: str, name: str, schema_file: str, national_code: str,
             validity_days: int | None, qr_claims: str | None, type_version: int) -> None:
    """Add certificate type CODE to the catalog."""
    schema = read_json_file(schema_file)
    if not isinstance(schema, dict):
        raise input_error("{file} must hold a JSON Schema object", file=schema_file)
    with settings().open_registry() as registry:
        value = registry.add_type(code, name=name, national_type_code=national_code,
                                  schema=schema, validity_days=validity_days,
                                  qr_claims=_split(qr_claims), version=type_version)
    emit(type_json(value), fmt("added type {code} ({name}), national code {national}",
                               code=value.code, name=value.name,
                               national=value.national_type_code))


@type_group.command("list")
@json_option
def type_list() -> None:
    """List the catalog."""
    with settings().open_registry() as registry:
        types = registry.types()

    def human() -> None:
        if not types:
            say("no types yet: add one with 'ecert type add'")
        for t in types:
            validity = (ngettext("{days} day", "{days} days", t.validity_days).format(
                days=t.validity_days) if t.validity_days else _("no expiry"))
            click.echo(f"{safe(t.code):<32} v{t.version}  {safe(t.national_type_code)}  "
                       f"{validity:<10}  {safe(t.name)}")

    emit([type_json(t) for t in types], human)


@cli.group("agency")
def agency_group() -> None:
    """Issuing agencies and their keys."""


@agency_group.command("add")
@click.argument("code")
@click.option("--name", required=True, help="Agency name.")
@click.option("--uscc", required=True, help="Unified social credit code (18 characters).")
@click.option("--types", "type_codes", required=True, metavar="T1,T2",
              help="Certificate types the agency may issue.")
@click.option("--alg", type=click.Choice(["ES256", "Ed25519"]), default="ES256",
              show_default=True, help="Signature algorithm of its key.")
@json_option
def agency_add(code: str, name: str, uscc: str, type_codes: str, alg: str) -> None:
    """Register agency CODE and create its signing key."""
    with settings().open_registry() as registry:
        value = registry.add_agency(code, name=name, uscc=uscc, types=_split(type_codes),
                                    alg=alg)
        keys = registry.keys(code)
    emit(agency_json(value, keys),
         fmt("added agency {code} ({name}) for {types}; key {kid}", code=value.code,
             name=value.name, types=", ".join(value.types), kid=keys[-1].kid))


@agency_group.command("list")
@json_option
def agency_list() -> None:
    """List agencies with their types and keys."""
    with settings().open_registry() as registry:
        agencies = [(a, registry.keys(a.code)) for a in registry.agencies()]

    def human() -> None:
        if not agencies:
            say("no agencies yet: add one with 'ecert agency add'")
        for agency, keys in agencies:
            click.echo(f"{safe(agency.code):<20} {safe(agency.uscc)}  {safe(agency.name)}")
            click.echo(f"{'':<20} " + fmt("types: {types}", types=", ".join(agency.types)))
            for key in keys:
                click.echo(f"{'':<20} " + fmt("key {kid} {alg} {status}", kid=key.kid,
                                              alg=key.alg, status=key.status.value))

    emit([agency_json(a, k) for a, k in agencies], human)


@agency_group.command("rotate-key")
@click.argument("code")
@json_option
def agency_rotate_key(code: str) -> None:
    """Give agency CODE a new signing key; the old key keeps verifying what it signed."""
    with settings().open_registry() as registry:
        key = registry.rotate_agency_key(code)
    emit(key_json(key), fmt("agency {code} now signs with key {kid}; publish to announce it",
                            code=code, kid=key.kid))


@agency_group.command("compromise-key")
@click.argument("kid")
@click.option("--since", default=None, metavar="TIME",
              help="When the key was compromised (ISO 8601 with zone; default now).")
@json_option
def agency_compromise_key(kid: str, since: str | None) -> None:
    """Declare agency key KID compromised; its signatures from --since on stop verifying."""
    when = None
    if since is not None:
        try:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError as e:
            raise input_error("--since {value} is not an ISO 8601 time",
                              value=repr(since)) from e
        if when.tzinfo is None:
            raise input_error("--since needs a zone, e.g. 2026-05-01T08:00+08:00")
    with settings().open_registry() as registry:
        key = registry.mark_key_compromised(kid, since=when)
        cutoff = key.compromised_since
        count = registry.signed_count(kid, since=cutoff)
    emit({**key_json(key), "affected_certificates": count},
         fmt("key {kid} of {agency} is compromised since {since}; {count} certificate(s) "
             "signed since then will stop verifying: reissue them, then run 'ecert publish'",
             kid=kid, agency=key.agency_code, since=local_time(cutoff) if cutoff else "?",
             count=count))
