"""The log's Merkle tree as the database holds it: C2SP tiles, brought up to the log.

Integration hashes the appended entries into the stored tiles. Publication integrates
whatever is left before it signs a checkpoint; a unit of work that appends many entries
(a chunk of a batch) integrates them before it commits, while their leaves are at hand,
so a registry built in bulk does not leave millions of entries for its first
publication. Either way the caller holds the log's counter row lock (taken by the
append, or first thing by publication): integration is never concurrent.
"""

from __future__ import annotations

from typing import Any

from ecert._formats import merkle
from ecert._storage.repository import Repository
from ecert.errors import StorageError

#: Log entries integrated at a time (a registry built one certificate at a time may have
#: millions to integrate at its first publication: memory stays bounded).
INTEGRATE_CHUNK = 65_536


class DbTiles:
    """The tree's tiles as the database holds them (newest version of each)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        found = self.repo.read_tile(level, index)
        if found is None or found[0] < width:
            raise StorageError(f"log tile {level}/{index} is missing from the database")
        return found[1][:width * merkle.HASH_SIZE]


def integrate(repo: Any) -> tuple[int, bytes]:
    """Bring the stored tiles up to every appended entry; return ``(size, root)``."""
    done = repo.counter("log_integrated")
    total = repo.counter("log_size")
    reader = DbTiles(repo)
    if total == done:
        return done, merkle.tile_root(done, reader)
    size, root = done, b""
    while size < total:
        end = min(size + INTEGRATE_CHUNK, total)
        leaves = repo.log_leaves(size, end)
        if len(leaves) != end - size:  # a range of the key: fewer rows are gaps
            raise StorageError("the log has gaps: run 'ecert audit verify'", code="log_gap")
        result = merkle.integrate(size, [merkle.leaf_hash(leaf) for leaf in leaves], reader)
        for (level, index), data in result.tiles.items():
            repo.put_tile(level, index, len(data) // merkle.HASH_SIZE, data)
        size, root = result.new_size, result.root
    repo.add_to_counter("log_integrated", size - done)
    return size, root
