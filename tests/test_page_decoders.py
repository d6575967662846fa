"""The page's decoders against the Python reference, on the same hostile inputs.

``core.js`` ports strict JSON (duplicate members, NaN, lone surrogates, integers against
floats, Python's int and nesting limits), strict base64url, QR texts (base45, the container,
the value encoding) and the link fragments' base43. Hypothesis makes the inputs; Chromium
decodes each batch in one call; every input must be refused by both or give the same value
(compared as canonical JSON, the bytes a signature covers).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecert._formats import qr as qr_format
from ecert._formats.copy import COPY_TYP
from ecert._formats.jose import b64url_decode, b64url_encode, canonical_json, strict_json_loads
from ecert.errors import FormatError

CORE = Path(__file__).parent.parent / "ecert" / "_data" / "verify" / "core.js"
SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def js(chromium: Any) -> Iterator[Any]:
    """A blank page with the verifier core loaded (no network, no page around it)."""
    context = chromium.new_context()
    page = context.new_page()
    page.add_script_tag(content=CORE.read_text("utf-8"))
    yield page
    context.close()


_JS_JSON = """(texts) => texts.map((t) => {
  try { return ['ok', EcertCore.canon(EcertCore.strictJSON(new Uint8Array(t)))]; }
  catch (e) { return ['refused', e.code || e.name]; }
})"""


def _py_json(data: bytes) -> list[str]:
    try:
        return ["ok", canonical_json(strict_json_loads(data)).decode("utf-8")]
    except FormatError as e:
        return ["refused", e.code]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=10)
_json_noise = st.sampled_from([
    b'{"a":1,"a":2}', b'{"a":{"b":1,"b":1}}', b"NaN", b"[1e999]", b"[-0]", b"[1.0]", b"01",
    b'"\\ud800"', b'"\\ud83d\\ude00"', b'"\\ud83d"', b"[1,]", b"\xef\xbb\xbf{}", b'"\x01"',
    # Nesting: Python refuses somewhat below its recursion limit (how far below depends on
    # the stack it is called from), the page beyond 960 levels.
    b"[" * 2000 + b"]" * 2000, b"[" * 900 + b"]" * 900, b"1" * 4301, b"1" * 4300, b'"\xed\xa0\x80"',
    b"{\"\\u0000\":true}", b" [1] ", b"[1] x", b"tru", b"-", b"1.", b".5", b"1e5", b'"\\x"',
])


@SETTINGS
@given(st.lists(_json_values.map(lambda v: json.dumps(v).encode()) | _json_noise
                | st.binary(max_size=20), min_size=1, max_size=40))
def test_strict_json_agrees_with_python(js: Any, inputs: list[bytes]) -> None:
    got = js.evaluate(_JS_JSON, [list(b) for b in inputs])
    for data, answer in zip(inputs, got, strict=True):
        expected = _py_json(data)
        if expected[0] == "refused":
            assert answer[0] == "refused", data[:80]
        else:
            assert answer == expected, data[:80]


_JS_B64 = """(texts) => texts.map((t) => {
  try { return Array.from(EcertCore.b64u(t)); } catch (e) { return null; }
})"""


@SETTINGS
@given(st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                 "0123456789-_=+/ \u00e9", max_size=12)
                | st.binary(max_size=9).map(b64url_encode), min_size=1, max_size=60))
def test_base64url_agrees_with_python(js: Any, texts: list[str]) -> None:
    got = js.evaluate(_JS_B64, texts)
    for text, answer in zip(texts, got, strict=True):
        try:
            expected: list[int] | None = list(b64url_decode(text))
        except FormatError:
            expected = None
        assert answer == expected, text


_JS_QR = """async (texts) => {
  const out = [];
  for (const t of texts) {
    try {
      const u = await EcertCore.qrUnwrap(t);
      out.push(['ok', u.alg, Array.from(u.kidRef), Array.from(u.signature),
                new TextDecoder().decode(u.payload), u.copy]);
    } catch (e) { out.push(['refused', e.code]); }
  }
  return out;
}"""


def _container(body: bytes, flags: int = 0) -> str:
    return "EC1:" + qr_format.b45encode(bytes([flags]) + b"\1\2\3\4" + bytes(64) + body)


_qr_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.binary(min_size=12, max_size=30).map(b64url_encode),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=10)
_payloads = st.one_of(
    _qr_values.map(qr_format.encode_value),
    _qr_values.map(lambda v: zlib.compress(qr_format.encode_value(v))[2:-4]),
    st.binary(max_size=40),
)


@SETTINGS
@given(st.lists(st.one_of(
    st.tuples(_payloads, st.sampled_from([0, 1, 4, 5, 8, 13, 16, 2])).map(
        lambda p: _container(*p)),
    st.text(alphabet=qr_format.BASE45_ALPHABET, max_size=120).map(lambda t: "EC1:" + t),
    st.sampled_from(["EC2:AAA", "EC01:AAA", "EC1:",
                     _container(zlib.compress(b"\0" * 9000)[2:-4], 4)]),  # a deflate bomb
), min_size=1, max_size=25))
def test_qr_container_agrees_with_python(js: Any, texts: list[str]) -> None:
    got = js.evaluate(_JS_QR, texts)
    for text, answer in zip(texts, got, strict=True):
        try:
            u = qr_format.unwrap(text)
            expected = ["ok", u.alg, list(u.kid_ref), list(u.signature), u.payload.decode(),
                        u.typ == COPY_TYP]
        except FormatError as e:
            expected = ["refused", e.code]
        assert answer == expected, text[:80]


def test_a_copys_qr_form_is_read_as_a_copy(js: Any) -> None:
    """Flag bit 3, a purpose-bound copy's QR form (format 17.4): read by both as a copy,
    never as a certificate's QR; bits 4-7 still refused."""
    text = _container(qr_format.encode_value({"a": 1}), 8)
    assert qr_format.unwrap(text).typ == COPY_TYP
    assert js.evaluate(_JS_QR, [text])[0][-1] is True
    assert js.evaluate(_JS_QR, [_container(qr_format.encode_value({"a": 1}), 24)]) == [
        ["refused", "qr_malformed"]]


@SETTINGS
@given(st.lists(st.binary(max_size=60).map(lambda b: "EC1:" + qr_format.b43encode(b))
                | st.text(alphabet=qr_format.BASE45_ALPHABET, max_size=20).map(
                    lambda t: "EC1:" + t), min_size=1, max_size=40))
def test_link_fragment_agrees_with_python(js: Any, fragments: list[str]) -> None:
    got = js.evaluate("""(fs) => fs.map((f) => {
      try { return EcertCore.qrTextFromLink(f); } catch (e) { return null; } })""", fragments)
    for fragment, answer in zip(fragments, got, strict=True):
        try:
            expected: str | None = qr_format.from_link_fragment(fragment)
        except FormatError:
            expected = None
        assert answer == expected, fragment
