"""Which slots of a status list were taken: what each publication states and the next
one starts from (format sections 15.8 and 15.9).

Slots are taken in the order of the list's permutation (``ecert._allocation``): the
``k``-th allocation takes ``permute(key, k)``. A publication judges every issue since the
state it starts from; the counters below ``allocated`` that no accepted issue took (an
issue by an operator the log never made, a counter an insider skipped) are **holes**:
they stay invalid in every list built from this state, and no later issue may take them.
Holes are kept as sorted, disjoint half-open ranges of counters, so a refused batch is
one range. Nothing here reads a database or a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecert._allocation import permutation
from ecert._formats.statuslist import (
    INVALID,
    MAX_LIST_BYTES,
    MIN_LIST_SIZE,
    VALID,
    StatusList,
)

#: Ranges of holes one list may carry (a refused batch is one range; publication leaves
#: out, with an alert, the issues that would make more, rather than grow the log entry).
MAX_HOLE_RANGES = 1_000

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Slots:
    """The taken slots of one list: counters below ``allocated`` but the ``holes``,
    under the permutation key whose digest is ``permutation``, in a list of ``size``
    entries of ``bits`` bits."""

    allocated: int
    holes: Ranges
    permutation: str
    size: int
    bits: int

    @property
    def taken(self) -> int:
        """How many slots issues took (what the log's replay counts)."""
        return self.allocated - sum(end - start for start, end in self.holes)

    def to_json(self) -> dict[str, Any]:
        """The members a status list's ``log`` claim and a publication entry carry."""
        return {"allocated": self.allocated, "holes": [list(r) for r in self.holes],
                "permutation": self.permutation}

    def after(self, counters: Iterable[int]) -> Slots:
        """This state once issues took ``counters`` (each at least ``allocated``): the
        counters skipped below the highest become holes."""
        fresh = sorted(set(counters))
        if not fresh:
            return self
        holes = list(self.holes)
        expected = self.allocated
        for counter in fresh:
            if counter > expected:
                holes.append((expected, counter))
            expected = counter + 1
        return Slots(expected, _merged(holes), self.permutation, self.size, self.bits)

    def marks(self, key: bytes) -> bytearray:
        """One byte per slot: taken ones valid, every other invalid."""
        size = self.size
        if self.allocated >= size and not self.holes:
            return bytearray([VALID]) * size
        marks = bytearray([INVALID]) * size
        permute = permutation(key, size)
        start = 0
        for hole_start, hole_end in (*self.holes, (self.allocated, self.allocated)):
            for counter in range(start, min(hole_start, size)):
                marks[permute(counter)] = VALID
            start = hole_end
        return marks

    def status_list(self, key: bytes) -> StatusList:
        """The list with its taken slots valid and no status change applied."""
        return StatusList.from_marks(self.bits, self.marks(key))


def _merged(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if start >= end:
            continue
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def read_holes(value: Any, allocated: int) -> Ranges | None:
    """Holes as a document states them (``[[start, end], …]``, sorted, disjoint, within
    ``allocated``); None if they are not so."""
    if not isinstance(value, list) or len(value) > MAX_HOLE_RANGES:
        return None
    out: list[tuple[int, int]] = []
    last = 0
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or type(item[0]) is not int
                or type(item[1]) is not int or not last <= item[0] < item[1] <= allocated):
            return None
        out.append((item[0], item[1]))
        last = item[1]
    return tuple(out)


def read_claim(logged: Mapping[str, Any], size: int, bits: int) -> Slots | None:
    """The slots a status list's ``log`` claim states for a list of ``size`` and
    ``bits``; None where the claim does not state them (lists before ecert 0.3)."""
    allocated, permutation = logged.get("allocated"), logged.get("permutation")
    if type(allocated) is not int or not 0 <= allocated <= size or not isinstance(
            permutation, str):
        return None
    holes = read_holes(logged.get("holes", []), allocated)
    return None if holes is None else Slots(allocated, holes, permutation, size, bits)


def claimed_taken(logged: Any, status_list: StatusList) -> int | None:
    """How many slots a published list's ``log`` claim says issues took (``allocated``
    but the holes), for the audit and monitors to compare with the log; None where the
    claim does not say (lists before ecert 0.3)."""
    if not isinstance(logged, Mapping):
        return None
    slots = read_claim(logged, status_list.size, status_list.bits)
    return None if slots is None else slots.taken


def taken_mismatch(claimed: int | None, logged: int) -> str | None:
    """The finding's detail where a list's claimed count is not the log's: the count the
    next publication starts from, so slots below it are never fresh again."""
    if claimed is None or claimed == logged:
        return None
    return f"the list says {claimed} slots were taken, the log took {logged}"


def logged_slots(publications: Iterable[Mapping[str, Any]]
                 ) -> tuple[int | None, dict[int, Slots]]:
    """What the log's accepted ``registry.publish`` entries say of the status lists:
    the log size of the newest entry that says it, and every list's slots as of that
    size (each entry names the lists whose slots changed since the entry before; a list
    no entry named did not exist then). ``(None, {})`` before the first such entry."""
    at: int | None = None
    known: dict[int, Slots] = {}
    for details in publications:
        named, size = details.get("lists"), details.get("size")
        if not isinstance(named, list) or type(size) is not int:
            continue
        stated: dict[int, Slots] = {}
        for item in named:
            slots = _logged_item(item)
            if slots is None:
                # An item this reading does not understand: the entries before it are
                # started from (the later ones state only changes since this one), so
                # more is replayed and no list is assumed empty.
                return at, known
            stated[item["list"]] = slots
        known.update(stated)
        at = size
    return at, known


def _logged_item(item: Any) -> Slots | None:
    if not isinstance(item, dict):
        return None
    list_id, list_size, bits = item.get("list"), item.get("size"), item.get("bits")
    if type(list_id) is not int or type(list_size) is not int or list_size < 1 \
            or bits not in (1, 2, 4, 8):
        return None
    return read_claim(item, list_size, bits)


def logged_changes(lists: Sequence[tuple[int, Slots]], known: Mapping[int, Slots]
                   ) -> list[dict[str, Any]]:
    """A publication entry's ``lists``: the lists whose slots differ from ``known``."""
    return [{"list": list_id, **slots.to_json(), "size": slots.size, "bits": slots.bits}
            for list_id, slots in lists if known.get(list_id) != slots]


def logged_list(size: int, bits: int, slots: Mapping[int, int]) -> StatusList:
    """The list the log says: each of ``slots`` with its status, every other index
    invalid. :class:`ValueError`, saying why, if a slot lies outside the list or its
    status does not fit in ``bits`` (a published list's shape is read from its file).

    A byte per entry, packed at the end, where the list is not far larger than the
    log's slots (the registry's own lists); a list a hostile publisher made huge is
    filled packed and set slot by slot, so memory and time follow the log, not it."""
    for index, value in slots.items():
        if not 0 <= index < size:
            raise ValueError(f"the log took slot {index}, the list has {size}")
        if value >> bits:
            raise ValueError(f"status {value} of slot {index} does not fit in {bits} bits")
    if size > _MARKS_AT_MOST and size > 8 * len(slots):
        lst = StatusList.filled(size, bits, INVALID)
        for index, value in slots.items():
            lst[index] = value
        return lst
    marks = bytearray([INVALID]) * size
    for index, value in slots.items():
        marks[index] = value
    return StatusList.from_marks(bits, marks)


#: Entries above which :func:`logged_list` packs slot by slot unless the log has many.
_MARKS_AT_MOST = 1 << 22


#: The bits of every list ecert makes (valid, invalid, suspended).
LIST_BITS = 2


def shape_problem(size: int, bits: int) -> str | None:
    """Why a list of ``size`` entries of ``bits`` bits is not one ecert makes, or None:
    ecert makes lists of 2 bits (a suspension needs them) holding a power of two of at
    least :data:`MIN_LIST_SIZE` entries (herd privacy) and no more than a verifier reads
    (:data:`MAX_LIST_BYTES`). A shape read from the database is checked before a
    permutation or a list is built for it: an insider's size of 2**40 would otherwise
    cost minutes and gigabytes."""
    if bits != LIST_BITS:
        return f"{bits} bits a slot (ecert makes {LIST_BITS})"
    if size < MIN_LIST_SIZE or size & (size - 1):
        return f"{size} slots (ecert makes a power of two of at least {MIN_LIST_SIZE})"
    if size * bits > MAX_LIST_BYTES * 8:
        return f"{size} slots (more than a verifier reads, {MAX_LIST_BYTES * 8 // bits})"
    return None
