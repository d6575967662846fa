"""``ecert init``, ``publish`` and ``events``: the registry as a whole."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import ecert
from ecert_cli._app import cli, emit, json_mode, json_option, settings


@cli.command("init")
@click.option("--region", required=True, help="Region code, e.g. GD.")
@click.option("--name", required=True, help="Region name, e.g. 广东省.")
@click.option("--base-url", required=True,
              help="Public URL where the bundle will be served, e.g. https://ecert.gd.example.")
@json_option
def init(region: str, name: str, base_url: str) -> None:
    """Create a registry for a region, with its root and status-list keys."""
    s = settings()
    registry = ecert.Registry.init(s.home, region=region, name=name, base_url=base_url,
                                   passphrase=s.passphrase(confirm=True),
                                   database_url=s.database_url, operator=s.operator)
    with registry:
        anchor = registry.anchor()
    emit({"region": anchor.region, "name": anchor.name, "home": str(s.home),
          "root_kid": anchor.kid, "trust_list": anchor.trust_list_url},
         f"initialised region {anchor.region} ({anchor.name}) in {s.home}\n"
         f"root key {anchor.kid}")


@cli.command("publish")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--trust-list-days", type=click.IntRange(1, 366), default=7, show_default=True,
              help="Days until verifiers must fetch a new trust list.")
@click.option("--status-list-hours", type=click.IntRange(1, 24 * 31), default=24,
              show_default=True, help="Hours until the status lists expire.")
@json_option
def publish(directory: Path, trust_list_days: int, status_list_hours: int) -> None:
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
                                          progress=progress)
        else:
            report = registry.publish(directory,
                                      trust_list_validity=timedelta(days=trust_list_days),
                                      status_list_validity=timedelta(hours=status_list_hours))
    emit({"directory": str(report.directory), "sequence": report.sequence,
          "issued_at": report.issued_at.isoformat(), "next_update": report.next_update.isoformat(),
          "files": list(report.files), "status_lists": report.status_lists,
          "certificates": report.certificates},
         f"published trust list #{report.sequence} with {report.status_lists} status list(s) "
         f"for {report.certificates} certificate(s) to {report.directory}\n"
         f"next update due {report.next_update.isoformat()}")


@cli.command("events")
@click.argument("subject", required=False)
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@json_option
def events(subject: str | None, limit: int) -> None:
    """Show the event record (who did what, when), optionally for one SUBJECT."""
    with settings().open_registry() as registry:
        if subject is not None and subject.startswith("1.2.156"):
            subject = registry.resolve_id(subject)
        entries = registry.events(subject, limit)

    def human() -> None:
        for e in entries:
            click.echo(f"{e.at.isoformat()}  {e.operator:<12} {e.action:<22} {e.subject}")

    emit([{"id": e.id, "at": e.at.isoformat(), "operator": e.operator, "action": e.action,
           "subject": e.subject, "details": dict(e.details)} for e in entries], human)
