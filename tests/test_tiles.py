"""C2SP tlog-tiles paths and entry bundles: the spec's examples, canonical parsing, strict
bounded bundle decoding, and decoders that only raise FormatError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecert._formats import tiles
from ecert._formats.merkle import leaf_hash
from ecert._formats.tiles import (
    CHECKPOINT_PATH,
    TILE_HEIGHT,
    TILE_WIDTH,
    TilePath,
    TilesError,
    decode_entry_bundle,
    decode_hash_tile,
    encode_entry_bundle,
    entries_path,
    parse_tile_path,
    tile_path,
)
from ecert.errors import FormatError


def test_constants() -> None:
    assert (TILE_HEIGHT, TILE_WIDTH, CHECKPOINT_PATH) == (8, 256, "checkpoint")


@pytest.mark.parametrize(
    ("level", "index", "width", "path"),
    [
        (0, 0, 256, "tile/0/000"),
        (0, 5, 256, "tile/0/005"),
        (1, 999, 256, "tile/1/999"),
        (1, 1000, 256, "tile/1/x001/000"),
        (0, 1234067, 256, "tile/0/x001/x234/067"),
        (2, 1234067, 17, "tile/2/x001/x234/067.p/17"),
        (63, 0, 1, "tile/63/000.p/1"),
        (0, 273, 112, "tile/0/273.p/112"),
        (3, 10**9, 255, "tile/3/x001/x000/x000/000.p/255"),
    ],
)
def test_tile_paths(level: int, index: int, width: int, path: str) -> None:
    assert tile_path(level, index, width) == path
    assert parse_tile_path(path) == TilePath(level, index, width)
    entries = entries_path(index, width)
    assert entries == "tile/entries/" + path.split("/", 2)[2]
    assert parse_tile_path(entries) == TilePath(None, index, width)
    assert parse_tile_path(entries).path() == entries
    assert parse_tile_path(path).is_partial is (width < 256)


@pytest.mark.parametrize(
    "path",
    [
        "", "tile", "tile/0", "tile/0/", "tile/0/1", "tile/0/0001", "tile/0/x000/001",
        "tile/0/001/002", "tile/0/x001/02", "tile/00/000", "tile/64/000", "tile/-1/000",
        "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/007", "tile/0/000.p/",
        "tile/0/000.p", "/tile/0/000", "tile/0/000/", "tile/data/000", "tile/0/x001",
        "tile/0/X001/000", "tile/０/000", "tile/0/٠٠٠", "tile/8/0/001", "tile/0/000.p/1/2",
        "tile/entries/000.p/256", "tile/entries", "checkpoint", "tile/0/000\n",
        "tile/0/" + "x999/" * 40 + "000",
    ],
)
def test_non_canonical_or_foreign_paths_are_refused(path: str) -> None:
    with pytest.raises(TilesError) as info:
        parse_tile_path(path)
    assert info.value.code == "malformed"


@pytest.mark.parametrize(
    "call",
    [
        lambda: tile_path(64, 0, 256), lambda: tile_path(-1, 0, 256),
        lambda: tile_path(0, -1, 256), lambda: tile_path(0, 0, 0),
        lambda: tile_path(0, 0, 257), lambda: tile_path(True, 0, 256),
        lambda: entries_path(0, 0), lambda: entries_path(2**64, 1),
    ],
)
def test_path_encoders_refuse_impossible_tiles(call: object) -> None:
    with pytest.raises(TilesError):
        call()  # type: ignore[operator]


@settings(max_examples=30)
@given(st.integers(0, 63), st.integers(0, 2**64 - 1), st.integers(1, 256))
def test_paths_round_trip(level: int, index: int, width: int) -> None:
    assert parse_tile_path(tile_path(level, index, width)) == TilePath(level, index, width)
    assert parse_tile_path(entries_path(index, width)) == TilePath(None, index, width)


_path_alphabet = st.sampled_from(
    ["tile/", "entries/", "0", "1", "9", "x", "/", ".p/", "00", "x001/", "é", "-", "256"])


@settings(max_examples=30)
@given(st.one_of(st.text(max_size=60), st.lists(_path_alphabet, max_size=20).map("".join)))
def test_parse_tile_path_only_raises_format_error(path: str) -> None:
    try:
        parsed = parse_tile_path(path)
    except FormatError:
        return
    assert parsed.path() == path


# -- entry bundles and hash tiles -------------------------------------------------------------


def test_entry_bundle_layout() -> None:
    assert encode_entry_bundle([b"", b"ab", b"\x00" * 3]) == (
        b"\x00\x00" + b"\x00\x02ab" + b"\x00\x03\x00\x00\x00")
    big = b"z" * 0xFFFF
    assert decode_entry_bundle(encode_entry_bundle([big] * 2)) == [big, big]
    full = [bytes([i]) for i in range(256)]
    assert decode_entry_bundle(encode_entry_bundle(full), 256) == full


@pytest.mark.parametrize(
    ("data", "width"),
    [
        (b"", None),
        (b"\x00", None),
        (b"\x00\x02a", None),
        (b"\x00\x01a\x00", None),
        (b"\x00\x01a", 2),
        (b"\x00\x01a\x00\x01b", 1),
        (b"\x00\x00" * 257, None),
        (b"\x00\x00", 0),
        (b"\x00\x00", 257),
        ("\x00\x00", None),
    ],
)
def test_bad_entry_bundles(data: bytes, width: int | None) -> None:
    with pytest.raises(TilesError):
        decode_entry_bundle(data, width)


def test_entry_bundle_encoder_refuses() -> None:
    for entries in ([], [b"a"] * 257, [b"z" * 0x10000], ["text"]):
        with pytest.raises(TilesError):
            encode_entry_bundle(entries)  # type: ignore[arg-type]


@settings(max_examples=30)
@given(st.lists(st.binary(max_size=100), min_size=1, max_size=256))
def test_entry_bundles_round_trip(entries: list[bytes]) -> None:
    data = encode_entry_bundle(entries)
    assert decode_entry_bundle(data) == entries
    assert decode_entry_bundle(data, len(entries)) == entries
    with pytest.raises(TilesError):
        decode_entry_bundle(data[:-1] if data[-1:] else data + b"\x00")


@settings(max_examples=30)
@given(st.binary(max_size=600), st.one_of(st.none(), st.integers(-1, 300)))
def test_decode_entry_bundle_only_raises_format_error(data: bytes, width: int | None) -> None:
    with contextlib.suppress(FormatError):
        entries = decode_entry_bundle(data, width)
        assert encode_entry_bundle(entries) == data


def test_hash_tiles() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(3)]
    assert decode_hash_tile(b"".join(hashes), 3) == hashes
    for data, width in ((b"".join(hashes), 2), (b"x" * 31, 1), (b"", 0), (b"x" * 32 * 257, 257)):
        with pytest.raises(TilesError):
            decode_hash_tile(data, width)


def test_merkle_and_tiles_agree_on_geometry() -> None:
    assert tiles.TILE_WIDTH == 1 << tiles.TILE_HEIGHT == 256
