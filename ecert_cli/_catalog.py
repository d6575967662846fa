"""``ecert type …`` and ``ecert agency …``: the catalog and the issuing agencies."""

from __future__ import annotations

import json
from datetime import datetime

import click

import ecert
from ecert_cli._app import cli, emit, json_option, settings
from ecert_cli._files import read_text_file
from ecert_cli._render import agency_json, key_json, type_json


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def read_json_file(path: str, encoding: str | None = None) -> object:
    """A JSON document from a file or ``-`` (stdin), errors as one clear line.

    UTF-8 (with or without BOM) or GB 18030 is detected, or ``encoding`` given.
    """
    text = read_text_file(path, encoding)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ecert.InputError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}") from e
    except RecursionError as e:
        raise ecert.InputError(f"{path} nests too deeply") from e


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
@click.option("--holder-id-scheme", default=None, metavar="SCHEME",
              help="Scheme of holder ids: resident-id, uscc or pattern:REGEX.")
@click.option("--holder-claim", "holder_claims", multiple=True, metavar="KEY=CLAIM",
              help="Claim that must equal the holder id or name: holder_id=CLAIM or "
                   "holder_name=CLAIM (repeatable).")
@click.option("--encoding", default=None, help="Encoding of the schema file (default: "
              "UTF-8 or GB 18030, detected).")
@json_option
def type_add(code: str, name: str, schema_file: str, national_code: str,
             validity_days: int | None, qr_claims: str | None, type_version: int,
             holder_id_scheme: str | None, holder_claims: tuple[str, ...],
             encoding: str | None) -> None:
    """Add certificate type CODE to the catalog."""
    schema = read_json_file(schema_file, encoding)
    if not isinstance(schema, dict):
        raise ecert.InputError(f"{schema_file} must hold a JSON Schema object")
    bound: dict[str, str] = {}
    for item in holder_claims:
        key, sep, claim = item.partition("=")
        if not sep or not key.strip() or not claim.strip():
            raise ecert.InputError(f"--holder-claim {item!r} is not KEY=CLAIM",
                                   code="invalid_holder_claims")
        bound[key.strip()] = claim.strip()
    with settings().open_registry() as registry:
        value = registry.add_type(code, name=name, national_type_code=national_code,
                                  schema=schema, validity_days=validity_days,
                                  qr_claims=_split(qr_claims), version=type_version,
                                  holder_id_scheme=holder_id_scheme,
                                  holder_claims=bound or None)
    emit(type_json(value), f"added type {value.code} ({value.name}), national code "
                           f"{value.national_type_code}")


@type_group.command("list")
@json_option
def type_list() -> None:
    """List the catalog."""
    with settings().open_registry() as registry:
        types = registry.types()

    def human() -> None:
        if not types:
            click.echo("no types yet: add one with 'ecert type add'")
        for t in types:
            validity = f"{t.validity_days} days" if t.validity_days else "no expiry"
            click.echo(f"{t.code:<32} v{t.version}  {t.national_type_code}  {validity:<10}  "
                       f"{t.name}")

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
         f"added agency {value.code} ({value.name}) for {', '.join(value.types)}; "
         f"key {keys[-1].kid}")


@agency_group.command("list")
@json_option
def agency_list() -> None:
    """List agencies with their types and keys."""
    with settings().open_registry() as registry:
        agencies = [(a, registry.keys(a.code)) for a in registry.agencies()]

    def human() -> None:
        if not agencies:
            click.echo("no agencies yet: add one with 'ecert agency add'")
        for agency, keys in agencies:
            click.echo(f"{agency.code:<20} {agency.uscc}  {agency.name}")
            click.echo(f"{'':<20} types: {', '.join(agency.types)}")
            for key in keys:
                click.echo(f"{'':<20} key {key.kid} {key.alg} {key.status.value}")

    emit([agency_json(a, k) for a, k in agencies], human)


@agency_group.command("rotate-key")
@click.argument("code")
@json_option
def agency_rotate_key(code: str) -> None:
    """Give agency CODE a new signing key; the old key keeps verifying what it signed."""
    with settings().open_registry() as registry:
        key = registry.rotate_agency_key(code)
    emit(key_json(key), f"agency {code} now signs with key {key.kid}; publish to announce it")


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
            raise ecert.InputError(f"--since {since!r} is not an ISO 8601 time") from e
        if when.tzinfo is None:
            raise ecert.InputError("--since needs a zone, e.g. 2026-05-01T08:00+08:00")
    with settings().open_registry() as registry:
        key = registry.mark_key_compromised(kid, since=when)
        cutoff = key.compromised_since
        count = registry.signed_count(kid, since=cutoff)
    emit({**key_json(key), "affected_certificates": count},
         f"key {kid} of {key.agency_code} is compromised since "
         f"{cutoff.isoformat() if cutoff else '?'}; {count} certificate(s) signed since then "
         "will stop verifying: reissue them, then run 'ecert publish'")
