"""``ecert qr`` and ``ecert card``: the QR code and the printable card of a certificate."""

from __future__ import annotations

from pathlib import Path

import click

from ecert import qr as ecert_qr
from ecert_cli._app import cli, emit, json_option, settings
from ecert_cli._i18n import _
from ecert_cli._render import fmt, zone


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
@click.option("--allow-invalid", is_flag=True,
              help="Make the QR of a revoked, suspended, expired or not yet valid certificate "
                   "anyway, captioned with its status (refused otherwise, exit 1).")
@click.option("--link", is_flag=True,
              help="Encode a link to the region's verifier page (BASE_URL/verify/#EC1:...) "
                   "that any phone's camera app opens.")
@json_option
def qr(cert_id: str, output: Path, ec: str, scale: int, full: bool,
       allow_invalid: bool, link: bool) -> None:
    """Write the QR code of certificate ID, signed now by its agency's active key.

    Signing is logged (certificate.qr) and needs a clerk or officer of the certificate's
    agency and type. With --link the code holds a link to the region's verifier page
    (published by 'ecert publish' under verify/), the QR text in its fragment.
    """
    with settings().open_registry() as registry:
        token, state = registry.sign_qr(cert_id, full=full, allow_invalid=allow_invalid)
        base_url = registry.region.base_url
    text = ecert_qr.qr_text(token)
    code = ecert_qr.make_link_qr(base_url, text, ec=ec) if link else ecert_qr.make_qr(text, ec=ec)
    caption = None if state is ecert_qr.Standing.VALID else state.label
    ecert_qr.write_qr(code, output, scale=scale, caption=caption)
    emit({"file": str(output), "version": code.version, "error": code.error,
          "characters": len(code.text), "full": full, "text": text, "standing": state.value,
          "link": code.text if link else None},
         fmt("wrote {file}: QR version {version}, level {level}, {characters} characters",
             file=output, version=code.version, level=code.error, characters=len(code.text))
         if caption is None else
         fmt("wrote {file}: QR version {version}, level {level}, {characters} characters, "
             "marked {caption}", file=output, version=code.version, level=code.error,
             characters=len(code.text), caption=caption))


@cli.command("card")
@click.argument("cert_id", metavar="ID")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file: .svg or .png.")
@click.option("--ec", type=click.Choice(ecert_qr.EC_LEVELS, case_sensitive=False),
              default="Q", show_default=True, help="Error correction of the card's QR code.")
@click.option("--size", type=click.Choice(["id1", "a5"], case_sensitive=False), default="id1",
              show_default=True,
              help="id1: ISO/IEC 7810 ID-1, 85.60 x 53.98 mm; a5: A5 landscape, 210 x 148 mm.")
@click.option("--dpi", type=click.IntRange(72, 1200), default=300, show_default=True,
              help="Resolution of a PNG card (recorded in the file).")
@click.option("--allow-invalid", is_flag=True,
              help="Print the card of a revoked, suspended, expired or not yet valid "
                   "certificate anyway, with its status in a red band (refused otherwise, "
                   "exit 1).")
@json_option
def card(cert_id: str, output: Path, ec: str, size: str, dpi: int,
         allow_invalid: bool) -> None:
    """Write a printable card of certificate ID (type, holder, key claims, QR).

    Its QR code is signed now, and logged (certificate.qr).
    """
    from ecert import card as ecert_card

    if output.suffix.lower() not in (".png", ".svg"):  # before anything is signed
        raise click.BadParameter(_("write the card to a .png or .svg file"),
                                 param_hint="'-o'")
    with settings().open_registry() as registry:
        cert = registry.get(cert_id)
        token, state = registry.sign_qr(cert.id, allow_invalid=allow_invalid)
        written = ecert_card.write_card(
            cert, registry.get_type(cert.type_code), registry.get_agency(cert.agency_code),
            token, output, ec=ec, size=size.lower(), dpi=dpi, state=state,
            allow_invalid=allow_invalid, verify_url=registry.region.base_url + "/verify/",
            tz=zone())
    emit({"file": str(written.path), "qr_version": written.qr_version,
          "font": written.font, "size": written.size, "dpi": written.dpi,
          "pixels": [written.width_px, written.height_px], "standing": written.standing.value,
          "truncated": written.truncated, "missing_glyphs": list(written.missing)},
         fmt("wrote {file} ({size} at {dpi} dpi, {width}x{height} px, QR version {version})",
             file=written.path, size=written.size, dpi=written.dpi, width=written.width_px,
             height=written.height_px, version=written.qr_version))
