"""Entries of a region's public log (see docs/format.md, "The log").

Each entry is one leaf of an RFC 9162 Merkle tree: the canonical JSON of an object ::

    {"v": 1, "t": <seconds>, "a": <action>, "s": <subject>, "op": <operator kid>,
     "d": {<public details>}, "sig": <base64url, last entry of a unit only>}

A *unit of work* appends consecutive entries and is signed once by its operator over
the content hashes of its entries (every member but ``sig``), so a batch costs one
signature and the signature covers content, not positions. ``s`` is a public code (an
agency, a type, a region, a key id) or a keyed commitment ``c:<base64url>`` to a name
that must not be public (a certificate id, an operator's name): the registry can open
it for one subject without revealing the others (see :func:`commitment`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ecert._formats.jose import (
    SignerLike,
    b64url_decode,
    b64url_encode,
    canonical_json,
    key_from_jwk,
    parse_canonical,
    verify_signature,
)
from ecert._mac import hmac_sha256
from ecert.errors import FormatError

VERSION = 1
#: Largest entry accepted (tile entry bundles use 16-bit lengths).
MAX_ENTRY_BYTES = 65_535
_UNIT_CONTEXT = b"ecert-log-unit-v1\n"
_COMMIT_CONTEXT = b"ecert-commitment-v1\x00"
LEGACY_OPERATOR = "legacy"


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise FormatError(f"log entry: {what}", code="malformed")


@dataclass(frozen=True, slots=True)
class Entry:
    """A log entry's content (``sig`` is set on the last entry of a unit)."""

    time: int
    action: str
    subject: str
    operator: str
    details: Mapping[str, Any]
    sig: str | None = None
    #: SHA-256 of the leaf an entry without ``sig`` was decoded from: its content hash,
    #: the leaf being the canonical JSON of its content (checked by :meth:`decode`), so a
    #: replay checking a unit's signature does not encode every entry again.
    leaf_hash: bytes | None = field(default=None, compare=False, repr=False)

    def content(self) -> dict[str, Any]:
        """The members the unit signature covers."""
        return {"v": VERSION, "t": self.time, "a": self.action, "s": self.subject,
                "op": self.operator, "d": dict(self.details)}

    def content_hash(self) -> bytes:
        """SHA-256 of the canonical JSON of :meth:`content`."""
        if self.leaf_hash is not None and self.sig is None:
            return self.leaf_hash
        return hashlib.sha256(canonical_json(self.content())).digest()

    def encode(self) -> bytes:
        """The leaf: canonical JSON of the whole entry."""
        value = self.content()
        if self.sig is not None:
            value["sig"] = self.sig
        data = canonical_json(value)
        if len(data) > MAX_ENTRY_BYTES:
            raise FormatError("log entry too large", code="too_large")
        return data

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """Parse a leaf strictly; raise :class:`FormatError`."""
        _require(len(data) <= MAX_ENTRY_BYTES, "too large")
        value, canonical = parse_canonical(data)
        _require(isinstance(value, dict), "an entry is an object")
        _require(set(value) <= {"v", "t", "a", "s", "op", "d", "sig"}, "unknown member")
        _require(value.get("v") == VERSION and type(value.get("v")) is int, "version 1")
        t, a, s, op, d = (value.get(k) for k in ("t", "a", "s", "op", "d"))
        _require(type(t) is int and 0 <= t <= 253_402_300_799, "t is a time")
        _require(isinstance(a, str) and 0 < len(a) <= 64, "a is an action")
        _require(isinstance(s, str) and len(s) <= 256, "s is a subject")
        _require(isinstance(op, str) and 0 < len(op) <= 128, "op is an operator key id")
        _require(isinstance(d, dict), "d is an object")
        sig = value.get("sig")
        _require(sig is None or isinstance(sig, str), "sig is base64url")
        _require(canonical, "not canonical JSON")
        # Without a ``sig`` member the leaf is exactly the canonical content.
        return cls(t, a, s, op, d, sig,
                   None if "sig" in value else hashlib.sha256(data).digest())


def unit_message(entries: Sequence[Entry]) -> bytes:
    """What an operator signs for a unit of work: the content hashes, in order."""
    return _UNIT_CONTEXT + b"".join(e.content_hash() for e in entries)


def sign_unit(entries: Sequence[Entry], signer: SignerLike) -> list[Entry]:
    """The unit's entries with the operator's signature on the last one."""
    if not entries:
        raise FormatError("a unit of work has at least one entry", code="malformed")
    signature = b64url_encode(signer.sign(unit_message(entries)))
    last = entries[-1]
    return [*entries[:-1], Entry(last.time, last.action, last.subject, last.operator,
                                 last.details, signature)]


def sealed_leaves(entries: Sequence[Entry], signer: SignerLike) -> list[bytes]:
    """The leaves of ``sign_unit(entries, signer)``, each entry encoded once.

    An entry without ``sig`` is its own content, so its leaf is the bytes its content
    hash is taken of; only the last one is encoded again, with the signature. The same
    bytes as ``[e.encode() for e in sign_unit(entries, signer)]`` at half the JSON work
    (a batch unit holds hundreds of entries).
    """
    if not entries:
        raise FormatError("a unit of work has at least one entry", code="malformed")
    leaves = [canonical_json(e.content()) for e in entries]
    for leaf in leaves:
        if len(leaf) > MAX_ENTRY_BYTES:
            raise FormatError("log entry too large", code="too_large")
    message = _UNIT_CONTEXT + b"".join(hashlib.sha256(leaf).digest() for leaf in leaves)
    last = entries[-1]
    leaves[-1] = Entry(last.time, last.action, last.subject, last.operator, last.details,
                       b64url_encode(signer.sign(message))).encode()
    return leaves


def verify_unit(entries: Sequence[Entry], jwk: Mapping[str, str]) -> bool:
    """Whether the unit's signature (on its last entry) verifies under ``jwk``."""
    if not entries or entries[-1].sig is None or any(e.sig for e in entries[:-1]):
        return False
    if any(e.operator != entries[0].operator for e in entries):
        return False
    try:
        alg, key = key_from_jwk(jwk)
        signature = b64url_decode(entries[-1].sig)
    except FormatError:
        return False
    return verify_signature(alg, key, unit_message(entries), signature)


def commitment_opening(key: bytes, subject: str) -> bytes:
    """The per-subject secret that opens a commitment (revealing it reveals no other)."""
    return hmac_sha256(key, subject.encode("utf-8"))[:16]


def commit(opening: bytes, subject: str) -> str:
    """``c:`` + base64url SHA-256(context || opening || subject)."""
    digest = hashlib.sha256(_COMMIT_CONTEXT + opening + subject.encode("utf-8")).digest()
    return "c:" + b64url_encode(digest)


def commitment(key: bytes, subject: str) -> str:
    """The keyed commitment to ``subject`` that the public log shows instead of it."""
    return commit(commitment_opening(key, subject), subject)


def opens(commitment_value: str, opening: bytes, subject: str) -> bool:
    """Whether ``opening`` proves ``commitment_value`` commits to ``subject``."""
    return hmac.compare_digest(commit(opening, subject), commitment_value)


def token_hash(token: str) -> str:
    """How an entry names a signed document: base64url SHA-256 of its bytes."""
    return b64url_encode(hashlib.sha256(token.encode("ascii")).digest())
