"""``ecert init``, ``publish`` and ``events``: the registry as a whole."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import click
from click.core import ParameterSource

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
from ecert_cli._duration import Duration
from ecert_cli._errors import error_text
from ecert_cli._i18n import _, pgettext
from ecert_cli._paging import emit_page, page_options
from ecert_cli._render import DEFAULT_TZ, fmt, load_zone, local_time, safe, say, zone

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


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
@click.option("--watch", is_flag=True,
              help="Keep running: republish when the log changed and before anything "
                   "published expires (one line per cycle; stop with SIGTERM or Ctrl-C).")
@click.option("--every", type=Duration(), default="10m", show_default=True,
              help="With --watch: how often to look for changes, e.g. 30s, 10m, 1h.")
@click.option("--wait", "wait_for_lease", is_flag=True,
              help="With --watch: if another watcher holds the registry's publication "
                   "lease, wait for it instead of refusing (exit 4).")
@click.option("--full", is_flag=True,
              help="Build every status list from the database and look for every log "
                   "tile, instead of updating what DIRECTORY holds (same files).")
@json_option
def publish(directory: Path, trust_list_days: int, status_list_hours: int,
            no_collect: bool, watch: bool, every: timedelta, wait_for_lease: bool,
            full: bool) -> None:
    """Write the public verification bundle to DIRECTORY (static files for any web server).

    With --watch it keeps DIRECTORY fresh, as a service would: see docs/operations.md.
    """
    ctx = click.get_current_context()
    for name in ("every", "wait_for_lease"):
        source = ctx.get_parameter_source(name)
        if not watch and source is not None and source is not ParameterSource.DEFAULT:
            raise click.UsageError(_("--every and --wait go with --watch"))
    if watch and full:
        raise click.UsageError(_("--full does not go with --watch"))
    if watch:
        _watch(directory, timedelta(days=trust_list_days), timedelta(hours=status_list_hours),
               collect=not no_collect, every=every, wait=wait_for_lease)
        return
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
                                          progress=progress, collect=not no_collect,
                                          full=full)
        else:
            report = registry.publish(directory,
                                      trust_list_validity=timedelta(days=trust_list_days),
                                      status_list_validity=timedelta(hours=status_list_hours),
                                      collect=not no_collect, full=full)
    emit({"directory": str(report.directory), "sequence": report.sequence,
          "issued_at": report.issued_at.isoformat(), "next_update": report.next_update.isoformat(),
          "files": list(report.files), "status_lists": report.status_lists,
          "status_lists_encoded": report.status_lists_encoded,
          "certificates": report.certificates, "log_size": report.log_size,
          "ok": report.ok, "alerts": list(report.alerts)},
         fmt("published trust list #{sequence} with {lists} status list(s) for {certificates} "
             "certificate(s) to {directory}\nlog: {entries} entries; next update due {next}",
             sequence=report.sequence, lists=report.status_lists,
             certificates=report.certificates, directory=report.directory,
             entries=report.log_size, next=local_time(report.next_update)))
    _alerts(report.alerts)
    if not report.ok:
        sys.exit(EXIT_NOT_VALID)


def _alerts(alerts: tuple[str, ...]) -> None:
    for alert in alerts:
        click.secho(fmt("ALERT: {alert}", alert=" ".join(alert.split())), fg="red", bold=True,
                    err=True)


def _local(moment: datetime | None) -> str:
    """A time in the registry's time zone (or ECERT_TZ), to the second with its offset, as
    a service log shows it: the clerks' zone, whatever zone the server runs in."""
    if moment is None:
        return "-"
    return moment.astimezone(zone()).isoformat(sep=" ", timespec="seconds")


def _cycle_line(cycle: ecert.WatchCycle, directory: Path, operator: str | None) -> str:
    """One line per cycle, for people reading the service's log."""
    at, next_at = _local(cycle.at), _local(cycle.next_at)
    outcome = cycle.outcome
    if outcome is ecert.WatchOutcome.LEASE_TAKEN:
        return fmt("{at} watching {directory} as {operator} (host {host}, pid {pid})",
                   at=at, directory=directory, operator=operator, host=socket.gethostname(),
                   pid=os.getpid())
    if outcome is ecert.WatchOutcome.PUBLISHED and cycle.report is not None:
        reasons = {"start": pgettext("publish reason", "start"),
                   "expiring": pgettext("publish reason", "expiring"),
                   "changed": pgettext("publish reason", "changed")}
        return fmt("{at} published trust list #{sequence} ({reason}): {lists} status list(s), "
                   "log size {size}; valid until {expires}; next check {next}",
                   at=at, sequence=cycle.report.sequence,
                   reason=reasons.get(cycle.reason or "", cycle.reason or "-"),
                   lists=cycle.report.status_lists, size=cycle.report.log_size,
                   expires=_local(cycle.expires_at), next=next_at)
    if outcome is ecert.WatchOutcome.UNCHANGED:
        return fmt("{at} nothing to publish; valid until {expires}; next check {next}",
                   at=at, expires=_local(cycle.expires_at), next=next_at)
    if outcome is ecert.WatchOutcome.FAILED and cycle.error is not None:
        return fmt("{at} FAILED ({code}): {message}; attempt {failures}, next try {next}",
                   at=at, code=cycle.error.code,
                   message=" ".join(error_text(cycle.error, first_line=False).split()),
                   failures=cycle.failures, next=next_at)
    lease = cycle.lease
    holder = (_("another watcher") if lease is None else
              fmt("host {host} (pid {pid})", host=lease.host, pid=lease.pid))
    until = "-" if lease is None else _local(lease.expires_at)
    if outcome is ecert.WatchOutcome.LEASE_LOST:
        return fmt("{at} lost the publication lease to {holder}; waiting", at=at,
                   holder=holder)
    return fmt("{at} waiting: the publication lease is held by {holder} until {until}; "
               "next try {next}", at=at, holder=holder, until=until, next=next_at)


class _Stop:
    """SIGTERM and Ctrl-C end the watch between cycles (a publication in progress
    finishes); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def requested(self) -> bool:
        return self.signal is not None

    def sleep(self, seconds: float) -> None:
        """Real time, in steps of a second so a signal ends the wait promptly."""
        end = time.monotonic() + seconds
        while self.signal is None:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 1.0))


def _watch(directory: Path, trust_list_validity: timedelta, status_list_validity: timedelta,
           *, collect: bool, every: timedelta, wait: bool) -> None:
    s = settings()
    stop = _Stop()
    as_json = json_mode()

    def on_cycle(cycle: ecert.WatchCycle) -> None:
        if as_json:
            click.echo(json.dumps(cycle.to_json(), ensure_ascii=False))
        else:
            click.echo(_cycle_line(cycle, directory, s.operator))
        if cycle.report is not None:
            _alerts(cycle.report.alerts)

    previous = {signum: signal.signal(signum, stop)
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        with s.open_registry() as registry:
            registry.watch(directory, every=every, wait=wait,
                           trust_list_validity=trust_list_validity,
                           status_list_validity=status_list_validity, collect=collect,
                           sleep=s.sleep or stop.sleep, should_stop=stop.requested,
                           on_cycle=on_cycle)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    name = "SIGINT" if stop.signal == signal.SIGINT else "SIGTERM"
    at = _local(s.clock())
    if as_json:  # one JSON object per line, as every cycle
        click.echo(json.dumps({"at": s.clock().isoformat(), "outcome": "stopped",
                               "signal": name}))
    else:
        say("{at} stopped ({signal}); publication lease released", at=at, signal=name)
    if stop.signal == signal.SIGINT:
        sys.exit(EXIT_INTERRUPTED)


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
            note = f"  ({safe(e.note)})" if e.note else ""
            click.echo(f"{e.seq:>6}  {local_time(e.at)}  {safe(e.operator):<12} "
                       f"{e.action:<22} {safe(e.subject)}{note}")

    emit_page(page, lambda e: {
        "seq": e.seq, "at": e.at.isoformat(), "operator": e.operator,
        "operator_kid": e.operator_kid, "action": e.action, "subject": e.subject,
        "details": dict(e.details), "note": e.note}, human)
