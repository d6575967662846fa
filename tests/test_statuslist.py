"""IETF OAuth Token Status List: bit packing, the draft's vectors, bounded decoding."""

from __future__ import annotations

import base64
import struct
import tracemalloc
import zlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from ecert._formats import jose
from ecert._formats.statuslist import (
    MAX_LIST_BYTES,
    STATUS_LIST_TYP,
    StatusList,
    make_status_list_token,
    read_status_list_payload,
)
from ecert.errors import FormatError
from ecert.keys import LocalSigner

#: draft-ietf-oauth-status-list, section "Status List" example with 1-bit statuses.
ONE_BIT_STATUSES = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
ONE_BIT_BYTES = bytes([0xB9, 0xA3])
ONE_BIT_LST = "eNrbuRgAAhcBXQ"
#: The same section's 2-bit example.
TWO_BIT_STATUSES = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]
TWO_BIT_BYTES = bytes([0xC9, 0x44, 0xF9])
TWO_BIT_LST = "eNo76fITAAPfAgc"

MB = 1 << 20


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pack_by_hand(statuses: list[int], bits: int) -> bytes:
    """The draft's layout: entry i at bit offset i*bits, least significant bit first."""
    out = bytearray(len(statuses) * bits // 8)
    for index, value in enumerate(statuses):
        offset = index * bits
        out[offset // 8] |= value << (offset % 8)
    return bytes(out)


def claim(data: bytes, bits: int = 1) -> dict[str, Any]:
    return {"bits": bits, "lst": b64(zlib.compress(data))}


# -- the draft's vectors ---------------------------------------------------------------------


def test_vectors_recomputed_by_hand() -> None:
    # Check the numbers quoted from the draft before relying on them.
    assert pack_by_hand(ONE_BIT_STATUSES, 1) == ONE_BIT_BYTES
    assert b64(zlib.compress(ONE_BIT_BYTES, 9)) == ONE_BIT_LST
    assert pack_by_hand(TWO_BIT_STATUSES, 2) == TWO_BIT_BYTES
    assert b64(zlib.compress(TWO_BIT_BYTES, 9)) == TWO_BIT_LST
    # 0xb9 = 0b10111001: entries 0..7 read from the least significant bit.
    assert [(0xB9 >> i) & 1 for i in range(8)] == ONE_BIT_STATUSES[:8]
    assert [(0xC9 >> (2 * i)) & 3 for i in range(4)] == TWO_BIT_STATUSES[:4]


@pytest.mark.parametrize(
    ("statuses", "bits", "raw", "lst"),
    [
        (ONE_BIT_STATUSES, 1, ONE_BIT_BYTES, ONE_BIT_LST),
        (TWO_BIT_STATUSES, 2, TWO_BIT_BYTES, TWO_BIT_LST),
    ],
)
def test_draft_vector_encodes(statuses: list[int], bits: int, raw: bytes, lst: str) -> None:
    status_list = StatusList(len(statuses), bits)
    for index, value in enumerate(statuses):
        status_list[index] = value
    assert status_list.to_bytes() == raw
    assert status_list.encode() == {"bits": bits, "lst": lst}


@pytest.mark.parametrize(
    ("statuses", "bits", "raw", "lst"),
    [
        (ONE_BIT_STATUSES, 1, ONE_BIT_BYTES, ONE_BIT_LST),
        (TWO_BIT_STATUSES, 2, TWO_BIT_BYTES, TWO_BIT_LST),
    ],
)
def test_draft_vector_decodes(statuses: list[int], bits: int, raw: bytes, lst: str) -> None:
    status_list = StatusList.decode({"bits": bits, "lst": lst})
    assert status_list.bits == bits
    assert status_list.to_bytes() == raw
    assert len(status_list) == len(raw) * 8 // bits
    assert [status_list[i] for i in range(len(statuses))] == statuses


# -- get/set --------------------------------------------------------------------------------


@st.composite
def lists_and_values(draw: st.DrawFn) -> tuple[int, list[int]]:
    bits = draw(st.sampled_from([1, 2, 4, 8]))
    per_byte = 8 // bits
    size = draw(st.integers(1, 64)) * per_byte
    values = draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=size, max_size=size))
    return bits, values


@given(lists_and_values())
def test_set_then_get_round_trip(case: tuple[int, list[int]]) -> None:
    bits, values = case
    status_list = StatusList(len(values), bits)
    for index, value in enumerate(values):
        status_list[index] = value
    assert [status_list[i] for i in range(len(values))] == values
    assert status_list.to_bytes() == pack_by_hand(values, bits)
    decoded = StatusList.decode(status_list.encode())
    assert decoded.bits == bits
    assert decoded.to_bytes() == status_list.to_bytes()
    assert [decoded[i] for i in range(len(values))] == values


@given(lists_and_values(), st.data())
def test_differences_are_exactly_the_indices_whose_values_differ(
        case: tuple[int, list[int]], data: st.DataObject) -> None:
    bits, values = case
    other = list(values)
    for index in data.draw(st.lists(st.integers(0, len(values) - 1), max_size=10)):
        other[index] = data.draw(st.integers(0, (1 << bits) - 1))
    a, b = StatusList(len(values), bits), StatusList(len(values), bits)
    for index, (x, y) in enumerate(zip(values, other, strict=True)):
        a[index], b[index] = x, y
    expected = [i for i, (x, y) in enumerate(zip(values, other, strict=True)) if x != y]
    assert list(a.differences(b)) == expected == list(b.differences(a))
    assert a.count_differences(b) == len(expected) == b.count_differences(a)


def test_differences_refuse_lists_of_another_shape() -> None:
    with pytest.raises(ValueError):
        list(StatusList(8, 1).differences(StatusList(8, 2)))
    with pytest.raises(ValueError):
        list(StatusList(8, 2).differences(StatusList(16, 2)))
    with pytest.raises(ValueError):
        StatusList(8, 1).count_differences(StatusList(8, 2))


@given(
    st.sampled_from([1, 2, 4, 8]),
    st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=60),
)
def test_overwrites_touch_only_their_entry(bits: int, writes: list[tuple[int, int]]) -> None:
    size = 256
    status_list = StatusList(size, bits)
    model = [0] * size
    for index, value in writes:
        value &= (1 << bits) - 1
        status_list[index] = value
        model[index] = value
        assert [status_list[i] for i in range(size)] == model


def test_data_constructor_and_bytes() -> None:
    status_list = StatusList(16, 1, ONE_BIT_BYTES)
    assert [status_list[i] for i in range(16)] == ONE_BIT_STATUSES
    status_list[1] = 1
    assert status_list.to_bytes() == bytes([0xBB, 0xA3])


@pytest.mark.parametrize(
    ("size", "bits", "data"),
    [(8, 3, None), (8, 0, None), (8, 16, None), (0, 1, None), (-8, 1, None), (3, 1, None),
     (5, 2, None), (16, 1, b"\x00"), (16, 1, b"\x00" * 3)],
)
def test_constructor_refuses(size: int, bits: int, data: bytes | None) -> None:
    with pytest.raises(FormatError):
        StatusList(size, bits, data)


def test_index_and_value_bounds() -> None:
    status_list = StatusList(8, 2)
    for index in (-1, 8, 100):
        with pytest.raises(IndexError):
            status_list[index]
        with pytest.raises(IndexError):
            status_list[index] = 1
    for value in (-1, 4, 256):
        with pytest.raises(ValueError):
            status_list[0] = value
    assert status_list.to_bytes() == bytes(2)


# -- bounded, strict decoding ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A valid zlib stream of 100 MiB of zeros (about 100 KiB), built without 100 MiB.

    Full flushes make every 1 MiB block compress to the same bytes, so the middle block is
    repeated; the Adler-32 trailer is computed for the whole 100 MiB.
    """
    chunk, blocks = bytes(MB), 100
    compressor = zlib.compressobj(9)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    middle = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = compressor.compress(chunk) + compressor.flush()
    adler = 1
    for _ in range(blocks):
        adler = zlib.adler32(chunk, adler)
    stream = first + middle * (blocks - 2) + last[:-4] + struct.pack(">I", adler)
    # Check it is what it claims, inflating in bounded steps.
    inflater, total, pending = zlib.decompressobj(), 0, stream
    while pending:
        total += len(inflater.decompress(pending, 16 * MB))
        pending = inflater.unconsumed_tail
    assert total == blocks * MB and inflater.eof and not inflater.unused_data
    assert len(stream) < 200 * 1024
    return stream


def test_deflate_bomb_refused_without_inflating_it(bomb: bytes) -> None:
    lst = b64(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError) as info:
            StatusList.decode({"bits": 2, "lst": lst})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "too_large"
    # Bounded by the 16 MiB limit (the output buffer may briefly double while growing),
    # far from the 100 MiB the stream holds.
    assert peak < 2 * MAX_LIST_BYTES + 8 * MB < 50 * MB


def test_deflate_bomb_refused_with_a_small_limit(bomb: bytes) -> None:
    with pytest.raises(FormatError) as info:
        StatusList.decode({"bits": 1, "lst": b64(bomb)}, max_bytes=4096)
    assert info.value.code == "too_large"


def test_limit_is_exact() -> None:
    exact = claim(bytes(1024))
    assert len(StatusList.decode(exact, max_bytes=1024)) == 8192
    with pytest.raises(FormatError) as info:
        StatusList.decode(claim(bytes(1025)), max_bytes=1024)
    assert info.value.code == "too_large"


def test_oversized_lst_text_refused_before_decoding() -> None:
    with pytest.raises(FormatError) as info:
        StatusList.decode({"bits": 1, "lst": "A" * 2049}, max_bytes=2048)
    assert info.value.code == "too_large"


def _zlib_variants() -> list[tuple[str, str]]:
    good = zlib.compress(b"\x01\x02\x03\x04" * 8)
    gzip_compressor = zlib.compressobj(wbits=31)
    gzip_stream = gzip_compressor.compress(b"\x01" * 8) + gzip_compressor.flush()
    raw_compressor = zlib.compressobj(wbits=-15)
    raw_deflate = raw_compressor.compress(b"\x01" * 8) + raw_compressor.flush()
    bad_checksum = good[:-1] + bytes([good[-1] ^ 1])
    return [
        ("truncated", b64(good[:-5])),
        ("truncated_header_only", b64(good[:2])),
        ("no_checksum", b64(good[:-4])),
        ("bad_checksum", b64(bad_checksum)),
        ("trailing_garbage", b64(good + b"\x00")),
        ("two_streams", b64(good + good)),
        ("gzip", b64(gzip_stream)),
        ("raw_deflate", b64(raw_deflate)),
        ("garbage", b64(b"not zlib at all, just text")),
        ("empty_lst", ""),
        ("empty_stream", b64(zlib.compress(b""))),
        ("not_base64url", "eNrbuRgAAhcBXQ=="),
        ("base64_alphabet", "eNr+uRgAAhcBXQ"),
        ("non_canonical", "eNrbuRgAAhcBXR"),
    ]


@pytest.mark.parametrize(("name", "lst"), _zlib_variants(), ids=[n for n, _ in _zlib_variants()])
def test_malformed_lst_refused(name: str, lst: str) -> None:
    with pytest.raises(FormatError) as info:
        StatusList.decode({"bits": 1, "lst": lst})
    assert info.value.code == "malformed"


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        "eNrbuRgAAhcBXQ",
        {"lst": ONE_BIT_LST},
        {"bits": 1},
        {"bits": True, "lst": ONE_BIT_LST},
        {"bits": 1.0, "lst": ONE_BIT_LST},
        {"bits": "1", "lst": ONE_BIT_LST},
        {"bits": 3, "lst": ONE_BIT_LST},
        {"bits": 0, "lst": ONE_BIT_LST},
        {"bits": 16, "lst": ONE_BIT_LST},
        {"bits": 1, "lst": None},
        {"bits": 1, "lst": 5},
        {"bits": 1, "lst": ["eNrbuRgAAhcBXQ"]},
        {"bits": 1, "lst": {"a": 1}},
    ],
)
def test_malformed_claim_refused(value: Any) -> None:
    with pytest.raises(FormatError) as info:
        StatusList.decode(value)
    assert info.value.code == "malformed"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=10,
)


def _decode_only_format_error(value: Any) -> None:
    try:
        status_list = StatusList.decode(value, max_bytes=64 * 1024)
    except FormatError as e:
        assert e.code in {"malformed", "too_large"}
        return
    assert len(status_list) * status_list.bits == len(status_list.to_bytes()) * 8


@given(json_values)
def test_decode_random_json_only_raises_format_error(value: Any) -> None:
    _decode_only_format_error(value)


@given(st.dictionaries(st.sampled_from(["bits", "lst", "x"]), json_values))
def test_decode_random_dicts_only_raise_format_error(value: dict[str, Any]) -> None:
    _decode_only_format_error(value)


@given(st.sampled_from([1, 2, 4, 8, 3, True]), st.text(max_size=60))
def test_decode_random_lst_text_only_raises_format_error(bits: Any, lst: str) -> None:
    _decode_only_format_error({"bits": bits, "lst": lst})


@given(st.sampled_from([1, 2, 4, 8]), st.binary(max_size=80))
def test_decode_random_bytes_only_raises_format_error(bits: int, data: bytes) -> None:
    _decode_only_format_error({"bits": bits, "lst": b64(data)})


@given(st.sampled_from([1, 2, 4, 8]), st.binary(max_size=200), st.integers(0, 40),
       st.binary(max_size=3))
def test_decode_damaged_zlib_only_raises_format_error(
    bits: int, data: bytes, cut: int, junk: bytes
) -> None:
    stream = zlib.compress(data)
    damaged = stream[: max(0, len(stream) - cut)] + junk
    try:
        status_list = StatusList.decode({"bits": bits, "lst": b64(damaged)})
    except FormatError:
        return
    # Accepted only when it is exactly a complete, non-empty zlib stream.
    assert damaged == stream and data
    assert status_list.to_bytes() == data


# -- the status list token ------------------------------------------------------------------


def _signer() -> LocalSigner:
    return LocalSigner(ec.derive_private_key(1234, ec.SECP256R1()))


def test_status_list_token_round_trip() -> None:
    status_list = StatusList(16, 1, ONE_BIT_BYTES)
    uri = "https://ecert.gd.example/status/1.jwt"
    token = make_status_list_token(uri, status_list, _signer(), issued_at=100,
                                   expires_at=200, ttl=30)
    parsed = jose.parse_compact(token, max_bytes=10_000)
    assert parsed.header == {"alg": "ES256", "kid": _signer().kid, "typ": STATUS_LIST_TYP}
    assert STATUS_LIST_TYP == "statuslist+jwt"
    assert parsed.payload == {"sub": uri, "iat": 100, "exp": 200, "ttl": 30,
                              "status_list": {"bits": 1, "lst": ONE_BIT_LST}}
    content = read_status_list_payload(parsed.payload)
    assert (content.uri, content.issued_at, content.expires_at, content.ttl) == (uri, 100, 200,
                                                                                 30)
    assert content.status_list.to_bytes() == ONE_BIT_BYTES


def test_status_list_token_optional_exp_or_ttl() -> None:
    uri = "https://ecert.gd.example/status/2.jwt"
    for exp, ttl in ((200, None), (None, 30)):
        token = make_status_list_token(uri, StatusList(8, 1), _signer(), issued_at=100,
                                       expires_at=exp, ttl=ttl)
        payload = jose.parse_compact(token, max_bytes=10_000).payload
        assert ("exp" in payload, "ttl" in payload) == (exp is not None, ttl is not None)
        content = read_status_list_payload(payload)
        assert (content.expires_at, content.ttl) == (exp, ttl)


_GOOD = {"sub": "https://ecert.gd.example/status/1.jwt", "iat": 100, "exp": 200, "ttl": 30,
         "status_list": {"bits": 1, "lst": ONE_BIT_LST}}


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": None},
        {"sub": 1},
        {"iat": None},
        {"iat": True},
        {"iat": "100"},
        {"iat": 100.0},
        {"exp": "200"},
        {"exp": False},
        {"ttl": 0},
        {"ttl": -5},
        {"ttl": True},
        {"ttl": 1.5},
        {"exp": None, "ttl": None},
        {"status_list": None},
        {"status_list": {"bits": 1}},
        {"status_list": ONE_BIT_LST},
    ],
)
def test_status_list_payload_refused(changes: dict[str, Any]) -> None:
    payload = {k: v for k, v in {**_GOOD, **changes}.items() if v is not None}
    with pytest.raises(FormatError):
        read_status_list_payload(payload)
