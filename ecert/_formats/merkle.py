"""RFC 9162 Merkle hash trees: hashes, proofs, verification, and tile-backed computation.

* :func:`leaf_hash`, :func:`node_hash`, :func:`root`, :func:`inclusion_proof` and
  :func:`consistency_proof` follow the recursive definitions of RFC 9162 section 2.1
  literally, over a list of leaf hashes in memory: they are the reference for small trees
  and tests.
* :func:`verify_inclusion` and :func:`verify_consistency` are the verification algorithms
  of RFC 9162 sections 2.1.3.2 and 2.1.4.2, step by step. They return ``False`` for every
  malformed or hostile input and never raise.
* The ``tile_*`` functions and :func:`integrate` compute the same values from the tiles of
  C2SP tlog-tiles (https://c2sp.org/tlog-tiles) through a :class:`TileReader`, reading
  O(log n) tiles, so that roots and proofs stay cheap at 10^7 leaves.

A level-``L`` tile holds the hashes of the perfect subtrees of height ``height * L``
(``height`` is 8 in C2SP, a parameter here only so tests can cross tile boundaries with
small trees); tile ``N`` of level ``L`` holds those with indices ``N*2**height`` onwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ecert.errors import FormatError

HASH_SIZE = 32
#: C2SP tlog-tiles tile height: a full tile holds 2**8 = 256 hashes.
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
#: MTH({}) = SHA-256 of the empty string (RFC 9162 section 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()
#: Tree sizes are unsigned 64-bit integers in every tlog format.
MAX_TREE_SIZE = (1 << 64) - 1
#: A proof in a tree of at most 2**64 - 1 leaves has at most 64 hashes (65 for
#: consistency once the first root is prepended); longer ones are refused unread.
_MAX_PROOF_HASHES = 64

_sha256 = hashlib.sha256


class MerkleError(FormatError):
    """A Merkle tree function was called with impossible arguments, or a tile was bad.

    Codes: ``invalid_argument`` (programmer misuse, e.g. an index outside the tree) and
    ``bad_tile`` (a :class:`TileReader` returned data of the wrong size).
    """

    code = "invalid_argument"


# -- hashing ---------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d) (RFC 9162 section 2.1.1)."""
    return _sha256(b"\x00" + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_hashes(hashes: Sequence[bytes]) -> None:
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise MerkleError("leaf hashes are 32-byte strings")


def _check_size(size: int, limit: int) -> None:
    if type(size) is not int or not 0 <= size <= limit:
        raise MerkleError(f"size {size!r} is outside the tree (0..{limit})")


# -- in memory, by the RFC's recursive definitions -------------------------------------------


def _mth(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) over leaf hashes (RFC 9162 section 2.1.1)."""
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[lo]
    k = _largest_power_of_two_below(n)
    return node_hash(_mth(hashes, lo, lo + k), _mth(hashes, lo + k, hi))


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes (``EMPTY_ROOT`` for none)."""
    _check_hashes(leaf_hashes)
    return _mth(leaf_hashes, 0, len(leaf_hashes))


def _path(hashes: Sequence[bytes], m: int, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]) (RFC 9162 section 2.1.3.1)."""
    n = hi - lo
    if n == 1:
        return []
    k = _largest_power_of_two_below(n)
    if m < k:
        return [*_path(hashes, m, lo, lo + k), _mth(hashes, lo + k, hi)]
    return [*_path(hashes, m - k, lo + k, hi), _mth(hashes, lo, lo + k)]


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of the first ``size`` leaves."""
    _check_hashes(leaf_hashes)
    _check_size(size, len(leaf_hashes))
    if type(index) is not int or not 0 <= index < size:
        raise MerkleError(f"leaf {index!r} is not in a tree of size {size}")
    return _path(leaf_hashes, index, 0, size)


def _subproof(hashes: Sequence[bytes], m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b) (RFC 9162 section 2.1.4.1)."""
    n = hi - lo
    if m == n:
        return [] if whole else [_mth(hashes, lo, hi)]
    k = _largest_power_of_two_below(n)
    if m <= k:
        return [*_subproof(hashes, m, lo, lo + k, whole), _mth(hashes, lo + k, hi)]
    return [*_subproof(hashes, m - k, lo + k, hi, False), _mth(hashes, lo, lo + k)]


def consistency_proof(m: int, n: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The consistency proof from the tree of ``m`` leaves to the tree of ``n`` leaves.

    Defined for ``0 < m <= n``; it is empty when ``m == n``.
    """
    _check_hashes(leaf_hashes)
    _check_size(n, len(leaf_hashes))
    if type(m) is not int or not 0 < m <= n:
        raise MerkleError(f"no consistency proof from size {m!r} to size {n}")
    return _subproof(leaf_hashes, m, 0, n, True)


# -- verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) ------------------------------------


def _is_hash(value: Any) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_size(value: Any) -> bool:
    # bool is an int subclass: True must not pass for a tree size of 1.
    return type(value) is int and 0 <= value <= MAX_TREE_SIZE


def _proof_hashes(proof: Any) -> list[bytes] | None:
    """The proof as a list of 32-byte hashes, or None if it is anything else."""
    if not isinstance(proof, list | tuple) or len(proof) > _MAX_PROOF_HASHES:
        return None
    if not all(_is_hash(p) for p in proof):
        return None
    return list(proof)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf ``leaf_hash`` at ``index`` in the tree ``(size, root)``."""
    path = _proof_hashes(proof)
    if (path is None or not _is_hash(leaf_hash) or not _is_hash(root)
            or not _is_size(index) or not _is_size(size)):
        return False
    # 1. If leaf_index >= tree_size, fail.
    if index >= size:
        return False
    # 2. fn = leaf_index, sn = tree_size - 1. 3. r = hash.
    fn, sn, r = index, size - 1, leaf_hash
    # 4. For each p in inclusion_path:
    for p in path:
        # a. If sn is 0, stop and fail.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or fn == sn:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # ii. If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0.
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        # c. Right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0 and r must equal the root.
    return sn == 0 and r == root


def verify_consistency(
    m: int, n: int, proof: Sequence[bytes], root_m: bytes, root_n: bytes
) -> bool:
    """Whether ``proof`` shows the tree ``(m, root_m)`` is a prefix of ``(n, root_n)``.

    ``m == n`` holds only with an empty proof and equal roots. ``m == 0`` is refused:
    RFC 9162 defines no proof from the empty tree (every tree extends it; there is
    nothing to check), as do the transparency-dev/merkle vectors.
    """
    path = _proof_hashes(proof)
    if (path is None or not _is_hash(root_m) or not _is_hash(root_n)
            or not _is_size(m) or not _is_size(n)):
        return False
    if m == 0 or m > n:
        return False
    if m == n:
        return not path and root_m == root_n
    # 1. If consistency_path is empty, fail.
    if not path:
        return False
    # 2. If first is an exact power of 2, prepend first_hash.
    if m & (m - 1) == 0:
        path.insert(0, root_m)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = m - 1, n - 1
    # 4. If LSB(fn) is set, right-shift fn and sn until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = the first value of the path.
    fr = sr = path[0]
    # 6. For each subsequent value c:
    for c in path[1:]:
        # a. If sn is 0, stop and fail.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or fn == sn:
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # ii. If LSB(fn) is not set, right-shift until LSB(fn) is set or fn is 0.
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        # c. Right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. fr must equal first_hash, sr second_hash, and sn must be 0.
    return sn == 0 and fr == root_m and sr == root_n


# -- tile-backed computation -----------------------------------------------------------------


class TileReader(Protocol):
    """Where the tile-backed functions read tiles (a directory, a database, HTTP, …)."""

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        """The first ``width`` hashes of tile ``index`` at ``level``, concatenated.

        ``width`` is the tile's width in the tree being worked on: 2**height for a full
        tile, less for the rightmost partial one. A reader may answer from the full tile
        or any wider partial tile, whose first ``width`` hashes are the same.
        """
        ...


def _tile_width(level: int, index: int, size: int, height: int) -> int:
    """Width of tile ``(level, index)`` in a tree of ``size`` leaves (0: not there)."""
    count = size >> (height * level)  # stored hashes at this level
    return max(0, min(1 << height, count - (index << height)))


def _hash_up(hashes: Sequence[bytes]) -> bytes:
    """MTH over a power-of-two number of subtree hashes."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class _TileNodes:
    """Perfect subtree hashes of a tree of ``size`` leaves, read from tiles and cached."""

    def __init__(self, reader: TileReader, size: int, height: int) -> None:
        if type(height) is not int or not 1 <= height <= 16:
            raise MerkleError("tile height is between 1 and 16")
        _check_size(size, MAX_TREE_SIZE)
        self.reader = reader
        self.size = size
        self.height = height
        self.tiles: dict[tuple[int, int], bytes] = {}

    def tile(self, level: int, index: int) -> bytes:
        key = (level, index)
        data = self.tiles.get(key)
        if data is None:
            width = _tile_width(level, index, self.size, self.height)
            data = self.reader.read_tile(level, index, width)
            if not isinstance(data, bytes) or len(data) != width * HASH_SIZE:
                raise MerkleError(
                    f"tile {level}/{index} must be {width} hashes", code="bad_tile"
                )
            self.tiles[key] = data
        return data

    def node(self, height: int, index: int) -> bytes:
        """The hash of the perfect subtree of ``height`` whose leaves start at index<<height."""
        level, rest = divmod(height, self.height)
        # The node is the MTH of 2**rest consecutive hashes of one level-`level` tile.
        first = index << rest
        tile_index, offset = divmod(first, 1 << self.height)
        data = self.tile(level, tile_index)
        count = 1 << rest
        return _hash_up(
            [data[i * HASH_SIZE:(i + 1) * HASH_SIZE] for i in range(offset, offset + count)]
        )

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a range that starts on a boundary of its own size."""
        if hi == lo:
            return EMPTY_ROOT
        # Decompose into perfect subtrees, largest first, and fold them from the right.
        nodes: list[bytes] = []
        start = lo
        for bit in range((hi - lo).bit_length() - 1, -1, -1):
            if (hi - lo) >> bit & 1:
                nodes.append(self.node(bit, start >> bit))
                start += 1 << bit
        result = nodes[-1]
        for left in reversed(nodes[:-1]):
            result = node_hash(left, result)
        return result

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _largest_power_of_two_below(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [self.mth(lo, hi)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, whole), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


def tile_root(size: int, reader: TileReader, *, height: int = TILE_HEIGHT) -> bytes:
    """The root of the tree of ``size`` leaves, from one tile per level."""
    return _TileNodes(reader, size, height).mth(0, size)


def tile_inclusion_proof(
    index: int, size: int, reader: TileReader, *, height: int = TILE_HEIGHT
) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves, from tiles."""
    nodes = _TileNodes(reader, size, height)
    if type(index) is not int or not 0 <= index < size:
        raise MerkleError(f"leaf {index!r} is not in a tree of size {size}")
    return nodes.path(index, 0, size)


def tile_consistency_proof(
    m: int, n: int, reader: TileReader, *, height: int = TILE_HEIGHT
) -> list[bytes]:
    """The consistency proof from size ``m`` to size ``n`` (``0 < m <= n``), from tiles.

    Tiles are read as they are in the tree of size ``n``.
    """
    nodes = _TileNodes(reader, n, height)
    if type(m) is not int or not 0 < m <= n:
        raise MerkleError(f"no consistency proof from size {m!r} to size {n}")
    return nodes.subproof(m, 0, n, True)


@dataclass(frozen=True, slots=True)
class IntegrationResult:
    """The tree after appending leaves: its size, root, and every tile that changed.

    ``tiles`` maps ``(level, index)`` to the tile's hashes; its width is
    ``len(data) // 32``, below 2**height for the rightmost partial tiles.
    """

    new_size: int
    root: bytes
    tiles: Mapping[tuple[int, int], bytes]


class _Overlay:
    """Tiles just computed, in front of the reader that holds the older ones."""

    def __init__(self, tiles: Mapping[tuple[int, int], bytes], reader: TileReader) -> None:
        self.tiles = tiles
        self.reader = reader

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        data = self.tiles.get((level, index))
        if data is not None:
            return data[:width * HASH_SIZE]
        return self.reader.read_tile(level, index, width)


def integrate(
    old_size: int,
    new_leaf_hashes: Sequence[bytes],
    reader: TileReader,
    *,
    height: int = TILE_HEIGHT,
) -> IntegrationResult:
    """Append leaf hashes to the tree of ``old_size`` leaves whose tiles ``reader`` serves.

    Returns every tile whose content differs between the two sizes: at each level, the
    old rightmost partial tile grown (possibly to full), the full tiles completed, and
    the new rightmost partial tile. Costs O(new leaves + log n) hashes and tile reads.
    """
    _check_size(old_size, MAX_TREE_SIZE)
    _check_hashes(new_leaf_hashes)
    new_size = old_size + len(new_leaf_hashes)
    _check_size(new_size, MAX_TREE_SIZE)
    if type(height) is not int or not 1 <= height <= 16:
        raise MerkleError("tile height is between 1 and 16")
    full = 1 << height
    tiles: dict[tuple[int, int], bytes] = {}
    # Hashes appended at the current level: the leaf hashes at level 0, then the roots
    # of the tiles completed at the level below.
    appended: list[bytes] = list(new_leaf_hashes)
    level = 0
    while appended:
        old_count = old_size >> (height * level)
        first_tile = old_count >> height
        # The old rightmost partial tile, if any, is read once and extended.
        old_width = old_count & (full - 1)
        pending = b"".join(appended)
        if old_width:
            previous = reader.read_tile(level, first_tile, old_width)
            if not isinstance(previous, bytes) or len(previous) != old_width * HASH_SIZE:
                raise MerkleError(
                    f"tile {level}/{first_tile} must be {old_width} hashes", code="bad_tile"
                )
            pending = previous + pending
        completed: list[bytes] = []
        tile_bytes = full * HASH_SIZE
        for offset in range(0, len(pending), tile_bytes):
            data = pending[offset:offset + tile_bytes]
            tiles[(level, first_tile + offset // tile_bytes)] = data
            if len(data) == tile_bytes:
                completed.append(_hash_up(
                    [data[i:i + HASH_SIZE] for i in range(0, tile_bytes, HASH_SIZE)]
                ))
        appended = completed
        level += 1
    return IntegrationResult(
        new_size=new_size,
        root=tile_root(new_size, _Overlay(tiles, reader), height=height),
        tiles=tiles,
    )


def tiles_for_size(size: int, *, height: int = TILE_HEIGHT) -> list[tuple[int, int, int]]:
    """Every tile ``(level, index, width)`` of a tree of ``size`` leaves (C2SP layout)."""
    _check_size(size, MAX_TREE_SIZE)
    result: list[tuple[int, int, int]] = []
    level = 0
    while size >> (height * level):
        count = size >> (height * level)
        for index in range((count + (1 << height) - 1) >> height):
            result.append((level, index, _tile_width(level, index, size, height)))
        level += 1
    return result

