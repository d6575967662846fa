"""``ecert audit …``: check the log against the database, and prove entries to others."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import ecert
from ecert._formats.bundle import ANCHOR_FILE
from ecert_cli._app import EXIT_NOT_VALID, cli, emit, json_option, settings
from ecert_cli._paging import emit_page, page_options
from ecert_cli._render import safe_text


@cli.group("audit")
def audit_group() -> None:
    """The region's tamper-evident log: verify, history, proofs."""


@audit_group.command("verify")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Also compare a published bundle with the log.")
@json_option
def audit_verify(bundle: Path | None) -> None:
    """Replay the log against the database; exit 0 intact, 1 tampered (auditor role)."""
    with settings().open_registry() as registry:
        report = registry.audit(bundle=bundle)

    def human() -> None:
        if report.intact:
            click.echo(f"intact: {report.log_size} log entries account for the registry")
            return
        click.echo(f"TAMPERED: {len(report.findings)} finding(s) over {report.log_size} "
                   "log entries")
        for f in report.findings:
            where = "" if f.seq is None else f" (entry {f.seq})"
            click.echo(f"  {f.kind}: {' '.join(f.subject.split())}{where}: "
                       f"{' '.join(f.detail.split())}")

    emit(report.to_json(), human)
    if not report.intact:
        sys.exit(EXIT_NOT_VALID)


@audit_group.command("history")
@click.argument("cert_id", metavar="ID", required=False)
@click.option("--holder-id", default=None,
              help="Every certificate of this holder (found through the keyed pseudonym).")
@page_options()
@json_option
def audit_history(cert_id: str | None, holder_id: str | None, limit: int,
                  after: str | None) -> None:
    """Who did what to certificate ID (or to every certificate of a holder, a page of
    certificates at a time), when, with inclusion proofs."""
    if (cert_id is None) == (holder_id is None):
        raise ecert.InputError("give a certificate ID or --holder-id, not both")
    with settings().open_registry() as registry:
        if cert_id is not None:
            page = ecert.Page((registry.history(cert_id),), False, None)
        else:
            certs = registry.find_page(holder_id=holder_id, limit=limit, after=after)
            page = ecert.Page(tuple(registry.history(c.id) for c in certs.items), certs.more,
                              certs.next)

    def human() -> None:
        if not page.items:
            click.echo("no certificates of that holder")
        for one in page.items:
            click.echo(f"{one.subject}  (published as {one.commitment})")
            for e in one.entries:
                proven = "proven" if e.seq in one.proofs else "not yet in a checkpoint"
                note = f"  ({safe_text(e.note)})" if e.note else ""
                click.echo(f"{e.seq:>6}  {e.at.isoformat()}  {e.operator:<12} {e.action:<22} "
                           f"{proven}{note}")

    if cert_id is not None:
        emit(page.items[0].to_json(), human)
    else:
        emit_page(page, lambda h: h.to_json(), human)


@audit_group.command("prove")
@click.argument("cert_id", metavar="ID")
@json_option
def audit_prove(cert_id: str) -> None:
    """Inclusion proofs of certificate ID's log entries against the latest checkpoint."""
    with settings().open_registry() as registry:
        found = registry.history(cert_id)
        commitment, opening = registry.commitment_opening(found.subject)
    from ecert._formats.jose import b64url_encode

    data = {**found.to_json(), "opening": b64url_encode(opening)}
    emit(data, lambda: click.echo(
        f"{len(found.proofs)} of {len(found.entries)} entries proven against checkpoint "
        f"{found.checkpoint_size} ({found.checkpoint_root}); commitment {commitment}"))


EXIT_UNREACHABLE = 3


def _print_findings(findings: list[dict[str, object]]) -> None:
    for f in findings:
        where = "" if f["seq"] is None else f" (entry {f['seq']})"
        click.echo(f"  {f['kind']}: {' '.join(str(f['subject']).split())}{where}: "
                   f"{' '.join(str(f['detail']).split())}")


@audit_group.command("monitor")
@click.option("--anchor", "anchor_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The region's anchor file (pins its root key; the log is "
                                 "fetched over HTTP(S) from where it says).")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="The region's published bundle directory instead.")
@click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where the monitor keeps what it saw (default: "
                                 "<home>/monitor/<region>); runs then check new entries only.")
@click.option("--witnesses", type=click.IntRange(0, 100), default=0, show_default=True,
              help="Cosignatures required from witnesses the region recognizes.")
@click.option("--witness-outage", type=click.Choice(["warn", "refuse"]), default="warn",
              show_default=True, help="When witnesses cannot be reached: warn or refuse.")
@json_option
def audit_monitor(anchor_file: Path | None, bundle: Path | None, state_dir: Path | None,
                  witnesses: int, witness_outage: str) -> None:
    """Check a region's public log with no database: exit 0 consistent, 1 inconsistent,
    3 log unreachable (anyone may run it)."""
    import ecert
    from ecert.monitor import LogUnreachable, Monitor, WitnessPolicy

    if anchor_file is None and bundle is None:
        raise ecert.InputError("give --anchor FILE or --bundle DIR")
    s = settings()
    anchor = ecert.TrustAnchor.load(anchor_file) if anchor_file is not None else None
    region = anchor.region if anchor is not None else ecert.TrustAnchor.load(
        bundle / ANCHOR_FILE).region  # type: ignore[operator]
    state = state_dir or s.home / "monitor" / region
    policy = WitnessPolicy(witnesses, witness_outage)
    if bundle is not None:
        monitor = Monitor.from_bundle(bundle, anchor=anchor, state_dir=state, clock=s.clock,
                                      witnesses=policy)
    else:
        assert anchor is not None  # noqa: S101 - excluded above
        monitor = Monitor.from_anchor(anchor, state_dir=state, clock=s.clock, witnesses=policy)
    try:
        report = monitor.run()
    except LogUnreachable as e:
        from ecert_cli._app import fail

        fail(e.message.splitlines()[0], e.code, EXIT_UNREACHABLE)
        return
    value = report.to_json()

    def human() -> None:
        if report.consistent:
            click.echo(f"consistent: {report.log_size} log entries "
                       f"({report.new_entries} new) account for what {region} publishes")
        else:
            click.echo(f"INCONSISTENT: {len(report.findings)} finding(s) over "
                       f"{report.log_size} log entries ({report.new_entries} new)")
            _print_findings(value["findings"])
        for warning in report.warnings:
            click.echo(f"  warning: {warning}")

    emit(value, human)
    if not report.consistent:
        sys.exit(EXIT_NOT_VALID)


@audit_group.command("witness")
@click.argument("region")
@click.option("--bundle", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Our published bundle directory: the cosigned checkpoint is written to "
                   "DIR/witness/REGION at once.")
@json_option
def audit_witness(region: str, bundle: Path | None) -> None:
    """Cosign the checkpoint of REGION (a region we recognize) after proving it consistent
    with the last one we cosigned; exit 1 if it is not (service or trust-admin role)."""
    from ecert.monitor import LogUnreachable
    from ecert.registry._witness import WitnessRefused, witness

    with settings().open_registry() as registry:
        try:
            method = getattr(registry, "witness", None)
            report = (method(region, bundle=bundle) if method is not None
                      else witness(registry._ctx, region, bundle=bundle))
        except WitnessRefused as e:
            from ecert_cli._app import fail

            fail(e.message, e.code, EXIT_NOT_VALID)
        except LogUnreachable as e:
            from ecert_cli._app import fail

            fail(e.message, e.code, EXIT_UNREACHABLE)
    emit(report.to_json(), lambda: click.echo(
        f"cosigned the checkpoint of {report.region} at {report.size} entries ("
        + ("first cosignature" if report.previous is None
           else f"consistent with {report.previous}") + ")"
        + (f"; written to {report.written}" if report.written else "")))
