"""Witnessing: cosigning the checkpoints of the regions we recognize, and collecting the
cosignatures others made on ours.

``witness`` (``ecert audit witness REGION``) fetches REGION's trust list through our
agreement (its pinned root), verifies its checkpoint with the log key that list names,
proves it consistent with the last checkpoint *we* cosigned for that log (a consistency
proof computed from REGION's published tiles), and cosigns it with our witness key
(tlog-cosignature/v1, key name ``<our host>/witness``). The cosignature is a change like
any other: one unit of work logs ``witness.cosign`` ``{"origin", "size", "root"}`` and
stores the cosigned note in the ``cosignatures`` table. A witness never cosigns a
smaller checkpoint, nor one of the same or larger size that does not extend what it
cosigned before: it refuses with :class:`WitnessRefused` and says which.

``collect_cosignatures`` (the first step of our ``publish``) fetches
``<their base URL>/witness/<our region>`` from every region we have an agreement with,
verifies the cosignature with the witness key of THEIR verified trust list and the
checkpoint with our own checkpoint history, and keeps it (bookkeeping, not a log entry).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecert._authority import Action, Resource
from ecert._formats.jose import b64url_decode, b64url_encode
from ecert._formats.note import (
    Checkpoint,
    NoteError,
    NoteSigner,
    parse_note,
    sign_note,
    verify_note,
)
from ecert._sources import DocumentSource, HttpSource
from ecert.errors import Conflict, EcertError, FormatError, NotFound, TrustListError
from ecert.models import KeyRole
from ecert.monitor import (
    MAX_CHECKPOINT_BYTES,
    WITNESS_DIR,
    LogUnreachable,
    RegionLog,
    consistent_with,
    log_verifier_key,
    witness_verifier_key,
)
from ecert.registry._core import Operation, Target, Unit, _Context, register
from ecert.registry._publication import log_origin, write_bundle
from ecert.trust import TrustAnchor, fetch_and_verify

__all__ = ["CosignReport", "WitnessRefused", "collect_cosignatures", "witness"]

log = logging.getLogger("ecert.registry")


class WitnessRefused(EcertError):
    """The checkpoint is smaller than, or inconsistent with, one we cosigned (exit 1)."""

    code = "witness_refused"


@dataclass(frozen=True, slots=True)
class CosignReport:
    """What :func:`witness` cosigned."""

    region: str
    origin: str
    size: int
    root: str
    #: The size we had cosigned before (``None``: the first time).
    previous: int | None
    note: str
    written: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "origin": self.origin, "size": self.size,
                "root": self.root, "previous": self.previous,
                "written": None if self.written is None else str(self.written)}


def witness_name(ctx: _Context) -> str:
    """Our cosigning key's name: ``<our host>/witness`` (as publication names it)."""
    return log_origin(ctx.region).rsplit("/", 1)[0] + "/" + WITNESS_DIR


def _last_cosigned(repo: Any, origin: str, us: str) -> tuple[int, bytes] | None:
    """The newest checkpoint we cosigned for ``origin``: our log's ``witness.cosign``
    entries decide; the cosignatures table must agree."""
    from ecert._formats.log import Entry

    logged: tuple[int, bytes] | None = None
    for row in repo.log_rows(actions=[Action.WITNESS_COSIGN.value]):
        try:
            d = Entry.decode(bytes(row.leaf)).details
        except FormatError:
            continue
        if d.get("origin") == origin and (logged is None or d["size"] >= logged[0]):
            logged = (int(d["size"]), b64url_decode(d["root"]))
    stored = repo.cosignatures_for(origin=origin, witness=us)
    table = max(((int(s), bytes(r)) for _o, _w, s, r, _n, _t in stored), default=None)
    if table != logged:
        raise Conflict(f"our cosignatures of {origin} in the database differ from our log "
                       "(run 'ecert audit verify')", code="witness_state")
    return logged


def _apply(unit: Unit, p: Mapping[str, Any]) -> str:
    repo, ctx = unit.repo, unit.ctx
    us = ctx.region.code
    previous = _last_cosigned(repo, p["origin"], us)
    expected = None if p["previous"] is None else (p["previous"][0],
                                                  b64url_decode(p["previous"][1]))
    if previous != expected:
        raise Conflict(f"another cosignature of {p['origin']} was made meanwhile; run again")
    key = repo.active_key(KeyRole.WITNESS)
    if key is None:
        raise NotFound("this registry has no active witness key")
    cosigner = NoteSigner.cosigner(witness_name(ctx), ctx.keystore.signer(key.kid))
    note = parse_note(p["checkpoint"])
    cosigned = sign_note(note.text, [cosigner], timestamp=unit.now,
                         existing=note.signatures).decode("utf-8")
    repo.add_cosignature(p["origin"], us, p["size"], b64url_decode(p["root"]), cosigned,
                         unit.now)
    unit.log(Action.WITNESS_COSIGN, p["region"],
             {"origin": p["origin"], "size": p["size"], "root": p["root"]})
    return cosigned


COSIGN = register(Operation(Action.WITNESS_COSIGN,
                            lambda _repo, p: Target(Resource(), p["region"]), _apply,
                            guarded=False))


def _their_trust(ctx: _Context, region: str, source: DocumentSource) -> Any:
    with ctx.read() as repo:
        agreement = repo.get_agreement(region)
    if agreement is None:
        raise NotFound(f"we have no agreement with region {region}: only regions we "
                       "recognize are witnessed")
    anchor = TrustAnchor(agreement.region, agreement.name, dict(agreement.root_jwk),
                         agreement.trust_list_url)
    try:
        return fetch_and_verify(anchor, source, now=ctx.now(), grace=86_400)[0]
    except TrustListError as e:
        if e.code == "trust_list_unavailable":
            raise LogUnreachable(e.message) from e
        raise


def witness(ctx: _Context, region: str, *, bundle: str | Path | None = None,
            source: DocumentSource | None = None) -> CosignReport:
    """See the module docstring. Raises :class:`WitnessRefused` (inconsistent or smaller
    checkpoint) or :class:`ecert.monitor.LogUnreachable`."""
    region = region.upper()
    if region == ctx.region.code:
        raise WitnessRefused("a region does not witness its own log", code="witness_self")
    source = source or HttpSource(user_agent="ecert-witness")
    theirs = _their_trust(ctx, region, source)
    info = theirs.log
    if info is None:
        raise NotFound(f"region {region} publishes no log")
    published = RegionLog(theirs.base_url, source)
    try:
        checkpoint, data = published.checkpoint(log_verifier_key(info.key), info.origin)
    except NoteError as e:
        raise WitnessRefused(f"the checkpoint of {region} does not verify with the log key of "
                             f"its trust list: {e.message}", code="witness_bad_checkpoint") \
            from e
    with ctx.read() as repo:
        previous = _last_cosigned(repo, info.origin, ctx.region.code)
    size, root = checkpoint.size, checkpoint.root
    if previous is not None:
        last_size, last_root = previous
        if size < last_size:
            raise WitnessRefused(
                f"refused: the checkpoint of {region} has {size} entries, fewer than the "
                f"{last_size} we cosigned (a rollback)", code="witness_smaller")
        if not consistent_with(published, size, root, last_size, last_root):
            raise WitnessRefused(
                f"refused: the checkpoint of {region} ({size} entries) is not consistent "
                f"with the one of {last_size} entries we cosigned (a fork)",
                code="witness_inconsistent")
    if info.size <= size and info.size and not consistent_with(
            published, size, root, info.size, b64url_decode(info.root)):
        raise WitnessRefused(
            f"refused: the checkpoint of {region} is not consistent with the log its own "
            f"trust list names ({info.size} entries)", code="witness_inconsistent")
    cosigned = ctx.execute(COSIGN, {
        "region": region, "origin": info.origin, "size": size, "root": b64url_encode(root),
        "checkpoint": data.decode("utf-8"),
        "previous": None if previous is None else [previous[0], b64url_encode(previous[1])]})
    written = None
    if bundle is not None:
        written = Path(bundle) / WITNESS_DIR / region
        write_bundle(Path(bundle), {f"{WITNESS_DIR}/{region}": cosigned.encode("utf-8")})
    return CosignReport(region, info.origin, size, b64url_encode(root),
                        None if previous is None else previous[0], cosigned, written)


def collect_cosignatures(ctx: _Context, source: DocumentSource | None = None) -> list[str]:
    """Fetch, verify and keep the cosignatures other regions made on our checkpoints.

    Returns the regions whose (new) cosignature was stored. A region that cannot be
    reached, or whose cosignature does not verify, is logged and skipped: publication
    goes on without it.
    """
    source = source or HttpSource(user_agent="ecert-witness")
    us = ctx.region.code
    origin = log_origin(ctx.region)
    with ctx.read() as repo:
        agreements = repo.list_agreements()
        ours = {size: root for size, root, _note in repo.list_checkpoints()}
        have = {(w, s) for _o, w, s, _r, _n, _t in repo.cosignatures_for(origin=origin)}
        log_keys = [k for k in repo.list_keys() if k.role is KeyRole.LOG]
    stored: list[str] = []
    for agreement in agreements:
        region = agreement.region
        anchor = TrustAnchor(region, agreement.name, dict(agreement.root_jwk),
                             agreement.trust_list_url)
        try:
            theirs = fetch_and_verify(anchor, source, now=ctx.now(), grace=86_400)[0]
            if theirs.log is None or theirs.log.witness is None:
                continue
            key = witness_verifier_key(theirs.log.witness)
            url = f"{theirs.base_url}/{WITNESS_DIR}/{us}"
            try:
                data = source.fetch(url, max_bytes=MAX_CHECKPOINT_BYTES)
            except OSError:
                continue  # they have not witnessed us (yet)
            note = verify_note(data, [key])
            checkpoint = Checkpoint.parse(note.text)
            if checkpoint.origin != origin:
                raise FormatError(f"it cosigns {checkpoint.origin}, not our log",
                                  code="malformed")
            if ours.get(checkpoint.size) != checkpoint.root:
                raise FormatError(f"it cosigns a checkpoint of size {checkpoint.size} our "
                                  "log never signed (a split view, or a forged checkpoint)",
                                  code="malformed")
            if log_keys and not _signed_by_our_log(data, origin, log_keys):
                raise FormatError("our log key's signature is missing", code="malformed")
        except (EcertError, OSError) as e:
            log.warning("cosignature of %s on our log not collected: %s", region,
                        getattr(e, "message", e))
            continue
        if (region, checkpoint.size) in have:
            continue
        with ctx._write() as repo:  # bookkeeping: not a change of the registry
            repo.add_cosignature(origin, region, checkpoint.size, checkpoint.root,
                                 data.decode("utf-8"), ctx.now())
        stored.append(region)
    return stored


def _signed_by_our_log(data: bytes, origin: str, keys: list[Any]) -> bool:
    from ecert.monitor import jwk_note_key

    candidates = [k for k in (jwk_note_key(origin, info.public_jwk, 1) for info in keys)
                  if k is not None]
    try:
        verify_note(data, candidates)
    except NoteError:
        return False
    return True

