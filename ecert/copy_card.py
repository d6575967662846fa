"""A printable card of a purpose-bound copy (加注件): what was released, to whom, why,
until when — watermarked with that use — and a QR code that verifies it offline.

A copy is not the certificate, and its card says so first, in a band across the top
("电子证照加注件 · 非证照原件"). Then the type, the claims the copy carries (only
those), the original certificate's id, its issuing agency and region, the requester
(the copy's audience), the purpose (用证事由), the case number (业务流水号) and the
copy's expiry in local time. A watermark of purpose, case, requester and expiry is
stamped diagonally, again and again, over the whole card but its QR code, so that a
printed copy shown for another use carries its own use across every line.

The QR code holds the copy itself, in the ``EC1:`` container (format section 17.4):
the exact signed copy token, rebuilt byte for byte when read, so a verifier applies
every check of the copy token (audience, purpose, the original's status, the copy's
expiry). ``ecert verify --image card.png --anchor … --audience REGION/AGENCY --purpose P``
reads it. A copy's plain token (about 1,200 characters) would need version 29 at level
M in byte mode, past the version-25 limit of printed codes; its container fits version
19-23 at level Q for the sample entitlements. The level is the highest of Q, M and L
whose code fits version 25 (:func:`copy_qr`).

Only a copy that verified (for its audience) gets a card: :func:`write_copy_card` takes
the copy token and the :class:`ecert.VerificationResult` of verifying it. Sizes: A5
landscape (210 × 148 mm, the default) or A4 landscape (297 × 210 mm), at ``dpi``; a
bank-card size holds neither the claims nor a copy's denser code legibly. Labels are
Chinese (``lang="zh"``) or English (``"en"``); fonts as for certificate cards
(:mod:`ecert.card`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecert._clock import DEFAULT_TZ, zone
from ecert._formats import qr as _qr
from ecert._formats.copy import COPY_TYP, CopyClaims
from ecert._formats.jose import parse_compact
from ecert.card import (
    _SHRINK,
    _ellipsize,
    _fit_column,
    _Item,
    _label,
    _Layout,
    _Measure,
    _output_kind,
    _png,
    _svg,
    _Text,
    _Watermark,
    _wrap,
    card_font,
)
from ecert.errors import FormatError, InputError, VerificationFailed
from ecert.qr import MAX_VERSION, QrCode, QrTooLarge, make_qr

if TYPE_CHECKING:  # pragma: no cover
    from ecert.models import CertificateType
    from ecert.verify import CopyInfo, VerificationResult

__all__ = ["COPY_SIZES", "LANGUAGES", "CopyCardWritten", "copy_qr", "copy_qr_text",
           "write_copy_card"]

#: Copy card sizes in millimetres (width, height), landscape.
COPY_SIZES: dict[str, tuple[float, float]] = {"a5": (210.0, 148.0), "a4": (297.0, 210.0)}
#: Languages of a copy card's labels.
LANGUAGES = ("zh", "en")
_BASE_WIDTH, _BASE_HEIGHT = COPY_SIZES["a5"]
#: Error-correction levels tried for a copy's QR code, most robust first.
_LEVELS = ("Q", "M", "L")
#: The copy card's own colour (frame, band, headings): not the certificate card's.
_COPY = "#1d4e89"
_WATERMARK = "#c00000"
_WATERMARK_OPACITY = 0.16
_WATERMARK_ANGLE = 30.0
_GREY = "#444"
_RED = "#c00000"

_TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "电子证照加注件", "not": "非证照原件 · 仅限下列用途",
        "copy_of": "原证照编号", "issuer": "发证机关", "audience": "用证单位",
        "purpose": "用证事由", "case": "业务流水号", "until": "有效期至",
        "made": "出具时间", "copy_id": "加注件编号", "sep": "：",
        "scan": "扫码核验（须以用证单位与用证事由核验）",
        "notice": "本件为{region}电子证照共享服务出具的加注件，仅供{audience}办理{case}"
                  "（{purpose}）使用，{until}后失效；用于其他单位或事由无效。",
        "watermark": "{purpose} · {case} · {audience} · 有效期至 {until}",
        "more": "…完整内容见二维码", "missing": "未能显示：",
        "none": "长期", "yes": "是", "no": "否", "list": "、",
    },
    "en": {
        "title": "PURPOSE-BOUND COPY", "not": "Not the certificate · valid only for the use below",
        "copy_of": "Certificate", "issuer": "Issued by", "audience": "Requester",
        "purpose": "Purpose", "case": "Case number", "until": "Valid until",
        "made": "Made", "copy_id": "Copy id", "sep": ": ",
        "scan": "Scan to verify (for this requester and purpose)",
        "notice": "A copy made by the sharing service of {region} for {audience} only, for "
                  "case {case} ({purpose}); void after {until} and for any other requester "
                  "or purpose.",
        "watermark": "{purpose} · {case} · {audience} · valid until {until}",
        "more": "…full text in the QR code", "missing": "Not drawn: ",
        "none": "none", "yes": "yes", "no": "no", "list": ", ",
    },
}


@dataclass(frozen=True)
class CopyCardWritten:
    """What :func:`write_copy_card` wrote."""

    path: Path
    qr_version: int
    qr_error: str  #: the QR code's error-correction level (Q, M or L)
    qr_characters: int  #: characters of its text (``EC1:`` and base45)
    font: str | None
    size: str
    dpi: int
    width_px: int
    height_px: int
    #: The watermark's text (purpose, case, requester and expiry) and how often it is
    #: stamped on the card.
    watermark: str
    watermark_stamps: int
    #: Whether some text ended in "…" (its full value is in the QR code).
    truncated: bool = False
    #: Code points the font could not draw, drawn as □ and listed on the card.
    missing: tuple[str, ...] = field(default=())


def copy_qr_text(token: str) -> str:
    """The QR text of a copy token: ``EC1:`` and the container of the exact token.

    Raises :class:`ecert.FormatError` (``qr_unencodable``) for a token that is not an
    ecert copy in canonical form, or whose text would not read back as the same token.
    """
    header = parse_compact(token, max_bytes=1 << 20).header
    if header.get("typ") != COPY_TYP:
        raise FormatError("not a purpose-bound copy (typ ecert-copy+jwt)",
                          code="qr_unencodable")
    text = _qr.wrap(token)
    if _qr.unwrap(text).compact(str(header["kid"])) != token:  # pragma: no cover - wrap's own
        raise FormatError("the copy's QR text would not read back as signed",
                          code="qr_unencodable")
    return text


def copy_qr(token: str, *, ec: str | None = None) -> QrCode:
    """The QR code of a copy token, at most version 25: at level ``ec``, or by default at
    the highest of Q, M and L that fits. Raises :class:`ecert.qr.QrTooLarge` when even
    level L would need a larger code (a copy with very many or very long claims)."""
    text = copy_qr_text(token)
    levels = (ec.upper(),) if ec is not None else _LEVELS
    for level in levels:
        try:
            return make_qr(text, ec=level)
        except QrTooLarge:
            continue
    raise QrTooLarge(
        f"the copy's QR content ({len(text)} characters) needs a code above version "
        f"{MAX_VERSION} at level {levels[-1]}, which does not scan reliably from print: "
        "the copy carries too many or too long claims for a card (verify its token instead)")


# -- content ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Content:
    """Everything a copy card says, in its language, before layout."""

    title: str
    subtitle: str
    type_line: str
    claims: list[tuple[str, str]]
    use: list[tuple[str, str]]
    notice: str
    copy_id: str
    scan: str
    watermark: str
    qr: QrCode
    text: dict[str, str]


def _value(value: Any, text: Mapping[str, str]) -> str:
    if value is None:
        return text["none"]
    if isinstance(value, bool):
        return text["yes"] if value else text["no"]
    if isinstance(value, list):
        return text["list"].join(_value(v, text) for v in value)
    if isinstance(value, dict):
        return text["list"].join(f"{k}{text['sep']}{_value(v, text)}" for k, v in value.items())
    return str(value)


def _local(value: datetime, tz: tzinfo) -> str:
    """An instant in ``tz``, to the minute, with its offset: no reader has to guess the
    zone of an expiry."""
    local = value.astimezone(tz)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} UTC{offset[:3]}:{offset[3:]}"


def _claim_order(claims: Mapping[str, Any], cert_type: CertificateType | None) -> list[str]:
    """The claims in the type's schema order (as its certificate card lists them),
    others after, by name."""
    known = list(cert_type.schema.get("properties", {})) if cert_type is not None else []
    return ([n for n in known if n in claims]
            + sorted(n for n in claims if n not in known))


def _content(copy: CopyInfo, agency_name: str, region: str, qr: QrCode,
             cert_type: CertificateType | None, lang: str, tz: tzinfo) -> _Content:
    text = _TEXT[lang]
    until = _local(copy.expires_at, tz)
    if cert_type is None:
        type_line = copy.type_code
    else:
        type_line = cert_type.name if lang == "zh" else f"{cert_type.name} ({copy.type_code})"
    claims = [(_label(cert_type, n) if cert_type is not None and lang == "zh" else n,
               _value(copy.claims[n], text)) for n in _claim_order(copy.claims, cert_type)]
    use = [
        (text["copy_of"], copy.copy_of),
        (text["issuer"], f"{agency_name} ({region})" if lang == "en"
         else f"{agency_name}（{region}）"),
        (text["audience"], copy.audience),
        (text["purpose"], copy.purpose),
        (text["case"], copy.case),
        (text["until"], until),
        (text["made"], _local(copy.issued_at, tz)),
    ]
    values = {"region": region, "audience": copy.audience, "case": copy.case,
              "purpose": copy.purpose, "until": until}
    return _Content(
        text["title"], text["not"], type_line, claims, use, text["notice"].format(**values),
        f"{text['copy_id']}{text['sep']}{copy.id}", text["scan"],
        text["watermark"].format(**values), qr, text)


# -- layout ----------------------------------------------------------------------------------


def _layout(content: _Content, size: str, dpi: int, font: tuple[str, int]) -> _Layout:
    width_mm, height_mm = COPY_SIZES[size]
    px = dpi / 25.4
    k = min(width_mm / _BASE_WIDTH, height_mm / _BASE_HEIGHT)  # scale against A5
    width, height = round(width_mm * px), round(height_mm * px)
    out = _Layout(width, height)
    measure = _Measure(font)
    text = content.text

    def mm(value: float) -> float:
        return value * k * px

    def size_px(value_mm: float) -> int:
        return max(6, round(mm(value_mm)))

    margin = mm(7.0)
    frame = mm(2.0)
    out.rects.append((frame, frame, width - 2 * frame, height - 2 * frame, "#fff", _COPY))

    # The band: that this is a copy, not the certificate, before anything else.
    band_top, band = mm(4.5), mm(13.0)
    out.rects.append((frame, band_top, width - 2 * frame, band, _COPY, None))
    title_size, subtitle_size = size_px(6.0), size_px(3.4)
    full_width = width - 2 * margin
    title = measure.visible(content.title)
    subtitle = measure.visible(content.subtitle)
    baseline = band_top + band / 2 + title_size * 0.36
    gap = mm(4.0)
    if measure.width(title, title_size) + gap + measure.width(subtitle, subtitle_size) <= (
            full_width):
        out.texts.append(_Text(margin, baseline, title_size, title, "#fff"))
        out.texts.append(_Text(margin + measure.width(title, title_size) + gap, baseline,
                               subtitle_size, subtitle, "#fff"))
    else:  # a narrow card or a long translation: the title alone, then the subtitle
        out.texts.append(_Text(margin, baseline, title_size,
                               _ellipsize(title, full_width, measure.at(title_size))
                               if measure.width(title, title_size) > full_width else title,
                               "#fff"))
        band += subtitle_size * 1.4
        out.rects[-1] = (frame, band_top, width - 2 * frame, band, _COPY, None)
        out.texts.append(_Text(margin, baseline + subtitle_size * 1.4, subtitle_size,
                               _ellipsize(subtitle, full_width, measure.at(subtitle_size))
                               if measure.width(subtitle, subtitle_size) > full_width
                               else subtitle, "#fff"))
    top = band_top + band + mm(4.0)

    # Footer, full width, bottom-up: the copy id, then the notice of its one use.
    small = size_px(2.6)
    line_gap = small * 1.3
    notice_lines = _wrap(measure.visible(content.notice), full_width, measure.at(small))
    id_lines = _wrap(measure.visible(content.copy_id), full_width, measure.at(small))
    reserve_notes = (2 if measure.missing else 1) * line_gap
    footer_height = (len(notice_lines) + len(id_lines)) * line_gap
    bottom = height - margin - footer_height - reserve_notes

    # The QR code at the right, as large as the room allows (whole pixels per module),
    # its caption under it.
    caption_size = size_px(2.6)
    caption_lines = _wrap(measure.visible(content.scan), width * 0.4, measure.at(caption_size))
    caption_height = len(caption_lines) * caption_size * 1.3 + mm(1.0)
    modules = content.qr.modules + 8
    qr_space = min(bottom - top - caption_height, width * 0.4)
    module = max(1, int(qr_space // modules))
    qr_side = module * modules
    qr_x, qr_y = round(width - margin - qr_side), round(top)
    out.qr = (qr_x, qr_y, module)
    y = qr_y + qr_side + mm(0.5)
    for line in caption_lines:
        y += caption_size * 1.2
        out.texts.append(_Text(qr_x + qr_side / 2, y, caption_size, line, _COPY, "ms"))

    # The text column: the type, the claims, then the use. The use gives way last: the
    # claims are cut first when everything does not fit.
    column_x, column_width = margin, qr_x - mm(4.0) - margin
    sep = text["sep"]
    items = [_Item(measure.visible(content.type_line), 1.6, rank=2, color=_COPY)]
    items += [_Item(measure.visible(f"{label}{sep}{value}")) for label, value in content.claims]
    items += [_Item(measure.visible(f"{label}{sep}{value}"), 0.95, rank=1, color=_COPY,
                    gap=0.6 if i == 0 else 0.0)
              for i, (label, value) in enumerate(content.use)]
    placed, out.truncated = _fit_column(items, column_x, top - mm(1.0), bottom, column_width,
                                        mm(3.6), measure, (*_SHRINK, 0.7))
    out.texts.extend(placed)

    y = height - margin
    for line in reversed(id_lines):
        out.texts.append(_Text(margin, y, small, line, _GREY))
        y -= line_gap
    for line in reversed(notice_lines):
        out.texts.append(_Text(margin, y, small, line, _COPY))
        y -= line_gap
    notes = []
    if measure.missing:
        notes.append(text["missing"] + " ".join(measure.missing))
    if out.truncated:
        notes.append(text["more"])
    for note in reversed(notes[:round(reserve_notes / line_gap)]):
        if measure.width(note, small) > full_width:
            note = _ellipsize(note, full_width, measure.at(small))
        out.texts.append(_Text(margin, y, small, note, _RED))
        y -= line_gap
    out.missing = measure.missing
    out.watermark = _tiling(measure.visible(content.watermark), size_px(4.2), width, height,
                            measure, mm(9.0), mm(16.0))
    return out


def _tiling(text: str, size: int, width: int, height: int, measure: _Measure, gap: float,
            row_step: float) -> _Watermark:
    """The watermark: ``text`` in rows turned by the watermark's angle, each row shifted
    by half a stamp from the one before (brickwork), so that every part of the card lies
    within a stamp's reach: rows ``row_step`` apart, stamps ``gap`` apart along them."""
    step = measure.width(text, size) + gap
    angle = math.radians(_WATERMARK_ANGLE)
    # Along a row (the text's direction) and across it, on the page (y grows downwards).
    ux, uy = math.cos(angle), -math.sin(angle)
    vx, vy = math.sin(angle), math.cos(angle)
    cx, cy = width / 2, height / 2
    reach = math.hypot(width, height) / 2 + step
    rows, columns = math.ceil(reach / row_step), math.ceil(reach / step) + 1
    centers = []
    for row in range(-rows, rows + 1):
        shift = step / 2 if row % 2 else 0.0
        for column in range(-columns, columns + 1):
            u, v = column * step + shift, row * row_step
            x, y = cx + u * ux + v * vx, cy + u * uy + v * vy
            # Keep the stamps that reach onto the card.
            if -step / 2 <= x <= width + step / 2 and -step / 2 <= y <= height + step / 2:
                centers.append((x, y))
    return _Watermark(text, size, _WATERMARK_ANGLE, _WATERMARK, _WATERMARK_OPACITY,
                      tuple(centers))


# -- the card --------------------------------------------------------------------------------


def _check(token: str, result: VerificationResult) -> CopyInfo:
    """The verified copy of ``result``, which must be of ``token``."""
    copy = result.copy
    if not result.valid or copy is None or result.issuer is None:
        raise VerificationFailed(result)
    try:
        claims = CopyClaims.from_payload(parse_compact(token, max_bytes=1 << 20).payload)
    except FormatError as e:
        raise InputError(f"not a purpose-bound copy: {e.message}", code="invalid_card") from e
    said = (copy.id, copy.copy_of, copy.audience, copy.purpose, copy.case,
            int(copy.expires_at.timestamp()), dict(copy.claims))
    if said != (claims.jti, claims.copy_of, claims.aud, claims.purpose, claims.case,
                claims.exp, dict(claims.claims)):
        raise InputError("the verification result given is not of this copy",
                         code="invalid_card")
    return copy


def _prepare(token: str, result: VerificationResult, cert_type: CertificateType | None,
             lang: str, size: str, dpi: int, ec: str | None, font: tuple[str, int],
             tz: tzinfo) -> tuple[_Content, _Layout]:
    """What the card says and where: everything but the drawing."""
    copy = _check(token, result)
    issuer = result.issuer
    assert issuer is not None  # noqa: S101 - _check refuses a result without one
    content = _content(copy, issuer.agency_name, issuer.region, copy_qr(token, ec=ec),
                       cert_type, lang, tz)
    return content, _layout(content, size, dpi, font)


def write_copy_card(token: str, result: VerificationResult, path: str | Path, *,
                    cert_type: CertificateType | None = None, lang: str = "zh",
                    size: str = "a5", dpi: int = 300, ec: str | None = None,
                    font: tuple[str, int] | None = None,
                    tz: tzinfo | str = DEFAULT_TZ) -> CopyCardWritten:
    """Write the card of a purpose-bound copy as .png or .svg (by extension).

    ``result`` is what :meth:`ecert.Verifier.verify` said of ``token`` for its audience
    (and purpose): only a valid copy gets a card (else
    :class:`ecert.errors.VerificationFailed`), and the card says what that result says —
    the issuing agency's name from the trust list. ``cert_type`` (the type the copy
    counts as here, ``result.local_type``) names the type and labels the claims; without
    it the type code and claim names are shown. ``lang`` is ``zh`` or ``en``; times are
    shown in ``tz`` with their UTC offset. ``size`` is ``a5`` or ``a4`` (landscape); the
    PNG records ``dpi``. ``ec`` forces the QR code's level (default: the highest of Q, M
    and L that fits version 25). ``font`` (path, face) overrides
    :func:`ecert.card.find_cjk_font`.
    """
    out = Path(path)
    kind = _output_kind(out, size, COPY_SIZES, dpi, "copy card")
    if lang not in LANGUAGES:
        raise InputError(f"card language {lang!r} is not one of {', '.join(LANGUAGES)}",
                         code="invalid_argument")
    chosen = card_font(font)
    content, layout = _prepare(token, result, cert_type, lang, size, dpi, ec, chosen,
                               zone(tz) if isinstance(tz, str) else tz)
    if kind == ".svg":
        out.write_text(_svg(content.qr, layout, *COPY_SIZES[size]), "utf-8")
    else:
        _png(content.qr, layout, chosen).save(out, dpi=(dpi, dpi))
    mark = layout.watermark
    assert mark is not None  # noqa: S101 - every copy card has one
    return CopyCardWritten(out, content.qr.version, content.qr.error, len(content.qr.text),
                           chosen[0], size, dpi, layout.width, layout.height, mark.text,
                           len(mark.centers), layout.truncated, tuple(layout.missing))
