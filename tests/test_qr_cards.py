"""Cards and QR codes of certificates that are not valid, card sizes, wrapping, the packaged
font, and the ``certificate.qr`` log event."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import ecert
from ecert import _samples
from ecert import card as ecert_card
from ecert import qr as ecert_qr
from ecert.qr import Standing
from tests.support.clock import FakeClock
from tests.support.issuing import issue_business_licence, write_card_of
from tests.support.registries import as_operator

Published = tuple[ecert.Registry, ecert.Certificate, Path]
PACKAGED = (str(ecert_card.PACKAGED_FONT), 0)
LONG_NAME = "广东省深圳市南山区粤海街道科技园" + "超长名称示范" * 6 + "科技股份有限公司"  # 60


def _verify(bundle: Path, clock: FakeClock, text: str) -> ecert.VerificationResult:
    verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
    return verifier.verify(text)


def _red_share(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    data = image.convert("RGB").crop(box).tobytes()
    pixels = [data[i:i + 3] for i in range(0, len(data), 3)]
    red = sum(1 for r, g, b in pixels if r > 150 and g < 60 and b < 60)
    return red / len(pixels)


# -- the packaged font ----------------------------------------------------------------------


def test_packaged_font_is_shipped_small_with_its_licence() -> None:
    font = ecert_card.PACKAGED_FONT
    assert font.is_file()
    assert font.stat().st_size < 4 * 2**20
    licence = (font.parent / "OFL.txt").read_text("utf-8")
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence


def test_packaged_font_draws_common_and_name_characters() -> None:
    # GB 2312, characters of the 通用规范汉字表 outside it that names use, punctuation.
    for char in "中华人民共和国营业执照喆堃玥昇赟淼珺、。（）：ＡＢ１·…□":
        assert ecert_card._drawable(PACKAGED[0], 0, char), char
    assert not ecert_card._drawable(PACKAGED[0], 0, "\U0002a6a5")  # 𪚥, CJK Ext B


def test_without_system_font_the_packaged_one_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECERT_CJK_FONT", raising=False)
    assert ecert_card.find_cjk_font(system=False) == PACKAGED
    monkeypatch.setattr(ecert_card, "_system_font", lambda: None)
    assert ecert_card.find_cjk_font() == PACKAGED


# -- size, DPI, decoding --------------------------------------------------------------------


def test_id1_card_at_300_dpi(published: Published, clock: FakeClock, tmp_path: Path) -> None:
    registry, cert, bundle = published
    written = write_card_of(registry, cert, tmp_path / "card.png", font=PACKAGED)
    assert (written.width_px, written.height_px) == (1011, 638)
    with Image.open(written.path) as image:
        assert image.size == (1011, 638)
        assert [round(v) for v in image.info["dpi"]] == [300, 300]
        image.load()
        assert _red_share(image, (0, 40, 1011, 120)) < 0.05  # no status band
    result = _verify(bundle, clock, ecert_qr.decode_qr_image(written.path))
    assert result.valid and result.certificate is not None
    assert result.certificate.id == cert.id
    assert written.standing is Standing.VALID and not written.missing


def test_a5_card_and_svg_are_at_their_physical_size(published: Published, clock: FakeClock,
                                                    tmp_path: Path) -> None:
    registry, cert, bundle = published
    written = write_card_of(registry, cert, tmp_path / "a5.png", size="a5", dpi=150,
                            font=PACKAGED)
    assert (written.width_px, written.height_px) == (1240, 874)
    assert _verify(bundle, clock, ecert_qr.decode_qr_image(written.path)).valid
    svg = write_card_of(registry, cert, tmp_path / "card.svg", font=PACKAGED).path.read_text(
        "utf-8")
    assert 'width="85.6mm" height="53.98mm"' in svg
    assert "扫码核验 scan to verify: https://" in svg and "/verify/" in svg
    for expected in ("营业执照", cert.holder_name, "陈晓明", cert.id):
        assert expected in svg


def test_bad_size_and_dpi_are_refused(published: Published, tmp_path: Path) -> None:
    registry, cert, _ = published
    with pytest.raises(ecert.InputError, match="card size"):
        write_card_of(registry, cert, tmp_path / "c.png", size="a4")
    with pytest.raises(ecert.InputError, match="dpi"):
        write_card_of(registry, cert, tmp_path / "c.png", dpi=5000)


# -- wrapping, ellipsis, missing glyphs ----------------------------------------------------


def test_long_name_wraps_and_nothing_is_clipped(registry: ecert.Registry, clock: FakeClock,
                                                tmp_path: Path) -> None:
    assert len(LONG_NAME) == 60
    claims = {**_samples.claims("business-licence-gd"), "name": LONG_NAME}
    cert = issue_business_licence(registry, holder_name=LONG_NAME, claims=claims)
    written = write_card_of(registry, cert, tmp_path / "long.png", font=PACKAGED)
    assert (written.width_px, written.height_px) == (1011, 638)
    token, state = registry.sign_qr(cert.id)
    card = ecert_card._card(cert, registry.get_type(cert.type_code),
                            registry.get_agency(cert.agency_code), token, "Q", state,
                            "https://example.test/verify/")
    layout = ecert_card._layout(card, "id1", 300, PACKAGED)
    holder = [t for t in layout.texts if len(t.text) > 2 and t.text.rstrip("…") in LONG_NAME]
    assert len(holder) >= 2  # wrapped over several lines
    qr_x = layout.qr[0]
    for text in layout.texts:  # every line inside the card, and left of the QR code
        face = ecert_card._font(PACKAGED[0], 0, text.size)
        left, top, right, bottom = face.getbbox(text.text, anchor=text.anchor)
        assert text.x + left >= 0 and text.x + right <= layout.width, text.text
        assert text.y + top >= 0 and text.y + bottom <= layout.height, text.text
        if text.size > 20 and layout.qr[1] < text.y < layout.qr[1] + 100:
            assert text.x + right <= qr_x, text.text
    shown = "".join(t.text for t in holder)
    if written.truncated:
        assert "完整内容见二维码" in "".join(t.text for t in layout.texts)
    else:
        assert LONG_NAME in shown
    with Image.open(written.path) as image:
        image.load()
        assert ecert_qr.decode_qr_image(image).startswith("EC1:")


def test_overflowing_values_end_in_an_ellipsis_and_say_where_the_rest_is(
        published: Published, tmp_path: Path) -> None:
    registry, cert, _ = published
    token, state = registry.sign_qr(cert.id)
    cert_type = registry.get_type(cert.type_code)
    many = dataclasses.replace(cert_type, qr_claims=tuple(cert.claims))  # every claim
    card = ecert_card._card(cert, many, registry.get_agency(cert.agency_code), token, "Q",
                            state, None)
    card = dataclasses.replace(card, rows=[*card.rows, ("经营范围", "技术开发" * 80)])
    layout = ecert_card._layout(card, "id1", 300, PACKAGED)
    texts = [t.text for t in layout.texts]
    assert layout.truncated
    assert any(t.endswith("…") for t in texts)
    assert any("完整内容见二维码 full text in the QR code" in t for t in texts)


def test_a_character_the_font_lacks_is_a_box_and_named(registry: ecert.Registry,
                                                       clock: FakeClock, tmp_path: Path) -> None:
    name = "王\U0002a6a5"  # 𪚥 (U+2A6A5) is beyond the packaged font
    claims = {**_samples.claims("business-licence-gd"), "name": name}
    cert = issue_business_licence(registry, holder_name=name, claims=claims)  # never blocked
    written = write_card_of(registry, cert, tmp_path / "rare.png", font=PACKAGED)
    assert written.missing == ("U+2A6A5",)
    svg = write_card_of(registry, cert, tmp_path / "rare.svg", font=PACKAGED).path.read_text(
        "utf-8")
    assert "王\u25a1" in svg and "未能显示 not drawn: U+2A6A5" in svg
    with Image.open(written.path) as image:
        image.load()
        assert ecert_qr.decode_qr_image(image).startswith("EC1:")


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
               max_size=120), st.integers(min_value=1, max_value=30))
def test_wrap_keeps_every_character_within_the_width(text: str, width: int) -> None:
    lines = ecert_card._wrap(text, width, len)
    assert all(len(line) <= width for line in lines)
    # Only a space at a break is dropped.
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


# -- status: refused, or marked -------------------------------------------------------------


def test_standing_by_status_and_dates(published: Published) -> None:
    _, cert, _ = published
    start = cert.valid_from
    assert ecert_qr.standing(cert, start) is Standing.VALID
    assert ecert_qr.standing(cert, start - timedelta(seconds=1)) is Standing.NOT_YET_VALID
    assert cert.valid_until is not None
    assert ecert_qr.standing(cert, cert.valid_until) is Standing.EXPIRED
    assert ecert_qr.standing(cert, cert.valid_until - timedelta(seconds=1)) is Standing.VALID
    for status, expected in ((ecert.CertificateStatus.REVOKED, Standing.REVOKED),
                             (ecert.CertificateStatus.SUSPENDED, Standing.SUSPENDED)):
        other = dataclasses.replace(cert, status=status)
        assert ecert_qr.standing(other, start) is expected


def test_revoked_certificate_is_refused_or_marked(published: Published, clock: FakeClock,
                                                  tmp_path: Path) -> None:
    registry, cert, _ = published
    registry.revoke(cert.id, "privilege-withdrawn")
    cert = registry.get(cert.id)
    before = len(registry.events(cert.id))
    with pytest.raises(ecert.CertificateNotValid, match="revoked") as refused:
        registry.qr_token(cert.id)
    assert refused.value.standing == "revoked" and refused.value.code == "certificate_not_valid"
    with pytest.raises(ecert.CertificateNotValid):
        write_card_of(registry, cert, tmp_path / "refused.png")
    assert not (tmp_path / "refused.png").exists()
    assert len(registry.events(cert.id)) == before  # a refusal signs and logs nothing
    written = write_card_of(registry, cert, tmp_path / "revoked.png", allow_invalid=True,
                            font=PACKAGED)
    assert written.standing is Standing.REVOKED
    with Image.open(written.path) as image:
        image.load()
        assert _red_share(image, (0, 60, 1011, 120)) > 0.5  # the red band
        assert ecert_qr.decode_qr_image(image).startswith("EC1:")
    svg = write_card_of(registry, cert, tmp_path / "revoked.svg", allow_invalid=True)
    assert "已吊销 REVOKED" in svg.path.read_text("utf-8")


def test_expired_and_suspended_certificates(published: Published, clock: FakeClock) -> None:
    registry, cert, _ = published
    registry.suspend(cert.id)
    with pytest.raises(ecert.CertificateNotValid, match="suspended"):
        registry.qr_token(cert.id)
    assert registry.sign_qr(cert.id, allow_invalid=True)[1] is Standing.SUSPENDED
    registry.reinstate(cert.id)
    assert cert.valid_until is not None
    clock.now = cert.valid_until + timedelta(days=1)
    with pytest.raises(ecert.CertificateNotValid, match="expired"):
        registry.qr_token(cert.id)


# -- the log --------------------------------------------------------------------------------


def test_signing_a_qr_is_logged_and_audit_verify_stays_clean(published: Published) -> None:
    registry, cert, _ = published
    before = len(registry.events(cert.id))
    registry.qr_token(cert.id, full=True)
    registry.revoke(cert.id, "unspecified")
    registry.qr_token(cert.id, allow_invalid=True)
    events = [e for e in registry.events(cert.id)[before:] if e.action == "certificate.qr"]
    assert len(events) == 2
    assert events[0].details["full"] is True and events[0].details["standing"] == "valid"
    assert events[1].details["standing"] == "revoked"
    report = registry.audit()
    assert report.intact, report.findings


def test_qr_needs_a_clerk_or_officer_of_the_agency(published: Published,
                                                    clock: FakeClock) -> None:
    registry, cert, _ = published
    registry.add_operator("clerk-other", roles=["clerk"], agencies=["gd-other"],
                          passphrase="clerk other pass")
    registry.add_operator("clerk-amr", roles=["clerk"], agencies=["gd-amr"],
                          passphrase="clerk amr pass")
    registry.add_operator("auditor-1", roles=["auditor"], passphrase="auditor pass")
    for name, passphrase in (("clerk-other", "clerk other pass"),
                             ("auditor-1", "auditor pass")):
        other = as_operator(registry, name, passphrase, clock)
        try:
            with pytest.raises(ecert.PermissionDenied, match=r"certificate\.qr"):
                other.qr_token(cert.id)
        finally:
            other.close()
    clerk = as_operator(registry, "clerk-amr", "clerk amr pass", clock)
    try:
        assert clerk.qr_token(cert.id)
    finally:
        clerk.close()
    assert registry.audit().intact


# -- CLI ------------------------------------------------------------------------------------


def test_cli_refuses_then_marks_an_invalid_certificate(published: Published, tmp_path: Path,
                                                       cli_as_admin: Any) -> None:
    registry, cert, _ = published
    registry.revoke(cert.id, "unspecified")
    for command, name in (("qr", "q.png"), ("card", "c.png")):
        result = cli_as_admin(registry, command, cert.id, "-o", str(tmp_path / name))
        assert result.exit_code == 1, result.output
        assert len(result.stderr.splitlines()) == 1 and "revoked" in result.stderr
        assert "--allow-invalid" in result.stderr
        assert not (tmp_path / name).exists()
    result = cli_as_admin(registry, "qr", cert.id, "-o", str(tmp_path / "q.png"),
                          "--allow-invalid", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["standing"] == "revoked"
    with Image.open(tmp_path / "q.png") as image:
        image.load()
        assert image.height > image.width  # the caption band under the code
        assert _red_share(image, (0, image.height - 10, image.width, image.height)) > 0.5
        assert ecert_qr.decode_qr_image(image).startswith("EC1:")
    result = cli_as_admin(registry, "qr", cert.id, "-o", str(tmp_path / "q.svg"),
                          "--allow-invalid")
    assert result.exit_code == 0 and "REVOKED" in result.output
    assert "已吊销 REVOKED" in (tmp_path / "q.svg").read_text("utf-8")
    result = cli_as_admin(registry, "card", cert.id, "-o", str(tmp_path / "c.png"),
                          "--allow-invalid", "--size", "id1", "--dpi", "300", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["pixels"] == [1011, 638] and data["standing"] == "revoked"


def test_cli_card_sizes(published: Published, tmp_path: Path, cli_as_admin: Any) -> None:
    registry, cert, _ = published
    result = cli_as_admin(registry, "card", cert.id, "-o", str(tmp_path / "c.png"),
                          "--size", "a5", "--dpi", "100")
    assert result.exit_code == 0, result.output
    assert "827x583 px" in result.output
    result = cli_as_admin(registry, "card", cert.id, "-o", str(tmp_path / "c.pdf"))
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
