"""``ecert audit …``: check the log against the database, and prove entries to others."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import ecert
from ecert_cli._app import EXIT_NOT_VALID, cli, emit, json_option, settings


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
@json_option
def audit_history(cert_id: str | None, holder_id: str | None) -> None:
    """Who did what to certificate ID (or to every certificate of a holder), when, with
    inclusion proofs."""
    if (cert_id is None) == (holder_id is None):
        raise ecert.InputError("give a certificate ID or --holder-id, not both")
    with settings().open_registry() as registry:
        ids = [cert_id] if cert_id is not None else [
            c.id for c in registry.find(holder_id=holder_id, limit=10_000)]
        found = [registry.history(i) for i in ids]

    def human() -> None:
        if not found:
            click.echo("no certificates of that holder")
        for one in found:
            click.echo(f"{one.subject}  (published as {one.commitment})")
            for e in one.entries:
                proven = "proven" if e.seq in one.proofs else "not yet in a checkpoint"
                click.echo(f"{e.seq:>6}  {e.at.isoformat()}  {e.operator:<12} {e.action:<22} "
                           f"{proven}")

    if cert_id is not None:
        emit(found[0].to_json(), human)
    else:
        emit({"certificates": [h.to_json() for h in found]}, human)


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
