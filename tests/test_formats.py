"""Wire formats: strict base64url and JSON, JWKs, compact JWS parsing, trust list and
certificate claims decoding, and status-list slot allocation."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
from datetime import datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from ecert._allocation import permuted_index
from ecert._formats import jose
from ecert._formats.certificate import CertificateClaims
from ecert._formats.trustlist import (
    Agreement,
    Entitlement,
    TrustedAgency,
    TrustedKey,
    TrustList,
    TypeEntry,
)
from ecert._mac import hmac_sha256
from ecert.errors import FormatError
from ecert.keys import LocalSigner

P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=16,
)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=8)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ec_key(seed: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(seed, ec.SECP256R1())


def ed_key(seed: int) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed.to_bytes(32, "big"))


# -- base64url --------------------------------------------------------------------------------


def test_b64url_known_values() -> None:
    assert jose.b64url_decode("") == b""
    assert jose.b64url_decode("QQ") == b"A"
    assert jose.b64url_decode("QUI") == b"AB"
    assert jose.b64url_decode("QUJD") == b"ABC"
    assert jose.b64url_decode("-_8") == b"\xfb\xff"
    assert jose.b64url_encode(b"\xfb\xff") == "-_8"


@pytest.mark.parametrize(
    "text",
    [
        "QQ==",  # padding
        "QQ=",
        "QUI=",
        "+/8",  # standard alphabet, not URL-safe
        "QR",  # non-zero trailing bits: non-canonical spelling of b"A"
        "QUJ",  # non-canonical spelling of b"AB"
        "Q",  # one character can encode nothing
        "QUJDR",
        "QU I",
        " QQ",
        "QQ\n",
        "Q\x00Q",
        "QQé",
        "ＱＱ",
    ],
)
def test_b64url_refuses(text: str) -> None:
    with pytest.raises(FormatError) as info:
        jose.b64url_decode(text)
    assert info.value.code == "malformed"


@given(st.binary(max_size=64))
def test_b64url_round_trip(data: bytes) -> None:
    text = jose.b64url_encode(data)
    assert "=" not in text
    assert jose.b64url_decode(text) == data


@given(st.binary(min_size=1, max_size=64).filter(lambda d: len(d) % 3), st.integers(1, 15))
def test_b64url_refuses_every_non_canonical_spelling(data: bytes, noise: int) -> None:
    text = jose.b64url_encode(data)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused_bits = 4 if len(data) % 3 == 1 else 2
    last = alphabet.index(text[-1])
    assert last & ((1 << unused_bits) - 1) == 0
    spoiled = text[:-1] + alphabet[last | (noise & ((1 << unused_bits) - 1))]
    if spoiled != text:
        with pytest.raises(FormatError):
            jose.b64url_decode(spoiled)


@given(st.text(max_size=40))
def test_b64url_decode_arbitrary_text_only_raises_format_error(text: str) -> None:
    try:
        data = jose.b64url_decode(text)
    except FormatError:
        return
    assert jose.b64url_encode(data) == text


# -- strict JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":1}',
        '{"a":1,"a":2}',
        '{"x":{"b":1,"b":2}}',
        '[{"k":1,"k":{}}]',
        '{"alg":"ES256","alg":"none"}',
    ],
)
def test_strict_json_refuses_duplicate_members(text: str) -> None:
    with pytest.raises(FormatError) as info:
        jose.strict_json_loads(text)
    assert info.value.code == "malformed"
    with pytest.raises(FormatError):
        jose.strict_json_loads(text.encode())


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"a":NaN}', "[1,Infinity]"])
def test_strict_json_refuses_non_finite_constants(text: str) -> None:
    with pytest.raises(FormatError) as info:
        jose.strict_json_loads(text)
    assert info.value.code == "malformed"


@pytest.mark.parametrize("text", ["1e999", "[-1e400]", '{"exp":1E999}'])
def test_strict_json_refuses_numbers_overflowing_to_infinity(text: str) -> None:
    # 1e999 is Infinity spelt differently: refusing one and not the other is not strict.
    with pytest.raises(FormatError):
        jose.strict_json_loads(text)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":[' * 50_000],
)
def test_strict_json_deep_nesting_is_format_error_not_recursion_error(text: str) -> None:
    with pytest.raises(FormatError) as info:
        jose.strict_json_loads(text)
    assert info.value.code == "malformed"
    with pytest.raises(FormatError):
        jose.strict_json_loads(text.encode())


@pytest.mark.parametrize(
    "data",
    [b"\xff", b'{"a":"\xc3"}', b"", b"{", b"{'a':1}", b'{"a":1} x',
     "9" * 5000],
)
def test_strict_json_refuses_invalid_input(data: bytes | str) -> None:
    with pytest.raises(FormatError):
        jose.strict_json_loads(data)


@pytest.mark.parametrize(
    "data",
    [
        '{"alg":"ES256"}'.encode("utf-16"),
        '{"alg":"ES256"}'.encode("utf-16-le"),
        '{"alg":"ES256"}'.encode("utf-32"),
        '{"alg":"ES256"}'.encode("utf-8-sig"),
        b'{"alg":"\xed\xa0\x80"}',  # a UTF-16 surrogate encoded as if UTF-8: not UTF-8
    ],
)
def test_strict_json_refuses_bytes_that_are_not_plain_utf8(data: bytes) -> None:
    # JOSE headers and claims are UTF-8 JSON (RFC 7515 s. 5.1, RFC 8259 s. 8.1: no BOM).
    with pytest.raises(FormatError):
        jose.strict_json_loads(data)


@given(json_values)
def test_strict_json_round_trips_canonical_json(value: Any) -> None:
    assert jose.strict_json_loads(jose.canonical_json(value)) == value


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert jose.canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()
    with pytest.raises(ValueError):
        jose.canonical_json({"a": float("nan")})


# -- JWK ---------------------------------------------------------------------------------------


def test_ec_jwk_thumbprint_is_rfc7638_by_hand() -> None:
    key = ec_key(0xEC0)
    numbers = key.public_key().public_numbers()
    x, y = b64(numbers.x.to_bytes(32, "big")), b64(numbers.y.to_bytes(32, "big"))
    jwk = jose.public_jwk(key)
    assert jwk == {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": jwk["kid"],
                   "alg": "ES256", "use": "sig"}
    canonical = '{"crv":"P-256","kty":"EC","x":"' + x + '","y":"' + y + '"}'
    expected = b64(hashlib.sha256(canonical.encode("ascii")).digest())
    assert jwk["kid"] == expected
    assert jose.jwk_thumbprint(jwk) == expected
    assert jose.jwk_thumbprint({"y": y, "x": x, "kty": "EC", "crv": "P-256"}) == expected


def test_okp_jwk_thumbprint_is_rfc7638_by_hand() -> None:
    key = ed_key(0xED)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    jwk = jose.public_jwk(key.public_key())
    assert jwk["x"] == b64(raw) and jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    assert jwk["alg"] == "Ed25519"
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"' + b64(raw) + '"}'
    assert jwk["kid"] == b64(hashlib.sha256(canonical.encode("ascii")).digest())


def test_okp_thumbprint_rfc8037_vector() -> None:
    # RFC 8037 appendix A.3.
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert jose.jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    alg, key = jose.key_from_jwk(jwk)
    assert alg == "Ed25519"
    assert jose.public_jwk(key)["kid"] == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.parametrize(
    ("jwk", "code"),
    [
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "unsupported_key"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "unsupported_key"),
        ({"crv": "P-256", "x": "AA", "y": "AA"}, "unsupported_key"),
        ({"kty": "EC", "crv": "P-256", "y": "AA"}, "malformed"),
        ({"kty": "EC", "crv": "P-256", "x": 1, "y": "AA"}, "malformed"),
    ],
)
def test_thumbprint_refuses(jwk: dict[str, Any], code: str) -> None:
    with pytest.raises(FormatError) as info:
        jose.jwk_thumbprint(jwk)
    assert info.value.code == code


def test_key_from_jwk_loads_public_keys() -> None:
    ec_private, ed_private = ec_key(7), ed_key(7)
    alg, key = jose.key_from_jwk(jose.public_jwk(ec_private))
    assert alg == "ES256"
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.public_numbers() == ec_private.public_key().public_numbers()
    alg, key = jose.key_from_jwk(jose.public_jwk(ed_private))
    assert alg == "Ed25519"
    assert isinstance(key, ed25519.Ed25519PublicKey)
    assert key.public_bytes_raw() == ed_private.public_key().public_bytes_raw()


def _ec_jwk() -> dict[str, str]:
    return jose.public_jwk(ec_key(11))


def _ed_jwk() -> dict[str, str]:
    return jose.public_jwk(ed_key(11))


def _with(jwk: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = dict(jwk)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _off_curve() -> dict[str, Any]:
    jwk = _ec_jwk()
    y = int.from_bytes(jose.b64url_decode(jwk["y"]), "big")
    return _with(jwk, y=b64(((y + 1) % 2**256).to_bytes(32, "big")))


@pytest.mark.parametrize(
    ("jwk", "code"),
    [
        (_with(_ec_jwk(), d=b64(bytes(32))), "malformed"),
        (_with(_ed_jwk(), d=b64(bytes(32))), "malformed"),
        (_with(_ec_jwk(), crv="P-384"), "unsupported_key"),
        (_with(_ec_jwk(), crv="secp256k1"), "unsupported_key"),
        (_with(_ed_jwk(), crv="X25519"), "unsupported_key"),
        (_with(_ed_jwk(), crv="Ed448"), "unsupported_key"),
        (_with(_ec_jwk(), kty="OKP"), "unsupported_key"),
        (_with(_ec_jwk(), kty=None), "unsupported_key"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "unsupported_key"),
        (_with(_ec_jwk(), x=b64(bytes(31))), "malformed"),
        (_with(_ec_jwk(), y=b64(bytes(33))), "malformed"),
        (_with(_ec_jwk(), x=_ec_jwk()["x"][:-1]), "malformed"),
        (_with(_ed_jwk(), x=b64(bytes(31))), "malformed"),
        (_with(_ed_jwk(), x=b64(bytes(33))), "malformed"),
        (_off_curve(), "malformed"),
        (_with(_ec_jwk(), x=b64(bytes(32)), y=b64(bytes(32))), "malformed"),
        (_with(_ec_jwk(), x=None), "malformed"),
        (_with(_ec_jwk(), x=12), "malformed"),
        (_with(_ec_jwk(), x=list("AAAA")), "malformed"),
        (_with(_ec_jwk(), x=_ec_jwk()["x"] + "=="), "malformed"),
        (_with(_ed_jwk(), x=None), "malformed"),
        (_with(_ec_jwk(), alg="Ed25519"), "malformed"),
        (_with(_ec_jwk(), alg="HS256"), "malformed"),
        (_with(_ed_jwk(), alg="EdDSA"), "malformed"),
        (_with(_ed_jwk(), alg="ES256"), "malformed"),
    ],
)
def test_key_from_jwk_refuses(jwk: dict[str, Any], code: str) -> None:
    with pytest.raises(FormatError) as info:
        jose.key_from_jwk(jwk)
    assert info.value.code == code


@pytest.mark.parametrize("value", [None, "jwk", ["kty", "EC"], 3])
def test_key_from_jwk_refuses_non_objects(value: Any) -> None:
    with pytest.raises(FormatError):
        jose.key_from_jwk(value)


@given(st.dictionaries(st.sampled_from(["kty", "crv", "x", "y", "d", "alg", "kid"]),
                       json_values | st.sampled_from(["EC", "OKP", "P-256", "Ed25519"])
                       | st.binary(max_size=40).map(b64)))
def test_key_from_jwk_random_objects_only_raise_format_error(jwk: dict[str, Any]) -> None:
    with contextlib.suppress(FormatError):
        jose.key_from_jwk(jwk)


def test_public_jwk_refuses_other_curves() -> None:
    with pytest.raises(FormatError) as info:
        jose.public_jwk(ec.generate_private_key(ec.SECP384R1()))
    assert info.value.code == "unsupported_key"


# -- compact JWS -------------------------------------------------------------------------------


def _token(header: Any, payload: Any, signature: bytes = b"\x01" * 64) -> str:
    return ".".join((b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()),
                     b64(signature)))


def test_parse_compact_good() -> None:
    token = _token({"alg": "ES256", "kid": "k", "typ": "t"}, {"a": 1}, b"sig")
    parsed = jose.parse_compact(token, max_bytes=1000)
    assert parsed.header == {"alg": "ES256", "kid": "k", "typ": "t"}
    assert parsed.payload == {"a": 1}
    assert parsed.signing_input == token.rsplit(".", 1)[0].encode()
    assert parsed.signature == b"sig"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "..",
        "a.b",
        "a.b.c.d",
        _token({"alg": "ES256"}, {"a": 1}) + ".",
        _token([], {"a": 1}),
        _token({"alg": "ES256"}, [1]),
        _token({"alg": "ES256"}, None),
        _token({"alg": "ES256"}, "claims"),
        _token({"alg": "ES256"}, {"a": 1}).replace(".", ". ", 1),
        _token({"alg": "ES256"}, {"a": 1}) + "=",
        "é" + _token({"alg": "ES256"}, {"a": 1}),
        _token({"alg": "ES256"}, {"a": 1}).replace(".", "\x00", 1),
    ],
)
def test_parse_compact_refuses_malformed(token: str) -> None:
    with pytest.raises(FormatError) as info:
        jose.parse_compact(token, max_bytes=10_000)
    assert info.value.code == "malformed"


def test_parse_compact_size_limit() -> None:
    token = _token({"alg": "ES256"}, {"a": "x" * 100})
    assert jose.parse_compact(token, max_bytes=len(token)).payload == {"a": "x" * 100}
    with pytest.raises(FormatError) as info:
        jose.parse_compact(token, max_bytes=len(token) - 1)
    assert info.value.code == "too_large"


@pytest.mark.parametrize("value", [None, b"a.b.c", 3, ["a", "b", "c"]])
def test_parse_compact_refuses_non_text(value: Any) -> None:
    with pytest.raises(FormatError):
        jose.parse_compact(value, max_bytes=100)


def _parse_or_format_error(token: str) -> None:
    try:
        parsed = jose.parse_compact(token, max_bytes=4096)
    except FormatError as e:
        assert e.code in {"malformed", "too_large"}
        return
    assert isinstance(parsed.header, dict) and isinstance(parsed.payload, dict)


@given(st.text())
def test_parse_compact_arbitrary_text_only_raises_format_error(text: str) -> None:
    _parse_or_format_error(text)


@given(st.lists(st.binary(max_size=60).map(b64), min_size=1, max_size=4))
def test_parse_compact_random_base64_parts_only_raise_format_error(parts: list[str]) -> None:
    _parse_or_format_error(".".join(parts))


@given(st.lists(st.binary(max_size=60), min_size=3, max_size=3), st.integers(0, 2))
def test_parse_compact_random_bytes_as_text_only_raise_format_error(
    parts: list[bytes], which: int
) -> None:
    texts = [b64(p) for p in parts]
    texts[which] = parts[which].decode("latin-1")
    _parse_or_format_error(".".join(texts))


@given(json_values, json_values, st.binary(max_size=70))
def test_parse_compact_random_json_only_raises_format_error(
    header: Any, payload: Any, signature: bytes
) -> None:
    _parse_or_format_error(_token(header, payload, signature))


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ({"kid": "k", "typ": "t"}, "unsupported_alg"),
        ({"alg": "none", "kid": "k", "typ": "t"}, "unsupported_alg"),
        ({"alg": "HS256", "kid": "k", "typ": "t"}, "unsupported_alg"),
        ({"alg": "EdDSA", "kid": "k", "typ": "t"}, "unsupported_alg"),
        ({"alg": "es256", "kid": "k", "typ": "t"}, "unsupported_alg"),
        ({"alg": ["ES256"], "kid": "k", "typ": "t"}, "unsupported_alg"),
        ({"alg": "ES256", "kid": "k", "typ": "t", "jwk": {}}, "embedded_key"),
        ({"alg": "ES256", "kid": "k", "typ": "t", "jku": "https://x"}, "embedded_key"),
        ({"alg": "ES256", "kid": "k", "typ": "t", "x5u": "https://x"}, "embedded_key"),
        ({"alg": "ES256", "kid": "k", "typ": "t", "x5c": []}, "embedded_key"),
        ({"alg": "ES256", "kid": "k", "typ": "t", "x5t#S256": "AA"}, "embedded_key"),
        ({"alg": "ES256", "kid": "k", "typ": "t", "crit": ["exp"], "exp": 1}, "unsupported_crit"),
        ({"alg": "ES256", "kid": "k", "typ": "t", "crit": []}, "unsupported_crit"),
        ({"alg": "ES256", "kid": "k"}, "wrong_typ"),
        ({"alg": "ES256", "kid": "k", "typ": "JWT"}, "wrong_typ"),
        ({"alg": "ES256", "kid": "k", "typ": None}, "wrong_typ"),
        ({"alg": "ES256", "typ": "t"}, "malformed"),
        ({"alg": "ES256", "kid": "", "typ": "t"}, "malformed"),
        ({"alg": "ES256", "kid": 5, "typ": "t"}, "malformed"),
        ({"alg": "ES256", "kid": "k" * 129, "typ": "t"}, "malformed"),
    ],
)
def test_check_header_policy(header: dict[str, Any], code: str) -> None:
    with pytest.raises(FormatError) as info:
        jose.check_header(header, "t")
    assert info.value.code == code


def test_check_header_accepts_policy_conformant() -> None:
    assert jose.check_header({"alg": "ES256", "kid": "k1", "typ": "t"}, "t") == "k1"
    assert jose.check_header({"alg": "Ed25519", "kid": "k2", "typ": "t"}, "t") == "k2"


# -- raw signatures ----------------------------------------------------------------------------


def _es256(key: ec.EllipticCurvePrivateKey, message: bytes) -> tuple[int, int]:
    sig = jose.raw_signature("ES256", key, message)
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")


def test_verify_signature_es256() -> None:
    key = ec_key(99)
    sig = jose.raw_signature("ES256", key, b"message")
    assert len(sig) == 64
    public = key.public_key()
    assert jose.verify_signature("ES256", public, b"message", sig)
    assert not jose.verify_signature("ES256", public, b"messagE", sig)
    assert not jose.verify_signature("Ed25519", public, b"message", sig)
    assert not jose.verify_signature("ES256", public, b"message", sig[:63])
    assert not jose.verify_signature("ES256", public, b"message", sig + b"\x00")
    r, s = _es256(key, b"message")
    der = encode_dss_signature(r, s)
    assert not jose.verify_signature("ES256", public, b"message", der)
    public.verify(der, b"message", ec.ECDSA(hashes.SHA256()))  # same signature, DER form


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 0), (0, 1), (1, 0), (P256_ORDER, P256_ORDER), (P256_ORDER, 1), (1, P256_ORDER),
     (2**256 - 1, 2**256 - 1)],
)
def test_verify_signature_out_of_range_components(r: int, s: int) -> None:
    public = ec_key(99).public_key()
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert not jose.verify_signature("ES256", public, b"message", sig)


def test_verify_signature_ed25519() -> None:
    key = ed_key(3)
    sig = jose.raw_signature("Ed25519", key, b"m")
    assert jose.verify_signature("Ed25519", key.public_key(), b"m", sig)
    assert not jose.verify_signature("ES256", key.public_key(), b"m", sig)
    assert not jose.verify_signature("Ed25519", key.public_key(), b"n", sig)
    assert not jose.verify_signature("Ed25519", key.public_key(), b"m", sig[:63])
    assert not jose.verify_signature("Ed25519", key.public_key(), b"m", bytes(64))


def test_raw_signature_refuses_mismatched_key() -> None:
    with pytest.raises(FormatError):
        jose.raw_signature("Ed25519", ec_key(1), b"m")
    with pytest.raises(FormatError):
        jose.raw_signature("ES256", ed_key(1), b"m")


def test_sign_compact_header_and_verification() -> None:
    signer = LocalSigner(ec_key(42))
    token = jose.sign_compact({"b": 2, "a": "é"}, signer, "x+jwt")
    parsed = jose.parse_compact(token, max_bytes=10_000)
    assert parsed.header == {"alg": "ES256", "kid": signer.kid, "typ": "x+jwt"}
    assert parsed.payload == {"a": "é", "b": 2}
    assert jose.b64url_decode(token.split(".")[1]) == jose.canonical_json({"a": "é", "b": 2})
    _, key = jose.key_from_jwk(signer.public_jwk)
    assert jose.verify_signature("ES256", key, parsed.signing_input, parsed.signature)


# -- trust list --------------------------------------------------------------------------------


def _trust_list() -> TrustList:
    agency_key = TrustedKey(jose.public_jwk(ec_key(1)), valid_from=1_000)
    retired = TrustedKey(jose.public_jwk(ed_key(2)), valid_from=500, valid_until=1_000,
                         status="retired")
    compromised = TrustedKey(jose.public_jwk(ec_key(3)), valid_from=100, valid_until=400,
                             status="compromised", compromised_since=300)
    status_key = TrustedKey(jose.public_jwk(ec_key(4)), valid_from=100)
    return TrustList(
        region="GD", name="广东省", base_url="https://ecert.gd.example", sequence=3,
        issued_at=2_000, next_update=3_000,
        agencies=(
            TrustedAgency("gd-amr", "广东省市场监督管理局", "11440000MB2C01234R",
                          "https://ecert.gd.example/agencies/gd-amr",
                          ("cn.business-licence", "cn.food-business-licence"),
                          (agency_key, retired, compromised),
                          requester_keys=(TrustedKey(jose.public_jwk(ed_key(6)), 1_000),)),
            TrustedAgency("gd-hrss", "人社厅", "11440000MB2D05678G",
                          "https://ecert.gd.example/agencies/gd-hrss", (), ()),
        ),
        status_keys=(status_key,),
        types=(TypeEntry("cn.business-licence", 1, "营业执照", "11100000MB0143028R001"),),
        agreements=(Agreement("ZJ", "浙江省", jose.public_jwk(ec_key(5)),
                              "https://ecert.zj.example/trustlist.jwt", 1_000, 5_000,
                              {"zj.spjyxkz": "cn.food-business-licence"}),),
        status_lists=("https://ecert.gd.example/status/1.jwt",),
        sharing_keys=(TrustedKey(jose.public_jwk(ec_key(7)), valid_from=1_000),),
        entitlements=(
            Entitlement("zj-amr-licensing", "ZJ/zj-amr", ("cn.business-licence",),
                        ("企业开办",), ("name", "uscc"), False, 1_000),
            Entitlement("zj-by-statute", "ZJ", ("cn.business-licence",), ("市场监管执法",),
                        None, True, 1_000, 5_000),
        ),
    )


def test_trust_list_round_trip() -> None:
    trust_list = _trust_list()
    payload = trust_list.to_payload()
    assert TrustList.from_payload(payload) == trust_list
    wire = jose.strict_json_loads(jose.canonical_json(payload))
    assert TrustList.from_payload(wire) == trust_list
    assert wire["iss"] == "https://ecert.gd.example"
    assert wire["seq"] == 3 and wire["next_update"] == 3_000


def test_trust_list_one_key_one_role() -> None:
    """A key that signs certificates never also signs copies or requests (format 1.2)."""
    payload = _trust_list().to_payload()
    signing = payload["agencies"][0]["keys"][0]
    for path in (("sharing_keys",), ("agencies", 0, "requester_keys")):
        with pytest.raises(FormatError, match="not also"):
            TrustList.from_payload(_mutated(payload, path, [signing]))


def test_trust_lists_without_sharing_are_unchanged() -> None:
    """Lists of regions that share nothing carry none of the 1.2 members."""
    bare = _trust_list().to_payload()
    for member in ("sharing_keys", "entitlements"):
        bare.pop(member)
    del bare["agencies"][0]["requester_keys"]
    parsed = TrustList.from_payload(bare)
    assert parsed.to_payload() == bare
    assert parsed.sharing_keys == () and parsed.entitlements == ()


@pytest.mark.parametrize(("requester", "type_code", "purpose", "at", "covered"), [
    ("ZJ/zj-amr", "cn.business-licence", "企业开办", 1_000, True),
    ("ZJ/zj-other", "cn.business-licence", "企业开办", 1_000, False),
    ("ZJ/zj-other", "cn.business-licence", "市场监管执法", 4_999, True),  # region-wide
    ("ZJ/zj-other", "cn.business-licence", "市场监管执法", 5_000, False),  # ended
    ("ZJ/zj-amr", "cn.business-licence", "企业开办", 999, False),  # not yet
    ("ZJ/zj-amr", "cn.food-business-licence", "企业开办", 1_000, False),
    ("SH/zj-amr", "cn.business-licence", "企业开办", 1_000, False),
])
def test_entitlement_covers(requester: str, type_code: str, purpose: str, at: int,
                            covered: bool) -> None:
    entitlements = _trust_list().entitlements
    assert any(e.covers(requester, type_code, purpose, at) for e in entitlements) is covered


def _mutated(payload: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    target: Any = out
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("region",), "GD"),
        (("region", "code"), 44),
        (("region", "base_url"), _DELETE),
        (("seq",), True),
        (("seq",), "3"),
        (("iat",), 2_000.0),
        (("next_update",), 2_000),
        (("next_update",), 1_999),
        (("agencies",), {}),
        (("status_keys",), None),
        (("types",), _DELETE),
        (("agreements",), ["ZJ"]),
        (("agencies", 0), "gd-amr"),
        (("agencies", 0, "uscc"), None),
        (("agencies", 0, "types"), "cn.business-licence"),
        (("agencies", 0, "types"), [1]),
        (("agencies", 0, "keys"), {}),
        (("agencies", 0, "keys", 0), []),
        (("agencies", 0, "keys", 0, "jwk", "kid"), "not-the-thumbprint"),
        (("agencies", 0, "keys", 0, "jwk", "d"), b64(bytes(32))),
        (("agencies", 0, "keys", 0, "jwk", "crv"), "P-384"),
        (("agencies", 0, "keys", 0, "jwk", "use"), 1),
        (("agencies", 0, "keys", 0, "jwk"), "jwk"),
        (("agencies", 0, "keys", 0, "valid_from"), True),
        (("agencies", 0, "keys", 0, "valid_from"), _DELETE),
        (("agencies", 0, "keys", 0, "valid_until"), "2026"),
        (("agencies", 0, "keys", 0, "status"), "revoked"),
        (("agencies", 0, "keys", 0, "status"), "compromised"),
        (("agencies", 0, "keys", 0, "status"), ["active"]),  # unhashable
        (("status_keys", 0, "status"), {"active": True}),  # unhashable
        (("agencies", 0, "keys", 2, "compromised_since"), _DELETE),
        (("agencies", 0, "keys", 1, "compromised_since"), 900),
        (("status_keys", 0, "jwk", "x"), b64(bytes(32))),
        (("types", 0, "version"), "1"),
        (("types", 0, "version"), True),
        (("types", 0, "national_type_code"), None),
        (("sharing_keys",), {}),
        (("sharing_keys", 0, "valid_from"), None),
        (("agencies", 0, "requester_keys"), None),
        (("agencies", 0, "requester_keys", 0, "jwk", "kid"), "not-the-thumbprint"),
        (("entitlements",), {}),
        (("entitlements", 0, "id"), "Has Spaces"),
        (("entitlements", 1, "id"), "zj-amr-licensing"),  # ids are distinct
        (("entitlements", 0, "requester"), "zj/zj-amr"),
        (("entitlements", 0, "requester"), "ZJ/"),
        (("entitlements", 0, "types"), []),
        (("entitlements", 0, "purposes"), ["企业开办", "企业开办"]),
        (("entitlements", 0, "claims"), [""]),
        (("entitlements", 0, "without_consent"), 0),
        (("entitlements", 0, "valid_from"), _DELETE),
        (("entitlements", 1, "valid_until"), 1_000),
    ],
)
def test_trust_list_refuses(path: tuple[Any, ...], value: Any) -> None:
    payload = _mutated(_trust_list().to_payload(), path, value)
    with pytest.raises(FormatError) as info:
        TrustList.from_payload(payload)
    assert info.value.code in {"malformed", "unsupported_key"}


@given(json_objects)
def test_trust_list_random_objects_only_raise_format_error(payload: dict[str, Any]) -> None:
    with pytest.raises(FormatError):
        TrustList.from_payload(payload)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


_PAYLOAD = _trust_list().to_payload()
_PAYLOAD_PATHS = _paths(_PAYLOAD)


@settings(max_examples=300)
@given(st.sampled_from(_PAYLOAD_PATHS), json_values | st.just(_DELETE))
def test_trust_list_mutations_only_raise_format_error(path: tuple[Any, ...], value: Any) -> None:
    payload = _mutated(_PAYLOAD, path, value)
    try:
        trust_list = TrustList.from_payload(payload)
    except FormatError as e:
        assert e.code in {"malformed", "unsupported_key", "invalid_url"}
        return
    # Accepted: then it is a fixed point of to_payload/from_payload.
    assert TrustList.from_payload(trust_list.to_payload()) == trust_list


# -- certificate claims ------------------------------------------------------------------------


def _claims(**overrides: Any) -> CertificateClaims:
    fields: dict[str, Any] = {
        "iss": "https://ecert.gd.example/agencies/gd-amr", "sub": "pseudonym", "jti": "id",
        "iat": 1_767_225_600, "nbf": 1_767_225_600, "exp": 2_082_585_600,
        "vct": "cn.business-licence", "vct_version": 1, "region": "GD",
        "holder_name": "深圳市前海星河数字科技有限公司",
        "claims": {"name": "x", "nested": {"a": [1, 2]}},
        "status_list_uri": "https://ecert.gd.example/status/1.jwt", "status_index": 4711,
    }
    return CertificateClaims(**{**fields, **overrides})


def test_certificate_claims_round_trip() -> None:
    claims = _claims()
    payload = claims.to_payload()
    assert payload["status"] == {"status_list": {"idx": 4711,
                                                 "uri": "https://ecert.gd.example/status/1.jwt"}}
    assert "supersedes" not in payload
    assert CertificateClaims.from_payload(payload) == claims
    assert CertificateClaims.from_payload(
        jose.strict_json_loads(jose.canonical_json(payload))) == claims


def test_certificate_claims_round_trip_optional_members() -> None:
    claims = _claims(exp=None, supersedes="old-id")
    payload = claims.to_payload()
    assert "exp" not in payload and payload["supersedes"] == "old-id"
    assert CertificateClaims.from_payload(payload) == claims


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("iat",), True),
        (("iat",), False),
        (("iat",), "1767225600"),
        (("iat",), 1_767_225_600.0),
        (("nbf",), "1767225600"),
        (("nbf",), _DELETE),
        (("exp",), True),
        (("exp",), "2082585600"),
        (("exp",), 2_082_585_600.5),
        (("vct_version",), True),
        (("vct_version",), "1"),
        (("iss",), None),
        (("iss",), _DELETE),
        (("sub",), 5),
        (("jti",), ["id"]),
        (("vct",), {}),
        (("region",), 44),
        (("holder_name",), _DELETE),
        (("claims",), []),
        (("claims",), "claims"),
        (("claims",), _DELETE),
        (("supersedes",), 1),
        (("status",), _DELETE),
        (("status",), "https://ecert.gd.example/status/1.jwt"),
        (("status",), []),
        (("status", "status_list"), "x"),
        (("status", "status_list"), []),
        (("status", "status_list", "idx"), True),
        (("status", "status_list", "idx"), "4711"),
        (("status", "status_list", "idx"), -1),
        (("status", "status_list", "idx"), 4711.0),
        (("status", "status_list", "idx"), _DELETE),
        (("status", "status_list", "uri"), 1),
        (("status", "status_list", "uri"), _DELETE),
    ],
)
def test_certificate_claims_wrong_types_refused(path: tuple[Any, ...], value: Any) -> None:
    payload = _mutated(_claims().to_payload(), path, value)
    with pytest.raises(FormatError) as info:
        CertificateClaims.from_payload(payload)
    assert info.value.code == "bad_claims"


@given(json_objects)
def test_certificate_claims_random_objects_only_raise_format_error(
    payload: dict[str, Any],
) -> None:
    with pytest.raises(FormatError):
        CertificateClaims.from_payload(payload)


_CLAIMS_PAYLOAD = _claims().to_payload()


@given(st.sampled_from(_paths(_CLAIMS_PAYLOAD)), json_values | st.just(_DELETE))
def test_certificate_claims_mutations_only_raise_format_error(
    path: tuple[Any, ...], value: Any
) -> None:
    payload = _mutated(_CLAIMS_PAYLOAD, path, value)
    try:
        claims = CertificateClaims.from_payload(payload)
    except FormatError:
        return
    assert CertificateClaims.from_payload(claims.to_payload()) == claims


# -- status list slot allocation ---------------------------------------------------------------


@pytest.mark.parametrize("size", [*range(1, 70), 127, 128, 129, 255, 256, 257, 1000, 1024])
def test_permuted_index_is_a_bijection(size: int) -> None:
    slots = [permuted_index(b"k" * 32, n, size) for n in range(size)]
    assert sorted(slots) == list(range(size))


@settings(max_examples=20)
@given(st.binary(min_size=1, max_size=32), st.integers(1, 2000))
def test_permuted_index_is_a_bijection_property(key: bytes, size: int) -> None:
    slots = {permuted_index(key, n, size) for n in range(size)}
    assert slots == set(range(size))


def test_permuted_index_depends_on_the_key() -> None:
    size = 1024
    a = [permuted_index(b"\x01" * 32, n, size) for n in range(size)]
    b = [permuted_index(b"\x02" * 32, n, size) for n in range(size)]
    assert a != b
    assert sum(x == y for x, y in zip(a, b, strict=True)) < size // 10
    assert a != list(range(size))  # not the identity
    assert a == [permuted_index(b"\x01" * 32, n, size) for n in range(size)]  # deterministic


def test_permuted_index_on_full_list_size() -> None:
    size = 131_072
    first = [permuted_index(b"\x07" * 32, n, size) for n in range(2_000)]
    assert len(set(first)) == len(first)
    assert all(0 <= i < size for i in first)
    # Slots are spread over the list, not clustered at its start (herd privacy).
    assert max(first) > size * 0.9 and min(first) < size * 0.1


@pytest.mark.parametrize(("counter", "size"), [(-1, 10), (10, 10), (11, 10), (0, 0)])
def test_permuted_index_refuses_counter_outside_the_list(counter: int, size: int) -> None:
    with pytest.raises(ValueError):
        permuted_index(b"k", counter, size)


# -- purpose-bound copy ------------------------------------------------------------------------


def _copy() -> Any:
    from ecert._formats.copy import CopyClaims, OriginalRef

    return CopyClaims(
        iss="https://ecert.gd.example", jti="c-1", iat=2_000, exp=2_000 + 86_400,
        region="GD", aud="ZJ/zj-amr", purpose="企业开办", case="ZJ-2026-0001",
        copy_of="GD.11440000MB2C01234R.11100000MB0143028R001.00000001.K",
        original=OriginalRef("https://ecert.gd.example/agencies/gd-amr",
                             "cn.business-licence", 1, 1_000, 1_000, None),
        claims={"name": "某某有限公司"}, status_list_uri="https://ecert.gd.example/status/1.jwt",
        status_index=7)


def test_copy_round_trip() -> None:
    from ecert._formats.copy import CopyClaims

    copy_claims = _copy()
    wire = jose.strict_json_loads(jose.canonical_json(copy_claims.to_payload()))
    assert "vct" not in wire and wire["original"]["vct"] == "cn.business-licence"
    assert CopyClaims.from_payload(wire) == copy_claims


@pytest.mark.parametrize(("path", "value"), [
    (("vct",), "cn.business-licence"),  # the certificate's shape
    (("aud",), ""),
    (("purpose",), _DELETE),
    (("purpose",), "x" * 201),
    (("exp",), 2_000),
    (("exp",), 2_000 + 8 * 86_400),
    (("original",), "GD"),
    (("original", "vct_version"), "1"),
    (("status", "status_list", "idx"), -1),
    (("claims",), []),
])
def test_copy_refuses(path: tuple[Any, ...], value: Any) -> None:
    from ecert._formats.copy import CopyClaims

    with pytest.raises(FormatError) as info:
        CopyClaims.from_payload(_mutated(_copy().to_payload(), path, value))
    assert info.value.code == "bad_claims"


@given(json_objects)
def test_copy_random_objects_only_raise_format_error(payload: dict[str, Any]) -> None:
    from ecert._formats.copy import CopyClaims

    with pytest.raises(FormatError):
        CopyClaims.from_payload(payload)


# -- canonical JSON: orjson's verdicts are the stdlib's -------------------------------------


def _stdlib_verdict(data: bytes) -> tuple[Any, bool] | str:
    try:
        value = jose.strict_json_loads(data)
    except FormatError:
        return "refused"
    return value, jose.canonical_json(value) == data


def _fast_verdict(data: bytes) -> tuple[Any, bool] | str:
    try:
        return jose.parse_canonical(data)
    except FormatError:
        return "refused"


def test_orjson_is_installed_for_the_fast_path() -> None:
    """The test extra installs it (through "audit"), so the fast path is what runs here."""
    assert jose._orjson is not None


def test_every_code_point_encodes_alike() -> None:
    assert jose._orjson is not None
    for start in range(0, 0x110000, 0x800):
        text = "".join(chr(c) for c in range(start, start + 0x800)
                       if not 0xD800 <= c <= 0xDFFF)
        assert jose._orjson.dumps(text) == jose.stdlib_canonical_json(text)
        assert jose.canonical_json({text: [text]}) == jose.stdlib_canonical_json({text: [text]})


@settings(max_examples=500)
@given(json_values)
def test_canonical_json_is_the_stdlibs(value: Any) -> None:
    """orjson writes the bytes only where they are provably the stdlib's; elsewhere the
    stdlib does, errors included."""
    assert _outcome(jose.canonical_json, value) == _outcome(jose.stdlib_canonical_json, value)


def _outcome(encode: Any, value: Any) -> bytes | str:
    try:
        return bytes(encode(value))
    except (ValueError, TypeError) as e:
        return type(e).__name__


@pytest.mark.parametrize("value", [
    {"a": 1.5}, {"a": 10**20}, {"a": -(2**63) - 1}, {"a": 2**64}, {1: "x"}, ("a", 1),
    {"a": ("b",)}, {"a": float("nan")}, {"a": datetime(2026, 1, 1)}, {"a": b"x"},
    {"a": json.loads("[" * 70 + "1" + "]" * 70)},
])
def test_canonical_json_of_what_orjson_must_not_write(value: Any) -> None:
    assert _outcome(jose.canonical_json, value) == _outcome(jose.stdlib_canonical_json, value)


@pytest.mark.parametrize("data", [
    b'{"a":1,"b":[true,false,null,{}]}',
    b'{"b":1,"a":2}',  # not sorted
    b'{"a":1,"a":1}',  # duplicate member
    b'{"a":1.5}', b'{"a":1e+16}', b'{"a":1e16}', b'{"a":10000000000000000000000000000000}',
    b'{"a":18446744073709551616}', b'{"a":-9223372036854775809}',
    b'{"a":"\\ud800"}', b'{"a":"\\ud83d\\ude00"}', "{\"a\":\"\U0001F600\"}".encode(),
    b'{"a":"\\u001f"}', b'{"a":"\\u001F"}', b'{"a":"\\n"}', b'{"a":"\\/"}',
    b'{"a":NaN}', b'{"a":1} ', b'\xef\xbb\xbf{"a":1}', b'{"a":"\xff"}', b"[" * 2000 + b"]" * 2000,
])
def test_parse_canonical_agrees_with_the_stdlib(data: bytes) -> None:
    assert _fast_verdict(data) == _stdlib_verdict(data)


@settings(max_examples=300)
@given(json_values)
def test_parse_canonical_agrees_on_random_documents(value: Any) -> None:
    for data in (jose.canonical_json(value),
                 json.dumps(value, ensure_ascii=True).encode(),
                 json.dumps(value, sort_keys=True, separators=(",", ":"),
                            ensure_ascii=False).encode()):
        assert _fast_verdict(data) == _stdlib_verdict(data)


@given(st.binary(max_size=200), st.binary(max_size=300))
@settings(max_examples=300)
def test_hmac_sha256_is_rfc_2104_hmac(key: bytes, message: bytes) -> None:
    import hmac

    assert hmac_sha256(key, message) == hmac.digest(key, message, "sha256")
    assert hmac_sha256(key, message) == hmac.digest(key, message, "sha256")  # cached state
