"""The taken slots of a status list (ecert/_slots.py): holes, marks, claims."""

from __future__ import annotations

import tracemalloc
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecert import _slots
from ecert._allocation import Permutation
from ecert._formats.statuslist import INVALID, VALID
from ecert._slots import (
    Slots,
    logged_changes,
    logged_list,
    logged_slots,
    read_claim,
    read_holes,
)

KEY = b"k" * 32


@settings(max_examples=80)
@given(st.integers(1, 600), st.lists(st.sets(st.integers(0, 599), max_size=30), max_size=4))
def test_slots_after_issues_mark_exactly_the_counters_taken(
        size: int, rounds: list[set[int]]) -> None:
    slots = Slots(0, (), "p", size, 2)
    taken: set[int] = set()
    for counters in rounds:
        fresh = {c for c in counters if slots.allocated <= c < size}
        slots = slots.after(fresh)
        taken |= fresh
    permute = Permutation(KEY, size)
    marks = slots.marks(KEY)
    assert {i for i in range(size) if marks[i] == VALID} == {permute(c) for c in taken}
    assert all(marks[i] in (VALID, INVALID) for i in range(size))
    assert slots.taken == len(taken)
    assert slots.allocated == (max(taken) + 1 if taken else 0)
    # What a list claims reads back as it was.
    assert read_claim(slots.to_json(), size, 2) == slots


@given(st.sampled_from([1, 2, 4, 8]), st.integers(1, 40),
       st.dictionaries(st.integers(0, 319), st.integers(0, 255), max_size=20))
def test_the_logged_list_holds_the_slots_and_invalid_elsewhere(
        bits: int, bytes_: int, slots: dict[int, int]) -> None:
    size = bytes_ * 8 // bits
    fits = all(0 <= i < size and not v >> bits for i, v in slots.items())
    if not fits:
        with pytest.raises(ValueError):
            logged_list(size, bits, slots)
        return
    lst = logged_list(size, bits, slots)
    assert (lst.size, lst.bits) == (size, bits)
    assert [lst[i] for i in range(size)] == [slots.get(i, INVALID) for i in range(size)]
    # A list far larger than the log's slots is packed slot by slot: the same list.
    with mock.patch.object(_slots, "_MARKS_AT_MOST", 0):
        assert logged_list(size, bits, slots).to_bytes() == lst.to_bytes()


def test_holes_that_overlap_are_out_of_order_or_beyond_the_count_are_refused() -> None:
    assert read_holes([[0, 2], [3, 5]], 5) == ((0, 2), (3, 5))
    for bad in ([[3, 5], [0, 2]], [[0, 3], [2, 5]], [[0, 6]], [[2, 2]], [[-1, 1]],
                [[0, True]], "[]", [[0, 1, 2]], [[0.0, 1]]):
        assert read_holes(bad, 5) is None, bad
    assert read_claim({"allocated": 3, "permutation": "p"}, 5, 2) == Slots(3, (), "p", 5, 2)
    assert read_claim({"allocated": 6, "permutation": "p"}, 5, 2) is None
    assert read_claim({"allocated": 3}, 5, 2) is None


def test_publication_entries_state_the_lists_whose_slots_changed() -> None:
    one, two = Slots(3, ((1, 2),), "a", 8, 2), Slots(0, (), "b", 8, 2)
    first = {"size": 10, "lists": logged_changes([(1, one), (2, two)], {})}
    at, known = logged_slots([first])
    assert (at, known) == (10, {1: one, 2: two})
    grown = Slots(5, ((1, 2),), "a", 8, 2)
    second = {"size": 20, "lists": logged_changes([(1, grown), (2, two)], known)}
    assert [item["list"] for item in second["lists"]] == [1]
    assert logged_slots([first, second]) == (20, {1: grown, 2: two})
    # Entries of ecert before 0.3 state nothing; an entry with an item not understood
    # ends the reading there (later entries state only changes since it).
    assert logged_slots([{"size": 5}]) == (None, {})
    assert logged_slots([{"size": 5, "lists": [{"list": 1, "allocated": 2}]}]) == (None, {})
    assert logged_slots([first, {"size": 15, "lists": [[1, 2, "a"]]}, second]) == \
        (10, {1: one, 2: two})


def test_a_huge_published_list_costs_what_the_log_holds() -> None:
    # A hostile publisher's list of 2**27 one-bit entries (16 MiB) against two logged
    # slots: the log's list is built packed, never a byte per entry (128 MiB).
    tracemalloc.start()
    try:
        lst = logged_list(1 << 27, 1, {5: VALID, 7: VALID})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (lst[5], lst[6], lst[7], lst[(1 << 27) - 1]) == (VALID, INVALID, VALID, INVALID)
    assert peak < 48 << 20, peak
