"""``ecert type …`` and ``ecert agency …``: the catalog and the issuing agencies."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

import ecert
from ecert._pagination import page_in_memory
from ecert_cli._app import cli, emit, input_error, json_option, settings
from ecert_cli._files import read_text_file
from ecert_cli._i18n import _, ngettext
from ecert_cli._paging import emit_page, page_options
from ecert_cli._render import (
    agency_json,
    day_instant,
    fmt,
    key_json,
    local_time,
    safe,
    say,
    type_json,
)


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
        raise input_error("{file} is not valid JSON: {error} at line {line}", file=path,
                          error=e.msg, line=e.lineno) from e
    except RecursionError as e:
        raise input_error("{file} nests too deeply", file=path) from e


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
        raise input_error("{file} must hold a JSON Schema object", file=schema_file)
    bound: dict[str, str] = {}
    for item in holder_claims:
        key, sep, claim = item.partition("=")
        if not sep or not key.strip() or not claim.strip():
            raise input_error("--holder-claim {item} is not KEY=CLAIM", item=repr(item),
                              code="invalid_holder_claims")
        bound[key.strip()] = claim.strip()
    with settings().open_registry() as registry:
        value = registry.add_type(code, name=name, national_type_code=national_code,
                                  schema=schema, validity_days=validity_days,
                                  qr_claims=_split(qr_claims), version=type_version,
                                  holder_id_scheme=holder_id_scheme,
                                  holder_claims=bound or None)
    emit(type_json(value), fmt("added type {code} ({name}), national code {national}",
                               code=value.code, name=value.name,
                               national=value.national_type_code))


@type_group.command("update")
@click.argument("code")
@click.option("--schema", "schema_file", required=True, metavar="FILE",
              help="JSON Schema of the claims of the new version.")
@click.option("--version", "type_version", type=click.IntRange(min=1), default=None,
              help="Number of the new version (default: the next one).")
@click.option("--name", default=None, help="New display name (default: unchanged).")
@click.option("--validity-days", type=click.IntRange(min=1), default=None,
              help="New default validity (default: unchanged).")
@click.option("--qr-claims", default=None, metavar="A,B,…",
              help="New QR claims (default: unchanged).")
@json_option
def type_update(code: str, schema_file: str, type_version: int | None, name: str | None,
                validity_days: int | None, qr_claims: str | None) -> None:
    """Add a new version of type CODE; issued certificates keep their version."""
    schema = read_json_file(schema_file)
    if not isinstance(schema, dict):
        raise input_error("{file} must hold a JSON Schema object", file=schema_file)
    with settings().open_registry() as registry:
        kwargs: dict[str, Any] = {}
        if validity_days is not None:
            kwargs["validity_days"] = validity_days
        value = registry.update_type(code, schema=schema, name=name, version=type_version,
                                     qr_claims=None if qr_claims is None else _split(qr_claims),
                                     **kwargs)
    emit(type_json(value), fmt("type {code} is at version {version} now: new certificates use "
                               "it; run 'ecert publish' to announce it", code=value.code,
                               version=value.version))


@type_group.command("versions")
@click.argument("code")
@json_option
def type_versions(code: str) -> None:
    """List every version of type CODE."""
    with settings().open_registry() as registry:
        versions = registry.type_versions(code)

    def human() -> None:
        for t in versions:
            say("v{version}  {name}  qr: {qr}", version=t.version, name=t.name,
                qr=", ".join(t.qr_claims) or "-")

    emit([type_json(t) for t in versions], human)


@type_group.command("list")
@page_options()
@json_option
def type_list(limit: int, after: str | None) -> None:
    """List the catalog, by code."""
    with settings().open_registry() as registry:
        page = page_in_memory(registry.types(), limit, after, lambda t: (t.code,), (str,))
    types = page.items

    def human() -> None:
        if not types:
            say("no types yet: add one with 'ecert type add'")
        for t in types:
            validity = (ngettext("{days} day", "{days} days", t.validity_days).format(
                days=t.validity_days) if t.validity_days else _("no expiry"))
            click.echo(f"{safe(t.code):<32} v{t.version}  {safe(t.national_type_code)}  "
                       f"{validity:<10}  {safe(t.name)}")

    emit_page(page, type_json, human)


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


def _deny_from(value: str | None) -> datetime | date | None:
    if value is None:
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise input_error("--from {value} is not a date (2027-01-01) or an ISO 8601 time",
                          code="invalid_date", value=repr(value)) from e
    if when.tzinfo is None:
        raise input_error("--from needs a zone, e.g. 2027-01-01T00:00+08:00",
                          code="invalid_date")
    return when


def _window_text(w: ecert.TypeWindow) -> str:
    """A type window as a clerk reads it, in the registry's time zone."""
    return fmt("{code}: from {start} until {end}", code=w.code,
               start=local_time(w.start) if w.start else _("the start"),
               end=local_time(w.end) if w.end else _("further notice"))


@agency_group.command("update")
@click.argument("code")
@click.option("--name", default=None, help="New agency name.")
@click.option("--allow-type", "allow", multiple=True, metavar="T",
              help="Give the agency type T (repeatable).")
@click.option("--deny-type", "deny", multiple=True, metavar="T",
              help="Deny the agency type T (repeatable); what it issued before stays valid.")
@click.option("--from", "deny_from", default=None, metavar="DATE",
              help="Deny from this date (its start in the registry's time zone) or ISO 8601 "
                   "time on; default now.")
@json_option
def agency_update(code: str, name: str | None, allow: tuple[str, ...], deny: tuple[str, ...],
                  deny_from: str | None) -> None:
    """Rename agency CODE, or give or deny it types (each change is logged)."""
    with settings().open_registry() as registry:
        value = registry.update_agency(
            code, name=name, allow_types=allow, deny_types=deny,
            deny_from=day_instant(_deny_from(deny_from), end=False))
        keys = registry.keys(code)

    def human() -> None:
        say("agency {code} ({name}) updated; run 'ecert publish' to announce it",
            code=value.code, name=value.name)
        now = datetime.now(UTC)
        current = [t for t in value.types if value.may_issue(t, now)]
        say("  issues now: {types}", types=", ".join(current) or _("nothing"))
        for w in value.windows:
            click.echo("  " + _window_text(w))

    emit(agency_json(value, keys), human)


@agency_group.command("list")
@page_options()
@json_option
def agency_list(limit: int, after: str | None) -> None:
    """List agencies with their types and keys, by code."""
    with settings().open_registry() as registry:
        shown = page_in_memory(registry.agencies(), limit, after, lambda a: (a.code,), (str,))
        page = ecert.Page(tuple((a, registry.keys(a.code)) for a in shown.items), shown.more,
                          shown.next)
    agencies = page.items

    def human() -> None:
        if not agencies:
            say("no agencies yet: add one with 'ecert agency add'")
        for agency, keys in agencies:
            click.echo(f"{safe(agency.code):<20} {safe(agency.uscc)}  {safe(agency.name)}")
            click.echo(f"{'':<20} " + fmt("types: {types}", types=", ".join(agency.types)))
            for w in agency.windows:
                click.echo(f"{'':<20} " + _window_text(w))
            for key in keys:
                click.echo(f"{'':<20} " + fmt("key {kid} {alg} {status}", kid=key.kid,
                                              alg=key.alg, status=key.status.value))

    emit_page(page, lambda p: agency_json(*p), human)


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


@cli.group("catalog")
def catalog_group() -> None:
    """The whole catalog at once: import and export catalog files."""


@catalog_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Only say what would change.")
@json_option
def catalog_import(file: str, dry_run: bool) -> None:
    """Load the catalog FILE (schema paths relative to it) in one step.

    New types are added; a type whose definition differs gets a new version; importing
    the same catalog again changes nothing.
    """
    with settings().open_registry() as registry:
        report = registry.import_catalog(file, dry_run=dry_run)
    data = {"added": list(report.added),
            "updated": [{"code": c, "version": v} for c, v in report.updated],
            "unchanged": list(report.unchanged), "changed": report.changed,
            "dry_run": dry_run}

    def human() -> None:
        for code in report.added:
            say("added {code}", code=code)
        for code, version in report.updated:
            say("updated {code} to version {version}", code=code, version=version)
        if not report.changed:
            say("nothing to change: the registry has this catalog already ({count} types)",
                count=len(report.unchanged))
        elif dry_run:
            say("dry run: nothing was changed")
        else:
            say("{count} type(s) unchanged; run 'ecert publish' to announce the changes",
                count=len(report.unchanged))

    emit(data, human)


@catalog_group.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--split", is_flag=True,
              help="Write each schema to types/CODE.schema.json beside FILE.")
@json_option
def catalog_export(file: str | None, split: bool) -> None:
    """Write the catalog (as 'catalog import' reads it) to FILE, or print it."""
    if split and file is None:
        raise input_error("--split needs a FILE to write the schemas beside", code="usage")
    with settings().open_registry() as registry:
        document = registry.export_catalog()
    if file is None:
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    target = Path(file)
    try:
        if split:
            (target.parent / "types").mkdir(parents=True, exist_ok=True)
            for entry in document["types"]:
                ref = "types/{code}.schema.json".format(code=entry["code"])
                (target.parent / ref).write_text(
                    json.dumps(entry["schema"], ensure_ascii=False, indent=2) + "\n", "utf-8")
                entry["schema"] = ref
        target.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", "utf-8")
    except OSError as e:
        raise input_error("cannot write {file}: {why}", code="unwritable", file=file,
                          why=e.strerror) from e
    emit({"file": str(target), "types": len(document["types"]), "split": split},
         fmt("wrote {count} type(s) to {file}", count=len(document["types"]), file=file))
