"""A printable certificate card (PNG or SVG) at a stated physical size and resolution.

Sizes: ISO/IEC 7810 ID-1 (85.60 × 53.98 mm, a bank card) and A5 landscape (210 × 148 mm),
at ``dpi`` dots per inch (300 by default: ID-1 is then 1011 × 638 pixels). The card shows
the type, holder, the type's ``qr_claims``, validity, issuer, certificate id, the QR code
and a "扫码核验 scan to verify" line with the region's verifier address. Long names and
values wrap; what still does not fit ends in "…" and the card says that the full text is
in the QR code (the short form carries the holder name and every claim on the card). A
certificate that is not valid gets a red band with its status ("已吊销 REVOKED") and a red
frame; it is refused unless ``allow_invalid``.

Fonts. PNG cards are drawn with Pillow from, in order: ``ECERT_CJK_FONT`` (``path`` or
``path#face``), a system CJK font (Debian's ``fonts-noto-cjk`` or ``fonts-wqy-zenhei``,
or what ``fc-match`` finds for Chinese), else the font packaged with ecert (a WOFF2
subset of Noto Sans CJK SC, renamed "ecert Card Sans SC", SIL OFL 1.1: GB 2312 and all of
U+4E00–U+9FFF; ``tools/make_card_font.py`` rebuilds it). A character the font cannot draw
(a rare name character beyond it) never blocks a card: a box □ is drawn in its place and
the card says which code point it could not draw ("未能显示 not drawn: U+2A6A5"). SVG cards
name fonts for the viewer and are laid out with the same metrics.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from xml.sax.saxutils import escape, quoteattr

from ecert._clock import DEFAULT_TZ, zone
from ecert._extras import needs
from ecert.errors import InputError
from ecert.qr import QrCode, Standing, make_qr, qr_text, refusal, standing

if TYPE_CHECKING:  # pragma: no cover
    from PIL import ImageFont

    from ecert.models import Agency, Certificate, CertificateType

__all__ = ["PACKAGED_FONT", "SIZES", "CardWritten", "CjkFontMissing", "card_font",
           "find_cjk_font", "write_card"]

#: Font files tried in order (path, face index in a collection: 2 is Simplified Chinese).
FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
)
#: The font shipped with ecert (see tools/make_card_font.py and its LICENSE beside it).
PACKAGED_FONT = Path(__file__).parent / "_data" / "fonts" / "EcertCardSansSC-Regular.woff2"
SVG_FONTS = ("'Noto Sans CJK SC', 'Source Han Sans SC', 'WenQuanYi Zen Hei', "
             "'Microsoft YaHei', 'PingFang SC', sans-serif")

#: Card sizes in millimetres (width, height), landscape.
SIZES: dict[str, tuple[float, float]] = {"id1": (85.60, 53.98), "a5": (210.0, 148.0)}
_BASE_WIDTH, _BASE_HEIGHT = SIZES["id1"]
_MIN_DPI, _MAX_DPI = 72, 1200
_RED = "#c00000"
_FRAME = "#8b1a1a"
_MORE = "…完整内容见二维码 full text in the QR code"


class CjkFontMissing(InputError):
    """No CJK font file to draw a PNG card with (only when the packaged one was removed)."""

    code = "cjk_font_missing"


@dataclass(frozen=True)
class CardWritten:
    """What :func:`write_card` wrote."""

    path: Path
    qr_version: int
    font: str | None
    size: str = "id1"
    dpi: int = 300
    width_px: int = 0
    height_px: int = 0
    standing: Standing = Standing.VALID
    #: Whether some text ended in "…" (its full value is in the QR code).
    truncated: bool = False
    #: Code points the font could not draw ("U+2A6A5"), drawn as □ and listed on the card.
    missing: tuple[str, ...] = field(default=())


def find_cjk_font(*, system: bool = True) -> tuple[str, int] | None:
    """``(path, face index)`` of a font with Chinese glyphs: ``ECERT_CJK_FONT``, a system
    font (unless ``system`` is false), else the packaged subset."""
    configured = os.environ.get("ECERT_CJK_FONT")
    if configured:
        path, _, index = configured.partition("#")
        if Path(path).is_file():
            return path, int(index) if index.isdigit() else 0
    if system:
        found = _system_font()
        if found is not None:
            return found
    return (str(PACKAGED_FONT), 0) if PACKAGED_FONT.is_file() else None


def card_font(font: tuple[str, int] | None = None) -> tuple[str, int]:
    """``font`` if given, else :func:`find_cjk_font`'s; raises :class:`CjkFontMissing`
    when there is none."""
    chosen = font or find_cjk_font()
    if chosen is None:
        raise CjkFontMissing(
            "no CJK font to draw the card: the font packaged with ecert is missing; "
            "reinstall ecert or set ECERT_CJK_FONT to a .ttf/.otf/.ttc with Chinese glyphs")
    return chosen


def _system_font() -> tuple[str, int] | None:
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


# -- fonts and glyphs ---------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _font(path: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    # Cached: the packaged WOFF2 takes a third of a second to open, once per size.
    with needs("registry"):
        from PIL import ImageFont

    try:
        return ImageFont.truetype(path, max(1, size), index=index)
    except OSError as e:  # e.g. a FreeType built without Brotli cannot read WOFF2
        raise CjkFontMissing(
            "cannot read the card font {path}: {error}; install fonts-noto-cjk or set "
            "ECERT_CJK_FONT to a .ttf/.otf/.ttc with Chinese glyphs".format(
                **{"path": path, "error": e})) from e


@functools.lru_cache(maxsize=4096)
def _drawable(path: str, index: int, char: str) -> bool:
    """Whether the font has a glyph for ``char`` (what it draws differs from .notdef)."""
    face = _font(path, index, 48)
    notdef = _mask(face, "\U0010fffd")  # a private-use code point no CJK font maps
    return _mask(face, char) != notdef


def _mask(face: ImageFont.FreeTypeFont, char: str) -> tuple[Any, bytes]:
    mask = face.getmask(char)
    return mask.size, bytes(mask)


def _invisible(char: str) -> bool:
    # Joiners and variation selectors shape their neighbours; on their own they draw nothing.
    return unicodedata.category(char) == "Cf" or 0xFE00 <= ord(char) <= 0xFE0F or (
        0xE0100 <= ord(char) <= 0xE01EF)


# -- content ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Card:
    title: str
    holder: str
    rows: list[tuple[str, str]]
    cert_id: str
    qr: QrCode
    standing: Standing
    verify_url: str | None


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


def _date(value: datetime | None, tz: tzinfo, *, end: bool = False) -> str:
    """The day of ``value`` as the holder lives it (``tz``, the registry's time zone)."""
    if value is None:
        return "长期"
    if end:  # valid until the end of the previous day
        value = value - timedelta(seconds=1)
    return value.astimezone(tz).date().isoformat()


def _card(cert: Certificate, cert_type: CertificateType, issuer: Agency, qr_token: str,
          ec: str, state: Standing, verify_url: str | None,
          tz: tzinfo | None = None) -> _Card:
    tz = tz or zone(DEFAULT_TZ)
    rows = [(_label(cert_type, n), _value(cert.claims.get(n)))
            for n in cert_type.qr_claims if n in cert.claims]
    rows.append(("有效期", f"{_date(cert.valid_from, tz)} 至 "
                         f"{_date(cert.valid_until, tz, end=True)}"))
    rows.append(("发证机关", f"{issuer.name}"))
    code = make_qr(qr_text(qr_token), ec=ec)
    return _Card(cert_type.name, cert.holder_name, rows, cert.id, code, state, verify_url)


# -- layout -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    x: float
    y: float  #: baseline
    size: int
    text: str
    color: str = "#000"
    anchor: str = "ls"


@dataclass(frozen=True)
class _Watermark:
    """One text stamped again and again across a card, turned by ``angle`` degrees
    (counter-clockwise), centred at each of ``centers``."""

    text: str
    size: int
    angle: float
    color: str
    opacity: float
    centers: tuple[tuple[float, float], ...]


@dataclass
class _Layout:
    width: int
    height: int
    texts: list[_Text] = field(default_factory=list)
    rects: list[tuple[float, float, float, float, str, str | None]] = field(
        default_factory=list)  #: x, y, w, h, fill, outline
    qr: tuple[int, int, int] = (0, 0, 1)  #: x, y, pixels per module
    truncated: bool = False
    missing: list[str] = field(default_factory=list)
    watermark: _Watermark | None = None


class _Measure:
    """Widths with the card font; characters it cannot draw are measured as □."""

    def __init__(self, font: tuple[str, int]) -> None:
        self.font = font
        self.missing: list[str] = []

    def visible(self, text: str) -> str:
        """``text`` as the card draws it: one line (a line break or other control
        character is a space: Pillow would start a new line over the next text), without
        the characters that draw nothing, and □ for those the font lacks."""
        out = []
        for char in text:
            if _invisible(char):
                continue
            if unicodedata.category(char) == "Cc":
                out.append(" ")
            elif char.isspace() or _drawable(self.font[0], self.font[1], char):
                out.append(char)
            else:
                code = f"U+{ord(char):04X}"
                if code not in self.missing:
                    self.missing.append(code)
                out.append("\u25a1")
        return "".join(out)

    def width(self, text: str, size: int) -> float:
        return float(_font(self.font[0], self.font[1], size).getlength(text))

    def at(self, size: int) -> Callable[[str], float]:
        """The width function at one font size."""
        return functools.partial(self._width_at, size)

    def _width_at(self, size: int, text: str) -> float:
        return self.width(text, size)


def _wrap(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Lines of ``text`` no wider than ``width``, broken between characters (Chinese
    text has no spaces; a long Latin word is broken too rather than clipped)."""
    lines: list[str] = []
    line = ""
    for char in text:
        if line and measure(line + char) > width:
            lines.append(line)
            line = "" if char == " " else char
        else:
            line += char
    return [*lines, line] if line else lines or [""]


def _ellipsize(line: str, width: float, measure: Callable[[str], float]) -> str:
    while line and measure(line + "…") > width:
        line = line[:-1]
    return line + "…"


class _Item(NamedTuple):
    """A paragraph of a text column: its text, its size relative to the body's, and its
    rank (the lowest-ranked paragraphs are cut first when nothing else fits)."""

    text: str
    weight: float = 1.0
    rank: int = 0
    color: str = "#000"
    #: Space before it, in body sizes (a gap between sections).
    gap: float = 0.0


#: Body sizes tried, in turn, before paragraphs are cut.
_SHRINK = (1.0, 0.9, 0.8)


def _fit_column(items: Sequence[_Item], x: float, top: float, bottom: float, width: float,
                body: float, measure: _Measure,
                shrink: Sequence[float] = _SHRINK) -> tuple[list[_Text], bool]:
    """Lay out ``items`` from ``top`` (baselines below it) no lower than ``bottom``:
    wrapped at ``width``, shrunk step by step to ``shrink[-1]`` of the ``body`` size (in
    pixels, unrounded),
    then, still too tall, the longest paragraph of the lowest rank is cut by a line at a
    time (its last line ends in "…"). Returns the texts and whether any was cut."""
    def size_of(item: _Item, factor: float) -> int:
        return round(max(6, round(body * factor)) * item.weight)

    placed: list[_Text] = []
    for factor in shrink:
        placed, y = [], top
        for item in items:
            font_size = size_of(item, factor)
            y += item.gap * font_size
            for line in _wrap(item.text, width, measure.at(font_size)):
                y += font_size * 1.25
                placed.append(_Text(x, y, font_size, line, item.color))
            y += font_size * 0.2
        if y <= bottom:
            return placed, False
    # Still too tall at the smallest size: cap each item's lines, lowest rank first.
    sizes = [size_of(item, shrink[-1]) for item in items]
    wrapped = [_wrap(item.text, width, measure.at(n)) for item, n in zip(items, sizes,
                                                                        strict=True)]
    caps = [len(lines) for lines in wrapped]

    def height() -> float:
        return sum(c * n * 1.25 + n * 0.2 + item.gap * n
                   for c, n, item in zip(caps, sizes, items, strict=True))

    while height() > bottom - top and max(caps) > 1:
        rank = min(item.rank for item, c in zip(items, caps, strict=True) if c > 1)
        longest = max((i for i, item in enumerate(items) if item.rank == rank and caps[i] > 1),
                      key=lambda i: caps[i])
        caps[longest] -= 1
    placed, y, limited = [], top, False
    for cap, item, lines, font_size in zip(caps, items, wrapped, sizes, strict=True):
        y += item.gap * font_size
        shown = lines[:cap]
        if cap < len(lines):
            shown[-1] = _ellipsize(shown[-1], width, measure.at(font_size))
            limited = True
        for line in shown:
            y += font_size * 1.25
            placed.append(_Text(x, y, font_size, line, item.color))
        y += font_size * 0.2
    return placed, limited


def _layout(card: _Card, size: str, dpi: int, font: tuple[str, int]) -> _Layout:
    width_mm, height_mm = SIZES[size]
    px = dpi / 25.4  # pixels per millimetre
    k = min(width_mm / _BASE_WIDTH, height_mm / _BASE_HEIGHT)  # scale against ID-1
    width, height = round(width_mm * px), round(height_mm * px)
    out = _Layout(width, height)
    measure = _Measure(font)

    def mm(value: float) -> float:
        return value * k * px

    def size_px(value_mm: float) -> int:
        return max(6, round(mm(value_mm)))

    margin = mm(3.0)
    invalid = card.standing is not Standing.VALID
    out.rects.append((mm(0.6), mm(0.6), width - 2 * mm(0.6), height - 2 * mm(0.6), "#fff",
                      _RED if invalid else _FRAME))
    top = margin
    if invalid:
        band = mm(6.0)
        out.rects.append((0, mm(2.4), width, band, _RED, None))
        label_size = size_px(3.8)
        out.texts.append(_Text(width / 2, mm(2.4) + band / 2 + label_size * 0.36, label_size,
                               card.standing.label, "#fff", "ms"))
        top = mm(2.4) + band + mm(1.5)

    # Everything the card says, as the font can draw it (missing glyphs become □).
    title = measure.visible(card.title)
    items = [(measure.visible(card.holder), 1.2)] + [
        (measure.visible(f"{label}：{value}"), 1.0) for label, value in card.rows]

    # Footer, full width: the verifier address and the certificate id.
    small = size_px(1.7)
    full_width = width - 2 * margin
    footer = (f"扫码核验 scan to verify: {card.verify_url}" if card.verify_url
              else "扫码核验 scan to verify")
    footer_lines = _wrap(measure.visible(footer), full_width,
                         measure.at(small))
    id_lines = _wrap(f"证书编号 ID {card.cert_id}", full_width,
                     measure.at(small))
    line_gap = small * 1.3
    # Room for the notes: the glyphs not drawn (known now), and "…" (known after layout).
    reserve_notes = (2 if measure.missing else 1) * line_gap
    footer_height = (len(footer_lines) + len(id_lines)) * line_gap

    # The QR code at the top right; integer pixels per module keep it sharp.
    qr_space = min(height - margin - footer_height - reserve_notes - top - mm(1.0),
                   width * 0.42)
    modules = card.qr.modules + 8
    module = max(1, int(qr_space // modules))
    qr_side = module * modules
    qr_x = round(width - margin - qr_side)
    qr_y = round(top)
    out.qr = (qr_x, qr_y, module)

    # The title heads the text column (two lines at most).
    column_x = margin
    column_width = qr_x - mm(2.0) - column_x
    title_size = size_px(3.4)
    title_lines = _wrap(title, column_width, measure.at(title_size))
    if len(title_lines) > 2:
        title_lines = [title_lines[0], _ellipsize(title_lines[1], column_width,
                                                  measure.at(title_size))]
        out.truncated = True
    y = top
    for line in title_lines:
        y += title_size * 1.2
        out.texts.append(_Text(column_x, y, title_size, line, _FRAME))
    column_top = y + mm(1.0)
    column_bottom = height - margin - footer_height - reserve_notes

    # The text column: holder and rows, shrunk to fit, then ellipsized; the holder's
    # name gives way last.
    placed, limited = _fit_column(
        [_Item(items[0][0], items[0][1], rank=1)] + [_Item(t, w) for t, w in items[1:]],
        column_x, column_top, column_bottom, column_width, mm(2.3), measure)
    out.truncated = out.truncated or limited
    out.texts.extend(placed)

    # Notes and footer, bottom-up.
    y = height - margin
    for line in reversed(id_lines):
        out.texts.append(_Text(margin, y, small, line, "#444"))
        y -= line_gap
    for line in reversed(footer_lines):
        out.texts.append(_Text(margin, y, small, line, "#000"))
        y -= line_gap
    notes = []
    if measure.missing:
        notes.append("未能显示 not drawn: " + " ".join(measure.missing))
    if out.truncated:
        notes.append(_MORE)
    # One line each, in the room reserved below the QR code.
    notes = notes[:round(reserve_notes / line_gap)]
    for note in reversed(notes):
        if measure.width(note, small) > full_width:
            note = _ellipsize(note, full_width, measure.at(small))
        out.texts.append(_Text(margin, y, small, note, _RED))
        y -= line_gap
    out.missing = measure.missing
    return out


# -- output -------------------------------------------------------------------------------


def _png(qr: QrCode, layout: _Layout, font: tuple[str, int]) -> Any:
    with needs("registry"):
        from PIL import Image, ImageDraw

    from ecert.qr import to_image

    image = Image.new("RGB", (layout.width, layout.height), "white")
    draw = ImageDraw.Draw(image)
    for x, y, w, h, fill, outline in layout.rects:
        box = (round(x), round(y), round(x + w) - 1, round(y + h) - 1)
        if outline:
            draw.rectangle(box, fill=fill, outline=outline,
                           width=max(2, layout.width // 250))
        else:
            draw.rectangle(box, fill=fill)
    for t in layout.texts:
        draw.text((t.x, t.y), t.text, font=_font(font[0], font[1], t.size), fill=t.color,
                  anchor=t.anchor)
    if layout.watermark is not None:
        # Over the text (erasing it would take the text with it), under the QR code.
        image = _watermarked(image, layout.watermark, font)
    qr_x, qr_y, module = layout.qr
    image.paste(to_image(qr, scale=module).convert("RGB"), (qr_x, qr_y))
    return image


def _watermarked(image: Any, mark: _Watermark, font: tuple[str, int]) -> Any:
    """``image`` with the watermark's text stamped, rotated, at each of its centres."""
    with needs("registry"):
        from PIL import Image, ImageColor, ImageDraw

    face = _font(font[0], font[1], mark.size)
    left, top, right, bottom = (round(v) for v in face.getbbox(mark.text, anchor="mm"))
    pad = mark.size // 4
    flat = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
    red, green, blue = ImageColor.getrgb(mark.color)[:3]
    ImageDraw.Draw(flat).text((pad - left, pad - top), mark.text, font=face, anchor="mm",
                              fill=(red, green, blue, round(255 * mark.opacity)))
    stamp = flat.rotate(mark.angle, resample=Image.Resampling.BICUBIC, expand=True)
    out = image.convert("RGBA")
    for cx, cy in mark.centers:
        x, y = round(cx - stamp.width / 2), round(cy - stamp.height / 2)
        # alpha_composite takes no negative destination: cut what lies off the card.
        source = (max(0, -x), max(0, -y), min(stamp.width, out.width - x),
                  min(stamp.height, out.height - y))
        if source[0] < source[2] and source[1] < source[3]:
            out.alpha_composite(stamp, (max(0, x), max(0, y)), source)
    return out.convert("RGB")


def _svg(qr: QrCode, layout: _Layout, width_mm: float, height_mm: float) -> str:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_mm}mm" height="{height_mm}mm" '
        f'viewBox="0 0 {layout.width} {layout.height}" font-family="{SVG_FONTS}">',
    ]
    for x, y, w, h, fill, outline in layout.rects:
        stroke = (f' stroke={quoteattr(outline)} stroke-width="{max(2, layout.width // 250)}"'
                  if outline else "")
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                   f'fill={quoteattr(fill)}{stroke}/>')
    for t in layout.texts:
        anchor = "middle" if t.anchor == "ms" else "start"
        out.append(f'<text x="{t.x:.1f}" y="{t.y:.1f}" font-size="{t.size}" '
                   f'text-anchor="{anchor}" fill={quoteattr(t.color)}>{escape(t.text)}</text>')
    mark = layout.watermark
    if mark is not None:
        out.append(f'<g class="watermark" fill={quoteattr(mark.color)} '
                   f'fill-opacity="{mark.opacity}" font-size="{mark.size}" '
                   'text-anchor="middle" dominant-baseline="central">')
        out.extend(f'<text transform="translate({cx:.1f} {cy:.1f}) rotate({-mark.angle:g})">'
                   f'{escape(mark.text)}</text>' for cx, cy in mark.centers)
        out.append("</g>")
    qr_x, qr_y, module = layout.qr
    modules = qr.modules + 8
    path = []
    for row_index, row in enumerate(qr.symbol.matrix_iter(scale=1, border=4)):
        for col, dark in enumerate(row):
            if dark:
                path.append(f"M{col} {row_index}h1v1h-1z")
    out.append(f'<g transform="translate({qr_x} {qr_y}) scale({module})">'
               f'<rect width="{modules}" height="{modules}" fill="#fff"/>'
               f'<path d="{"".join(path)}" fill="#000"/></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _output_kind(out: Path, size: str, sizes: Mapping[str, object], dpi: int,
                 what: str = "card") -> str:
    """``.png`` or ``.svg``, from ``out``'s name; refuses another kind of file, a size
    not in ``sizes`` and a resolution ecert does not draw at."""
    kind = out.suffix.lower()
    if kind not in (".svg", ".png"):
        raise InputError(f"write the card to a .svg or .png file, not {out.name!r}",
                         code="invalid_output")
    if size not in sizes:
        raise InputError(f"{what} size {size!r} is not one of {', '.join(sizes)}",
                         code="invalid_size")
    if not _MIN_DPI <= dpi <= _MAX_DPI:
        raise InputError(f"dpi {dpi} is not between {_MIN_DPI} and {_MAX_DPI}",
                         code="invalid_dpi")
    return kind


def write_card(cert: Certificate, cert_type: CertificateType, issuer: Agency, qr_token: str,
               path: str | Path, *, ec: str = "Q", size: str = "id1", dpi: int = 300,
               state: Standing | None = None, at: datetime | None = None,
               allow_invalid: bool = False, verify_url: str | None = None,
               font: tuple[str, int] | None = None,
               tz: tzinfo | str = DEFAULT_TZ) -> CardWritten:
    """Write the card of a certificate as .png or .svg (by extension).

    ``qr_token`` is the certificate's signed QR token (:meth:`ecert.Registry.sign_qr`
    gives it with ``state``, the certificate's :class:`ecert.qr.Standing` when signed;
    without ``state`` it is judged at ``at``, by default now). A certificate that is not
    valid raises :class:`ecert.CertificateNotValid` unless ``allow_invalid``, and is then
    drawn with its status in a red band. ``size`` is ``id1`` or ``a5``; the PNG records
    ``dpi``. ``verify_url`` is the region's verifier page (its base URL + ``/verify/``).
    ``font`` (path, face) overrides :func:`find_cjk_font`. Dates are the days in ``tz``
    (the registry's time zone: ``Region.tz``), where the holder reads them.
    """
    out = Path(path)
    kind = _output_kind(out, size, SIZES, dpi)
    if cert.type_code != cert_type.code or cert.agency_code != issuer.code:
        raise InputError("the type and issuer given are not the certificate's",
                         code="invalid_card")
    if state is None:
        state = standing(cert, at or datetime.now(UTC))
    if state is not Standing.VALID and not allow_invalid:
        raise refusal(cert.id, state)
    chosen = card_font(font)
    where = zone(tz) if isinstance(tz, str) else tz
    card = _card(cert, cert_type, issuer, qr_token, ec, state, verify_url, where)
    layout = _layout(card, size, dpi, chosen)
    if kind == ".svg":
        out.write_text(_svg(card.qr, layout, *SIZES[size]), "utf-8")
    else:
        _png(card.qr, layout, chosen).save(out, dpi=(dpi, dpi))
    return CardWritten(out, card.qr.version, chosen[0], size, dpi, layout.width, layout.height,
                       state, layout.truncated, tuple(layout.missing))

