"""IETF OAuth Token Status List: the bit array and the Status List Token (``statuslist+jwt``).

``lst`` is the base64url of the zlib (RFC 1950) compressed byte array; entry ``i`` of
``bits`` bits lives in byte ``i * bits // 8`` starting at the least significant bit.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ecert._formats.jose import (
    SignerLike,
    b64url_decode,
    b64url_encode,
    sign_compact,
)
from ecert.errors import FormatError

STATUS_LIST_TYP = "statuslist+jwt"

#: Status values (draft section 7.1). 3 is application specific; ecert never writes it.
VALID = 0x00
INVALID = 0x01
SUSPENDED = 0x02

#: Smallest list ecert publishes: 2^17 entries so one index reveals little (herd privacy).
MIN_LIST_SIZE = 131_072
#: Largest decompressed list a verifier accepts (bounds memory on hostile input).
MAX_LIST_BYTES = 16 * 1024 * 1024


class StatusList:
    """A mutable array of ``size`` statuses of ``bits`` bits each."""

    __slots__ = ("_data", "bits", "size")

    def __init__(self, size: int, bits: int = 2, data: bytes | None = None) -> None:
        if bits not in (1, 2, 4, 8):
            raise FormatError("status list bits must be 1, 2, 4 or 8", code="malformed")
        if size <= 0 or (size * bits) % 8:
            raise FormatError("status list size must fill whole bytes", code="malformed")
        self.bits = bits
        self.size = size
        nbytes = size * bits // 8
        if data is None:
            self._data = bytearray(nbytes)
        elif len(data) != nbytes:
            raise FormatError("status list data has the wrong length", code="malformed")
        else:
            self._data = bytearray(data)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(index)
        bit = index * self.bits
        return (self._data[bit >> 3] >> (bit & 7)) & ((1 << self.bits) - 1)

    def __setitem__(self, index: int, value: int) -> None:
        if not 0 <= index < self.size:
            raise IndexError(index)
        mask = (1 << self.bits) - 1
        if not 0 <= value <= mask:
            raise ValueError(f"status {value} does not fit in {self.bits} bits")
        bit = index * self.bits
        shift = bit & 7
        byte = self._data[bit >> 3] & ~(mask << shift)
        self._data[bit >> 3] = byte | (value << shift)

    @classmethod
    def filled(cls, size: int, bits: int, value: int) -> StatusList:
        """A list whose every entry is ``value``."""
        per_byte = 8 // bits
        byte = 0
        for i in range(per_byte):
            byte |= value << (i * bits)
        return cls(size, bits, bytes([byte]) * (size * bits // 8))

    @classmethod
    def from_marks(cls, bits: int, marks: bytes | bytearray) -> StatusList:
        """A list whose entry ``i`` is ``marks[i]`` (one byte per entry, each below
        ``2**bits``): packed with a few big-integer operations rather than one Python
        step per entry, for lists of millions."""
        if bits not in (1, 2, 4, 8):
            raise FormatError("status list bits must be 1, 2, 4 or 8", code="malformed")
        per_byte = 8 // bits
        if not marks or len(marks) % per_byte:
            raise FormatError("status list size must fill whole bytes", code="malformed")
        if max(marks) >> bits:
            raise ValueError(f"a status does not fit in {bits} bits")
        packed = 0
        for i in range(per_byte):  # entry i of each byte: its marks shifted into place
            packed |= int.from_bytes(marks[i::per_byte], "little") << (i * bits)
        return cls(len(marks), bits, packed.to_bytes(len(marks) // per_byte, "little"))

    def to_bytes(self) -> bytes:
        """The raw byte array."""
        return bytes(self._data)

    def differences(self, other: StatusList) -> Iterator[int]:
        """The indices, in order, where ``other`` (of the same size and bits) differs:
        the lists are compared as bytes first, so equal lists of millions cost a memory
        comparison and unequal ones a step per differing byte."""
        if (other.size, other.bits) != (self.size, self.bits):
            raise ValueError("status lists of different shapes")
        if self._data == other._data:
            return
        per_byte = 8 // self.bits
        for byte in _differing_bytes(self._data, other._data):
            for i in range(byte * per_byte, (byte + 1) * per_byte):
                if self[i] != other[i]:
                    yield i

    def count_differences(self, other: StatusList) -> int:
        """How many entries ``other`` (of the same size and bits) differs in, counted on
        the lists as whole numbers (no Python step per entry, nor a list of indices)."""
        if (other.size, other.bits) != (self.size, self.bits):
            raise ValueError("status lists of different shapes")
        folded = int.from_bytes(self._data, "little") ^ int.from_bytes(other._data, "little")
        shift = 1
        while shift < self.bits:  # each entry's bits ORed into its lowest one
            folded |= folded >> shift
            shift <<= 1
        lowest = int.from_bytes(bytes([_LOWEST_BITS[self.bits]]) * len(self._data), "little")
        return (folded & lowest).bit_count()

    def encode(self) -> dict[str, Any]:
        """The ``status_list`` claim: ``{"bits": …, "lst": …}``."""
        return {"bits": self.bits, "lst": b64url_encode(zlib.compress(self._data, 9))}

    @classmethod
    def decode(cls, claim: Any, *, max_bytes: int = MAX_LIST_BYTES) -> StatusList:
        """Decode a ``status_list`` claim; decompression is bounded by ``max_bytes``."""
        if not isinstance(claim, dict):
            raise FormatError("status_list is a JSON object", code="malformed")
        bits, lst = claim.get("bits"), claim.get("lst")
        if type(bits) is not int or bits not in (1, 2, 4, 8) or not isinstance(lst, str):
            raise FormatError("status_list needs bits (1, 2, 4, 8) and lst", code="malformed")
        if len(lst) > max_bytes:
            raise FormatError("status list is too large", code="too_large")
        compressed = b64url_decode(lst)
        inflater = zlib.decompressobj()
        try:
            # Inflate at most max_bytes + 1: a deflate bomb stops here, before memory grows.
            data = inflater.decompress(compressed, max_bytes + 1)
        except zlib.error as e:
            raise FormatError("status list is not zlib data", code="malformed") from e
        if len(data) > max_bytes or inflater.unconsumed_tail:
            raise FormatError("status list inflates beyond the limit", code="too_large")
        if not inflater.eof or inflater.unused_data:
            raise FormatError("status list zlib stream is truncated or padded", code="malformed")
        if not data:
            raise FormatError("status list is empty", code="malformed")
        return cls(len(data) * 8 // bits, bits, data)


@dataclass(frozen=True, slots=True)
class StatusListToken:
    """The verified content of a Status List Token."""

    uri: str
    issued_at: int
    expires_at: int | None
    ttl: int | None
    status_list: StatusList

    @property
    def expires(self) -> int | None:
        """When the list stops being usable: ``exp``, or without it ``iat + ttl`` (a list
        is never trusted forever)."""
        if self.expires_at is None and self.ttl is not None:
            return self.issued_at + self.ttl
        return self.expires_at


def make_status_list_token(
    uri: str,
    status_list: StatusList | Mapping[str, Any],
    signer: SignerLike,
    *,
    issued_at: int,
    expires_at: int | None,
    ttl: int | None,
    log: dict[str, Any] | None = None,
) -> str:
    """Sign a Status List Token for ``uri``; ``log`` names the log tree it was built from.

    ``status_list`` is the list, or its ``status_list`` claim as :meth:`StatusList.encode`
    made it (reused as it is, so an unchanged list is not compressed again).
    """
    claim = (status_list.encode() if isinstance(status_list, StatusList)
             else {"bits": status_list["bits"], "lst": status_list["lst"]})
    payload: dict[str, Any] = {"sub": uri, "iat": issued_at, "status_list": claim}
    if log is not None:
        payload["log"] = log
    if expires_at is not None:
        payload["exp"] = expires_at
    if ttl is not None:
        payload["ttl"] = ttl
    return sign_compact(payload, signer, STATUS_LIST_TYP)


def read_status_list_payload(payload: dict[str, Any]) -> StatusListToken:
    """Check the claims of a signature-verified status list token."""
    uri, iat = payload.get("sub"), payload.get("iat")
    exp, ttl = payload.get("exp"), payload.get("ttl")
    if not isinstance(uri, str) or type(iat) is not int:
        raise FormatError("status list token needs sub and iat", code="malformed")
    if exp is not None and type(exp) is not int:
        raise FormatError("status list exp must be an integer", code="malformed")
    if ttl is not None and (type(ttl) is not int or ttl <= 0):
        raise FormatError("status list ttl must be a positive integer", code="malformed")
    if exp is None and ttl is None:
        raise FormatError("status list token needs exp or ttl", code="malformed")
    return StatusListToken(uri, iat, exp, ttl, StatusList.decode(payload.get("status_list")))


#: The lowest bit of every entry of a byte, by bits per entry.
_LOWEST_BITS = {1: 0xFF, 2: 0x55, 4: 0x11, 8: 0x01}
#: A byte that is not zero (in the XOR of two lists: where they differ).
_NONZERO = re.compile(rb"[^\x00]")


def _differing_bytes(a: bytes | bytearray, b: bytes | bytearray) -> Iterator[int]:
    """The positions where equal-length ``a`` and ``b`` differ, found by a regular
    expression over their XOR (C speed, not a Python step per byte)."""
    xored = (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(
        len(a), "little")
    for match in _NONZERO.finditer(xored):
        yield match.start()
