"""Regions of the vectors and the bundles they publish, built from the pure formats.

A :class:`Region` holds its keys, agencies and types, and what it issued: the status
list entries it allocated and the ``certificate.issue`` entries of its log. A
:class:`Publication` of a region is one bundle (anchor, trust list, status lists, log
tiles and checkpoint, JWKS) as ``ecert publish`` lays it out (format section 9.1), with
whatever a case needs changed: another sequence, time or root, other agreements, a
status list signed by the wrong key. No registry is involved: the log holds only the
issue entries the vectors need (it is not a log an audit could replay), and documents a
registry would refuse to publish are written all the same, as a hostile host would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from ecert._formats import bundle as _bundle
from ecert._formats import merkle, tiles
from ecert._formats.jose import SignerLike, b64url_encode
from ecert._formats.log import Entry, commitment, sign_unit, token_hash
from ecert._formats.note import Checkpoint, NoteSigner, sign_note
from ecert._formats.statuslist import INVALID, MIN_LIST_SIZE, StatusList, make_status_list_token
from ecert._formats.trustlist import (
    Agreement,
    Entitlement,
    LogInfo,
    TrustedAgency,
    TrustedKey,
    TrustList,
    TypeEntry,
    TypeWindow,
)
from ecert._vectors.keys import SeededSigner, derive
from ecert.monitor import LOG_DIR, log_origin
from ecert.trust import TrustAnchor

DAY = 86_400
HOUR = 3_600


@dataclass(frozen=True, slots=True)
class Key:
    """A key and its validity, as a trust list's key entry states it (section 7.3)."""

    signer: SeededSigner
    valid_from: int
    valid_until: int | None = None
    compromised_since: int | None = None

    @property
    def kid(self) -> str:
        """The key's thumbprint."""
        return self.signer.kid

    @property
    def entry(self) -> TrustedKey:
        """The trust list entry; its ``status`` follows from the times."""
        status = ("compromised" if self.compromised_since is not None
                  else "retired" if self.valid_until is not None else "active")
        return TrustedKey(self.signer.public_jwk, self.valid_from, self.valid_until, status,
                          self.compromised_since)


@dataclass(frozen=True, slots=True)
class AgencySpec:
    """An issuing agency: its keys, the types it may always issue, and its windows."""

    code: str
    name: str
    uscc: str
    types: tuple[str, ...]
    keys: tuple[Key, ...]
    windows: tuple[TypeWindow, ...] = ()


@dataclass
class Region:
    """A region of the vectors and what it has issued so far."""

    code: str
    name: str
    base_url: str
    root: SeededSigner
    status_key: Key
    log_key: SeededSigner
    agencies: Mapping[str, AgencySpec]
    types: tuple[TypeEntry, ...]
    seed: bytes
    sharing_keys: tuple[Key, ...] = ()
    entitlements: tuple[Entitlement, ...] = ()
    #: Allocated status list entries: list number → index → value.
    statuses: dict[int, dict[int, int]] = field(default_factory=dict)
    #: The log's leaves, in order.
    leaves: list[bytes] = field(default_factory=list)

    def agency_uri(self, code: str) -> str:
        """The ``iss`` of the agency's certificates."""
        return f"{self.base_url}/agencies/{code}"

    def status_uri(self, number: int) -> str:
        """The URI of status list ``number``."""
        return _bundle.status_list_uri(self.base_url, number)

    def type_entry(self, code: str) -> TypeEntry:
        """The catalog entry of type ``code``."""
        (entry,) = (t for t in self.types if t.code == code)
        return entry

    def anchor(self, root: SeededSigner | None = None) -> TrustAnchor:
        """The region's anchor, pinning ``root`` (its first root by default)."""
        return TrustAnchor(self.code, self.name, (root or self.root).public_jwk,
                           _bundle.trust_list_url(self.base_url))

    def agreement(self, *, valid_from: int, types: Mapping[str, str],
                  valid_until: int | None = None) -> Agreement:
        """An agreement by which another region recognizes this one."""
        return Agreement(self.code, self.name, self.root.public_jwk,
                         _bundle.trust_list_url(self.base_url), valid_from, valid_until,
                         dict(types))

    def allocate(self, number: int, value: int) -> int:
        """A fresh index of list ``number`` (spread over the list as ecert's permutation
        spreads them, but derived from the seed), set to ``value``."""
        taken = self.statuses.setdefault(number, {})
        counter = 0
        while True:
            digest = derive(self.seed, f"{self.code}/status/{number}/{len(taken)}/{counter}")
            index = int.from_bytes(digest[:4], "big") % MIN_LIST_SIZE
            if index not in taken:
                taken[index] = value
                return index
            counter += 1  # pragma: no cover - a clash among a few dozen of 131,072

    def holder(self, holder_id: str) -> str:
        """A holder pseudonym (``sub``, section 5): 22 base64url characters."""
        return b64url_encode(derive(self.seed, f"{self.code}/holder/{holder_id}")[:16])

    def log_issue(self, token: str, certificate_id: str, agency: str, type_code: str,
                  kid: str, number: int, index: int, time: int,
                  operator: SeededSigner) -> int:
        """Append the ``certificate.issue`` entry of ``token``; returns its leaf index."""
        entry = Entry(time, "certificate.issue",
                      commitment(derive(self.seed, f"{self.code}/commitments"), certificate_id),
                      operator.kid,
                      {"agency": agency, "type": type_code, "kid": kid, "list": number,
                       "idx": index, "token": token_hash(token)})
        (signed,) = sign_unit([entry], operator)
        self.leaves.append(signed.encode())
        return len(self.leaves) - 1

    @property
    def log_origin(self) -> str:
        """The log's origin line (:func:`ecert.monitor.log_origin`)."""
        return log_origin(self.base_url)


@dataclass(frozen=True, slots=True)
class StatusListSpec:
    """How one status list of a publication is written, when not as usual."""

    signer: SignerLike | None = None  #: None: the region's status key
    issued_at: int | None = None  #: None: the publication's time
    expires_at: int | None = None  #: None: ``issued_at`` + the publication's list validity
    sub: str | None = None  #: None: the list's own URI


@dataclass(frozen=True, slots=True)
class Publication:
    """One bundle of a region: what ``ecert publish`` would write at ``issued_at``."""

    bundle_id: str
    region: Region
    sequence: int
    issued_at: int
    about: str
    agreements: tuple[Agreement, ...] = ()
    #: The root that signs the trust list (and that ``anchor.json`` names).
    root: SeededSigner | None = None
    root_rotations: tuple[str, ...] = ()
    #: Agency keys changed for this publication (a forged list adds one).
    agencies: Mapping[str, AgencySpec] | None = None
    status_lists: Mapping[int, StatusListSpec] = field(default_factory=dict)
    validity: int = 7 * DAY  #: trust list: ``next_update`` − ``iat``
    #: Status lists: ``exp`` − ``iat``. Longer than the trust list's validity plus the
    #: grace, so that a case at the end of the grace is judged on the trust list alone.
    status_validity: int = 9 * DAY

    @property
    def next_update(self) -> int:
        """The trust list's ``next_update``."""
        return self.issued_at + self.validity

    def documents(self) -> dict[str, bytes]:
        """Every file of the bundle, by path."""
        region = self.region
        root = self.root or region.root
        size = len(region.leaves)
        tree = merkle.integrate(0, [merkle.leaf_hash(leaf) for leaf in region.leaves],
                                _NoTiles())
        log_signer = NoteSigner(region.log_origin, region.log_key)
        log_info = LogInfo(region.log_origin, log_signer.verifier_key.encode(), size,
                           b64url_encode(tree.root))
        documents: dict[str, bytes] = {}
        numbers = sorted(set(region.statuses) | set(self.status_lists))
        for number in numbers:
            documents[f"{_bundle.STATUS_DIR}/{number}.jwt"] = self._status_list(
                number, log_info).encode("ascii")
        agencies = self.agencies if self.agencies is not None else region.agencies
        trust_list = TrustList(
            region=region.code, name=region.name, base_url=region.base_url,
            sequence=self.sequence, issued_at=self.issued_at, next_update=self.next_update,
            agencies=tuple(_trusted(a, region) for a in agencies.values()),
            status_keys=(region.status_key.entry,), types=region.types,
            agreements=tuple(sorted(self.agreements, key=lambda a: a.region)),
            status_lists=tuple(region.status_uri(n) for n in numbers),
            root_rotations=self.root_rotations, log=log_info,
            sharing_keys=tuple(k.entry for k in region.sharing_keys),
            entitlements=region.entitlements)
        documents[_bundle.TRUST_LIST_PATH] = trust_list.sign(root).encode("ascii")
        documents[_bundle.ANCHOR_FILE] = region.anchor(root).to_bytes()
        keys = [root.public_jwk, region.status_key.signer.public_jwk,
                *(k.signer.public_jwk for a in agencies.values() for k in a.keys),
                *(k.signer.public_jwk for k in region.sharing_keys)]
        documents[_bundle.JWKS_PATH] = json.dumps(
            {"keys": keys}, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
        checkpoint = Checkpoint(region.log_origin, size, tree.root).encode()
        documents[f"{LOG_DIR}/{tiles.CHECKPOINT_PATH}"] = sign_note(checkpoint, [log_signer])
        for (level, index), data in sorted(tree.tiles.items()):
            width = len(data) // merkle.HASH_SIZE
            documents[f"{LOG_DIR}/{tiles.tile_path(level, index, width)}"] = data
            if level == 0:
                start = index * tiles.TILE_WIDTH
                documents[f"{LOG_DIR}/{tiles.entries_path(index, width)}"] = (
                    tiles.encode_entry_bundle(region.leaves[start:start + width]))
        return documents

    def _status_list(self, number: int, log_info: LogInfo) -> str:
        spec = self.status_lists.get(number, StatusListSpec())
        status_list = StatusList.filled(MIN_LIST_SIZE, 2, INVALID)  # unallocated: revoked
        for index, value in self.region.statuses.get(number, {}).items():
            status_list[index] = value
        issued_at = self.issued_at if spec.issued_at is None else spec.issued_at
        expires_at = issued_at + self.status_validity if spec.expires_at is None \
            else spec.expires_at
        return make_status_list_token(
            spec.sub or self.region.status_uri(number), status_list,
            spec.signer or self.region.status_key.signer, issued_at=issued_at,
            expires_at=expires_at, ttl=HOUR,
            log={"size": log_info.size, "root": log_info.root})


def _trusted(agency: AgencySpec, region: Region) -> TrustedAgency:
    return TrustedAgency(agency.code, agency.name, agency.uscc, region.agency_uri(agency.code),
                         agency.types, tuple(k.entry for k in agency.keys), agency.windows)


class _NoTiles:
    """The tiles of the empty tree: there are none to read."""

    def read_tile(self, level: int, index: int, width: int) -> bytes:  # pragma: no cover
        raise AssertionError("a tree built from nothing reads no tile")
