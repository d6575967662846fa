"""``ecert issue``, ``show``, ``list``, ``suspend``, ``reinstate``, ``revoke``."""

from __future__ import annotations

from datetime import date, datetime

import click

import ecert
from ecert.holder_ids import mask_claims
from ecert_cli._app import cli, emit, input_error, json_option, settings
from ecert_cli._catalog import read_json_file
from ecert_cli._i18n import N_, pgettext
from ecert_cli._paging import emit_page, page_options
from ecert_cli._render import (
    certificate_json,
    certificate_row,
    day_instant,
    fmt,
    label,
    local_time,
    print_certificate,
    say,
    status_text,
)


def _parse_until(value: str | None, option: str = "--valid-until") -> date | datetime | None:
    """A typed end: a date (its end in the registry's zone, see :func:`day_instant`) or
    an ISO 8601 time with a zone."""
    if value is None:
        return None
    try:
        if "T" in value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                raise input_error("{option} with a time needs a zone, e.g. +08:00",
                                  option=option)
            return parsed
        return date.fromisoformat(value)
    except ValueError as e:
        raise input_error("{option} {value} is not a date (YYYY-MM-DD)", option=option,
                          value=repr(value)) from e


@cli.command("issue")
@click.option("--type", "type_code", required=True, help="Certificate type code.")
@click.option("--agency", "agency_code", required=True, help="Issuing agency code.")
@click.option("--holder-id", required=True,
              help="Holder's id (USCC or resident id); only a keyed pseudonym is kept.")
@click.option("--holder-name", required=True, help="Holder's display name.")
@click.option("--claims", "claims_file", required=True, metavar="FILE",
              help="JSON file with the type's claims ('-' for stdin).")
@click.option("--valid-until", default=None, metavar="DATE",
              help="Last valid day (YYYY-MM-DD, through its end in the registry's time "
                   "zone; 9999-12-31 for no end, 长期); default from the type.")
@click.option("--supersedes", default=None, metavar="ID", help="Id this certificate replaces.")
@click.option("--encoding", default=None, help="Encoding of the claims file (default: "
              "UTF-8 or GB 18030, detected).")
@json_option
def issue(type_code: str, agency_code: str, holder_id: str, holder_name: str,
          claims_file: str, valid_until: str | None, supersedes: str | None,
          encoding: str | None) -> None:
    """Issue and sign a certificate."""
    claims = read_json_file(claims_file, encoding)
    if not isinstance(claims, dict):
        raise input_error("{file} must hold a JSON object of claims", file=claims_file)
    until = _parse_until(valid_until)
    with settings().open_registry() as registry:
        cert = registry.issue(type_code, agency_code, holder_id=holder_id,
                              holder_name=holder_name, claims=claims,
                              valid_until=day_instant(until, end=True),
                              supersedes=supersedes)

    def human() -> None:
        say("issued {id}", id=cert.id)
        print_certificate(cert, claims=False)
        click.echo(label(pgettext("label", "token")) + cert.token)

    emit(certificate_json(cert), human)


@cli.command("show")
@click.argument("cert_id", metavar="ID")
@click.option("--token", "token_only", is_flag=True, help="Print only the signed token.")
@json_option
def show(cert_id: str, token_only: bool) -> None:
    """Show certificate ID (the full id, or its serial when unambiguous)."""
    with settings().open_registry() as registry:
        cert = registry.get(cert_id)
        if not token_only:
            cert_type = registry.get_type(cert.type_code, version=cert.type_version)
    if token_only:
        emit({"id": cert.id, "token": cert.token}, cert.token)
        return
    # On screen the holder's id is masked, in the claims too (a service hall's screen is
    # seen by others); --json and --token carry the claims as issued, for programs.
    shown = mask_claims(cert.claims, cert_type.schema, cert_type.holder_claims)
    emit(certificate_json(cert), lambda: print_certificate(cert, shown_claims=shown))


@cli.command("list")
@click.option("--holder-id", default=None, help="Only this holder's certificates.")
@click.option("--name", default=None, metavar="TEXT",
              help="Only holders whose name starts with TEXT (as typed).")
@click.option("--type", "type_code", default=None, help="Only this type.")
@click.option("--agency", "agency_code", default=None, help="Only this agency's.")
@click.option("--kid", default=None, help="Only those signed with this key.")
@click.option("--status", type=click.Choice([s.value for s in ecert.CertificateStatus]),
              default=None, help="Only this status (as in effect now).")
@page_options()
@json_option
def list_certificates(holder_id: str | None, name: str | None, type_code: str | None,
                      agency_code: str | None, kid: str | None, status: str | None,
                      limit: int, after: str | None) -> None:
    """List certificates, oldest first."""
    with settings().open_registry() as registry:
        page = registry.find_page(holder_id=holder_id, name=name, type_code=type_code,
                                  status=status, agency_code=agency_code, kid=kid,
                                  limit=limit, after=after)

    def human() -> None:
        if not page.items:
            say("no certificates match")
        for cert in page.items:
            click.echo(certificate_row(cert))

    emit_page(page, lambda c: certificate_json(c, token=False), human)


def _status_change(message: str, cert: ecert.Certificate) -> None:
    emit(certificate_json(cert, token=False),
         fmt(message, id=cert.id, status=status_text(cert.status.value)))


@cli.command("revoke")
@click.argument("cert_id", metavar="ID")
@click.option("--reason", required=True,
              type=click.Choice([r.value for r in ecert.RevocationReason]),
              help="RFC 5280 CRLReason name.")
@json_option
def revoke(cert_id: str, reason: str) -> None:
    """Revoke certificate ID for good."""
    with settings().open_registry() as registry:
        _status_change(
            N_("revoked {id}: now {status}; run 'ecert publish' so verifiers see it"),
            registry.revoke(cert_id, reason))


@cli.command("suspend")
@click.argument("cert_id", metavar="ID")
@click.option("--reason", default=None, metavar="TEXT",
              help="Why (kept with the certificate and in its history).")
@json_option
def suspend(cert_id: str, reason: str | None) -> None:
    """Suspend certificate ID until it is reinstated."""
    with settings().open_registry() as registry:
        _status_change(
            N_("suspended {id}: now {status}; run 'ecert publish' so verifiers see it"),
            registry.suspend(cert_id, reason=reason))


@cli.command("reinstate")
@click.argument("cert_id", metavar="ID")
@click.option("--reason", default=None, metavar="TEXT",
              help="Why (kept with the certificate and in its history).")
@json_option
def reinstate(cert_id: str, reason: str | None) -> None:
    """Lift the suspension of certificate ID."""
    with settings().open_registry() as registry:
        _status_change(
            N_("reinstated {id}: now {status}; run 'ecert publish' so verifiers see it"),
            registry.reinstate(cert_id, reason=reason))


def _read_patch(path: str | None) -> dict[str, object] | None:
    if path is None:
        return None
    patch = read_json_file(path)
    if not isinstance(patch, dict):
        raise input_error("{file} must hold a JSON object (an RFC 7396 merge patch)",
                          file=path)
    return patch


def _parse_from(value: str | None) -> datetime | None:
    """A typed start: a date means its first second in the registry's zone (call it once
    the registry is open)."""
    return day_instant(_parse_until(value, "--valid-from"), end=False)


def _replaced(message: str, new: ecert.Certificate, old: ecert.Certificate) -> None:
    def human() -> None:
        say(message, old=old.id, new=new.id)
        print_certificate(new, claims=False)
        if old.revoke_at is not None and old.status is ecert.CertificateStatus.VALID:
            say("{id} stays valid until {at}, then is revoked (superseded)", id=old.id,
                at=local_time(old.revoke_at))
        else:
            say("{id} is now revoked (superseded)", id=old.id)
        say("run 'ecert publish' so verifiers see both")

    emit({"certificate": certificate_json(new),
          "replaced": certificate_json(old, token=False)}, human)


@cli.command("renew")
@click.argument("cert_id", metavar="ID")
@click.option("--valid-from", default=None, metavar="DATE",
              help="First valid day of the successor (YYYY-MM-DD, from its start in the "
                   "registry's time zone); default now.")
@click.option("--valid-until", default=None, metavar="DATE",
              help="Last valid day of the successor (YYYY-MM-DD, through its end in the "
                   "registry's time zone); default from the type.")
@click.option("--claims-patch", "patch_file", default=None, metavar="FILE",
              help="RFC 7396 JSON merge patch applied to the stored claims.")
@click.option("--at-start", is_flag=True,
              help="Revoke ID at the successor's start instead of at once.")
@json_option
def renew(cert_id: str, valid_from: str | None, valid_until: str | None,
          patch_file: str | None, at_start: bool) -> None:
    """Issue the successor of certificate ID from its stored claims and revoke ID
    (reason superseded), in one step."""
    patch = _read_patch(patch_file)
    with settings().open_registry() as registry:
        new, old = registry.renew(
            cert_id, valid_from=_parse_from(valid_from),
            valid_until=day_instant(_parse_until(valid_until), end=True), claims_patch=patch,
            at_start=at_start)
    _replaced(N_("renewed {old}: successor {new}"), new, old)


@cli.command("reissue")
@click.argument("cert_id", metavar="ID")
@click.option("--claims-patch", "patch_file", required=True, metavar="FILE",
              help="RFC 7396 JSON merge patch applied to the stored claims.")
@click.option("--valid-from", default=None, metavar="DATE",
              help="First valid day of the successor (YYYY-MM-DD, from its start in the "
                   "registry's time zone); default now.")
@click.option("--at-start", is_flag=True,
              help="Revoke ID at the successor's start instead of at once.")
@json_option
def reissue(cert_id: str, patch_file: str, valid_from: str | None, at_start: bool) -> None:
    """Issue a corrected successor of certificate ID (same end of validity) and revoke ID
    (reason superseded), in one step."""
    patch = _read_patch(patch_file)
    with settings().open_registry() as registry:
        new, old = registry.reissue(cert_id, claims_patch=patch or {},
                                    valid_from=_parse_from(valid_from), at_start=at_start)
    _replaced(N_("reissued {old}: successor {new}"), new, old)


@cli.command("redact")
@click.argument("cert_id", metavar="ID")
@json_option
def redact(cert_id: str) -> None:
    """Erase the personal data of revoked certificate ID (lawful erasure; hashes stay)."""
    with settings().open_registry() as registry:
        cert = registry.redact(cert_id)
    emit(certificate_json(cert, token=False),
         fmt("redacted {id}: its token, holder name and claims are erased; the log keeps "
             "their hashes", id=cert.id))
