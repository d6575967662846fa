"""QR codes: the text a certificate's QR carries, PNG/SVG rendering, decoding from images.

The text is ``EC1:`` + base45 of a compact container of a signed QR token (see
:mod:`ecert._formats.qr` and docs/qr.md); :meth:`ecert.Verifier.verify` accepts it as
it accepts a certificate token. Codes are drawn with segno (never fails on valid data,
unlike qrcode 8.2) and read back with zxing-cpp.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecert._formats.qr import is_qr_text, unwrap, wrap
from ecert.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import segno
    from PIL import Image


__all__ = [
    "EC_LEVELS",
    "MAX_TEXT_AT_DEFAULT",
    "MAX_VERSION",
    "QrCode",
    "QrTooLarge",
    "decode_image",
    "decode_qr_image",
    "is_qr_text",
    "make_qr",
    "qr_text",
    "to_image",
    "unwrap",
    "wrap",
    "write_qr",
]

#: Largest QR version ecert prints: denser codes do not scan reliably from print.
MAX_VERSION = 25
EC_LEVELS = ("L", "M", "Q", "H")
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


def qr_text(qr_token: str) -> str:
    """The QR text of a QR token (``Registry.qr_token``): ``EC1:`` and its container."""
    return wrap(qr_token)


def make_qr(text: str, *, ec: str = "Q", max_version: int = MAX_VERSION) -> QrCode:
    """Encode ``text`` as a QR symbol at error-correction level ``ec``.

    Raises :class:`QrTooLarge` (with the size and what to do) above ``max_version``.
    """
    import segno

    level = ec.upper()
    if level not in EC_LEVELS:
        raise InputError(f"error correction level {ec!r} is not one of L, M, Q, H",
                         code="invalid_ec")
    try:
        symbol = segno.make_qr(text, error=level, boost_error=False)
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
            f"{hint}, or drop --full")
    return QrCode(text, version, level, symbol)


def write_qr(code: QrCode, path: str | Path, *, scale: int = 8, border: int = 4) -> Path:
    """Write ``code`` as PNG or SVG, chosen by the file extension."""
    out = Path(path)
    kind = out.suffix.lower()
    if kind not in (".png", ".svg"):
        raise InputError(f"write the QR code to a .png or .svg file, not {out.name!r}",
                         code="invalid_output")
    if not 1 <= scale <= 100:
        raise InputError("scale is 1 to 100 pixels per module", code="invalid_scale")
    code.symbol.save(str(out), kind=kind[1:], scale=scale, border=border)
    return out


def to_image(code: QrCode, *, scale: int = 8, border: int = 4) -> Image.Image:
    """The code as a Pillow image (1 bit, black on white)."""
    from PIL import Image

    size = (code.modules + 2 * border) * scale
    image = Image.new("1", (size, size), 1)
    pixels = image.load()
    if pixels is None:  # pragma: no cover - a new in-memory image always loads
        raise InputError("cannot draw the QR image")
    for y, row in enumerate(code.symbol.matrix_iter(scale=1, border=border)):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    for dx in range(scale):
                        pixels[x * scale + dx, y * scale + dy] = 0
    return image


def decode_image(image: str | Path | Any) -> list[str]:
    """Texts of the QR codes found in an image (a path or a Pillow image), best first.

    Uses zxing-cpp; a second pass on a sharpened, downscaled grey image helps with
    blurred or noisy photos.
    """
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

