"""C2SP tlog-tiles resource names and entry bundles (https://c2sp.org/tlog-tiles).

A tiled log is a set of static files under a prefix: ``checkpoint``, the Merkle tree as
``tile/<L>/<N>[.p/<W>]`` and the entries as ``tile/entries/<N>[.p/<W>]``. ``<N>`` is written
in 3-digit groups, all but the last prefixed with ``x`` (1234067 is ``x001/x234/067``), so
the files can be served from a file system as they are. Parsing is canonical: a path is
accepted only if encoding what it decodes to gives the same path back.

An entry bundle is the entries of one level-0 tile, each a big-endian uint16 length and
that many bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ecert._formats.merkle import HASH_SIZE, TILE_HEIGHT, TILE_WIDTH
from ecert.errors import FormatError

__all__ = [
    "CHECKPOINT_PATH",
    "HASH_SIZE",
    "MAX_ENTRY_BYTES",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TilePath",
    "TilesError",
    "decode_entry_bundle",
    "decode_hash_tile",
    "encode_entry_bundle",
    "entries_path",
    "parse_tile_path",
    "tile_path",
]

#: Where the signed checkpoint is served, relative to the log prefix.
CHECKPOINT_PATH = "checkpoint"
#: Largest log entry: its length is a uint16.
MAX_ENTRY_BYTES = 0xFFFF
#: Levels are 0..63 in C2SP.
MAX_LEVEL = 63
#: Tile indices are bounded so a path cannot name a number without end.
_MAX_INDEX = (1 << 64) - 1
_MAX_PATH_CHARS = 128
_PATH = re.compile(
    r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?"
)


class TilesError(FormatError):
    """A tile path, tile or entry bundle is malformed (code ``malformed``)."""

    code = "malformed"


@dataclass(frozen=True, slots=True)
class TilePath:
    """A parsed tile path: ``level`` is ``None`` for an entry bundle."""

    level: int | None
    index: int
    width: int

    @property
    def is_partial(self) -> bool:
        """Whether the path names a partial tile (fewer than 256 hashes or entries)."""
        return self.width < TILE_WIDTH

    def path(self) -> str:
        """The path again."""
        if self.level is None:
            return entries_path(self.index, self.width)
        return tile_path(self.level, self.index, self.width)


def _encode_index(index: int) -> str:
    groups = []
    while True:
        index, group = divmod(index, 1000)
        groups.append(group)
        if not index:
            break
    groups.reverse()
    return "/".join([*(f"x{g:03d}" for g in groups[:-1]), f"{groups[-1]:03d}"])


def _suffix(index: int, width: int) -> str:
    if type(index) is not int or not 0 <= index <= _MAX_INDEX:
        raise TilesError(f"tile index {index!r} is out of range")
    if type(width) is not int or not 1 <= width <= TILE_WIDTH:
        raise TilesError(f"tile width {width!r} is not between 1 and {TILE_WIDTH}")
    encoded = _encode_index(index)
    return encoded if width == TILE_WIDTH else f"{encoded}.p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>`` for a full tile, ``tile/<L>/<N>.p/<W>`` for a partial one."""
    if type(level) is not int or not 0 <= level <= MAX_LEVEL:
        raise TilesError(f"tile level {level!r} is not between 0 and {MAX_LEVEL}")
    return f"tile/{level}/{_suffix(index, width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>`` for a full entry bundle, ``….p/<W>`` for a partial one."""
    return f"tile/entries/{_suffix(index, width)}"


def parse_tile_path(path: str) -> TilePath:
    """Parse a tile or entry bundle path (relative to the log prefix), canonically."""
    if not isinstance(path, str) or len(path) > _MAX_PATH_CHARS:
        raise TilesError("not a tile path")
    match = _PATH.fullmatch(path)
    if match is None:
        raise TilesError("not a tile path")
    level_text, index_text, width_text = match.groups()
    level = None if level_text == "entries" else int(level_text)
    index = int(index_text.replace("x", "").replace("/", ""))
    width = int(width_text) if width_text else TILE_WIDTH
    if (level is not None and level > MAX_LEVEL) or (width_text and width >= TILE_WIDTH):
        raise TilesError("not a tile path")
    if index > _MAX_INDEX:
        raise TilesError("tile index out of range")
    parsed = TilePath(level=level, index=index, width=width)
    # Only the canonical spelling names a tile: no zero groups in front, "x" where due.
    if parsed.path() != path:
        raise TilesError("not a canonical tile path")
    return parsed


def decode_hash_tile(data: bytes, width: int) -> list[bytes]:
    """Split a Merkle tree tile of ``width`` hashes into its 32-byte hashes."""
    if type(width) is not int or not 1 <= width <= TILE_WIDTH:
        raise TilesError(f"tile width {width!r} is not between 1 and {TILE_WIDTH}")
    if not isinstance(data, bytes) or len(data) != width * HASH_SIZE:
        raise TilesError(f"a tile of width {width} has {width * HASH_SIZE} bytes")
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries, each prefixed by its big-endian uint16 length (1 to 256 of them)."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise TilesError(f"an entry bundle holds 1 to {TILE_WIDTH} entries")
    parts = []
    for entry in entries:
        if not isinstance(entry, bytes) or len(entry) > MAX_ENTRY_BYTES:
            raise TilesError(f"log entries are at most {MAX_ENTRY_BYTES} bytes")
        parts.append(len(entry).to_bytes(2, "big") + entry)
    return b"".join(parts)


def decode_entry_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """Split an entry bundle; ``width``, if given, is the number of entries it must hold.

    Strict: every length prefix must be complete, the data must end exactly after the last
    entry, and a bundle holds 1 to 256 entries.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TilesError("an entry bundle is bytes")
    view = memoryview(data)
    expected = TILE_WIDTH if width is None else width
    if type(expected) is not int or not 1 <= expected <= TILE_WIDTH:
        raise TilesError(f"bundle width {width!r} is not between 1 and {TILE_WIDTH}")
    entries: list[bytes] = []
    offset = 0
    while offset < len(view):
        if len(entries) == expected:
            raise TilesError(f"entry bundle holds more than {expected} entries")
        if offset + 2 > len(view):
            raise TilesError("entry bundle ends inside a length prefix")
        length = int.from_bytes(view[offset:offset + 2], "big")
        offset += 2
        if offset + length > len(view):
            raise TilesError("entry bundle ends inside an entry")
        entries.append(bytes(view[offset:offset + length]))
        offset += length
    if not entries or (width is not None and len(entries) != width):
        raise TilesError(f"entry bundle holds {len(entries)} entries, not {width or '1+'}")
    return entries
