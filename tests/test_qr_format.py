"""The QR container and payload codec: base45, value encoding, deflate bound, container."""

from __future__ import annotations

import string
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecert._formats import qr
from ecert._formats.copy import COPY_TYP, CopyClaims, OriginalRef
from ecert._formats.jose import ES256, b64url_encode, canonical_json, strict_json_loads
from ecert.errors import FormatError

# -- base45 ----------------------------------------------------------------------------------


def test_base45_rfc9285_examples() -> None:
    assert qr.b45encode(b"AB") == "BB8"
    assert qr.b45encode(b"Hello!!") == "%69 VD92EX0"
    assert qr.b45encode(b"base-45") == "UJCLQE7W581"
    assert qr.b45decode("QED8WEX0") == b"ietf!"


#: Base45 (QR text) and base43 (a verification link's fragment, format section 14.1):
#: encoder, decoder, alphabet.
CODECS = [pytest.param(qr.b45encode, qr.b45decode, qr.BASE45_ALPHABET, id="base45"),
          pytest.param(qr.b43encode, qr.b43decode, qr.BASE43_ALPHABET, id="base43")]
Codec = Callable[[bytes], str]
Decoder = Callable[[str], bytes]


@pytest.mark.parametrize(("encode", "decode", "alphabet"), CODECS)
@given(data=st.binary(max_size=600))
def test_base45_round_trip(encode: Codec, decode: Decoder, alphabet: str, data: bytes) -> None:
    text = encode(data)
    assert set(text) <= set(alphabet)
    assert len(text) == len(qr.b45encode(data))  # base43 text is as long as base45's
    assert decode(text) == data


@pytest.mark.parametrize(("encode", "decode", "alphabet"), CODECS)
@given(text=st.text(alphabet=qr.BASE45_ALPHABET + "abc=\n", max_size=60))
def test_base45_decoder_refuses_or_round_trips(encode: Codec, decode: Decoder, alphabet: str,
                                               text: str) -> None:
    try:
        data = decode(text)
    except qr.QrFormatError as e:
        assert e.code == "qr_malformed"
    else:
        assert encode(data) == text  # canonical: one spelling per byte string


@pytest.mark.parametrize(("decode", "text"), [
    *((qr.b45decode, t) for t in ("GGW", "A", "::", "a00")),
    *((qr.b43decode, t) for t in ("A", "::::", "::", "%00", "AB C", "a00"))])
def test_base45_refuses_bad_text(decode: Decoder, text: str) -> None:
    with pytest.raises(qr.QrFormatError):
        decode(text)


# -- value encoding --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["深圳市前海星河数字科技有限公司", "陈晓明", "2019-04-16",
                       b64url_encode(bytes(range(16))), "91440300MA5F3K2L8G"]),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)


@given(json_values)
def test_value_round_trip_to_exact_canonical_json(value: object) -> None:
    encoded = qr.encode_value(value)
    assert canonical_json(qr.decode_value(encoded)) == canonical_json(value)


@given(st.binary(max_size=200))
def test_value_decoder_never_crashes(data: bytes) -> None:
    try:
        value = qr.decode_value(data)
    except qr.QrFormatError:
        return
    canonical_json(value)  # whatever decodes is a JSON value


def test_chinese_text_costs_two_bytes_a_character() -> None:
    name = "深圳市前海星河数字科技有限公司"
    assert len(qr.encode_value(name)) == 1 + 1 + 2 * len(name)


def test_repeated_text_is_a_back_reference() -> None:
    name = "深圳市前海星河数字科技有限公司"
    assert len(qr.encode_value([name, name])) == len(qr.encode_value([name])) + 1


def test_decoder_refuses_unsorted_keys_and_nesting() -> None:
    with pytest.raises(qr.QrFormatError):
        qr.decode_value(bytes([0xA2, 0x61]) + b"b" + bytes([0x01, 0x61]) + b"a" + bytes([2]))
    with pytest.raises(qr.QrFormatError):
        qr.decode_value(bytes([0x81]) * 40 + bytes([0]))
    with pytest.raises(qr.QrFormatError):
        qr.decode_value(bytes([0x18, 0x05]))  # non-minimal length


# -- deflate bound ---------------------------------------------------------------------------


def test_deflate_bomb_is_refused_before_memory_grows() -> None:
    bomb = qr.deflate(b"\0" * 50_000_000)
    assert len(bomb) < 60_000
    with pytest.raises(qr.QrFormatError) as info:
        qr.inflate(bomb)
    assert info.value.code == "qr_too_large"


@given(st.binary(max_size=300))
def test_inflate_refuses_or_bounds(data: bytes) -> None:
    try:
        out = qr.inflate(data)
    except qr.QrFormatError:
        return
    assert len(out) <= qr.MAX_BODY_BYTES


@given(st.binary(max_size=2000))
def test_deflate_round_trip(data: bytes) -> None:
    assert qr.inflate(qr.deflate(data)) == data


# -- container -------------------------------------------------------------------------------


class _FakeSigner:
    alg = ES256
    kid = b64url_encode(bytes(range(32)))

    def sign(self, message: bytes) -> bytes:
        return bytes(64)


@settings(max_examples=60)
@given(st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=6), json_values,
                       max_size=6))
def test_container_rebuilds_the_exact_jws(payload: dict[str, object]) -> None:
    token = qr.sign_qr_token(payload, _FakeSigner())
    text = qr.wrap(token)
    assert text.startswith("EC1:")
    assert set(text[4:]) <= set(qr.BASE45_ALPHABET)
    unwrapped = qr.unwrap(text)
    assert unwrapped.kid_ref == qr.kid_ref(_FakeSigner.kid)
    assert unwrapped.compact(_FakeSigner.kid) == token


@given(st.text(alphabet=qr.BASE45_ALPHABET, max_size=200))
def test_container_decoder_refuses_cleanly(rest: str) -> None:
    try:
        qr.unwrap("EC1:" + rest)
    except FormatError as e:
        assert e.code in {"qr_malformed", "qr_too_large"}


@given(st.binary(min_size=70, max_size=300))
def test_container_decoder_on_random_bytes(data: bytes) -> None:
    try:
        unwrapped = qr.unwrap("EC1:" + qr.b45encode(data))
    except FormatError as e:
        assert e.code in {"qr_malformed", "qr_too_large"}
    else:
        assert unwrapped.alg in ("ES256", "Ed25519")
        # Flag bit 3 names the typ (a copy's QR form); bits 4-7 are refused.
        assert unwrapped.typ == (COPY_TYP if data[0] & 0b1000 else qr.QR_TYP)
        assert data[0] >> 4 == 0
        # What it decodes to encodes back to the same container.
        kid = b64url_encode(unwrapped.kid_ref + bytes(28))
        assert qr.unwrap(qr.wrap(unwrapped.compact(kid))) == unwrapped


def test_unknown_container_version_has_its_own_code() -> None:
    text = qr.wrap(qr.sign_qr_token({"a": 1}, _FakeSigner()))
    with pytest.raises(qr.QrFormatError) as info:
        qr.unwrap("EC2:" + text[4:])
    assert info.value.code == "qr_unknown_version"


def test_reserved_flags_are_refused() -> None:
    text = qr.wrap(qr.sign_qr_token({"a": 1}, _FakeSigner()))
    data = bytearray(qr.b45decode(text[4:]))
    data[0] |= 0x80
    with pytest.raises(qr.QrFormatError):
        qr.unwrap("EC1:" + qr.b45encode(bytes(data)))


def test_only_ecert_qr_tokens_are_wrapped() -> None:
    from ecert._formats.jose import sign_compact

    with pytest.raises(FormatError):
        qr.wrap(sign_compact({"a": 1}, _FakeSigner(), "ecert+jwt"))
    with pytest.raises(FormatError):
        qr.wrap("not.a.jws")


# -- the QR form of a purpose-bound copy (format section 17.4) --------------------------------


_cjk = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=40)
_texts = st.text(min_size=1, max_size=40) | _cjk.filter(bool)
_times = st.integers(0, 253_402_300_799 - 7 * 86_400)


@st.composite
def copy_claims(draw: st.DrawFn) -> CopyClaims:
    """Copies of every shape a sharing service may make: any texts (Chinese, controls,
    astral), any claims, any times within the copy's rules."""
    iat = draw(_times)
    base = draw(st.sampled_from(["https://ecert.gd.example", "http://127.0.0.1:8080/gd"]))
    return CopyClaims(
        iss=base, jti=draw(_texts), iat=iat, exp=iat + draw(st.integers(1, 7 * 86_400)),
        region=draw(st.sampled_from(["GD", "ZJ", "SH"])), aud=draw(_texts),
        purpose=draw(_texts), case=draw(_texts), copy_of=draw(_texts),
        original=OriginalRef(f"{base}/agencies/{draw(_texts)}", draw(_texts),
                             draw(st.integers(1, 99)), draw(_times), draw(_times),
                             draw(st.none() | _times)),
        claims=draw(st.dictionaries(st.text(max_size=20), json_values, max_size=8)),
        status_list_uri=f"{base}/status/{draw(st.integers(0, 999))}.jwt",
        status_index=draw(st.integers(0, 2**31)))


@settings(max_examples=80)
@given(copy_claims(), st.sampled_from([ES256, "Ed25519"]))
def test_a_copy_round_trips_through_its_qr_form(claims: CopyClaims, alg: str) -> None:
    signer = _FakeSigner()
    signer.alg = alg
    token = claims.sign(signer)
    text = qr.wrap(token)
    assert text.startswith("EC1:") and set(text[4:]) <= set(qr.BASE45_ALPHABET)
    unwrapped = qr.unwrap(text)
    assert (unwrapped.typ, unwrapped.alg) == (COPY_TYP, alg)
    # The exact token, byte for byte; its claims decode as the copy's.
    assert unwrapped.compact(signer.kid) == token
    assert CopyClaims.from_payload(strict_json_loads(unwrapped.payload)) == claims
    # The flag is what says "copy": without it the same bytes are a QR token.
    data = bytearray(qr.b45decode(text[4:]))
    assert data[0] & 0b1000
    data[0] &= ~0b1000
    assert qr.unwrap("EC1:" + qr.b45encode(bytes(data))).typ == qr.QR_TYP


def test_only_ecert_qr_tokens_and_copies_are_wrapped() -> None:
    from ecert._formats.jose import sign_compact

    assert qr.unwrap(qr.wrap(sign_compact({"a": 1}, _FakeSigner(), COPY_TYP))).typ == COPY_TYP
    for typ in ("ecert+jwt", "statuslist+jwt", "ecert-trustlist+jwt"):
        with pytest.raises(FormatError) as info:
            qr.wrap(sign_compact({"a": 1}, _FakeSigner(), typ))
        assert info.value.code == "qr_unencodable"
