"""QR codes: the text a certificate's QR carries, PNG/SVG rendering, decoding from images.

The text is ``EC1:`` + base45 of a compact container of a signed QR token (see
:mod:`ecert._formats.qr` and docs/qr.md); :meth:`ecert.Verifier.verify` accepts it as
it accepts a certificate token. The same container holds a purpose-bound copy, exactly
(a copy's card: :mod:`ecert.copy_card`). Codes are drawn with segno (never fails on valid data,
unlike qrcode 8.2) and read back with zxing-cpp, imported where used: the text needs
neither (drawing needs the ``registry`` extra, reading images the ``image`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecert._extras import needs
from ecert._formats.qr import from_link_fragment, is_qr_text, to_link_fragment, unwrap, wrap
from ecert._formats.url import check_http_url
from ecert.errors import CertificateNotValid, FormatError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import segno
    from PIL import Image

    from ecert.models import Certificate


__all__ = [
    "EC_LEVELS",
    "MAX_TEXT_AT_DEFAULT",
    "MAX_VERSION",
    "VERIFY_PATH",
    "QrCode",
    "QrTooLarge",
    "Standing",
    "decode_image",
    "decode_qr_image",
    "is_qr_text",
    "link_text",
    "make_link_qr",
    "make_qr",
    "qr_text",
    "refusal",
    "standing",
    "text_from_link",
    "to_image",
    "unwrap",
    "wrap",
    "write_qr",
]

#: Largest QR version ecert prints: denser codes do not scan reliably from print.
MAX_VERSION = 25
EC_LEVELS = ("L", "M", "Q", "H")
#: Where a region's verifier page lives under its base URL (``ecert publish`` writes it).
VERIFY_PATH = "/verify/"
#: Characters of QR text (alphanumeric mode: base45 and ``EC1:``) a version-25 code holds
#: at level Q, the default of ``ecert qr`` and ``card``. Issuance refuses a certificate
#: whose short form would be longer (checked against segno by the tests).
MAX_TEXT_AT_DEFAULT = 1041


class QrTooLarge(InputError):
    """The content needs a QR code above :data:`MAX_VERSION` at the chosen level."""

    code = "qr_too_large"


@dataclass(frozen=True)
class QrCode:
    """A QR symbol ready to draw."""

    text: str
    version: int
    error: str
    symbol: segno.QRCode

    @property
    def modules(self) -> int:
        """Modules per side (without the quiet zone)."""
        return 17 + 4 * self.version


class Standing(StrEnum):
    """Whether a certificate may be relied on at a given time, and if not, why."""

    VALID = "valid"
    REVOKED = "revoked"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"

    @property
    def label(self) -> str:
        """How a card or a QR caption marks it: Chinese, then English."""
        return _LABELS[self]


_LABELS = {
    Standing.VALID: "有效 VALID",
    Standing.REVOKED: "已吊销 REVOKED",
    Standing.SUSPENDED: "已暂停 SUSPENDED",
    Standing.EXPIRED: "已过期 EXPIRED",
    Standing.NOT_YET_VALID: "尚未生效 NOT YET VALID",
}


def standing(cert: Certificate, at: datetime) -> Standing:
    """The standing of ``cert`` at ``at``: its registry status first (a revoked certificate
    is revoked whatever its dates), then its validity period (``valid_until`` is the
    first second it is no longer valid)."""
    from ecert.models import CertificateStatus

    if cert.status is CertificateStatus.REVOKED:
        return Standing.REVOKED
    if cert.revoke_at is not None and at >= cert.revoke_at:
        return Standing.REVOKED  # a renewal's scheduled supersession has taken effect
    if cert.status is CertificateStatus.SUSPENDED:
        return Standing.SUSPENDED
    if at < cert.valid_from:
        return Standing.NOT_YET_VALID
    if cert.valid_until is not None and at >= cert.valid_until:
        return Standing.EXPIRED
    return Standing.VALID


_REFUSAL = {
    Standing.REVOKED: (
        "certificate {id} is revoked: no QR code or card is made; use --allow-invalid to "
        "print it marked as such"),
    Standing.SUSPENDED: (
        "certificate {id} is suspended: no QR code or card is made; use --allow-invalid to "
        "print it marked as such"),
    Standing.EXPIRED: (
        "certificate {id} has expired: no QR code or card is made; use --allow-invalid to "
        "print it marked as such"),
    Standing.NOT_YET_VALID: (
        "certificate {id} is not valid yet: no QR code or card is made; use --allow-invalid to "
        "print it marked as such"),
}


def refusal(cert_id: str, state: Standing) -> CertificateNotValid:
    """The one-line error for a QR code or card of a certificate that is not valid."""
    return CertificateNotValid(_REFUSAL[state].format(id=cert_id), state.value)


def qr_text(qr_token: str) -> str:
    """The QR text of a QR token (``Registry.qr_token``): ``EC1:`` and its container.
    (A copy token has one too: :func:`ecert.copy_card.copy_qr_text`.)"""
    return wrap(qr_token)


def make_qr(text: str, *, ec: str = "Q", max_version: int = MAX_VERSION) -> QrCode:
    """Encode ``text`` as a QR symbol at error-correction level ``ec``.

    Raises :class:`QrTooLarge` (with the size and what to do) above ``max_version``.
    """
    return _make(text, text, ec, max_version, "drop --full")


def link_text(base_url: str, text: str) -> str:
    """The link that opens the region's verifier page on QR text ``text`` (``EC1:…``).

    ``{base_url}/verify/#EC1:…``: the container rides in the fragment, which a browser
    never sends to the server (the page removes it from the address bar once read), in
    base43 — base45 without space and ``%`` — so the link is a valid URL that a phone's
    camera app opens, as long as the QR text and still QR alphanumeric (format section 14.1).
    """
    check_http_url(base_url, base=True)
    if not is_qr_text(text):
        raise InputError("a verification link carries QR text (EC1:…)", code="invalid_qr_text")
    return base_url + VERIFY_PATH + "#" + to_link_fragment(text)


def text_from_link(link: str) -> str:
    """The QR text a verification link carries (what :func:`link_text` made); raises
    :class:`ecert.errors.FormatError` ``qr_malformed`` for anything else."""
    _, hash_mark, fragment = link.partition("#")
    if not hash_mark:
        raise FormatError("a verification link has a fragment", code="qr_malformed")
    return from_link_fragment(fragment)


def make_link_qr(base_url: str, text: str, *, ec: str = "Q",
                 max_version: int = MAX_VERSION) -> QrCode:
    """:func:`link_text` as a QR code any phone's camera app opens into the verifier page.

    Mixed segments: the URL up to ``#`` in byte mode (``#`` and lower case are not QR
    alphanumeric), the QR text in alphanumeric mode as in the plain code. For a base URL of
    up to 30 characters the code is at most two versions larger than the plain one
    (tests/test_qr_link.py); above :data:`MAX_VERSION` it is refused with its size.
    """
    from segno import consts

    link = link_text(base_url, text)
    prefix, fragment = link.split("#", 1)
    segments = [(prefix + "#", consts.MODE_BYTE), (fragment, consts.MODE_ALPHANUMERIC)]
    return _make(segments, link, ec, max_version, "use a shorter base URL, or leave out --link")


def _make(content: Any, text: str, ec: str, max_version: int, last_hint: str) -> QrCode:
    with needs("registry"):
        import segno

    level = ec.upper()
    if level not in EC_LEVELS:
        raise InputError(f"error correction level {ec!r} is not one of L, M, Q, H",
                         code="invalid_ec")
    try:
        symbol = segno.make_qr(content, error=level, boost_error=False)
        version = int(symbol.version)
    except segno.DataOverflowError:
        version = 41
        symbol = None
    if version > max_version or symbol is None:
        needed = "more than version 40" if version > 40 else f"version {version}"
        hint = "use a lower level (--ec L)" if level != "L" else "leave out --full"
        raise QrTooLarge(
            f"the QR content ({len(text)} characters) needs {needed} at level {level}, "
            f"above version {max_version}, which does not scan reliably from print: "
            f"{hint}, or {last_hint}")
    return QrCode(text, version, level, symbol)


def write_qr(code: QrCode, path: str | Path, *, scale: int = 8, border: int = 4,
             caption: str | None = None) -> Path:
    """Write ``code`` as PNG or SVG, chosen by the file extension.

    ``caption`` (e.g. ``Standing.REVOKED.label``) is printed in red under the code, for a
    QR of a certificate that is not valid: nobody should take it for a good one.
    """
    out = Path(path)
    kind = out.suffix.lower()
    if kind not in (".png", ".svg"):
        raise InputError(f"write the QR code to a .png or .svg file, not {out.name!r}",
                         code="invalid_output")
    if not 1 <= scale <= 100:
        raise InputError("scale is 1 to 100 pixels per module", code="invalid_scale")
    if caption is None:
        code.symbol.save(str(out), kind=kind[1:], scale=scale, border=border)
    elif kind == ".png":
        _captioned_png(code, caption, scale, border).save(out)
    else:
        out.write_text(_captioned_svg(code, caption, scale, border), "utf-8")
    return out


def _caption_height(side: int) -> int:
    return max(24, side // 6)


def _captioned_png(code: QrCode, caption: str, scale: int, border: int) -> Image.Image:
    with needs("registry"):
        from PIL import Image, ImageDraw

    from ecert.card import _font as card_font
    from ecert.card import find_cjk_font

    qr = to_image(code, scale=scale, border=border).convert("RGB")
    band = _caption_height(qr.width)
    image = Image.new("RGB", (qr.width, qr.height + band), "#c00000")
    image.paste(qr, (0, 0))
    font = find_cjk_font()
    if font is not None:
        face = card_font(font[0], font[1], int(band * 0.55))
        while face.size > 8 and face.getlength(caption) > qr.width * 0.94:
            face = card_font(font[0], font[1], face.size - 2)
        ImageDraw.Draw(image).text((qr.width / 2, qr.height + band / 2), caption, font=face,
                                   fill="white", anchor="mm")
    return image


def _captioned_svg(code: QrCode, caption: str, scale: int, border: int) -> str:
    from xml.sax.saxutils import escape

    side = (code.modules + 2 * border) * scale
    band = _caption_height(side)
    path = "".join(f"M{x} {y}h1v1h-1z"
                   for y, row in enumerate(code.symbol.matrix_iter(scale=1, border=border))
                   for x, dark in enumerate(row) if dark)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side + band}" '
            f'viewBox="0 0 {side} {side + band}">\n'
            f'<rect width="{side}" height="{side}" fill="#fff"/>\n'
            f'<path transform="scale({scale})" d="{path}" fill="#000"/>\n'
            f'<rect y="{side}" width="{side}" height="{band}" fill="#c00000"/>\n'
            f'<text x="{side / 2}" y="{side + band * 0.68:.1f}" font-size="{int(band * 0.5)}" '
            'text-anchor="middle" fill="#fff" font-family="\'Noto Sans CJK SC\', '
            f'\'Source Han Sans SC\', sans-serif">{escape(caption)}</text>\n</svg>\n')


def to_image(code: QrCode, *, scale: int = 8, border: int = 4) -> Image.Image:
    """The code as a Pillow image (1 bit, black on white)."""
    with needs("registry"):
        from PIL import Image

    side = code.modules + 2 * border
    # One pixel per module, then scaled up without smoothing: fast at any size.
    small = Image.new("1", (side, side), 1)
    small.putdata([0 if dark else 1
                   for row in code.symbol.matrix_iter(scale=1, border=border) for dark in row])
    return small.resize((side * scale, side * scale), Image.Resampling.NEAREST)


def decode_image(image: str | Path | Any) -> list[str]:
    """Texts of the QR codes found in an image (a path or a Pillow image), best first.

    Uses zxing-cpp; a second pass on a sharpened, downscaled grey image helps with
    blurred or noisy photos.
    """
    with needs("image"):
        import zxingcpp
        from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

    if isinstance(image, str | Path):
        try:
            with Image.open(image) as opened:
                opened.load()
                picture = opened.convert("L")
        except (OSError, UnidentifiedImageError) as e:
            raise InputError(f"cannot read image {image}: {e}", code="invalid_image") from e
    else:
        picture = image.convert("L")
    attempts = [picture]
    if max(picture.size) > 1600:
        factor = 1600 / max(picture.size)
        attempts.append(picture.resize((int(picture.width * factor),
                                        int(picture.height * factor)), Image.Resampling.LANCZOS))
    attempts.append(ImageOps.autocontrast(picture.filter(ImageFilter.MedianFilter(3))))
    attempts.append(picture.filter(ImageFilter.UnsharpMask(radius=2, percent=200)))
    qr_only = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    for attempt in attempts:
        found = zxingcpp.read_barcodes(attempt, formats=qr_only)
        texts = [r.text for r in found if r.valid and r.text]
        if texts:
            return sorted(texts, key=lambda t: not is_qr_text(t))
    return []


def decode_qr_image(image: str | Path | Any) -> str:
    """The ecert QR text in an image; raises :class:`InputError` when there is none."""
    texts = decode_image(image)
    if not texts:
        raise InputError("no QR code found in the image", code="no_qr_code")
    for text in texts:
        if is_qr_text(text):
            return text
    return texts[0]

