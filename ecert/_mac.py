"""HMAC-SHA256 under a few long-lived registry keys, for per-row work.

``hmac.digest`` sets the key up again on every call (the two padded blocks hashed
anew): about half its cost for a short message. The registry MACs every row of a batch
several times under the same three or four keys (holder pseudonyms, commitments,
idempotency keys), so the keyed inner and outer states are kept per key and copied.
The result is RFC 2104 HMAC, byte for byte (tested against :mod:`hmac`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

_BLOCK = 64  # SHA-256's block size
#: Keyed states by key; registry keys are few (a test run makes many: bounded).
_states: dict[bytes, tuple[hashlib._Hash, hashlib._Hash]] = {}
_MAX_KEYS = 64


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key``."""
    states = _states.get(key)
    if states is None:
        states = _keyed(key)
    inner = states[0].copy()
    inner.update(message)
    outer = states[1].copy()
    outer.update(inner.digest())
    return outer.digest()


def mac_under(key: bytes) -> Callable[[bytes], bytes]:
    """:func:`hmac_sha256` under ``key`` as a function of the message, the keyed states
    looked up once: for thousands of messages under one key (a status list's tables)."""
    inner, outer = _states.get(key) or _keyed(key)

    def mac(message: bytes) -> bytes:
        h = inner.copy()
        h.update(message)
        o = outer.copy()
        o.update(h.digest())
        return o.digest()
    return mac


def _keyed(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    block = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
    block = block.ljust(_BLOCK, b"\0")
    states = (hashlib.sha256(bytes(b ^ 0x36 for b in block)),
              hashlib.sha256(bytes(b ^ 0x5C for b in block)))
    if len(_states) >= _MAX_KEYS:
        _states.clear()
    _states[bytes(key)] = states
    return states
