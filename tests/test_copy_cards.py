"""Cards of purpose-bound copies (``ecert.copy_card``): what they say, their watermark,
their QR code (the copy's QR form, read back from the picture and verified), refusals.

The end-to-end path (``ecert share fetch … --card``, then ``ecert verify --image``)
is in ``tests/test_copy_cards_e2e.py``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

import ecert
from ecert import card as ecert_card
from ecert import copy_card
from ecert import qr as ecert_qr
from ecert.verify import ErrorCode as E
from ecert.verify import TokenKind
from tests.support import FakeClock, Published
from tests.support.sharing import AUDIENCE, CASE, PURPOSE, CopyEnv, copy_env

PACKAGED = (str(ecert_card.PACKAGED_FONT), 0)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def env(published_copy: Published, clock: FakeClock) -> CopyEnv:
    return copy_env(published_copy, clock)


def verified(env: CopyEnv, token: str, audience: str = AUDIENCE,
             purpose: str | None = PURPOSE) -> ecert.VerificationResult:
    return env.verifier().verify(token, audience=audience, purpose=purpose)


def prepared(env: CopyEnv, token: str, *, lang: str = "zh", size: str = "a5",
             cert_type: ecert.CertificateType | None = None) -> tuple[Any, Any]:
    """The card's content and layout: what it will draw, before it is drawn."""
    return copy_card._prepare(token, verified(env, token), cert_type, lang, size, 150, None,
                              PACKAGED, SHANGHAI)


def local_expiry(env: CopyEnv, token: str) -> str:
    info = verified(env, token).copy
    assert info is not None
    return info.expires_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M UTC+08:00")


def svg_texts(svg: str) -> list[str]:
    return [re.sub(r"&amp;", "&", t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


# -- what the card says ----------------------------------------------------------------------


def test_the_card_says_it_is_a_copy_and_what_of_for_whom_and_why(
        env: CopyEnv, tmp_path: Path) -> None:
    token = env.token()
    licence = env.registry.get_type(env.cert.type_code)
    written = copy_card.write_copy_card(token, verified(env, token), tmp_path / "copy.svg",
                                        cert_type=licence, font=PACKAGED, tz=SHANGHAI)
    svg = written.path.read_text("utf-8")
    texts = svg_texts(svg)
    shown = "\n".join(texts)
    until = local_expiry(env, token)
    gd_amr = env.registry.get_agency(env.cert.agency_code).name
    claims = env.cert.claims
    for expected in ("电子证照加注件", "非证照原件", licence.name, f"名称：{claims['name']}",
                     f"统一社会信用代码：{claims['uscc']}",
                     f"发证机关：{gd_amr}（GD）", f"用证单位：{AUDIENCE}", f"用证事由：{PURPOSE}",
                     f"业务流水号：{CASE}", f"有效期至：{until}"):
        assert expected in shown, expected
    assert env.cert.id.replace(".", "") in shown.replace("\n", "").replace(".", "")
    # Only the claims the copy carries: the licence's others are not on the card.
    for absent in ("法定代表人", env.cert.claims["legal_representative"], "经营范围"):
        assert absent not in shown
    # The watermark: purpose, case, requester and expiry, stamped again and again.
    marks = re.findall(r'<g class="watermark"[^>]*>(.*?)</g>', svg, re.S)
    assert len(marks) == 1
    stamps = svg_texts(marks[0])
    assert len(stamps) == written.watermark_stamps >= 20
    assert set(stamps) == {written.watermark}
    for part in (PURPOSE, CASE, AUDIENCE, until):
        assert part in written.watermark
    assert 'width="210.0mm" height="148.0mm"' in svg


def test_english_labels(env: CopyEnv, tmp_path: Path) -> None:
    token = env.token()
    written = copy_card.write_copy_card(token, verified(env, token), tmp_path / "copy.svg",
                                        lang="en", font=PACKAGED, tz=SHANGHAI)
    shown = "\n".join(svg_texts(written.path.read_text("utf-8")))
    for expected in ("PURPOSE-BOUND COPY", "Not the certificate", env.cert.type_code,
                     f"name: {env.cert.claims['name']}", f"Requester: {AUDIENCE}",
                     f"Purpose: {PURPOSE}", f"Case number: {CASE}",
                     f"Valid until: {local_expiry(env, token)}"):
        assert expected in shown, expected
    assert "加注件" not in shown and "valid until" in written.watermark


def test_the_watermark_covers_the_whole_card_but_its_qr_code(env: CopyEnv) -> None:
    for size in copy_card.COPY_SIZES:
        _content, layout = prepared(env, env.token(), size=size)
        mark = layout.watermark
        assert mark is not None and mark.angle % 90 != 0  # diagonal
        reach = ecert_card._Measure(PACKAGED).width(mark.text, mark.size)
        # Every point of the card is within one stamp's length of a stamp's centre.
        for i in range(21):
            for j in range(21):
                x, y = layout.width * i / 20, layout.height * j / 20
                nearest = min(math.hypot(x - cx, y - cy) for cx, cy in mark.centers)
                assert nearest <= reach, (size, x, y)
        # Its text is drawn over the card's text (which cannot be scraped off without
        # it), and the QR code over it: the rendering order of _png and _svg.
        assert layout.texts and layout.qr[2] >= 2


def test_the_claims_give_way_before_the_use(env: CopyEnv) -> None:
    long_purpose = "跨省迁移登记" * 33  # 198 characters, within the 200 allowed
    bulky = {f"claim_{n}": "很长的内容" * 30 for n in range(12)}
    token = env.copy(purpose=long_purpose)._replace(claims=bulky).sign(env.sharing)
    result = env.verifier().verify(token, audience=AUDIENCE, purpose=long_purpose)
    assert result.valid, result.messages
    content, layout = copy_card._prepare(token, result, None, "zh", "a5", 150, "L", PACKAGED,
                                         SHANGHAI)
    assert layout.truncated
    shown = "".join(t.text for t in layout.texts)
    # The use is on the card in full; the claims were cut, and the card says so.
    assert long_purpose in shown.replace("用证事由：", "") and CASE in shown
    assert "…完整内容见二维码" in shown
    for t in layout.texts:
        assert 0 <= t.x <= layout.width and 0 <= t.y <= layout.height
    assert content.qr.version <= ecert_qr.MAX_VERSION


# -- the QR code -----------------------------------------------------------------------------


def test_the_cards_qr_code_verifies_the_copy_for_its_use_only(
        env: CopyEnv, tmp_path: Path) -> None:
    token = env.token()
    written = copy_card.write_copy_card(token, verified(env, token), tmp_path / "copy.png",
                                        dpi=150, font=PACKAGED)
    assert (written.width_px, written.height_px) == (1240, 874)
    with Image.open(written.path) as image:
        assert [round(v) for v in image.info["dpi"]] == [150, 150]
    text = ecert_qr.decode_qr_image(written.path)
    assert text == copy_card.copy_qr_text(token) and len(text) == written.qr_characters
    assert written.qr_version <= 25 and written.qr_error == "Q"
    result = verified(env, text)
    assert result.valid and result.kind is TokenKind.COPY and result.qr
    assert result.copy is not None and result.copy.case == CASE
    for audience, purpose, code in (("ZJ/zj-hrss", PURPOSE, E.WRONG_AUDIENCE),
                                    (AUDIENCE, "食品经营许可核发", E.WRONG_PURPOSE)):
        assert verified(env, text, audience, purpose).errors == (code,)


def test_the_qr_level_is_the_most_robust_that_fits(env: CopyEnv) -> None:
    short = copy_card.copy_qr(env.token())
    assert short.error == "Q"
    def text(characters: int, seed: int) -> str:  # Chinese that deflate cannot shrink
        return "".join(chr(0x4E00 + (seed * 7919 + i * 104_729) % 20_000)
                       for i in range(characters))

    larger = env.copy()._replace(claims={f"c{n}": text(60, n) for n in range(6)})
    code = copy_card.copy_qr(larger.sign(env.sharing))
    assert code.error in ("M", "L") and code.version <= 25
    with pytest.raises(ecert_qr.QrTooLarge, match="too many or too long claims"):
        copy_card.copy_qr(env.copy()._replace(
            claims={f"c{n}": text(60, n) for n in range(14)}).sign(env.sharing))
    assert copy_card.copy_qr(env.token(), ec="h").error == "H"


# -- refusals --------------------------------------------------------------------------------


def test_only_a_copy_that_verified_gets_a_card(env: CopyEnv, tmp_path: Path) -> None:
    token = env.token()
    out = tmp_path / "copy.png"
    # Verified without saying for whom: not valid, no card.
    with pytest.raises(ecert.VerificationFailed):
        copy_card.write_copy_card(token, env.verifier().verify(token), out, font=PACKAGED)
    # The result of another copy.
    other = env.token(case="ZJ-OTHER")
    with pytest.raises(ecert.InputError, match="not of this copy"):
        copy_card.write_copy_card(token, verified(env, other), out, font=PACKAGED)
    # A certificate is not a copy.
    cert = env.verifier().verify(env.cert.token)
    assert cert.valid
    with pytest.raises(ecert.VerificationFailed):
        copy_card.write_copy_card(env.cert.token, cert, out, font=PACKAGED)
    assert not out.exists()


@pytest.mark.parametrize(("name", "kwargs", "code"), [
    ("copy.pdf", {}, "invalid_output"),
    ("copy.png", {"size": "id1"}, "invalid_size"),
    ("copy.png", {"lang": "fr"}, "invalid_argument"),
    ("copy.png", {"dpi": 5000}, "invalid_dpi"),
])
def test_bad_arguments_are_refused(env: CopyEnv, tmp_path: Path, name: str,
                                   kwargs: dict[str, Any], code: str) -> None:
    token = env.token()
    with pytest.raises(ecert.InputError) as info:
        copy_card.write_copy_card(token, verified(env, token), tmp_path / name, **kwargs)
    assert info.value.code == code


def test_an_expiry_is_shown_in_the_zone_given(env: CopyEnv) -> None:
    instant = datetime(2026, 1, 1, 16, 30, tzinfo=UTC)
    assert copy_card._local(instant, SHANGHAI) == "2026-01-02 00:30 UTC+08:00"
    assert copy_card._local(instant, ZoneInfo("America/St_Johns")) == (
        "2026-01-01 13:00 UTC-03:30")


def test_control_characters_in_a_copy_cannot_break_the_card(env: CopyEnv) -> None:
    # Issuance refuses such text, but a card draws what a copy says: a line break would
    # start a line over the next row, a bidi override reorder one.
    token = env.copy(case="ZJ-1\nZJ-2")._replace(
        claims={"name": "甲公司\r\n\u202e乙", "uscc": "91440300MA5F3K2L8G\x1b[31m"}).sign(
        env.sharing)
    result = env.verifier().verify(token, audience=AUDIENCE)
    assert result.valid, result.messages
    _content, layout = copy_card._prepare(token, result, None, "zh", "a5", 150, None,
                                          PACKAGED, SHANGHAI)
    assert layout.watermark is not None
    for text in [t.text for t in layout.texts] + [layout.watermark.text]:
        assert not any(ord(c) < 0x20 or c == "\u202e" for c in text), repr(text)
    assert "ZJ-1 ZJ-2" in layout.watermark.text
