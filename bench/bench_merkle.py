"""Tile-backed Merkle proofs: sizes and times at 10^3 and 10^6 leaves (and more on request).

For each tree size, the tiles are built once with ``integrate`` (in batches, as a log
would), then the table shows: integration time, tiles written, the root from tiles, and
for inclusion and consistency proofs the proof length (hashes and bytes), tiles read, and
the mean time to build and to verify one proof.

Run: ``python bench/bench_merkle.py [--sizes 1000 1000000] [--batch 1000] [--proofs 200]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from ecert._formats.merkle import (
    integrate,
    leaf_hash,
    tile_consistency_proof,
    tile_inclusion_proof,
    tile_root,
    verify_consistency,
    verify_inclusion,
)


class CountingReader:
    """Tiles in a dict, as a file system or object store would hold them."""

    def __init__(self) -> None:
        self.tiles: dict[tuple[int, int], bytes] = {}
        self.reads = 0

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        self.reads += 1
        return self.tiles[(level, index)][:width * 32]


def _mean_ms(samples: list[float]) -> float:
    return statistics.fmean(samples) * 1000


def bench(size: int, batch: int, proofs: int, rng: random.Random) -> list[str]:
    reader = CountingReader()
    hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(size)]
    start = time.perf_counter()
    current = 0
    written = 0
    top = b""
    while current < size:
        result = integrate(current, hashes[current:current + batch], reader)
        reader.tiles.update(result.tiles)
        written += len(result.tiles)
        current, top = result.new_size, result.root
    build = time.perf_counter() - start

    reader.reads = 0
    start = time.perf_counter()
    assert tile_root(size, reader) == top
    root_ms = (time.perf_counter() - start) * 1000
    root_reads = reader.reads

    rows = [f"{size:>9} | integrate {build:7.2f} s in batches of {batch}, {written} tile writes, "
            f"{len(reader.tiles)} tiles | root {root_ms:.2f} ms, {root_reads} tile reads"]

    make, check, lengths, reads = [], [], [], []
    for _ in range(proofs):
        index = rng.randrange(size)
        reader.reads = 0
        t0 = time.perf_counter()
        proof = tile_inclusion_proof(index, size, reader)
        t1 = time.perf_counter()
        assert verify_inclusion(hashes[index], index, size, proof, top)
        t2 = time.perf_counter()
        make.append(t1 - t0)
        check.append(t2 - t1)
        lengths.append(len(proof))
        reads.append(reader.reads)
    rows.append(_row("inclusion", lengths, reads, make, check))

    make, check, lengths, reads = [], [], [], []
    old_roots: dict[int, bytes] = {}
    for _ in range(proofs):
        old = rng.randrange(1, size + 1)
        if old not in old_roots:
            old_roots[old] = tile_root(old, reader)
        reader.reads = 0
        t0 = time.perf_counter()
        proof = tile_consistency_proof(old, size, reader)
        t1 = time.perf_counter()
        assert verify_consistency(old, size, proof, old_roots[old], top)
        t2 = time.perf_counter()
        make.append(t1 - t0)
        check.append(t2 - t1)
        lengths.append(len(proof))
        reads.append(reader.reads)
    rows.append(_row("consistency", lengths, reads, make, check))
    return rows


def _row(kind: str, lengths: list[int], reads: list[int], make: list[float],
         check: list[float]) -> str:
    return (f"{'':>9} | {kind:<11} | hashes {min(lengths):>2}-{max(lengths):>2} "
            f"(max {max(lengths) * 32:>4} B) | tile reads {min(reads)}-{max(reads)} | "
            f"build {_mean_ms(make):6.3f} ms | verify {_mean_ms(check):6.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 1_000_000])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--proofs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)  # reproducible sampling, not security
    print(f"{'leaves':>9} | tile-backed proofs (height 8), mean of {args.proofs} random ones")
    for size in args.sizes:
        for line in bench(size, args.batch, args.proofs, rng):
            print(line)


if __name__ == "__main__":
    main()
