"""QR codes end to end: QR text from the registry, verification, images, card, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

import ecert
from ecert import qr as ecert_qr
from ecert._formats import qr as qr_format
from tests.support import FakeClock, Published
from tests.support.issuing import write_card_of


def _verifier(bundle: Path, clock: FakeClock) -> ecert.Verifier:
    return ecert.Verifier.from_bundle(bundle, clock=clock)


# -- QR text and verification ----------------------------------------------------------------


def test_qr_text_verifies_with_qr_claims_and_digest(published_copy: Published,
                                                    shared_qr: tuple[str, str],
                                                    clock: FakeClock) -> None:
    registry, cert, bundle = published_copy
    text = ecert_qr.qr_text(shared_qr[0])
    result = _verifier(bundle, clock).verify(text)
    assert result.valid, result.messages
    assert result.qr and result.digest_bound
    assert result.claims_present == tuple(sorted(registry.get_type(cert.type_code).qr_claims))
    assert result.certificate is not None
    assert result.certificate.id == cert.id
    assert result.certificate.holder_name == cert.holder_name
    assert result.certificate.valid_until == cert.valid_until
    assert result.certificate.status_list_uri == cert.status_list_uri
    assert result.qr_matches(cert.token)
    assert result.to_json()["qr"]["digest_bound"] is True


def test_full_qr_carries_every_claim(published_copy: Published, clock: FakeClock,
                                     shared_qr: tuple[str, str]) -> None:
    _, cert, bundle = published_copy
    text = ecert_qr.qr_text(shared_qr[1])
    result = _verifier(bundle, clock).verify(text)
    assert result.valid and not result.digest_bound
    assert result.certificate is not None
    assert dict(result.certificate.claims) == dict(cert.claims)


def test_size_targets_on_the_reference_business_licence(published_copy: Published,
                                                        shared_qr: tuple[str, str]) -> None:
    _ = published_copy  # the golden licence's QR tokens come from shared_qr
    short = ecert_qr.make_qr(ecert_qr.qr_text(shared_qr[0]), ec="Q")
    full = ecert_qr.make_qr(ecert_qr.qr_text(shared_qr[1]), ec="Q")
    assert short.version <= 17
    assert full.version <= 25


def test_unwrapped_jws_verifies_with_pyjwt_and_the_published_jwks(
    published_copy: Published, shared_qr: tuple[str, str],
) -> None:
    _, cert, bundle = published_copy
    token = shared_qr[0]
    unwrapped = qr_format.unwrap(qr_format.wrap(token))
    header = jwt.get_unverified_header(token)
    assert unwrapped.compact(header["kid"]) == token
    jwks = json.loads((bundle / ".well-known/jwks.json").read_text("utf-8"))
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    key = jwt.PyJWK(jwk).key
    payload = jwt.api_jws.PyJWS().decode(token, key, algorithms=["ES256"])
    assert json.loads(payload)["d"] == qr_format.token_digest(cert.token)


def test_revoked_and_tampered_qr_do_not_verify(published: Published, clock: FakeClock,
                                               tmp_path: Path) -> None:
    registry, cert, bundle = published
    text = ecert_qr.qr_text(registry.qr_token(cert.id))
    data = bytearray(qr_format.b45decode(text[4:]))
    data[10] ^= 1  # inside the signature
    tampered = _verifier(bundle, clock).verify("EC1:" + qr_format.b45encode(bytes(data)))
    assert tampered.errors == (ecert.ErrorCode.BAD_SIGNATURE,)
    registry.revoke(cert.id, "privilege-withdrawn")
    registry.publish(bundle)
    result = _verifier(bundle, clock).verify(text)
    assert result.status is ecert.VerificationStatus.REVOKED


def test_qr_error_codes(published_copy: Published, clock: FakeClock,
                       shared_qr: tuple[str, str]) -> None:
    _, cert, bundle = published_copy
    verifier = _verifier(bundle, clock)
    text = ecert_qr.qr_text(shared_qr[0])
    assert verifier.verify("EC9:" + text[4:]).errors == (ecert.ErrorCode.QR_UNKNOWN_VERSION,)
    assert verifier.verify("EC1:%%%").errors == (ecert.ErrorCode.QR_MALFORMED,)
    data = bytearray(qr_format.b45decode(text[4:]))
    data[1] ^= 0xFF  # the kid reference
    unknown = verifier.verify("EC1:" + qr_format.b45encode(bytes(data)))
    assert unknown.errors == (ecert.ErrorCode.UNKNOWN_KID,)
    # A certificate token still verifies as before; the QR typ is not a certificate.
    assert verifier.verify(cert.token).valid
    assert verifier.verify(shared_qr[0]).errors == (ecert.ErrorCode.WRONG_TYP,)


def test_qr_made_after_key_rotation_verifies(published: Published, clock: FakeClock) -> None:
    registry, cert, bundle = published
    clock.advance(days=30)
    registry.rotate_agency_key(cert.agency_code)
    registry.publish(bundle)
    result = _verifier(bundle, clock).verify(ecert_qr.qr_text(registry.qr_token(cert.id)))
    assert result.valid, result.messages
    assert result.issuer is not None and result.issuer.kid != cert.kid


def test_too_large_content_is_refused_with_advice() -> None:
    with pytest.raises(ecert.QrTooLarge, match=r"version \d+ at level Q.*--ec L"):
        ecert_qr.make_qr("EC1:" + "A" * 1500, ec="Q")
    with pytest.raises(ecert.QrTooLarge, match="more than version 40"):
        ecert_qr.make_qr("EC1:" + "A" * 5000, ec="H")


# -- the generator never fails on valid data -------------------------------------------------


@settings(max_examples=80)
@given(st.binary(min_size=1, max_size=700) | st.just(b"\0" * 300))
def test_segno_encodes_every_container(data: bytes) -> None:
    text = "EC1:" + qr_format.b45encode(data)
    symbol = segno.make_qr(text, error="Q", boost_error=False)
    assert 1 <= symbol.version <= 40


@settings(max_examples=40)
@given(st.text(alphabet="0", min_size=1, max_size=400) | st.text(max_size=200))
def test_segno_encodes_zero_runs_and_any_text(text: str) -> None:
    assert segno.make_qr(text or "0", error="Q").version >= 1


# -- images ----------------------------------------------------------------------------------


@pytest.fixture
def qr_png(published_copy: Published, tmp_path: Path,
           shared_qr: tuple[str, str]) -> tuple[Path, str, Published]:
    text = ecert_qr.qr_text(shared_qr[0])
    path = ecert_qr.write_qr(ecert_qr.make_qr(text), tmp_path / "qr.png", scale=6)
    return path, text, published_copy


def _transforms(image: Image.Image) -> dict[str, Image.Image]:
    import random

    rng = random.Random(7)
    grey = image.convert("L")
    noisy = grey.copy()
    pixels = noisy.load()
    assert pixels is not None
    for _ in range(noisy.width * noisy.height // 25):
        x, y = rng.randrange(noisy.width), rng.randrange(noisy.height)
        pixels[x, y] = 255 - int(pixels[x, y])  # type: ignore[arg-type,operator]
    return {
        "original": grey,
        "scaled-down": grey.resize((grey.width * 3 // 5, grey.height * 3 // 5)),
        "scaled-up": grey.resize((grey.width * 2, grey.height * 2)),
        "rotated-17": grey.rotate(17, expand=True, fillcolor=255),
        "rotated-90": grey.rotate(90, expand=True),
        "blurred": grey.filter(ImageFilter.GaussianBlur(2)),
        "noisy": noisy,
    }


def test_decode_from_transformed_images(qr_png: tuple[Path, str, Published],
                                        clock: FakeClock) -> None:
    path, text, (_, _, bundle) = qr_png
    verifier = _verifier(bundle, clock)
    with Image.open(path) as image:
        for name, variant in _transforms(image).items():
            found = ecert_qr.decode_image(variant)
            assert found == [text], name
    assert verifier.verify(ecert_qr.decode_qr_image(path)).valid


def test_svg_output(qr_png: tuple[Path, str, Published], tmp_path: Path) -> None:
    _, text, _ = qr_png
    svg = ecert_qr.write_qr(ecert_qr.make_qr(text), tmp_path / "qr.svg")
    assert svg.read_text("utf-8").lstrip().startswith(("<?xml", "<svg"))
    with pytest.raises(ecert.InputError):
        ecert_qr.write_qr(ecert_qr.make_qr(text), tmp_path / "qr.gif")


def test_image_without_code(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    with pytest.raises(ecert.InputError, match="no QR code"):
        ecert_qr.decode_qr_image(blank)


# -- card ------------------------------------------------------------------------------------


def test_card_png_decodes_and_verifies(published: Published, clock: FakeClock,
                                       tmp_path: Path) -> None:
    registry, cert, bundle = published
    written = write_card_of(registry, cert, tmp_path / "card.png")
    assert written.qr_version <= 17
    result = _verifier(bundle, clock).verify(ecert_qr.decode_qr_image(written.path))
    assert result.valid and result.certificate is not None
    assert result.certificate.id == cert.id


def test_card_svg_has_the_text(published: Published, tmp_path: Path) -> None:
    registry, cert, _ = published
    svg = write_card_of(registry, cert, tmp_path / "card.svg").path
    text = svg.read_text("utf-8")
    for expected in ("营业执照", cert.holder_name, "陈晓明", "广东省", cert.id, "Noto Sans CJK SC"):
        assert expected in text


# -- CLI -------------------------------------------------------------------------------------


def test_cli_qr_and_verify_image(published: Published, tmp_path: Path,
                                 cli_as_admin: Any) -> None:
    registry, cert, bundle = published
    out = tmp_path / "c.png"
    result = cli_as_admin(registry, "qr", cert.id, "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["version"] <= 17
    result = cli_as_admin(registry, "verify", "--image", str(out), "--bundle", str(bundle),
                          "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["qr"]["digest_bound"] is True
    result = cli_as_admin(registry, "qr", cert.id, "-o", str(tmp_path / "f.svg"), "--full",
                          "--ec", "H")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "--ec L" in result.stderr
    result = cli_as_admin(registry, "card", cert.id, "-o", str(tmp_path / "card.svg"))
    assert result.exit_code == 0, result.output
