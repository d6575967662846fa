"""Trust anchors and verified trust lists.

A verifier is configured with one :class:`TrustAnchor` (a region's pinned root key and
where its trust list lives). :func:`load_trust_list` accepts a trust list only if the
pinned root signed it, it is for that region, it is not older than one already seen
(rollback), and it is not past ``next_update`` plus a bounded grace (freeze).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecert._clock import now_seconds, system_clock
from ecert._formats import bundle as _bundle
from ecert._formats.jose import (
    check_header,
    jwk_thumbprint,
    key_from_jwk,
    parse_compact,
    verify_signature,
)
from ecert._formats.trustlist import ROOT_ROTATION_TYP, TRUST_LIST_TYP, Agreement, TrustList
from ecert._formats.url import check_http_url
from ecert._sources import BundleDirectory, DocumentSource, HttpSource
from ecert.errors import FormatError, TrustListError

__all__ = [
    "Agreement",
    "TrustAnchor",
    "TrustListError",
    "fetch_and_verify",
    "fetch_trust_list",
    "load_trust_list",
    "verify_trust_list",
]

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
    return verify_trust_list(token, anchor, now=now, grace=grace,
                             seen_sequence=seen_sequence)[0]


def verify_trust_list(
    token: str,
    anchor: TrustAnchor,
    *,
    now: int,
    grace: int,
    seen_sequence: int | None = None,
) -> tuple[TrustList, TrustAnchor]:
    """Like :func:`load_trust_list`, and also return the anchor now in force.

    A list signed by a newer root is accepted when its ``root_rotations`` chain leads
    from the pinned root to that key, each link signed by the key before it; the anchor
    returned then pins the new root, so verifiers follow rotations without re-pinning.
    """
    try:
        parsed = parse_compact(token.strip(), max_bytes=MAX_TRUST_LIST_BYTES)
        kid = check_header(parsed.header, TRUST_LIST_TYP)
        trust_list = TrustList.from_payload(parsed.payload)
    except FormatError as e:
        raise TrustListError(f"trust list is malformed: {e.message}",
                             code="trust_list_malformed") from e
    root_jwk = _follow_rotations(anchor, trust_list.root_rotations, kid)
    alg, key = key_from_jwk(root_jwk)
    if (kid != root_jwk["kid"] or parsed.header["alg"] != alg
            or not verify_signature(alg, key, parsed.signing_input, parsed.signature)):
        raise TrustListError(
            f"trust list of {anchor.region} is not signed by its pinned root key",
            code="trust_list_bad_signature",
        )
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
    current = anchor if root_jwk is anchor.root_jwk else TrustAnchor(
        anchor.region, trust_list.name, dict(root_jwk), anchor.trust_list_url)
    return trust_list, current


def _follow_rotations(anchor: TrustAnchor, statements: tuple[str, ...],
                      signer_kid: str) -> Mapping[str, str]:
    """The root key that signed the list, reached from the pinned root by rotations."""
    current: Mapping[str, str] = anchor.root_jwk
    if signer_kid == current["kid"]:
        return current
    for statement in statements:
        try:
            parsed = parse_compact(statement, max_bytes=64 * 1024)
            kid = check_header(parsed.header, ROOT_ROTATION_TYP)
        except FormatError as e:
            raise TrustListError(f"root rotation statement is malformed: {e.message}",
                                 code="trust_list_malformed") from e
        if kid != current["kid"]:
            continue  # a link from a root older than the one we trust
        alg, key = key_from_jwk(current)
        payload = parsed.payload
        new_root = payload.get("new_root_key")
        if (parsed.header["alg"] != alg
                or not verify_signature(alg, key, parsed.signing_input, parsed.signature)
                or payload.get("region") != anchor.region or not isinstance(new_root, dict)):
            raise TrustListError("root rotation statement is not signed by the previous root",
                                 code="trust_list_bad_signature")
        try:
            key_from_jwk(new_root)
        except FormatError as e:
            raise TrustListError("root rotation names an invalid key",
                                 code="trust_list_malformed") from e
        if new_root.get("kid") != jwk_thumbprint(new_root):
            raise TrustListError("root rotation key kid is not its thumbprint",
                                 code="trust_list_malformed")
        current = new_root
        if signer_kid == current["kid"]:
            return current
    raise TrustListError(
        f"trust list of {anchor.region} is not signed by its pinned root key",
        code="trust_list_bad_signature",
    )


def fetch_and_verify(
    anchor: TrustAnchor,
    source: DocumentSource,
    *,
    now: int,
    grace: int,
    seen_sequence: int | None = None,
) -> tuple[TrustList, TrustAnchor]:
    """Fetch ``anchor``'s trust list from ``source`` and verify it (see :func:`verify_trust_list`).

    A list that cannot be fetched, or whose URL is not one ecert fetches (see
    :func:`ecert._formats.url.check_http_url`), raises :class:`TrustListError`
    ``trust_list_unavailable``. Only a list that verified is reported to
    ``source.verified`` (so only such a list reaches a cache).
    """
    url = anchor.trust_list_url
    try:
        check_http_url(url)
        data = source.fetch(url, max_bytes=MAX_TRUST_LIST_BYTES)
    except (OSError, FormatError) as e:
        raise TrustListError(f"cannot fetch the trust list of {anchor.region} from "
                             f"{url[:200]!r}: {e}", code="trust_list_unavailable") from e
    verified = verify_trust_list(data.decode("ascii", "replace"), anchor, now=now,
                                 grace=grace, seen_sequence=seen_sequence)
    source.verified(url, data)
    return verified


def fetch_trust_list(anchor: TrustAnchor, *, bundle: str | Path | None = None,
                     now: int | None = None, grace: int = 86_400) -> TrustList:
    """Fetch and verify ``anchor``'s trust list from its URL (or a local ``bundle``)."""
    base_url = anchor.trust_list_url.rsplit("/", 1)[0]
    source: DocumentSource = (BundleDirectory(Path(bundle), base_url) if bundle is not None
                              else HttpSource())
    return fetch_and_verify(anchor, source, now=now_seconds(system_clock) if now is None else now,
                            grace=grace)[0]
