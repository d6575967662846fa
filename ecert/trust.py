"""Trust anchors and verified trust lists.

A verifier is configured with one :class:`TrustAnchor` (a region's pinned root key and
where its trust list lives). :func:`load_trust_list` accepts a trust list only if the
pinned root signed it, it is for that region, it is not older than one already seen
(rollback), and it is not past ``next_update`` plus a bounded grace (freeze).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecert._formats import bundle as _bundle
from ecert._formats.jose import check_header, key_from_jwk, parse_compact, verify_signature
from ecert._formats.trustlist import TRUST_LIST_TYP, TrustList
from ecert.errors import FormatError, TrustListError

__all__ = ["TrustAnchor", "TrustListError", "load_trust_list"]

#: A trust list document larger than this is refused before parsing.
MAX_TRUST_LIST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """A region's pinned root public key and the URL of its trust list."""

    region: str
    name: str
    root_jwk: dict[str, str]
    trust_list_url: str

    @property
    def kid(self) -> str:
        """Thumbprint of the root key."""
        return self.root_jwk["kid"]

    def to_bytes(self) -> bytes:
        """The ``anchor.json`` document."""
        base_url = self.trust_list_url.rsplit("/", 1)[0]
        return _bundle.encode_anchor(self.region, self.name, self.root_jwk, base_url)

    @classmethod
    def from_bytes(cls, data: bytes) -> TrustAnchor:
        """Parse an anchor document; raise :class:`TrustListError` if it is malformed."""
        try:
            doc: dict[str, Any] = _bundle.decode_anchor(data)
        except FormatError as e:
            raise TrustListError(f"anchor is malformed: {e.message}",
                                 code="anchor_malformed") from e
        return cls(doc["region"], doc["name"], dict(doc["root_key"]), doc["trust_list"])

    @classmethod
    def load(cls, path: str | Path) -> TrustAnchor:
        """Read an anchor file."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise TrustListError(f"cannot read anchor {path}: {e.strerror}",
                                 code="anchor_unreadable") from e
        return cls.from_bytes(data)


def load_trust_list(
    token: str,
    anchor: TrustAnchor,
    *,
    now: int,
    grace: int,
    seen_sequence: int | None = None,
) -> TrustList:
    """Verify a trust list against ``anchor`` and return its content.

    Raises :class:`TrustListError` with codes ``trust_list_malformed``,
    ``trust_list_bad_signature``, ``trust_list_wrong_region``, ``trust_list_rollback``
    or ``trust_list_expired``.
    """
    try:
        parsed = parse_compact(token.strip(), max_bytes=MAX_TRUST_LIST_BYTES)
        kid = check_header(parsed.header, TRUST_LIST_TYP)
    except FormatError as e:
        raise TrustListError(f"trust list is malformed: {e.message}",
                             code="trust_list_malformed") from e
    alg, key = key_from_jwk(anchor.root_jwk)
    if (kid != anchor.kid or parsed.header["alg"] != alg
            or not verify_signature(alg, key, parsed.signing_input, parsed.signature)):
        raise TrustListError(
            f"trust list of {anchor.region} is not signed by its pinned root key",
            code="trust_list_bad_signature",
        )
    try:
        trust_list = TrustList.from_payload(parsed.payload)
    except FormatError as e:
        raise TrustListError(e.message, code="trust_list_malformed") from e
    if trust_list.region != anchor.region:
        raise TrustListError(
            f"trust list is for region {trust_list.region}, anchor is {anchor.region}",
            code="trust_list_wrong_region",
        )
    if seen_sequence is not None and trust_list.sequence < seen_sequence:
        raise TrustListError(
            f"trust list sequence {trust_list.sequence} is older than {seen_sequence} "
            "already seen (rollback)",
            code="trust_list_rollback",
        )
    if now > trust_list.next_update + grace:
        raise TrustListError(
            f"trust list of {anchor.region} (sequence {trust_list.sequence}) is past its "
            "next update: republish it or refresh the bundle",
            code="trust_list_expired",
        )
    return trust_list
