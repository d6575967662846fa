"""``ecert init``, ``publish`` and ``events``: the registry as a whole."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import ecert
from ecert_cli._app import EXIT_NOT_VALID, cli, emit, json_mode, json_option, settings
from ecert_cli._paging import emit_page, page_options
from ecert_cli._render import safe_text


@cli.command("init")
@click.option("--region", required=True, help="Region code, e.g. GD.")
@click.option("--name", required=True, help="Region name, e.g. 广东省.")
@click.option("--base-url", required=True,
              help="Public URL where the bundle will be served, e.g. https://ecert.gd.example.")
@click.option("--admin", default=None, metavar="NAME",
              help="The first operator, holding every role (default: ECERT_OPERATOR); their "
                   "key's passphrase is ECERT_OPERATOR_PASSPHRASE or asked twice.")
@json_option
def init(region: str, name: str, base_url: str, admin: str | None) -> None:
    """Create a registry for a region: its keys, its log, and its first admin."""
    s = settings()
    admin = admin or s.operator
    if not admin:
        raise ecert.InputError("name the first admin: --admin NAME (or ECERT_OPERATOR)")
    credential = ecert.OperatorCredential(
        admin, passphrase=s.operator_passphrase(confirm=True, name=admin))
    registry = ecert.Registry.init(s.home, region=region, name=name, base_url=base_url,
                                   admin=credential, passphrase=s.passphrase(confirm=True),
                                   database_url=s.database_url, clock=s.clock)
    with registry:
        anchor = registry.anchor()
    emit({"region": anchor.region, "name": anchor.name, "home": str(s.home),
          "root_kid": anchor.kid, "trust_list": anchor.trust_list_url, "admin": admin},
         f"initialised region {anchor.region} ({anchor.name}) in {s.home}\n"
         f"root key {anchor.kid}; first admin {admin} (every role)")


@cli.command("publish")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--trust-list-days", type=click.IntRange(1, 366), default=7, show_default=True,
              help="Days until verifiers must fetch a new trust list.")
@click.option("--status-list-hours", type=click.IntRange(1, 24 * 31), default=24,
              show_default=True, help="Hours until the status lists expire.")
@click.option("--no-collect", is_flag=True,
              help="Do not fetch other regions' cosignatures of our log first (offline).")
@json_option
def publish(directory: Path, trust_list_days: int, status_list_hours: int,
            no_collect: bool) -> None:
    """Write the public verification bundle to DIRECTORY (static files for any web server)."""
    from datetime import timedelta

    with settings().open_registry() as registry:
        if sys.stderr.isatty() and not json_mode():
            with click.progressbar(length=1, label="signing status lists",
                                   file=sys.stderr) as bar:
                def progress(done: int, total: int) -> None:
                    bar.length = total
                    bar.update(done - bar.pos)

                report = registry.publish(directory,
                                          trust_list_validity=timedelta(days=trust_list_days),
                                          status_list_validity=timedelta(
                                              hours=status_list_hours),
                                          progress=progress, collect=not no_collect)
        else:
            report = registry.publish(directory,
                                      trust_list_validity=timedelta(days=trust_list_days),
                                      status_list_validity=timedelta(hours=status_list_hours),
                                      collect=not no_collect)
    emit({"directory": str(report.directory), "sequence": report.sequence,
          "issued_at": report.issued_at.isoformat(), "next_update": report.next_update.isoformat(),
          "files": list(report.files), "status_lists": report.status_lists,
          "certificates": report.certificates, "log_size": report.log_size,
          "ok": report.ok, "alerts": list(report.alerts)},
         f"published trust list #{report.sequence} with {report.status_lists} status list(s) "
         f"for {report.certificates} certificate(s) to {report.directory}\n"
         f"log: {report.log_size} entries; next update due {report.next_update.isoformat()}")
    for alert in report.alerts:
        click.secho(f"ALERT: {' '.join(alert.split())}", fg="red", bold=True, err=True)
    if not report.ok:
        sys.exit(EXIT_NOT_VALID)


@cli.command("events")
@click.argument("subject", required=False)
@page_options(default_limit=1000, maximum=100_000)
@json_option
def events(subject: str | None, limit: int, after: str | None) -> None:
    """Show the log (who did what, when), optionally for one SUBJECT."""
    with settings().open_registry() as registry:
        if subject is not None and subject.startswith("1.2.156"):
            subject = registry.resolve_id(subject)
        page = registry.events_page(subject, limit=limit, after=after)

    def human() -> None:
        for e in page.items:
            note = f"  ({safe_text(e.note)})" if e.note else ""
            click.echo(f"{e.seq:>6}  {e.at.isoformat()}  {e.operator:<12} {e.action:<22} "
                       f"{e.subject}{note}")

    emit_page(page, lambda e: {
        "seq": e.seq, "at": e.at.isoformat(), "operator": e.operator,
        "operator_kid": e.operator_kid, "action": e.action, "subject": e.subject,
        "details": dict(e.details), "note": e.note}, human)
