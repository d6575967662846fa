"""``ecert share fetch … --card FILE``: printable cards of the copies fetched.

Each copy is verified first, by our own region's verifier (our anchor; the serving
region through our agreement with it), for our requester and the purpose stated: only
a copy that verifies gets a card, drawn from what the verifier says. The verifier is
made before the request is sent, so that a trust list that cannot be read costs no
consent code (a code works once).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

import ecert
from ecert_cli._app import input_error, settings
from ecert_cli._i18n import N_, _, in_english, is_chinese
from ecert_cli._render import fmt, zone

#: The sizes ``--card-size`` offers (ecert.copy_card.COPY_SIZES).
CARD_SIZES = ("a5", "a4")


def card_target(path: Path) -> Path:
    """``--card FILE`` checked before anything is sent: a .png or .svg in a directory
    that exists."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise click.BadParameter(_("write the card to a .png or .svg file"),
                                 param_hint="'--card'")
    if not path.parent.is_dir():
        raise input_error("the directory of {file} does not exist", file=path)
    return path


def card_paths(path: Path, count: int) -> list[Path]:
    """Where the cards of ``count`` copies go: ``path`` itself for one copy, else one
    numbered file per copy beside it (``card-1.png``, ``card-2.png``…)."""
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{n}{path.suffix}") for n in range(1, count + 1)]


def copy_verifier(anchor: ecert.TrustAnchor) -> ecert.Verifier:
    """Our region's verifier (its trust state kept in the home's verifier cache, as
    ``ecert verify`` keeps it)."""
    s = settings()
    return ecert.Verifier.from_anchor(anchor, cache_dir=s.home / "verifier-cache",
                                      clock=s.clock)


@dataclass(frozen=True)
class CardOutcome:
    """The card of one copy: written (``card``), or why not (``code``, ``message``)."""

    card: dict[str, Any] | None = None
    code: str | None = None
    message: str = ""
    english: str = ""

    @property
    def exit_code(self) -> int:
        """1 for a copy that does not verify, 2 for a card that could not be written."""
        return 1 if self.code == "copy_not_valid" else 2

    def to_json(self) -> dict[str, Any]:
        """The copy's ``card`` member (or ``card_error``) in ``--json``."""
        if self.card is not None:
            return {"card": self.card}
        return {"card": None, "card_error": {"code": self.code, "message": self.english}}


def _failed(code: str, message: str, **values: object) -> CardOutcome:
    with in_english():
        english = fmt(message, **values)
    return CardOutcome(None, code, fmt(message, **values), english)


def write_cards(copies: list[dict[str, Any]], target: Path, size: str,
                verifier: ecert.Verifier, requester: str, purpose: str) -> list[CardOutcome]:
    """Verify each copy for ``requester`` and ``purpose`` and draw the card of each that
    verifies; a copy that does not, or whose card cannot be drawn, gets none."""
    from ecert import copy_card

    paths = card_paths(target, len(copies))
    outcomes = []
    with settings().open_registry() as registry:  # for the types' names and labels
        tz = zone()
        for n, (copy, path) in enumerate(zip(copies, paths, strict=True), 1):
            result = verifier.verify(copy["token"], audience=requester, purpose=purpose)
            if not result.valid:
                outcomes.append(_failed(
                    "copy_not_valid", N_("copy {n} does not verify ({status}: {errors}): no "
                                         "card was made"),
                    n=n, status=result.status.value,
                    errors=", ".join(result.errors) or "-"))
                continue
            try:
                written = copy_card.write_copy_card(
                    copy["token"], result, path, cert_type=_local_type(registry, result),
                    lang="zh" if is_chinese() else "en", size=size, tz=tz)
            except ecert.EcertError as e:
                outcomes.append(_failed(e.code, N_("no card for copy {n}: {why}"), n=n,
                                        why=e.message))
                continue
            except OSError as e:
                outcomes.append(_failed("os_error", N_("no card for copy {n}: {why}"), n=n,
                                        why=f"{e.strerror or e}: {path}"))
                continue
            outcomes.append(CardOutcome({
                "file": str(written.path), "qr_version": written.qr_version,
                "qr_error": written.qr_error, "qr_characters": written.qr_characters,
                "size": written.size, "dpi": written.dpi,
                "pixels": [written.width_px, written.height_px],
                "watermark": written.watermark, "truncated": written.truncated,
                "missing_glyphs": list(written.missing), "font": written.font}))
    return outcomes


def _local_type(registry: ecert.Registry, result: ecert.VerificationResult
                ) -> ecert.CertificateType | None:
    """Our type the copy counts as, when we have it (its name and claim labels)."""
    if result.local_type is None:
        return None
    try:
        return registry.get_type(result.local_type)
    except ecert.NotFound:
        return None


def say_card(n: int, outcome: CardOutcome) -> None:
    """One line on the card of copy ``n`` (human output)."""
    card = outcome.card
    if card is None:
        click.echo(outcome.message)
        return
    click.echo(fmt("card of copy {n}: {file} ({size}, QR version {version}, level {level})",
                   n=n, file=card["file"], size=card["size"].upper(),
                   version=card["qr_version"], level=card["qr_error"]))
