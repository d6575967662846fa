"""Real documents with a few bytes overwritten, inserted or cut: inputs for property tests
and the fuzz corpus replay."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import strategies as st

from ecert.errors import FormatError


def mutate(seed: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """``seed`` with each edit ``(position, kind, chunk)`` applied: kind 0 overwrites,
    1 inserts, 2 deletes ``len(chunk)`` bytes at ``position`` (modulo the length)."""
    data = bytearray(seed)
    for position, kind, chunk in edits:
        at = position % (len(data) + 1)
        if kind == 0:
            data[at:at + len(chunk)] = chunk  # overwrite
        elif kind == 1:
            data[at:at] = chunk  # insert
        else:
            del data[at:at + len(chunk)]  # delete
    return bytes(data)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 2),
                           st.binary(min_size=1, max_size=6)), min_size=1, max_size=4)


def mutated(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Any of ``seeds`` with a few edits."""
    return st.builds(mutate, st.sampled_from(list(seeds)), EDITS)


def only_format_errors(*decoders: Callable[[], object]) -> None:
    """Call each decoder: it returns, or raises a FormatError with a code and message."""
    for decode in decoders:
        try:
            decode()
        except FormatError as e:
            assert e.code and e.message
