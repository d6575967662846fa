"""Status-list slot allocation: a keyed pseudo-random permutation of list indices.

The n-th certificate put on a list gets index ``permute(key, n)``: a bijection on
``[0, size)``, so every slot is drawn at random among the free ones and none is ever
reused, while allocation stays one atomic counter increment (no retry on collisions,
safe under concurrent issuers). Balanced Feistel network over HMAC-SHA256 with cycle
walking to fit sizes that are not an even power of two.
"""

from __future__ import annotations

import hashlib
import hmac

_ROUNDS = 8


def permuted_index(key: bytes, counter: int, size: int) -> int:
    """The slot of the ``counter``-th allocation (0-based) on a list of ``size`` entries."""
    if not 0 <= counter < size:
        raise ValueError("counter outside the list")
    half_bits = max(1, (max(size - 1, 1).bit_length() + 1) // 2)
    mask = (1 << half_bits) - 1
    value = counter
    while True:  # cycle walking: expected fewer than four passes
        left, right = value >> half_bits, value & mask
        for round_number in range(_ROUNDS):
            digest = hmac.new(
                key, round_number.to_bytes(1, "big") + right.to_bytes(8, "big"), hashlib.sha256
            ).digest()
            left, right = right, left ^ (int.from_bytes(digest[:8], "big") & mask)
        value = (left << half_bits) | right
        if value < size:
            return value
