"""``ecert audit …``: check the log against the database, and prove entries to others."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import ecert
from ecert._formats.bundle import ANCHOR_FILE
from ecert_cli._app import EXIT_NOT_VALID, cli, emit, input_error, json_option, settings
from ecert_cli._i18n import _
from ecert_cli._paging import emit_page, page_options
from ecert_cli._render import fmt, local_time, safe, say


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
            say("intact: {entries} log entries account for the registry",
                entries=report.log_size)
            return
        say("TAMPERED: {findings} finding(s) over {entries} log entries",
            findings=len(report.findings), entries=report.log_size)
        _print_findings([{"kind": f.kind, "subject": f.subject, "seq": f.seq,
                          "detail": f.detail} for f in report.findings])

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
        raise input_error("give a certificate ID or --holder-id, not both")
    with settings().open_registry() as registry:
        if cert_id is not None:
            page = ecert.Page((registry.history(cert_id),), False, None)
        else:
            certs = registry.find_page(holder_id=holder_id, limit=limit, after=after)
            page = ecert.Page(tuple(registry.history(c.id) for c in certs.items), certs.more,
                              certs.next)

    def human() -> None:
        if not page.items:
            say("no certificates of that holder")
        for one in page.items:
            say("{subject}  (published as {commitment})", subject=one.subject,
                commitment=one.commitment)
            for e in one.entries:
                proven = _("proven") if e.seq in one.proofs else _("not yet in a checkpoint")
                note = f"  ({safe(e.note)})" if e.note else ""
                click.echo(f"{e.seq:>6}  {local_time(e.at)}  {safe(e.operator):<12} "
                           f"{e.action:<22} {proven}{note}")

    if cert_id is not None:
        emit(page.items[0].to_json(), human)
    else:
        emit_page(page, lambda h: h.to_json(), human)


@audit_group.command("prove")
@click.argument("cert_id", metavar="ID")
@json_option
def audit_prove(cert_id: str) -> None:
    """Inclusion proofs of certificate ID's log entries (or of use record use:N's, which
    proves the copies a fetch served) against the latest checkpoint."""
    with settings().open_registry() as registry:
        found = registry.history(cert_id)
        commitment, opening = registry.commitment_opening(found.subject)
    from ecert._formats.jose import b64url_encode

    data = {**found.to_json(), "opening": b64url_encode(opening)}
    emit(data, lambda: say(
        "{proven} of {entries} entries proven against checkpoint {size} ({root}); "
        "commitment {commitment}", proven=len(found.proofs), entries=len(found.entries),
        size=found.checkpoint_size, root=found.checkpoint_root, commitment=commitment))


EXIT_UNREACHABLE = 3


def _print_findings(findings: list[dict[str, object]]) -> None:
    for f in findings:
        where = "" if f["seq"] is None else fmt(" (entry {seq})", seq=f["seq"])
        click.echo(f"  {safe(f['kind'])}: {safe(' '.join(str(f['subject']).split()))}{where}: "
                   f"{safe(' '.join(str(f['detail']).split()))}")


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
    from ecert.monitor import LogUnreachable, Monitor, WitnessPolicy

    if anchor_file is None and bundle is None:
        raise input_error("give --anchor FILE or --bundle DIR")
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
            say("consistent: {entries} log entries ({new} new) account for what {region} "
                "publishes", entries=report.log_size, new=report.new_entries, region=region)
        else:
            say("INCONSISTENT: {findings} finding(s) over {entries} log entries ({new} new)",
                findings=len(report.findings), entries=report.log_size,
                new=report.new_entries)
            _print_findings(value["findings"])
        for warning in report.warnings:
            click.echo("  " + fmt("warning: {warning}", warning=warning))

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

    with settings().open_registry() as registry:  # ExtraMissing without the registry extra
        from ecert.registry._witness import WitnessRefused, witness

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
    def human() -> None:
        if report.previous is None:
            text = fmt("cosigned the checkpoint of {region} at {size} entries (first "
                       "cosignature)", region=report.region, size=report.size)
        else:
            text = fmt("cosigned the checkpoint of {region} at {size} entries (consistent "
                       "with {previous})", region=report.region, size=report.size,
                       previous=report.previous)
        if report.written:
            text += fmt("; written to {file}", file=report.written)
        click.echo(text)

    emit(report.to_json(), human)
