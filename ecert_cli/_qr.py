"""``ecert qr`` and ``ecert card``: the QR code and the printable card of a certificate."""

from __future__ import annotations

from pathlib import Path

import click

from ecert import qr as ecert_qr
from ecert_cli._app import cli, emit, json_option, settings
from ecert_cli._render import fmt


@cli.command("qr")
@click.argument("cert_id", metavar="ID")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file: .png or .svg.")
@click.option("--ec", type=click.Choice(ecert_qr.EC_LEVELS, case_sensitive=False),
              default="Q", show_default=True,
              help="Error correction: L 7%, M 15%, Q 25%, H 30% of the code may be lost.")
@click.option("--scale", type=click.IntRange(1, 100), default=8, show_default=True,
              help="Pixels per module.")
@click.option("--full", is_flag=True, help="Put every claim in the QR, not only the "
                                          "type's qr_claims and a digest of the rest.")
@json_option
def qr(cert_id: str, output: Path, ec: str, scale: int, full: bool) -> None:
    """Write the QR code of certificate ID, signed now by its agency's active key."""
    with settings().open_registry() as registry:
        text = ecert_qr.qr_text(registry.qr_token(cert_id, full=full))
    code = ecert_qr.make_qr(text, ec=ec)
    ecert_qr.write_qr(code, output, scale=scale)
    emit({"file": str(output), "version": code.version, "error": code.error,
          "characters": len(text), "full": full, "text": text},
         fmt("wrote {file}: QR version {version}, level {level}, {characters} characters",
             file=output, version=code.version, level=code.error, characters=len(text)))


@cli.command("card")
@click.argument("cert_id", metavar="ID")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file: .svg or .png.")
@click.option("--ec", type=click.Choice(ecert_qr.EC_LEVELS, case_sensitive=False),
              default="Q", show_default=True, help="Error correction of the card's QR code.")
@json_option
def card(cert_id: str, output: Path, ec: str) -> None:
    """Write a printable card of certificate ID (type, holder, key claims, QR)."""
    from ecert import card as ecert_card

    with settings().open_registry() as registry:
        cert = registry.get(cert_id)
        written = ecert_card.write_card(cert, registry.get_type(cert.type_code),
                                        registry.get_agency(cert.agency_code),
                                        registry.qr_token(cert.id), output, ec=ec)
    emit({"file": str(written.path), "qr_version": written.qr_version,
          "font": written.font},
         fmt("wrote {file} (QR version {version})", file=written.path,
             version=written.qr_version))
