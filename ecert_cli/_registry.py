"""``ecert init``, ``publish`` and ``events``: the registry as a whole."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import ecert
from ecert_cli._app import (
    EXIT_NOT_VALID,
    cli,
    emit,
    input_error,
    json_mode,
    json_option,
    settings,
)
from ecert_cli._i18n import _
from ecert_cli._render import DEFAULT_TZ, fmt, load_zone, local_time, safe


@cli.command("init")
@click.option("--region", required=True, help="Region code, e.g. GD.")
@click.option("--name", required=True, help="Region name, e.g. 广东省.")
@click.option("--base-url", required=True,
              help="Public URL where the bundle will be served, e.g. https://ecert.gd.example.")
@click.option("--admin", default=None, metavar="NAME",
              help="The first operator, holding every role (default: ECERT_OPERATOR); their "
                   "key's passphrase is ECERT_OPERATOR_PASSPHRASE or asked twice.")
@click.option("--tz", default=DEFAULT_TZ, show_default=True, metavar="ZONE",
              help="The registry's time zone (IANA name): dates typed by clerks end at "
                   "midnight there, and times are shown in it (ECERT_TZ overrides the "
                   "display).")
@json_option
def init(region: str, name: str, base_url: str, admin: str | None, tz: str) -> None:
    """Create a registry for a region: its keys, its log, and its first admin."""
    s = settings()
    admin = admin or s.operator
    if not admin:
        raise input_error("name the first admin: --admin NAME (or ECERT_OPERATOR)")
    load_zone(tz)  # refused before any passphrase is asked
    credential = ecert.OperatorCredential(
        admin, passphrase=s.operator_passphrase(confirm=True, name=admin))
    registry = ecert.Registry.init(s.home, region=region, name=name, base_url=base_url,
                                   admin=credential, passphrase=s.passphrase(confirm=True),
                                   database_url=s.database_url, clock=s.clock, tz=tz)
    with registry:
        anchor = registry.anchor()
    emit({"region": anchor.region, "name": anchor.name, "home": str(s.home),
          "root_kid": anchor.kid, "trust_list": anchor.trust_list_url, "admin": admin,
          "tz": tz},
         fmt("initialised region {region} ({name}) in {home}\nroot key {kid}; first admin "
             "{admin} (every role); time zone {tz}", region=anchor.region, name=anchor.name,
             home=s.home, kid=anchor.kid, admin=admin, tz=tz))


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
            with click.progressbar(length=1, label=_("signing status lists"),
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
         fmt("published trust list #{sequence} with {lists} status list(s) for {certificates} "
             "certificate(s) to {directory}\nlog: {entries} entries; next update due {next}",
             sequence=report.sequence, lists=report.status_lists,
             certificates=report.certificates, directory=report.directory,
             entries=report.log_size, next=local_time(report.next_update)))
    for alert in report.alerts:
        click.secho(fmt("ALERT: {alert}", alert=" ".join(alert.split())), fg="red", bold=True,
                    err=True)
    if not report.ok:
        sys.exit(EXIT_NOT_VALID)


@cli.command("events")
@click.argument("subject", required=False)
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@json_option
def events(subject: str | None, limit: int) -> None:
    """Show the log (who did what, when), optionally for one SUBJECT."""
    with settings().open_registry() as registry:
        if subject is not None and subject.startswith("1.2.156"):
            subject = registry.resolve_id(subject)
        entries = registry.events(subject, limit)

    def human() -> None:
        for e in entries:
            click.echo(f"{e.seq:>6}  {local_time(e.at)}  {safe(e.operator):<12} "
                       f"{e.action:<22} {safe(e.subject)}")

    emit([{"seq": e.seq, "at": e.at.isoformat(), "operator": e.operator,
           "operator_kid": e.operator_kid, "action": e.action, "subject": e.subject,
           "details": dict(e.details)} for e in entries], human)
