"""Status-list slot allocation: a keyed pseudo-random permutation of list indices.

The n-th certificate put on a list gets index ``permute(key, n)``: a bijection on
``[0, size)``, so every slot is drawn at random among the free ones and none is ever
reused, while allocation stays one atomic counter increment (no retry on collisions,
safe under concurrent issuers). Balanced Feistel network over HMAC-SHA256 with cycle
walking to fit sizes that are not an even power of two.
"""

from __future__ import annotations

import functools
import hashlib

from ecert._mac import mac_under

_ROUNDS = 8


def permuted_index(key: bytes, counter: int, size: int) -> int:
    """The slot of the ``counter``-th allocation (0-based) on a list of ``size`` entries."""
    if not 0 <= counter < size:
        raise ValueError("counter outside the list")
    half_bits = max(1, (max(size - 1, 1).bit_length() + 1) // 2)
    mask = (1 << half_bits) - 1
    mac = mac_under(key)
    value = counter
    while True:  # cycle walking: expected fewer than four passes
        left, right = value >> half_bits, value & mask
        for round_number in range(_ROUNDS):
            digest = mac(round_number.to_bytes(1, "big") + right.to_bytes(8, "big"))
            left, right = right, left ^ (int.from_bytes(digest[:8], "big") & mask)
        value = (left << half_bits) | right
        if value < size:
            return value


class Permutation:
    """:func:`permuted_index` for one list, with its round functions tabulated.

    The Feistel rounds depend only on the round number and the right half, which takes
    ``2**half_bits`` values (512 for the smallest list): tabulating them once per list
    (8 × 512 HMACs, a few milliseconds) makes each index a few integer operations, where
    batch issuance would otherwise spend three bare signatures' time per certificate.
    The indices are those of :func:`permuted_index`, one for one.
    """

    def __init__(self, key: bytes, size: int) -> None:
        if size < 1:
            raise ValueError("empty list")
        self.size = size
        self._half_bits = max(1, (max(size - 1, 1).bit_length() + 1) // 2)
        mask = self._mask = (1 << self._half_bits) - 1
        mac = mac_under(key)
        self._rounds = [
            [int.from_bytes(mac(round_number.to_bytes(1, "big") + right.to_bytes(8, "big"))[:8],
                            "big") & mask
             for right in range(mask + 1)]
            for round_number in range(_ROUNDS)]

    def __call__(self, counter: int) -> int:
        """The slot of the ``counter``-th allocation (0-based)."""
        size = self.size
        if not 0 <= counter < size:
            raise ValueError("counter outside the list")
        half_bits, mask, rounds = self._half_bits, self._mask, self._rounds
        value = counter
        while True:
            left, right = value >> half_bits, value & mask
            for table in rounds:
                left, right = right, left ^ table[right]
            value = (left << half_bits) | right
            if value < size:
                return value

    def counter_of(self, index: int) -> int:
        """The allocation (0-based) that took slot ``index``: the inverse of calling.

        Each Feistel round is undone in reverse order; cycle walking backwards passes
        through the same values outside the list as forwards, so it ends at the counter.
        Publication uses it to tell a slot taken before a published list was made (whose
        counter is below the list's ``allocated``) from a fresh one.
        """
        size = self.size
        if not 0 <= index < size:
            raise ValueError("index outside the list")
        half_bits, mask, rounds = self._half_bits, self._mask, self._rounds
        value = index
        while True:
            left, right = value >> half_bits, value & mask
            for table in reversed(rounds):
                left, right = right ^ table[left], left
            value = (left << half_bits) | right
            if value < size:
                return value


@functools.lru_cache(maxsize=16)
def permutation(key: bytes, size: int) -> Permutation:
    """The :class:`Permutation` of a list, its tables made once for the last few lists a
    process used (a few milliseconds each: publication, the audit and batch issuance meet
    the same lists again and again)."""
    return Permutation(key, size)


def permutation_digest(key: bytes) -> str:
    """What a published status list says of its permutation key (base64url, 16 bytes of
    SHA-256 under a context): enough to tell that the key in the database is the one
    the list was built with, nothing of the key itself (32 random bytes)."""
    from ecert._formats.jose import b64url_encode

    return b64url_encode(hashlib.sha256(b"ecert status-list permutation\x00" + key)
                         .digest()[:16])
