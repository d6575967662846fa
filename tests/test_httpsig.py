"""HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530): the RFCs' own test
vectors, round trips of the ecert request profile, and strict refusals."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from ecert._formats import httpsig
from ecert._formats.httpsig import HttpMessage, ParsedSignature
from ecert._formats.jose import key_from_jwk
from ecert.errors import FormatError
from tests.support.mutation import mutated, only_format_errors

# RFC 9421 Appendix B.1.4 (test-key-ed25519) and B.1.3 (test-key-ecc-p256, public part).
ED25519_PRIVATE = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
ED25519_PUBLIC_X = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
P256_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf
w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END PUBLIC KEY-----
"""

# RFC 9421 Appendix B.2: the test request and response.
TEST_REQUEST = HttpMessage(
    headers=(("Host", "example.com"), ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
             ("Content-Type", "application/json"),
             ("Content-Digest", "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+Ab"
                                "wAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"),
             ("Content-Length", "18")),
    method="POST", target_uri="https://example.com/foo?param=Value&Pet=dog")
TEST_REQUEST_BODY = b'{"hello": "world"}'
TEST_RESPONSE = HttpMessage(
    headers=(("Date", "Tue, 20 Apr 2021 02:07:56 GMT"), ("Content-Type", "application/json"),
             ("Content-Digest", "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsP"
                                "p29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:"),
             ("Content-Length", "23")),
    status=200)
TEST_RESPONSE_BODY = b'{"message": "good dog"}'

B26_INPUT = ('sig-b26=("date" "@method" "@path" "@authority" "content-type" '
             '"content-length");created=1618884473;keyid="test-key-ed25519"')
B26_SIGNATURE = ("sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w"
                 "6vuQv5lIp5WPpBKRCw==:")
B26_BASE = (
    b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    b'"@method": POST\n'
    b'"@path": /foo\n'
    b'"@authority": example.com\n'
    b'"content-type": application/json\n'
    b'"content-length": 18\n'
    b'"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    b'"content-length");created=1618884473;keyid="test-key-ed25519"')
B24_INPUT = ('sig-b24=("@status" "content-type" "content-digest" "content-length")'
             ';created=1618884473;keyid="test-key-ecc-p256"')
B24_SIGNATURE = ("sig-b24=:wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5e"
                 "CdlYUEkLIj+32oiasw==:")


def _only(signature_input: str, signature: str) -> ParsedSignature:
    """Parse an RFC vector, whose single signature carries no tag."""
    inputs = httpsig.parse_dictionary(signature_input)
    sigs = httpsig.parse_dictionary(signature)
    [(label, inner)] = inputs.items()
    assert isinstance(inner, httpsig.InnerList)
    sig = sigs[label]
    assert isinstance(sig, httpsig.Item) and isinstance(sig.value, bytes)
    return ParsedSignature(label, httpsig._check_params(inner), sig.value)


def _ed25519_private() -> ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(ED25519_PRIVATE, None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


# -- RFC 9421 Appendix B ---------------------------------------------------------------------


def test_b26_ed25519_signature_base_and_signature_byte_for_byte() -> None:
    parsed = _only(B26_INPUT, B26_SIGNATURE)
    assert httpsig.signature_base(TEST_REQUEST, parsed.params) == B26_BASE
    signer = httpsig.as_signer(_ed25519_private(), "test-key-ed25519")
    signature_input, signature = httpsig.sign_message(
        TEST_REQUEST, signer,
        components=("date", "@method", "@path", "@authority", "content-type",
                    "content-length"),
        params={"created": 1618884473, "keyid": "test-key-ed25519"}, label="sig-b26")
    assert signature_input == ("Signature-Input", B26_INPUT)
    assert signature == ("Signature", B26_SIGNATURE)
    # The published public key verifies it through the profile's verifier.
    _, public = key_from_jwk({"kty": "OKP", "crv": "Ed25519", "x": ED25519_PUBLIC_X})
    httpsig.verify_message(TEST_REQUEST, parsed, public, required=("@method", "@path"))


def test_b24_ecdsa_p256_response_verifies() -> None:
    public = serialization.load_pem_public_key(P256_PUBLIC)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    parsed = _only(B24_INPUT, B24_SIGNATURE)
    httpsig.verify_message(TEST_RESPONSE, parsed, public, required=("@status",))
    tampered = HttpMessage(TEST_RESPONSE.headers, status=404)
    with pytest.raises(FormatError) as e:
        httpsig.verify_message(tampered, parsed, public, required=())
    assert e.value.code == "signature_invalid"


def test_b26_wrong_key_and_missing_components_are_refused() -> None:
    parsed = _only(B26_INPUT, B26_SIGNATURE)
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(FormatError, match="does not verify"):
        httpsig.verify_message(TEST_REQUEST, parsed, other, required=())
    _, public = key_from_jwk({"kty": "OKP", "crv": "Ed25519", "x": ED25519_PUBLIC_X})
    with pytest.raises(FormatError, match="does not cover @target-uri"):
        httpsig.verify_message(TEST_REQUEST, parsed, public)


@pytest.mark.parametrize(("component", "value"), [
    ("@method", "POST"),
    ("@target-uri", "https://example.com/foo?param=Value&Pet=dog"),
    ("@authority", "example.com"),
    ("@scheme", "https"),
    ("@path", "/foo"),
    ("@query", "?param=Value&Pet=dog"),
])
def test_rfc9421_derived_components_of_the_test_request(component: str, value: str) -> None:
    """RFC 9421 §2.2's examples over the Appendix B test request."""
    assert httpsig.component_value(TEST_REQUEST, component) == value


def test_derived_components_edge_cases() -> None:
    def of(uri: str, name: str) -> str:
        return httpsig.component_value(HttpMessage((), method="GET", target_uri=uri), name)

    assert of("http://EXAMPLE.com:80", "@authority") == "example.com"
    assert of("https://example.com:8443/a", "@authority") == "example.com:8443"
    assert of("http://127.0.0.1:8000", "@path") == "/"
    assert of("http://example.com/path", "@query") == "?"  # RFC 9421 §2.2.7
    for bad in ("ftp://example.com/", "/relative", "http://example.com:99999/"):
        with pytest.raises(FormatError):
            of(bad, "@authority")


# -- RFC 9530 --------------------------------------------------------------------------------


def test_rfc9530_examples() -> None:
    # RFC 9530 Appendix B.1: the representation {"hello": "world"}.
    assert httpsig.content_digest(TEST_REQUEST_BODY) == \
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    assert httpsig.content_digest(TEST_REQUEST_BODY, "sha-512") == \
        TEST_REQUEST.field("content-digest")
    httpsig.check_content_digest(
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", TEST_REQUEST_BODY)
    both = ("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, "
            + str(TEST_REQUEST.field("content-digest")))
    httpsig.check_content_digest(both, TEST_REQUEST_BODY)
    # An empty body (RFC 9530 Appendix B.3: the HEAD/204 case's empty representation).
    assert httpsig.content_digest(b"") == \
        "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    # RFC 9421 B.2's response body.
    httpsig.check_content_digest(str(TEST_RESPONSE.field("content-digest")),
                                 TEST_RESPONSE_BODY)


@pytest.mark.parametrize("value", [
    "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:" +
    base64.b64encode(b"\0" * 64).decode() + ":",  # one of two wrong
    "sha-256=:" + base64.b64encode(b"\0" * 32).decode() + ":",
    "md5=:" + base64.b64encode(b"\0" * 16).decode() + ":",  # nothing known
    "unixsum=:AAAA:",
])
def test_content_digest_mismatch(value: str) -> None:
    with pytest.raises(FormatError) as e:
        httpsig.check_content_digest(value, TEST_REQUEST_BODY)
    assert e.value.code == "digest_mismatch"


@pytest.mark.parametrize("value", [
    "", "sha-256", "sha-256=X48E", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE:",
    "sha-256=:AAAA:", "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:;p=1",
    "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, "
    "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",  # repeated key
    "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:,",
    "SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
    "sha-256=(:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:)",
])
def test_content_digest_malformed(value: str) -> None:
    with pytest.raises(FormatError) as e:
        httpsig.check_content_digest(value, TEST_REQUEST_BODY)
    assert e.value.code in {"malformed", "digest_mismatch"}


# -- the ecert request profile ---------------------------------------------------------------

URL = "http://127.0.0.1:8000/v1/copies?x=1"
NONCE = "bm9uY2Utbm9uY2UtMTIzNA"


def _signed(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, body: bytes = b"{}",
            nonce: str = NONCE, expires: int | None = None) -> HttpMessage:
    headers = httpsig.sign_request(
        method="POST", url=URL, body=body, content_type="application/json",
        signer=httpsig.as_signer(key, "kid-1"), created=1_800_000_000, nonce=nonce,
        expires=expires)
    return HttpMessage((("Host", "127.0.0.1:8000"), *headers), method="POST", target_uri=URL)


def _parse(message: HttpMessage) -> ParsedSignature:
    return httpsig.parse_signature(str(message.field("signature-input")),
                                   str(message.field("signature")))


@pytest.mark.parametrize("make", [ed25519.Ed25519PrivateKey.generate,
                                  lambda: ec.generate_private_key(ec.SECP256R1())])
def test_request_profile_round_trip(make: object) -> None:
    key = make()  # type: ignore[operator]
    message = _signed(key, expires=1_800_000_060)
    parsed = _parse(message)
    params = parsed.params
    assert params.components == httpsig.SHARE_COMPONENTS
    assert (params.created, params.expires, params.nonce, params.keyid, params.tag) == \
        (1_800_000_000, 1_800_000_060, NONCE, "kid-1", "ecert-share")
    assert params.alg in {"ed25519", "ecdsa-p256-sha256"}
    httpsig.verify_message(message, parsed, key.public_key())
    httpsig.check_content_digest(str(message.field("content-digest")), b"{}")
    httpsig.check_fresh(params, 1_800_000_030, window=300)
    for now in (1_800_000_060, 1_800_000_000 + 301, 1_800_000_000 - 301):
        with pytest.raises(FormatError) as e:
            httpsig.check_fresh(params, now, window=300)
        assert e.value.code == "request_stale"
    assert httpsig.check_nonce(params.nonce) == NONCE


def test_request_profile_refuses_changed_requests() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    message = _signed(key)
    parsed = _parse(message)
    changes = [
        HttpMessage(message.headers, method="PUT", target_uri=URL),
        HttpMessage(message.headers, method="POST", target_uri=URL.replace("x=1", "x=2")),
        HttpMessage(message.headers, method="POST",
                    target_uri=URL.replace("8000", "8001")),
        HttpMessage(tuple((k, "text/plain" if k == "Content-Type" else v)
                          for k, v in message.headers), method="POST", target_uri=URL),
        HttpMessage(tuple((k, v) for k, v in message.headers if k != "Content-Digest"),
                    method="POST", target_uri=URL),
    ]
    for changed in changes:
        with pytest.raises(FormatError) as e:
            httpsig.verify_message(changed, parsed, key.public_key())
        assert e.value.code == "signature_invalid"
    # An ES256 key cannot stand in for the ed25519 signature's alg.
    with pytest.raises(FormatError):
        httpsig.verify_message(message, parsed,
                               ec.generate_private_key(ec.SECP256R1()).public_key())


def test_the_tagged_signature_is_chosen_among_others() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    message = _signed(key)
    extra_input = 'proxy=("@method");created=1;keyid="p"'
    extra_sig = "proxy=:" + base64.b64encode(b"x" * 64).decode() + ":"
    parsed = httpsig.parse_signature(f"{extra_input}, {message.field('signature-input')}",
                                     f"{message.field('signature')}, {extra_sig}")
    httpsig.verify_message(message, parsed, key.public_key())
    with pytest.raises(FormatError) as e:
        httpsig.parse_signature(extra_input, extra_sig)
    assert e.value.code == "signature_missing"


SI = ('ecert=("@method" "@target-uri");created=1800000000;nonce="{n}";keyid="k";'
      'tag="ecert-share"').replace("{n}", NONCE)
SIG = "ecert=:" + base64.b64encode(b"s" * 64).decode() + ":"


@pytest.mark.parametrize(("signature_input", "signature"), [
    (SI + ";created=1", SIG),  # repeated parameter
    (SI.replace("created=1800000000", "created=1800000000.5"), SIG),  # decimal
    (SI.replace("created=1800000000", 'created="1800000000"'), SIG),
    (SI.replace(";created=1800000000", ""), SIG),
    (SI.replace(';keyid="k"', ""), SIG),
    (SI.replace(';keyid="k"', ';keyid=""'), SIG),
    (SI + ";expires=1", SIG),
    (SI + ';alg="hmac-sha256"', SIG),
    (SI + ';alg="rsa-pss-sha512"', SIG),
    (SI + ";other=1", SIG),
    (SI.replace('"@target-uri"', '"@target-uri";req'), SIG),
    (SI.replace('"@target-uri"', '"@method"'), SIG),  # covered twice
    (SI.replace('"@target-uri"', '"@query-param"'), SIG),
    (SI.replace('"@target-uri"', '"Content-Type"'), SIG),
    (SI.replace('"@target-uri"', "@target-uri"), SIG),  # a token, not a string
    (SI.replace("(", "").replace(")", ""), SIG),
    (SI, SIG.replace("ecert=", "other=")),
    (SI, SIG + ";x=1"),
    (SI, SIG.replace(":", "", 1)),
    (SI, 'ecert="c2lnbmF0dXJl"'),
    (SI + ", " + SI.replace("ecert=", "again="), SIG),  # two tagged signatures
    (SI + "\u00e9", SIG),
    (SI + ", ecert=1", SIG),  # repeated label
    (SI.replace('keyid="k"', 'keyid="k\\n"'), SIG),
    ("x" * 10_000, SIG),
])
def test_parse_signature_refuses(signature_input: str, signature: str) -> None:
    with pytest.raises(FormatError) as e:
        httpsig.parse_signature(signature_input, signature)
    assert e.value.code in {"malformed", "too_large", "signature_missing", "unsupported_alg"}


def test_nonce_is_required_and_checked() -> None:
    for nonce in (None, "short", "x" * 129, "has space in it please!!"):
        with pytest.raises(FormatError):
            httpsig.check_nonce(nonce)
    with pytest.raises(FormatError):
        _signed(ed25519.Ed25519PrivateKey.generate(), nonce="short")


def test_structured_field_parser_accepts_rfc8941_shapes() -> None:
    parsed = httpsig.parse_dictionary('a=1, b;x="y", c=(t1 :AQ==: ?0);p=-5,  d=tok/x:y')
    assert parsed["a"] == httpsig.Item(1)
    assert parsed["b"] == httpsig.Item(True, (("x", "y"),))
    assert parsed["c"] == httpsig.InnerList(
        (httpsig.Item(httpsig.Token("t1")), httpsig.Item(b"\x01"), httpsig.Item(False)),
        (("p", -5),))
    assert parsed["d"] == httpsig.Item(httpsig.Token("tok/x:y"))
    inner = parsed["c"]
    assert isinstance(inner, httpsig.InnerList)
    assert httpsig.serialize_inner_list(inner) == "(t1 :AQ==: ?0);p=-5"


# -- properties: decoders only ever raise FormatError ----------------------------------------


def _decoders(text: str) -> None:
    only_format_errors(lambda: httpsig.parse_dictionary(text),
                       lambda: httpsig.check_content_digest(text, b"{}"),
                       lambda: httpsig.parse_signature(text, SIG),
                       lambda: httpsig.parse_signature(SI, text))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_random_headers_only_raise_format_error(text: str) -> None:
    _decoders(text)


@settings(max_examples=200, deadline=None)
@given(mutated([SI.encode(), SIG.encode(),
                b"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"]))
def test_mutated_headers_only_raise_format_error(data: bytes) -> None:
    _decoders(data.decode("latin-1"))
