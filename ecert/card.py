"""A printable certificate card (SVG or PNG): type, holder, key claims, validity, issuer,
certificate id and the QR code.

Chinese text needs a CJK font. SVG cards name the fonts (Noto Sans CJK SC, Source Han
Sans SC, WenQuanYi Zen Hei, then the viewer's sans-serif) and need none here. PNG cards
are drawn with Pillow from a font file: ``ECERT_CJK_FONT`` if set, else the first of
Debian's ``fonts-noto-cjk`` or ``fonts-wqy-zenhei`` (or what ``fc-match`` finds for
Chinese). Without one, a PNG card is refused with a clear message (never drawn with
empty boxes); SVG still works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from ecert.errors import InputError
from ecert.qr import QrCode, make_qr, qr_text

if TYPE_CHECKING:  # pragma: no cover
    from PIL import ImageFont

    from ecert.models import Agency, Certificate, CertificateType

__all__ = ["CardWritten", "CjkFontMissing", "find_cjk_font", "render_png", "render_svg",
           "write_card"]

#: Font files tried in order (path, face index in a collection: 2 is Simplified Chinese).
FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
)
SVG_FONTS = ("'Noto Sans CJK SC', 'Source Han Sans SC', 'WenQuanYi Zen Hei', "
             "'Microsoft YaHei', 'PingFang SC', sans-serif")

WIDTH, HEIGHT = 1200, 720
_MARGIN = 48
_QR_SIZE = 400


class CjkFontMissing(InputError):
    """No CJK font file to draw a PNG card with."""

    code = "cjk_font_missing"


@dataclass(frozen=True)
class CardWritten:
    """What :func:`write_card` wrote."""

    path: Path
    qr_version: int
    font: str | None


@dataclass(frozen=True)
class _Card:
    title: str
    holder: str
    rows: list[tuple[str, str]]
    cert_id: str
    qr: QrCode


def find_cjk_font() -> tuple[str, int] | None:
    """``(path, face index)`` of a font with Chinese glyphs, or None."""
    configured = os.environ.get("ECERT_CJK_FONT")
    if configured:
        path, _, index = configured.partition("#")
        if Path(path).is_file():
            return path, int(index) if index.isdigit() else 0
    for candidate in FONT_CANDIDATES:
        if Path(candidate[0]).is_file():
            return candidate
    fc_match = shutil.which("fc-match")
    if fc_match:
        try:
            found = subprocess.run(  # noqa: S603 - fixed arguments
                [fc_match, "-f", "%{file}#%{index}", ":lang=zh-cn"], capture_output=True,
                text=True, timeout=5, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            found = ""
        found_path, _, found_index = found.partition("#")
        if found_path and Path(found_path).is_file() and "DejaVu" not in found_path:
            return found_path, int(found_index or 0) if found_index.isdigit() else 0
    return None


def _label(cert_type: CertificateType, name: str) -> str:
    prop = cert_type.schema.get("properties", {}).get(name, {})
    description = prop.get("description") if isinstance(prop, dict) else None
    if isinstance(description, str) and description.strip():
        return description.split(" (")[0].split("(")[0].strip()
    return name


def _value(value: Any) -> str:
    if value is None:
        return "长期"  # no end date: "long-term", as on Chinese licences
    if isinstance(value, list):
        return "、".join(_value(v) for v in value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)


def _date(value: datetime | None, *, end: bool = False) -> str:
    if value is None:
        return "长期"
    if end:  # valid until the end of the previous day
        value = value - timedelta(seconds=1)
    return value.date().isoformat()


def _card(cert: Certificate, cert_type: CertificateType, issuer: Agency, qr_token: str,
          ec: str) -> _Card:
    agency = issuer
    rows = [(_label(cert_type, n), _value(cert.claims.get(n)))
            for n in cert_type.qr_claims if n in cert.claims]
    rows.append(("有效期", f"{_date(cert.valid_from)} 至 {_date(cert.valid_until, end=True)}"))
    rows.append(("发证机关", f"{agency.name}"))
    code = make_qr(qr_text(qr_token), ec=ec)
    return _Card(cert_type.name, cert.holder_name, rows, cert.id, code)


def _wrap(text: str, width: int, measure: Any) -> list[str]:
    lines, line = [], ""
    for char in text:
        if line and measure(line + char) > width:
            lines.append(line)
            line = char
        else:
            line += char
    return [*lines, line] if line else lines


def render_svg(card: _Card) -> str:
    """The card as SVG text."""
    qr_x = WIDTH - _MARGIN - _QR_SIZE
    text_width = qr_x - 2 * _MARGIN
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{SVG_FONTS}">',
        f'<rect x="4" y="4" width="{WIDTH - 8}" height="{HEIGHT - 8}" rx="16" fill="#fff" '
        'stroke="#8b1a1a" stroke-width="6"/>',
        f'<text x="{WIDTH // 2}" y="{_MARGIN + 44}" font-size="52" font-weight="bold" '
        f'text-anchor="middle" fill="#8b1a1a">{escape(card.title)}</text>',
    ]
    y = _MARGIN + 120
    out.append(f'<text x="{_MARGIN}" y="{y}" font-size="30" font-weight="bold">'
               f'{escape(card.holder)}</text>')
    y += 52
    for label, value in card.rows:
        lines = _wrap(f"{label}：{value}", text_width, lambda s: _approx_width(s, 22))
        for line in lines[:2]:
            out.append(f'<text x="{_MARGIN}" y="{y}" font-size="22">{escape(line)}</text>')
            y += 32
        y += 6
    out.append(f'<text x="{_MARGIN}" y="{HEIGHT - _MARGIN}" font-size="16" '
               f'font-family="monospace" fill="#444">{escape(card.cert_id)}</text>')
    modules = card.qr.modules + 8
    module = _QR_SIZE / modules
    qr_y = (HEIGHT - _QR_SIZE) // 2 + 30
    path = []
    for row_index, row in enumerate(card.qr.symbol.matrix_iter(scale=1, border=4)):
        for col, dark in enumerate(row):
            if dark:
                path.append(f"M{col} {row_index}h1v1h-1z")
    out.append(f'<g transform="translate({qr_x} {qr_y}) scale({module:.5f})">'
               f'<rect width="{modules}" height="{modules}" fill="#fff"/>'
               f'<path d="{"".join(path)}" fill="#000"/></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _approx_width(text: str, size: int) -> float:
    return sum(size if ord(c) > 0x2E7F else size * 0.55 for c in text)


def render_png(card: _Card, font: tuple[str, int], scale: int = 1) -> Any:
    """The card as a Pillow RGB image drawn with ``font`` (path, face index)."""
    from PIL import Image, ImageDraw, ImageFont

    from ecert.qr import to_image

    def f(size: int) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(font[0], size * scale, index=font[1])

    image = Image.new("RGB", (WIDTH * scale, HEIGHT * scale), "white")
    draw = ImageDraw.Draw(image)
    s = scale
    draw.rounded_rectangle((4 * s, 4 * s, (WIDTH - 4) * s, (HEIGHT - 4) * s), radius=16 * s,
                           outline="#8b1a1a", width=6 * s)
    draw.text((WIDTH // 2 * s, (_MARGIN + 44) * s), card.title, font=f(52), fill="#8b1a1a",
              anchor="ms")
    y = _MARGIN + 120
    draw.text((_MARGIN * s, y * s), card.holder, font=f(30), fill="black", anchor="ls")
    y += 52
    qr_x = WIDTH - _MARGIN - _QR_SIZE
    body = f(22)
    for label, value in card.rows:
        lines = _wrap(f"{label}：{value}", (qr_x - 2 * _MARGIN) * s, body.getlength)
        for line in lines[:2]:
            draw.text((_MARGIN * s, y * s), line, font=body, fill="black", anchor="ls")
            y += 32
        y += 6
    draw.text((_MARGIN * s, (HEIGHT - _MARGIN) * s), card.cert_id, font=f(16), fill="#444",
              anchor="ls")
    modules = card.qr.modules + 8
    pixels = max(1, (_QR_SIZE * s) // modules)
    qr_image = to_image(card.qr, scale=pixels).convert("RGB")
    qr_y = (HEIGHT - _QR_SIZE) // 2 + 30
    image.paste(qr_image, (qr_x * s, qr_y * s))
    return image


def write_card(cert: Certificate, cert_type: CertificateType, issuer: Agency, qr_token: str,
               path: str | Path, *, ec: str = "Q", scale: int = 1) -> CardWritten:
    """Write the card of a certificate as .svg or .png (by extension).

    ``qr_token`` is the certificate's signed QR token (:meth:`ecert.Registry.qr_token`,
    which verifies the stored certificate before signing it).
    """
    out = Path(path)
    kind = out.suffix.lower()
    if kind not in (".svg", ".png"):
        raise InputError(f"write the card to a .svg or .png file, not {out.name!r}",
                         code="invalid_output")
    font = find_cjk_font() if kind == ".png" else None
    if kind == ".png" and font is None:
        raise CjkFontMissing(
            "no CJK font to draw a PNG card: install fonts-noto-cjk (Debian/Ubuntu) or set "
            "ECERT_CJK_FONT to a .ttf/.ttc with Chinese glyphs, or write an .svg card")
    if cert.type_code != cert_type.code or cert.agency_code != issuer.code:
        raise InputError("the type and issuer given are not the certificate's",
                         code="invalid_card")
    card = _card(cert, cert_type, issuer, qr_token, ec)
    if kind == ".svg":
        out.write_text(render_svg(card), "utf-8")
    elif font is not None:
        render_png(card, font, scale).save(out)
    return CardWritten(out, card.qr.version, None if font is None else font[0])
