"""Publication: the static bundle verifiers read, and the log tiles monitors read.

One unit of work (short, holding the log's lock so the snapshot is consistent) takes the
trust-list sequence number durably, integrates the log into its Merkle tiles, signs a
checkpoint, replays the trust-relevant log entries, and reads a snapshot. Everything
slow — signing status lists, re-verifying as a verifier would, writing files — happens
after it committed, so issuing is never blocked by file I/O, and a crash while writing
never lets a sequence number be used twice (a gap is fine, a reuse is not).

Only what the log proves is published: keys, agencies, types and agreements come from
the replay of entries signed by operators who had the authority, never from raw rows.
A row the log does not account for is left out and named in an alert (publication
then reports failure, but still publishes the rest, so one planted row cannot make
every status list lapse).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ecert import _windows
from ecert._authority import Action, Resource
from ecert._clock import from_seconds, to_seconds
from ecert._formats import bundle as _bundle
from ecert._formats import merkle, tiles
from ecert._formats.jose import b64url_encode
from ecert._formats.log import token_hash
from ecert._formats.note import Checkpoint, NoteSigner, sign_note
from ecert._formats.statuslist import INVALID, StatusList, make_status_list_token
from ecert._formats.trustlist import (
    LogInfo,
    TrustedAgency,
    TrustedKey,
    TrustList,
    TypeEntry,
    TypeWindow,
)
from ecert._page import PAGE_DIR, build_page, page_digests
from ecert._replay import KeyState, Replay
from ecert._sources import MemorySource
from ecert._storage.repository import Repository
from ecert.errors import EcertError, LeaseHeld, PublishError, StorageError
from ecert.models import CertificateStatus, KeyRole, Region
from ecert.monitor import LOG_DIR
from ecert.monitor import log_origin as origin_of_log
from ecert.registry._core import Operation, Target, Unit, _Context
from ecert.registry._lifecycle import STATUS_VALUES
from ecert.trust import TrustAnchor, load_trust_list
from ecert.verify import Verifier

log = logging.getLogger("ecert.registry")

#: The lease ``ecert publish --watch`` holds (one watcher per registry).
LEASE_NAME = "publish"
WITNESS_DIR = "witness"
#: Actions whose entries never shape the trust list: about certificates, consent codes,
#: fetches and checks (the many entries of holders' business), which publication need not
#: replay.
_HOLDER_PREFIXES = ("certificate.", "consent.", "share.fetch", "share.check")


@dataclass(frozen=True, slots=True)
class PublishReport:
    """What :meth:`ecert.Registry.publish` wrote."""

    directory: Path
    sequence: int
    issued_at: datetime
    next_update: datetime
    files: tuple[str, ...]
    status_lists: int
    certificates: int
    #: Size of the log tree the documents were built from.
    log_size: int = 0
    #: Rows the log does not account for, left out of the bundle (publication "failed").
    alerts: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether everything in the registry was provable and published."""
        return not self.alerts


def log_origin(region: Region) -> str:
    """The log's origin line: the base URL without its scheme, then ``/log``."""
    return origin_of_log(region.base_url)  # the one rule, shared with the verifier side


@dataclass
class _Snapshot:
    sequence: int
    now: int
    size: int
    root: bytes
    checkpoint: bytes
    trust: Replay
    keys_out: list[KeyState]
    alerts: list[str]
    lists: list[tuple[int, int, int, list[tuple[int, str]]]]
    certificates: int
    root_kid: str
    status_kid: str
    log_key: str
    witness_key: str | None
    cosignatures: dict[str, str]


class _DbTiles:
    """The tree's tiles as the database holds them (newest version of each)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        found = self.repo.read_tile(level, index)
        if found is None or found[0] < width:
            raise StorageError(f"log tile {level}/{index} is missing from the database")
        return found[1][:width * merkle.HASH_SIZE]


def integrate(repo: Any) -> tuple[int, bytes]:
    """Bring the stored tiles up to every appended entry; return ``(size, root)``."""
    done = repo.counter("log_integrated")
    total = repo.counter("log_size")
    reader = _DbTiles(repo)
    if total == done:
        return done, merkle.tile_root(done, reader)
    rows = repo.log_rows(done, total)
    if len(rows) != total - done or any(r.seq != done + i for i, r in enumerate(rows)):
        raise StorageError("the log has gaps: run 'ecert audit verify'", code="log_gap")
    result = merkle.integrate(done, [merkle.leaf_hash(bytes(r.leaf)) for r in rows], reader)
    for (level, index), data in result.tiles.items():
        repo.put_tile(level, index, len(data) // merkle.HASH_SIZE, data)
    repo.add_to_counter("log_integrated", result.new_size - done)
    return result.new_size, result.root


def _trust_replay(repo: Repository, size: int) -> Replay:
    """Replay every unit that touches the trust list (not the certificates)."""
    rows = repo.log_rows_of_units(repo.units_without_prefix(_HOLDER_PREFIXES, size))
    replay = Replay(certificates=False)
    replay.apply_leaves((int(r.seq), bytes(r.leaf)) for r in rows if r.seq < size)
    return replay


def _snapshot(unit: Unit, p: Mapping[str, Any]) -> _Snapshot:
    repo, ctx, now = unit.repo, unit.ctx, unit.now
    if p.get("lease") is not None:
        _check_lease(repo, p["lease"], now)
    # Taking the log's counter row lock first: no unit can append (nor commit a change)
    # until this one commits, so what is read below is one consistent state.
    repo.add_to_counter("log_size", 0)
    sequence = repo.next_value("trust_list_sequence")
    size, root = integrate(repo)
    replay = _trust_replay(repo, size)
    alerts = [f"log: {f.kind} at entry {f.seq}: {f.detail}" for f in replay.findings]
    keys_out = _proven_keys(repo, ctx, replay, alerts)
    for agency in repo.list_agencies():
        if not _windows.matches(agency, replay.agencies.get(agency.code)):
            alerts.append(f"agency {agency.code}: the database differs from the log "
                          "(published as the log has it)")
    for agreement in repo.list_agreements():
        if replay.agreements.get(agreement.region) != agreement:
            alerts.append(f"agreement with {agreement.region}: the database differs from the "
                          "log (published as the log has it)")
    for entitlement in repo.list_entitlements():
        if replay.entitlements.get(entitlement.id) != entitlement:
            alerts.append(f"entitlement {entitlement.id}: the database differs from the log "
                          "(published as the log has it)")
    active = {k.role: k for k in keys_out if k.retired_at is None and k.agency is None}
    missing = [r for r in ("root", "status", "log") if r not in active]
    if missing:
        raise PublishError(f"the log proves no active {', '.join(missing)} key: cannot publish "
                           "(run 'ecert audit verify')", code="unproven_key")
    origin = log_origin(ctx.region)
    log_signer = NoteSigner(origin, ctx.keystore.signer(active["log"].kid))
    checkpoint = sign_note(Checkpoint(origin, size, root).encode(), [log_signer])
    latest = repo.latest_checkpoint()
    if latest is None or latest[0] != size:
        repo.add_checkpoint(size, root, checkpoint.decode("utf-8"), now)
    witness = active.get("witness")
    witness_key = None if witness is None else NoteSigner.cosigner(
        origin.rsplit("/", 1)[0] + "/witness",
        ctx.keystore.signer(witness.kid)).verifier_key.encode()
    lists = [(list_id, list_size, bits, list(repo.allocated_slots(list_id, now)))
             for list_id, list_size, bits, _allocated in repo.list_status_lists()]
    cosigned: dict[str, str] = {}
    for _o, witness_region, cs, _r, note, _t in repo.cosignatures_for(origin=origin):
        if cs <= size and witness_region not in cosigned:  # newest first: keep the newest
            cosigned[witness_region] = note
    repo.add_publication(sequence, now, size, root, p["directory"])
    unit.log(Action.REGISTRY_PUBLISH, ctx.region.code,
             {"sequence": sequence, "size": size, "root": b64url_encode(root),
              "refused_unauthenticated": repo.counter("refused_unauthenticated")})
    return _Snapshot(sequence, now, size, root, checkpoint, replay, keys_out, alerts, lists,
                     repo.count_certificates(), active["root"].kid, active["status"].kid,
                     log_signer.verifier_key.encode(), witness_key, cosigned)


def _trusted_agency(code: str, logged: Mapping[str, Any], uri: str,
                    keys: tuple[TrustedKey, ...],
                    requester_keys: tuple[TrustedKey, ...]) -> TrustedAgency:
    unlimited, limited = _windows.published(logged)
    return TrustedAgency(code, logged["name"], logged["uscc"], uri, unlimited, keys,
                         tuple(TypeWindow(c, s, e) for c, (s, e) in limited),
                         requester_keys=requester_keys)


def _check_lease(repo: Repository, holder: str, now: int) -> None:
    """A watcher publishes only while it holds the lease (checked in the publication's own
    transaction, so one that lost it while paused cannot take a sequence number)."""
    lease = repo.get_lease(LEASE_NAME)
    if lease is None or lease.holder != holder or to_seconds(lease.expires_at) <= now:
        raise LeaseHeld("this watcher lost the publication lease"
                        + ("" if lease is None or lease.holder == holder else
                           f" to {lease.host} (pid {lease.pid})"), lease=lease)


def _proven_keys(repo: Repository, ctx: _Context, replay: Replay,
                 alerts: list[str]) -> list[KeyState]:
    """Keys the log proves (and, for active local keys, the key store agrees with)."""
    rows = {k.kid: k for k in repo.list_keys()}
    for kid, row in rows.items():
        proven = replay.keys.get(kid)
        if proven is None or (proven.role, proven.agency, dict(proven.jwk)) != (
                row.role.value, row.agency_code, dict(row.public_jwk)):
            alerts.append(f"key {kid} ({row.role.value}"
                          + (f" of {row.agency_code}" if row.agency_code else "")
                          + "): no signed log entry proves its creation — LEFT OUT")
    published = []
    for kid, proven in replay.keys.items():
        if proven.retired_at is None and proven.compromised_since is None:
            try:
                held = ctx.keystore.signer(kid)
            except EcertError:
                held = None  # an HSM may not show it; a lost file is reported by doctor
            if held is not None and held.kid != kid:
                alerts.append(f"key {kid}: the key store holds another key under its name "
                              "— LEFT OUT")
                continue
        published.append(proven)
    return published


PUBLISH = Operation(Action.REGISTRY_PUBLISH,
                    lambda _repo, _p: Target(Resource(), "publication"), _snapshot,
                    guarded=False)


def _trusted(key: KeyState) -> TrustedKey:
    status = ("compromised" if key.compromised_since is not None
              else "retired" if key.retired_at is not None else "active")
    return TrustedKey(jwk=dict(key.jwk), valid_from=key.created_at, valid_until=key.retired_at,
                      status=status, compromised_since=key.compromised_since)


def publish(ctx: _Context, directory: str | Path, *, trust_list_validity: timedelta,
            status_list_validity: timedelta, status_list_ttl: timedelta,
            progress: Callable[[int, int], None] | None,
            lease: str | None = None, verifier_page: bool = True) -> PublishReport:
    """See :meth:`ecert.Registry.publish`; ``lease`` is the holder id of a watcher, which
    publishes only while it holds the publication lease."""
    out = Path(directory)
    snap = ctx.execute(PUBLISH, {"directory": str(out.resolve()), "lease": lease})
    for alert in snap.alerts:
        log.error("publication alert: %s", alert)
    region, now = ctx.region, snap.now
    log_ref = {"size": snap.size, "root": b64url_encode(snap.root)}
    documents: dict[str, bytes] = {}
    status_signer = ctx.keystore.signer(snap.status_kid)
    for done, (list_id, size, bits, slots) in enumerate(snap.lists, 1):
        # Only indices the log allocated can read valid: a token minted outside the
        # registry with a stolen key points at an index that reads invalid.
        status_list = StatusList.filled(size, bits, INVALID)
        for index, status in slots:
            status_list[index] = STATUS_VALUES[CertificateStatus(status)]
        uri = _bundle.status_list_uri(region.base_url, list_id)
        documents[_bundle.relative_path(region.base_url, uri)] = make_status_list_token(
            uri, status_list, status_signer, issued_at=now,
            expires_at=now + int(status_list_validity.total_seconds()),
            ttl=int(status_list_ttl.total_seconds()), log=log_ref,
        ).encode("ascii")
        if progress is not None:
            progress(done, len(snap.lists))
    trust = snap.trust
    root_key = next(k for k in snap.keys_out if k.kid == snap.root_kid)
    anchor = TrustAnchor(region.code, region.name, dict(root_key.jwk),
                         _bundle.trust_list_url(region.base_url))
    agreements = tuple(a for _r, a in sorted(trust.agreements.items())
                       if a.valid_until is None or a.valid_until > now)
    # The verifier page embeds the anchor and may reach the regions we recognize; its
    # digests go into the trust list signed below (format 1.3).
    page = build_page(anchor, recognized=[a.trust_list_url for a in agreements]) \
        if verifier_page else {}
    keys_by_agency: dict[tuple[str, str], list[TrustedKey]] = {}
    for key in snap.keys_out:
        if key.agency is not None:  # agency keys, and the agency's requester keys
            keys_by_agency.setdefault((key.agency, key.role), []).append(_trusted(key))
    trust_list = TrustList(
        region=region.code, name=region.name, base_url=region.base_url,
        sequence=snap.sequence, issued_at=now,
        next_update=now + int(trust_list_validity.total_seconds()),
        agencies=tuple(_trusted_agency(
            code, a, region.agency_uri(code),
            tuple(keys_by_agency.get((code, KeyRole.AGENCY.value), ())),
            tuple(keys_by_agency.get((code, KeyRole.REQUESTER.value), ())))
            for code, a in sorted(trust.agencies.items())),
        status_keys=tuple(_trusted(k) for k in snap.keys_out if k.role == KeyRole.STATUS),
        sharing_keys=tuple(_trusted(k) for k in snap.keys_out if k.role == KeyRole.SHARING),
        types=tuple(TypeEntry(code, t["version"], t["name"], t["national_type_code"])
                    for code, t in sorted(trust.types.items())),
        status_lists=tuple(_bundle.status_list_uri(region.base_url, list_id)
                           for list_id, *_ in snap.lists),
        agreements=agreements,
        root_rotations=tuple(trust.root_rotations),
        entitlements=trust.entitlements_at(now),
        log=LogInfo(log_origin(region), snap.log_key, snap.size, b64url_encode(snap.root),
                    snap.witness_key),
        verifier_page=page_digests(page) if page else None,
    )
    trust_token = trust_list.sign(ctx.keystore.signer(snap.root_kid))
    # Re-verify what we are about to publish, as a verifier would.
    checked = load_trust_list(trust_token, anchor, now=now, grace=0)
    verifier = Verifier(checked, MemorySource(region.base_url, documents),
                        clock=lambda: from_seconds(now))
    for uri in checked.status_lists:
        verifier.check_status_list(uri)
    documents[_bundle.TRUST_LIST_PATH] = trust_token.encode("ascii")
    documents[_bundle.ANCHOR_FILE] = anchor.to_bytes()
    documents[_bundle.JWKS_PATH] = json.dumps(
        {"keys": [dict(k.jwk) for k in snap.keys_out]}, indent=2, ensure_ascii=False
    ).encode("utf-8") + b"\n"
    documents[f"{LOG_DIR}/{tiles.CHECKPOINT_PATH}"] = snap.checkpoint
    for name, data in page.items():
        documents[f"{PAGE_DIR}/{name}"] = data
    for witness_region, note in snap.cosignatures.items():
        documents[f"{LOG_DIR}/{WITNESS_DIR}/{witness_region}"] = note.encode("utf-8")
    with ctx.read() as repo:
        log_files = _log_files(repo, out, snap.size)
        for origin_region, note in _our_cosignatures(repo, region.code).items():
            documents[f"{WITNESS_DIR}/{origin_region}"] = note.encode("utf-8")
    write_bundle(out, {**log_files, **documents})
    with ctx._write() as repo:  # bookkeeping: which trust list this sequence became
        repo.finish_publication(snap.sequence, token_hash(trust_token))
    return PublishReport(out, snap.sequence, from_seconds(now),
                         from_seconds(trust_list.next_update),
                         tuple(sorted(documents)), len(snap.lists), snap.certificates,
                         snap.size, tuple(snap.alerts))


def _our_cosignatures(repo: Repository, us: str) -> dict[str, str]:
    """The newest cosignature this region (as a witness) made on each recognized log,
    by that region's code (where the logged region's publication looks for it)."""
    regions = {log_origin(Region(a.region, a.name, a.trust_list_url.rsplit("/", 1)[0])):
               a.region for a in repo.list_agreements()}
    newest: dict[str, str] = {}
    for origin, _witness, _size, _root, note, _t in repo.cosignatures_for(witness=us):
        region_code = regions.get(origin)
        if region_code is not None and region_code not in newest:
            newest[region_code] = note
    return newest


def _log_files(repo: Repository, out: Path, size: int) -> dict[str, bytes]:
    """Tiles and entry bundles of the tree of ``size`` that ``out`` does not have yet.

    Every C2SP tile path names immutable content (a partial tile's path carries its
    width), so a file that exists is already right and is never rewritten.
    """
    files: dict[str, bytes] = {}
    reader = _DbTiles(repo)
    for level, index, width in merkle.tiles_for_size(size):
        path = f"{LOG_DIR}/{tiles.tile_path(level, index, width)}"
        if not (out / path).exists():
            files[path] = reader.read_tile(level, index, width)
        if level == 0:
            entries_path = f"{LOG_DIR}/{tiles.entries_path(index, width)}"
            if not (out / entries_path).exists():
                start = index * tiles.TILE_WIDTH
                rows = repo.log_rows(start, start + width)
                files[entries_path] = tiles.encode_entry_bundle([bytes(r.leaf) for r in rows])
    return files


def write_bundle(out: Path, documents: Mapping[str, bytes]) -> None:
    """Write each file atomically; the trust list last, so it never names a missing file.

    Each file is written to a temporary beside it, flushed to disk and renamed over the
    old one: a reader (a web server, a verifier) sees the old file or the new one, never
    part of one, and a crash or a full disk leaves the old bundle standing. A failed
    write removes its temporary, so a watcher retrying on a full disk does not fill it.
    """
    order = sorted(documents, key=lambda p: (p == _bundle.TRUST_LIST_PATH, p))
    try:
        for relative in order:
            path = out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(documents[relative])
                    f.flush()
                    # On disk before the rename: after a power cut the name never points
                    # at an empty file.
                    os.fsync(f.fileno())
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    temporary.unlink()
                raise
    except OSError as e:
        raise PublishError(f"cannot write bundle to {out}: {e.strerror or e}") from e
