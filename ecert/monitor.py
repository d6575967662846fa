"""``ecert audit monitor``: check a region's public log with no database at all.

A monitor holds nothing but the region's anchor and a small state directory. Each run

1. fetches and verifies the region's trust list (pinned root) and, with the log key the
   trust list names, its signed checkpoint;
2. fetches the entry bundles of the entries it has not seen yet, and recomputes the tree
   from the right edge of the tree it saw last (kept in the state): the new root must be
   the checkpoint's, which proves the log only grew (consistency) and that the entries
   served are the ones the log commits to; every published tile the new entries changed
   must be the one recomputed;
3. replays the new entries with :class:`ecert._replay.Replay` (operator signatures and
   authority from the first admin on), continuing from the replay state it saved;
4. compares each published status list with the replay state at the log size it names
   (allocated indices with their status, unallocated ones invalid) and the trust list
   with what the replay proves (keys, agencies, types, agreements, rotations, log key);
5. optionally counts witness cosignatures (see :class:`WitnessPolicy`).

Its cost grows with the new entries only. Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ecert import _windows
from ecert._authority import grants_from_json
from ecert._formats import bundle as _bundle
from ecert._formats import merkle, tiles
from ecert._formats.jose import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    key_from_jwk,
    parse_compact,
    verify_signature,
)
from ecert._formats.log import Entry, unit_message, verify_unit
from ecert._formats.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Checkpoint,
    NoteError,
    VerifierKey,
    open_checkpoint,
    verify_note,
)
from ecert._formats.statuslist import StatusList, read_status_list_payload
from ecert._formats.trustlist import Agreement, Entitlement, TrustedKey, TrustList
from ecert._replay import (
    CertificateState,
    ConsentState,
    Finding,
    KeyState,
    OperatorState,
    Replay,
    RequestState,
)
from ecert._slots import claimed_taken, logged_list, taken_mismatch
from ecert._sources import BundleDirectory, DocumentSource, HttpSource, RoutedSource
from ecert.errors import EcertError, FormatError, TrustListError
from ecert.trust import TrustAnchor, fetch_and_verify

__all__ = [
    "LogUnreachable",
    "Monitor",
    "MonitorError",
    "MonitorReport",
    "RegionLog",
    "WitnessPolicy",
    "WitnessTally",
]

LOG_DIR = "log"


def log_origin(base_url: str) -> str:
    """A region's log origin line: its base URL without the scheme, then ``/log``."""
    return base_url.split("://", 1)[1] + "/" + LOG_DIR
WITNESS_DIR = "witness"
MAX_CHECKPOINT_BYTES = 64 * 1024
MAX_TILE_BYTES = merkle.TILE_WIDTH * merkle.HASH_SIZE
MAX_BUNDLE_BYTES = merkle.TILE_WIDTH * (2 + tiles.MAX_ENTRY_BYTES)
MAX_STATUS_LIST_BYTES = 16 * 1024 * 1024
#: A file of the verifier page (the single-file copy with the QR decoder inlined is the
#: largest, a few hundred KB).
MAX_PAGE_FILE_BYTES = 4 * 1024 * 1024
_STATE_VERSION = 1
_UNALLOCATED = 0xFF


class MonitorError(EcertError):
    """The monitor cannot run (bad state directory, no log published, …)."""

    code = "monitor_error"


class LogUnreachable(MonitorError):
    """The region's trust list, checkpoint or tiles cannot be fetched (CLI exit code 3)."""

    code = "log_unreachable"


class FindingKind:
    """Kinds a monitor or witness adds to those of the replay (docs/format.md)."""

    CHECKPOINT_INVALID = "checkpoint_invalid"
    LOG_ROLLBACK = "log_rollback"
    LOG_FORK = "log_fork"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    TILE_MISMATCH = "tile_mismatch"
    TILE_MISSING = "tile_missing"
    ENTRY_BUNDLE_INVALID = "entry_bundle_invalid"
    STATUS_LIST_INVALID = "status_list_invalid"
    STATUS_MISMATCH = "published_status_mismatch"
    TRUST_LIST_MISMATCH = "trust_list_mismatch"
    TRUST_LIST_ROLLBACK = "trust_list_rollback"
    LOG_KEY_UNPROVEN = "log_key_unproven"
    WITNESSES_INSUFFICIENT = "witnesses_insufficient"
    VERIFIER_PAGE_MISMATCH = "verifier_page_mismatch"


def _is_missing(error: Exception) -> bool:
    return isinstance(error, FileNotFoundError) or str(error).startswith("HTTP 404")


# -- reading a region's published log ------------------------------------------------------


class RegionLog:
    """The published log of one region (``<base_url>/log/…``), read through a source.

    It is also a :class:`ecert._formats.merkle.TileReader` over the published tiles.
    """

    def __init__(self, base_url: str, source: DocumentSource) -> None:
        self.base_url = base_url.rstrip("/")
        self.source = source
        self._tiles: dict[tuple[int, int, int], bytes] = {}

    def url(self, path: str) -> str:
        return f"{self.base_url}/{LOG_DIR}/{path}"

    def fetch(self, path: str, max_bytes: int) -> bytes:
        """A file under the log prefix; :class:`LogUnreachable` if the server is."""
        try:
            return self.source.fetch(self.url(path), max_bytes=max_bytes)
        except (OSError, FormatError) as e:
            if isinstance(e, OSError) and _is_missing(e):
                raise
            raise LogUnreachable(f"cannot fetch {self.url(path)}: {e}") from e

    def checkpoint(self, key: VerifierKey, origin: str) -> tuple[Checkpoint, bytes]:
        """The checkpoint, verified with the log key (raises :class:`NoteError`)."""
        try:
            data = self.fetch(tiles.CHECKPOINT_PATH, MAX_CHECKPOINT_BYTES)
        except OSError as e:
            raise LogUnreachable(f"the log of {self.base_url} publishes no checkpoint: {e}") \
                from e
        checkpoint, _note = open_checkpoint(data, [key], origin=origin)
        return checkpoint, data

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        cached = self._tiles.get((level, index, width))
        if cached is not None:
            return cached
        data = self.fetch(tiles.tile_path(level, index, width), MAX_TILE_BYTES)
        if len(data) != width * merkle.HASH_SIZE:
            raise merkle.MerkleError(f"published tile {level}/{index} has the wrong size",
                                     code="bad_tile")
        self._tiles[(level, index, width)] = data
        return data

    def entries(self, index: int, width: int) -> list[bytes]:
        data = self.fetch(tiles.entries_path(index, width), MAX_BUNDLE_BYTES)
        return tiles.decode_entry_bundle(data, width)


def log_verifier_key(log_key: str) -> VerifierKey:
    """The checkpoint key a trust list names (a vkey)."""
    key = VerifierKey.parse(log_key)
    if key.sig_type != SIG_ED25519:
        raise FormatError("the log key is not an Ed25519 note key", code="malformed")
    return key


def witness_verifier_key(witness_key: str) -> VerifierKey:
    """A witness's cosigning key as a trust list names it (tlog-cosignature/v1)."""
    key = VerifierKey.parse(witness_key)
    if key.sig_type != SIG_COSIGNATURE_V1:
        raise FormatError("the witness key is not a cosignature/v1 key", code="malformed")
    return key


def jwk_note_key(name: str, jwk: Mapping[str, str], sig_type: int) -> VerifierKey | None:
    """The note key an Ed25519 JWK makes under ``name`` (``None`` if it is no Ed25519 key)."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "x" not in jwk:
        return None
    return VerifierKey(name=name, sig_type=sig_type, public_key=b64url_decode(jwk["x"]))


class _Tiles:
    """Tiles known to the monitor (its saved edge, then those it computes), in front
    of the published ones."""

    def __init__(self, known: dict[tuple[int, int], bytes], published: RegionLog) -> None:
        self.known = known
        self.published = published

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        data = self.known.get((level, index))
        if data is not None and len(data) >= width * merkle.HASH_SIZE:
            return data[:width * merkle.HASH_SIZE]
        return self.published.read_tile(level, index, width)


def consistent_with(tree: merkle.TileReader, size: int, root: bytes, other_size: int,
                    other_root: bytes) -> bool:
    """Whether ``(other_size, other_root)`` is a prefix of (or equal to) ``(size, root)``,
    proven with a consistency proof computed from ``tree``'s tiles."""
    if other_size == size:
        return other_root == root
    if other_size == 0 or other_size > size:
        return other_size == 0
    try:
        proof = merkle.tile_consistency_proof(other_size, size, tree)
    except (FormatError, OSError, LogUnreachable):
        return False
    return merkle.verify_consistency(other_size, size, proof, other_root, root)


# -- witnesses -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """How many witness cosignatures a checkpoint must carry.

    The witnesses counted are those the verifier (or monitor) trusts itself: its home
    region and the regions its home recognizes, each through the witness key its own
    verified trust list names — never the logged region itself. A witness counts when
    its newest cosignature verifies and cosigns a checkpoint consistent with the one
    checked (proven with a consistency proof from the tiles).

    ``on_outage``: when too few witnesses could be *reached* (their trust list or
    cosignature could not be fetched) but those that answered were all fine,
    ``"warn"`` (the default) accepts with a warning, ``"refuse"`` refuses. Cosignatures
    that were fetched and are missing, invalid or inconsistent always refuse.
    """

    required: int = 0
    on_outage: str = "warn"

    def __post_init__(self) -> None:
        if type(self.required) is not int or self.required < 0:
            raise MonitorError("the number of witnesses is 0 or more", code="invalid_policy")
        if self.on_outage not in ("warn", "refuse"):
            raise MonitorError("on_outage is 'warn' or 'refuse'", code="invalid_policy")


@dataclass
class WitnessTally:
    """What the witnesses said about one log."""

    required: int
    #: witness region -> cosigned size, for the witnesses that count.
    cosigned: dict[str, int] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def covering(self, size: int) -> list[str]:
        """Witnesses whose cosigned tree holds the first ``size`` entries."""
        return sorted(w for w, s in self.cosigned.items() if s >= size)

    def to_json(self) -> dict[str, Any]:
        return {"required": self.required, "cosigned": dict(sorted(self.cosigned.items())),
                "unreachable": dict(sorted(self.unreachable.items())),
                "refused": dict(sorted(self.refused.items()))}


def count_witnesses(*, logged: TrustList, witnesses: Mapping[str, TrustList | str],
                    source: DocumentSource, tree: merkle.TileReader, size: int,
                    root: bytes, required: int) -> WitnessTally:
    """Cosignatures on ``logged``'s log by ``witnesses`` (region -> its verified trust
    list, or why it could not be had), checked against the tree ``(size, root)``.

    Each witness's newest cosignature is looked for where the logged region serves it
    (``<logged>/log/witness/<W>``) and where the witness publishes it
    (``<W>/witness/<logged>``).
    """
    tally = WitnessTally(required)
    log = logged.log
    if log is None:
        return tally
    log_key = log_verifier_key(log.key)
    for code, trust in sorted(witnesses.items()):
        if code == logged.region:
            continue  # a region never witnesses itself
        if isinstance(trust, str):
            tally.unreachable[code] = trust
            continue
        if trust.log is None or trust.log.witness is None:
            tally.refused[code] = "its trust list names no witness key"
            continue
        try:
            key = witness_verifier_key(trust.log.witness)
        except FormatError as e:
            tally.refused[code] = f"its witness key is malformed: {e.message}"
            continue
        best: tuple[int, bytes] | None = None
        problems: list[str] = []
        reached = False
        for url in (f"{logged.base_url}/{LOG_DIR}/{WITNESS_DIR}/{code}",
                    f"{trust.base_url}/{WITNESS_DIR}/{logged.region}"):
            try:
                data = source.fetch(url, max_bytes=MAX_CHECKPOINT_BYTES)
            except (OSError, FormatError) as e:
                if isinstance(e, OSError) and _is_missing(e):
                    reached = True
                continue
            reached = True
            try:
                note = verify_note(data, [key, log_key])
                if not any(v.key == key for v in note.verified):
                    raise NoteError("not cosigned by the witness key", code="unverified")
                if not any(v.key == log_key for v in note.verified):
                    raise NoteError("not signed by the log key", code="unverified")
                checkpoint = Checkpoint.parse(note.text)
                if checkpoint.origin != log.origin:
                    raise NoteError("cosigns another log", code="malformed")
            except FormatError as e:
                problems.append(f"{url}: {e.message}")
                continue
            if not consistent_with(tree, size, root, checkpoint.size, checkpoint.root):
                if checkpoint.size > size:
                    continue  # cosigns a later checkpoint than the one checked: not yet
                problems.append(f"{url}: cosigns a checkpoint of size {checkpoint.size} "
                                "that is not consistent with this log (split view)")
                continue
            if best is None or checkpoint.size > best[0]:
                best = (checkpoint.size, checkpoint.root)
        if problems:
            tally.refused[code] = "; ".join(problems)
        elif best is not None:
            tally.cosigned[code] = best[0]
        elif not reached:
            tally.unreachable[code] = "its cosignatures cannot be fetched"
        else:
            tally.refused[code] = "no cosignature on this log"
    return tally


def trusted_witnesses(home: TrustList, *, source: DocumentSource, now: int, grace: int,
                      foreign: Callable[[str], TrustList] | None = None
                      ) -> dict[str, TrustList | str]:
    """The home region and every region it recognizes, each with its verified trust list
    (or why it could not be had)."""
    found: dict[str, TrustList | str] = {home.region: home}
    for agreement in home.agreements:
        if not agreement.in_force(now):
            continue
        try:
            if foreign is not None:
                found[agreement.region] = foreign(agreement.region)
            else:
                anchor = TrustAnchor(agreement.region, agreement.name,
                                     dict(agreement.root_jwk), agreement.trust_list_url)
                found[agreement.region] = fetch_and_verify(anchor, source, now=now,
                                                           grace=grace)[0]
        except TrustListError as e:
            found[agreement.region] = e.message
    return found


# -- the monitor's state ---------------------------------------------------------------------


@dataclass
class _State:
    origin: str | None = None
    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    trust_sequence: int | None = None
    edge: dict[tuple[int, int], bytes] = field(default_factory=dict)
    replay: Replay = field(default_factory=Replay)


def _grant_json(grants: Iterable[Any]) -> list[dict[str, Any]]:
    return [g.to_json() for g in grants]


def _key_json(k: KeyState) -> list[Any]:
    return [k.role, k.agency, dict(k.jwk), k.created_at, k.retired_at, k.compromised_since]


def _replay_json(r: Replay) -> dict[str, Any]:
    return {
        "size": r.size, "region": r.region, "origin": r.origin, "base_url": r.base_url,
        "region_name": r.region_name, "tz": r.tz, "genesis": r._genesis, "last_time": r._last_time,
        "operators": {s: [o.kid, dict(o.jwk), _grant_json(o.grants), o.active]
                      for s, o in r.operators.items()},
        "policies": [[a, t, n] for (a, t), n in sorted(r.policies.items())],
        "requests": {str(i): [q.action, q.subject, q.agency, q.type, q.requester, q.needed,
                              q.expires, sorted(q.approvals), q.open]
                     for i, q in r.requests.items()},
        "types": r.types,
        "type_versions": [[code, version, d] for (code, version), d in
                          sorted(r.type_versions.items())],
        "agencies": {c: {**a, "types": list(a["types"])}
                                       for c, a in r.agencies.items()},
        "keys": {kid: _key_json(k) for kid, k in r.keys.items()},
        "agreements": {c: a.to_json() for c, a in r.agreements.items()},
        "entitlements": {i: e.to_json() for i, e in r.entitlements.items()},
        "consents": {c: [k.holder, k.requester, list(k.types), k.purpose, k.expires,
                         k.channel, k.revoked_at, k.used_at,
                         None if k.scope is None else [list(p) for p in k.scope]]
                     for c, k in r.consents.items()},
        # Only which use records were seen (a second entry for one is malformed).
        "uses": sorted(r.uses),
        "root_rotations": list(r.root_rotations),
        "certificates": {c: [s.list, s.idx, s.agency, s.type, s.redacted]
                         for c, s in r.certificates.items()},
        "scheduled": {str(list_id): {str(i): at for i, at in slots.items()}
                      for list_id, slots in r.scheduled.items()},
        "revoke_at": {c: s.revoke_at for c, s in r.certificates.items()
                      if s.revoke_at is not None},
        "cosigned": {o: list(v) for o, v in r.cosigned.items()},
        "publications": len(r.publications),
        "findings": [f.to_json() for f in r.findings],
        # Units applied that a copy appended later must not apply again.
        "applied": sorted(d.hex() for d in r.applied),
    }


def _replay_from_json(v: Mapping[str, Any], statuses: dict[int, dict[int, int]]) -> Replay:
    r = Replay()
    r.size, r.region, r.origin, r.base_url = v["size"], v["region"], v["origin"], v["base_url"]
    # States saved before these were kept: the genesis defaults.
    r.region_name, r.tz = v.get("region_name"), str(v.get("tz", r.tz))
    r._genesis, r._last_time = bool(v["genesis"]), int(v["last_time"])
    for subject, (kid, jwk, grants, active) in v["operators"].items():
        r.operators[subject] = OperatorState(subject, kid, jwk, grants_from_json(grants), active)
        r.operator_kids[kid] = subject
    r.policies = {(a, t): n for a, t, n in v["policies"]}
    for i, (action, subject, agency, type_, requester, needed, expires, approvals,
            is_open) in v["requests"].items():
        r.requests[int(i)] = RequestState(action, subject, agency, type_, requester, needed,
                                          expires, set(approvals), is_open)
    r.types = dict(v["types"])
    # States saved before every version was kept know only the current one of each type.
    saved_versions = v.get("type_versions")
    if saved_versions is None:
        r.type_versions = {(c, int(d["version"])): dict(d) for c, d in r.types.items()}
    else:
        r.type_versions = {(str(c), int(n)): dict(d) for c, n, d in saved_versions}
    r.agencies = {c: {**a, "types": tuple(a["types"])} for c, a in v["agencies"].items()}
    for kid, (role, agency, jwk, created, retired, compromised) in v["keys"].items():
        r.keys[kid] = KeyState(kid, role, agency, jwk, created, retired, compromised)
    r.agreements = {c: Agreement.from_json(a) for c, a in v["agreements"].items()}
    # Absent from states written before sharing existed.
    r.entitlements = {i: Entitlement.from_json(e) for i, e in v.get("entitlements", {}).items()}
    # A consent's scope is absent from states written before consents were scoped.
    r.consents = {c: ConsentState(h, q, tuple(t), p, e, ch, rv, u,
                                  None if not rest or rest[0] is None
                                  else tuple((a, b) for a, b in rest[0]))
                  for c, (h, q, t, p, e, ch, rv, u, *rest)
                  in v.get("consents", {}).items()}
    r.uses = {u: {} for u in v.get("uses", [])}
    r.root_rotations = list(v["root_rotations"])
    r.statuses = statuses
    for c, (list_id, idx, agency, type_, redacted) in v["certificates"].items():
        r.certificates[c] = CertificateState(agency, type_, list_id, idx, "",
                                             statuses[list_id][idx], redacted)
    # Scheduled revocations (absent from states written before renewals existed).
    r.scheduled = {int(list_id): {int(i): int(at) for i, at in slots.items()}
                   for list_id, slots in v.get("scheduled", {}).items()}
    for c, at in v.get("revoke_at", {}).items():
        r.certificates[c].revoke_at = int(at)
    r.cosigned = {o: (s, root) for o, (s, root) in v["cosigned"].items()}
    r.publications = [{} for _ in range(int(v["publications"]))]
    r.findings = [Finding(f["kind"], f["subject"], f["seq"], f["detail"])
                  for f in v["findings"]]
    # Absent from states written before copies of units were refused.
    r.applied = {bytes.fromhex(d) for d in v.get("applied", [])}
    return r


def _bitmap(slots: Mapping[int, int]) -> bytes:
    data = bytearray([_UNALLOCATED]) * (max(slots) + 1 if slots else 0)
    for index, value in slots.items():
        data[index] = value
    return bytes(data)


def _from_bitmap(data: bytes) -> dict[int, int]:
    return {i: b for i, b in enumerate(data) if b != _UNALLOCATED}


def load_state(directory: Path | None) -> _State:
    """The state a previous run saved in ``directory`` (a fresh one if there is none)."""
    if directory is None or not (directory / "state.json").exists():
        return _State()
    try:
        value = json.loads((directory / "state.json").read_text("utf-8"))
        if value.get("version") != _STATE_VERSION:
            raise MonitorError(f"monitor state in {directory} has an unknown version",
                               code="monitor_state")
        data_dir = directory / value["data"]
        statuses = {int(name): _from_bitmap((data_dir / f"{name}.bin").read_bytes())
                    for name in value["lists"]}
        edge = {(int(level), int(index)): b64url_decode(hashes)
                for level, index, hashes in value["edge"]}
        return _State(value["origin"], int(value["size"]), b64url_decode(value["root"]),
                      value.get("trust_sequence"), edge,
                      _replay_from_json(value["replay"], statuses))
    except MonitorError:
        raise
    except (OSError, ValueError, KeyError, TypeError, FormatError) as e:
        raise MonitorError(f"monitor state in {directory} is unreadable: {e} "
                           "(remove it to start over)", code="monitor_state") from e


def save_state(directory: Path, state: _State) -> None:
    """Write the state: the list bitmaps into a fresh data directory, then ``state.json``
    (atomically) pointing at it, then remove the older data directories."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"data-{state.size}-{secrets.token_hex(4)}"
    data_dir = directory / name
    data_dir.mkdir()
    for list_id, slots in state.replay.statuses.items():
        (data_dir / f"{list_id}.bin").write_bytes(_bitmap(slots))
    value = {"version": _STATE_VERSION, "origin": state.origin, "size": state.size,
             "root": b64url_encode(state.root), "trust_sequence": state.trust_sequence,
             "edge": [[level, index, b64url_encode(data)]
                      for (level, index), data in sorted(state.edge.items())],
             "data": name, "lists": sorted(str(i) for i in state.replay.statuses),
             "replay": _replay_json(state.replay)}
    temporary = directory / f".state.{secrets.token_hex(4)}.tmp"
    temporary.write_bytes(canonical_json(value))
    os.replace(temporary, directory / "state.json")
    for old in directory.glob("data-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def _edge(known: Mapping[tuple[int, int], bytes], size: int) -> dict[tuple[int, int], bytes]:
    """The rightmost partial tile of each level of the tree of ``size`` leaves."""
    edge: dict[tuple[int, int], bytes] = {}
    level = 0
    while size >> (merkle.TILE_HEIGHT * level):
        count = size >> (merkle.TILE_HEIGHT * level)
        width = count & (merkle.TILE_WIDTH - 1)
        if width:
            index = count >> merkle.TILE_HEIGHT
            edge[(level, index)] = known[(level, index)][:width * merkle.HASH_SIZE]
        level += 1
    return edge


# -- checking unit signatures ahead, in parallel -----------------------------------------


#: Below this many new units, signatures are checked in the replay itself.
PARALLEL_MIN_UNITS = 512
_CHUNK_UNITS = 256


def _verify_batch(items: list[tuple[dict[str, str], bytes, str]]) -> list[bool]:
    """Worker: Ed25519/ECDSA checks of ``(jwk, message, signature)``."""
    results = []
    for jwk, message, signature in items:
        try:
            alg, key = key_from_jwk(jwk)
            results.append(verify_signature(alg, key, message, b64url_decode(signature)))
        except FormatError:
            results.append(False)
    return results


class _AheadOfReplay:
    """Checks every new unit's signature in worker processes, with the key its operator
    id names, while the replay runs; the replay then asks :meth:`__call__` instead of
    checking itself. An answer is used only for the same key, message and signature;
    anything else is checked on the spot, so the outcome is the replay's own."""

    def __init__(self, leaves: Sequence[bytes], keys: Mapping[str, Mapping[str, str]],
                 workers: int) -> None:
        from concurrent.futures import ProcessPoolExecutor

        keys = dict(keys)
        items: list[tuple[dict[str, str], bytes, str]] = []
        unit: list[Entry] = []
        self._pool = ProcessPoolExecutor(max_workers=workers)
        self._answers: dict[tuple[str, bytes, str], Any] = {}
        for leaf in leaves:
            try:
                entry = Entry.decode(leaf)
            except FormatError:
                unit = []
                continue
            if entry.action in ("operator.add", "operator.rotate_key", "operator.reset"):
                key = entry.details.get("key")
                if isinstance(key, dict) and isinstance(key.get("kid"), str):
                    keys[key["kid"]] = key
            unit.append(entry)
            if entry.sig is not None:
                jwk = keys.get(entry.operator)
                if jwk is not None:
                    items.append((dict(jwk), unit_message(unit), entry.sig))
                    if len(items) == _CHUNK_UNITS:  # the workers start at once
                        self._submit(items)
                        items = []
                unit = []
        if items:
            self._submit(items)

    def _submit(self, chunk: list[tuple[dict[str, str], bytes, str]]) -> None:
        future = self._pool.submit(_verify_batch, chunk)
        for offset, (jwk, message, signature) in enumerate(chunk):
            self._answers[(signature, message, _jwk_text(jwk))] = (future, offset)

    def __call__(self, entries: Sequence[Entry], jwk: Mapping[str, str]) -> bool:
        last = entries[-1] if entries else None
        found = None if last is None or last.sig is None else self._answers.get(
            (last.sig, unit_message(entries), _jwk_text(jwk)))
        if found is None or any(e.sig for e in entries[:-1]) or any(
                e.operator != entries[0].operator for e in entries):
            return verify_unit(entries, jwk)
        future, offset = found
        return bool(future.result()[offset])

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _jwk_text(jwk: Mapping[str, str]) -> str:
    return canonical_json(dict(jwk)).decode("utf-8")


# -- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorReport:
    """The outcome of one monitor run; truthy when consistent."""

    log_size: int
    new_entries: int
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...] = ()
    witnesses: WitnessTally | None = None

    @property
    def consistent(self) -> bool:
        return not self.findings

    def __bool__(self) -> bool:
        return self.consistent

    def to_json(self) -> dict[str, Any]:
        """What ``ecert audit monitor --json`` prints."""
        value: dict[str, Any] = {"consistent": self.consistent, "log_size": self.log_size,
                                 "new_entries": self.new_entries,
                                 "findings": [f.to_json() for f in self.findings],
                                 "warnings": list(self.warnings)}
        if self.witnesses is not None:
            value["witnesses"] = self.witnesses.to_json()
        return value


# -- the monitor -----------------------------------------------------------------------------


@dataclass
class _Published:
    uri: str
    list_id: int
    size: int  #: the log size it names
    root: str
    status_list: StatusList
    issued_at: int = 0  #: its ``iat``: scheduled revocations due by then read invalid
    #: How many slots it says issues took (its ``log`` claim's ``allocated`` but the
    #: holes; None in lists before 0.3).
    taken: int | None = None


class Monitor:
    """Checks one region's public log, incrementally (see the module docstring)."""

    def __init__(self, anchor: TrustAnchor, source: DocumentSource, *,
                 state_dir: str | Path | None = None,
                 clock: Callable[[], datetime] | None = None,
                 witnesses: WitnessPolicy | int = 0, grace: int = 86_400,
                 workers: int | None = None) -> None:
        self.anchor = anchor
        self.source = source
        self.state_dir = None if state_dir is None else Path(state_dir)
        self._clock = clock
        self.policy = witnesses if isinstance(witnesses, WitnessPolicy) else WitnessPolicy(
            witnesses)
        self.grace = grace
        #: Worker processes that check unit signatures ahead of a large replay (by
        #: default one CPU is left to the replay itself: on two CPUs, none).
        self.workers = workers if workers is not None else max(
            1, min((os.cpu_count() or 1) - 1, 8))

    @classmethod
    def from_bundle(cls, path: str | Path, *, anchor: TrustAnchor | None = None,
                    **kwargs: Any) -> Monitor:
        """Monitor a published bundle directory (other regions over HTTP(S))."""
        root = Path(path)
        if anchor is None:
            anchor = TrustAnchor.load(root / _bundle.ANCHOR_FILE)
        base_url = anchor.trust_list_url.rsplit("/", 1)[0]
        source = RoutedSource([(base_url, BundleDirectory(root, base_url))], HttpSource())
        return cls(anchor, source, **kwargs)

    @classmethod
    def from_anchor(cls, anchor: TrustAnchor | str | Path, *,
                    source: DocumentSource | None = None, **kwargs: Any) -> Monitor:
        """Monitor the region ``anchor`` pins, over HTTP(S)."""
        if not isinstance(anchor, TrustAnchor):
            anchor = TrustAnchor.load(anchor)
        return cls(anchor, source or HttpSource(user_agent="ecert-monitor"), **kwargs)

    def _now(self) -> int:
        return int(self._clock().timestamp()) if self._clock else int(time.time())

    def _check_page(self, trust_list: TrustList,
                    find: Callable[[str, str, int | None, str], None]) -> None:
        """The verifier page served beside the bundle against the digests the trust list
        signed (``verifier_page``): the host serving both is not trusted, and a page
        changed there would pass, in a user's browser, for the region's own."""
        page = trust_list.verifier_page
        if page is None:
            return
        from ecert._page import PAGE_DIR, page_mismatches

        base = trust_list.base_url.rstrip("/")
        for name, error in page_mismatches(page, lambda name: self.source.fetch(
                f"{base}/{PAGE_DIR}/{name}", max_bytes=MAX_PAGE_FILE_BYTES)):
            find(FindingKind.VERIFIER_PAGE_MISMATCH, f"{PAGE_DIR}/{name}", None,
                 "the page file served differs from the digest the trust list signed"
                 if error is None else
                 f"the page file signed in the trust list cannot be fetched: {error}")

    def run(self) -> MonitorReport:
        """Check what the log added since the last run; save the state if the log is
        consistent. Raises :class:`LogUnreachable` if the log cannot be fetched."""
        now = self._now()
        state = load_state(self.state_dir)
        findings: list[Finding] = []
        warnings: list[str] = []

        def find(kind: str, subject: str, seq: int | None, detail: str) -> None:
            findings.append(Finding(kind, subject, seq, detail))

        try:
            trust_list, _current = fetch_and_verify(self.anchor, self.source, now=now,
                                                    grace=self.grace)
        except TrustListError as e:
            if e.code == "trust_list_unavailable":
                raise LogUnreachable(e.message) from e
            raise
        if state.trust_sequence is not None and trust_list.sequence < state.trust_sequence:
            find(FindingKind.TRUST_LIST_ROLLBACK, "trustlist.jwt", None,
                 f"sequence {trust_list.sequence} is older than {state.trust_sequence} "
                 "seen before")
        log = trust_list.log
        if log is None:
            raise MonitorError(f"region {trust_list.region} publishes no log", code="no_log")
        if state.origin is not None and state.origin != log.origin:
            raise MonitorError(f"the state in {self.state_dir} is of log {state.origin}, "
                               f"not {log.origin}", code="monitor_state")
        published_log = RegionLog(trust_list.base_url, self.source)
        try:
            checkpoint, _ = published_log.checkpoint(log_verifier_key(log.key), log.origin)
        except NoteError as e:
            find(FindingKind.CHECKPOINT_INVALID, "checkpoint", None,
                 f"the checkpoint does not verify with the trust list's log key: {e.message}")
            return MonitorReport(state.size, 0, tuple(findings))
        m, n = state.size, checkpoint.size
        if n < m:
            find(FindingKind.LOG_ROLLBACK, "checkpoint", n,
                 f"the log shrank from {m} to {n} entries since the last run")
            return MonitorReport(n, 0, tuple(findings))
        if n == m and checkpoint.root != state.root:
            find(FindingKind.LOG_FORK, "checkpoint", n,
                 "a checkpoint of the same size with another root than the last run saw")
            return MonitorReport(n, 0, tuple(findings))

        published = self._status_lists(trust_list, find)
        self._check_page(trust_list, find)
        stops = sorted({s for s in [log.size, *(p.size for p in published)] if m < s < n}
                       | {n})
        known = dict(state.edge)
        reader = _Tiles(known, published_log)
        replay = state.replay
        old_findings = len(replay.findings)
        roots = {m: state.root}
        done = m
        leaves = self._new_leaves(published_log, m, n, state.edge, find)
        if leaves is None:
            return MonitorReport(n, 0, tuple(findings))
        ahead = None
        if self.workers > 1 and sum(b'"sig":' in leaf for leaf in leaves) >= PARALLEL_MIN_UNITS:
            ahead = _AheadOfReplay(leaves, {o.kid: o.jwk for o in replay.operators.values()},
                                   self.workers)
            replay.verify_unit = ahead
        try:
            for stop in stops:
                if stop > done:
                    chunk = leaves[done - m:stop - m]
                    result = merkle.integrate(
                        done, [merkle.leaf_hash(leaf) for leaf in chunk], reader)
                    known.update(result.tiles)
                    replay.apply_leaves(zip(range(done, stop), chunk, strict=True))
                    done, roots[stop] = stop, result.root
                if stop == log.size:
                    self._compare_trust_list(trust_list, replay, roots[stop], find)
                for p in published:
                    if p.size == stop:
                        self._compare_list(p, replay, roots[stop], find)
        finally:
            if ahead is not None:
                ahead.close()
                del replay.verify_unit
        if roots[n] != checkpoint.root:
            find(FindingKind.CHECKPOINT_MISMATCH, "checkpoint", n,
                 "the published entries do not hash to the checkpoint's root: an entry "
                 "bundle was changed, or the log was rewritten (fork)")
            return MonitorReport(n, n - m, tuple(findings))
        if n == m:
            # Nothing new: what was published must still match the state saved at m.
            if log.size == m:
                self._compare_trust_list(trust_list, replay, state.root, find)
            for p in published:
                if p.size == m:
                    self._compare_list(p, replay, state.root, find)
        self._compare_tiles(published_log, known, m, n, find)
        self._check_log_key(trust_list, replay, find)
        for p in published:
            if p.size > n:
                find(FindingKind.STATUS_MISMATCH, p.uri, None,
                     f"built from a log of {p.size} entries; the checkpoint has {n}")
            elif p.size < m:
                warnings.append(f"{p.uri} was built from {p.size} entries, before the "
                                f"last run ({m}): not compared again")
        if log.size > n:
            find(FindingKind.TRUST_LIST_MISMATCH, "log", None,
                 f"the trust list names a log of {log.size} entries; the checkpoint has {n}")
        # Findings of the log's content stay (the entries are in the log for good).
        findings[:0] = replay.findings[:old_findings]
        findings.extend(replay.findings[old_findings:])
        tally = None
        if self.policy.required:
            tally = self._witnesses(trust_list, reader, n, checkpoint.root, now)
            judge_witnesses(tally, self.policy, find, warnings, "the checkpoint")
        if self.state_dir is not None and (n != m or trust_list.sequence != (
                state.trust_sequence or 0) or not (self.state_dir / "state.json").exists()):
            save_state(self.state_dir, _State(log.origin, n, checkpoint.root,
                                              max(trust_list.sequence,
                                                  state.trust_sequence or 0),
                                              _edge(known, n), replay))
        return MonitorReport(n, n - m, tuple(findings), tuple(warnings), tally)

    # -- steps ---------------------------------------------------------------------------

    def _new_leaves(self, log: RegionLog, m: int, n: int,
                    edge: Mapping[tuple[int, int], bytes], find: Any) -> list[bytes] | None:
        leaves: list[bytes] = []
        width_full = merkle.TILE_WIDTH
        if n == m:
            return leaves
        for index in range(m // width_full, (n + width_full - 1) // width_full):
            start = index * width_full
            width = min(width_full, n - start)
            path = tiles.entries_path(index, width)
            try:
                bundle = log.entries(index, width)
            except OSError:
                find(FindingKind.TILE_MISSING, f"{LOG_DIR}/{path}", start,
                     "an entry bundle the checkpoint covers is missing")
                return None
            except FormatError as e:
                find(FindingKind.ENTRY_BUNDLE_INVALID, f"{LOG_DIR}/{path}", start, e.message)
                return None
            seen = max(0, m - start)
            if seen:
                old = edge.get((0, index), b"")
                if b"".join(merkle.leaf_hash(leaf) for leaf in bundle[:seen]) != old[
                        :seen * merkle.HASH_SIZE]:
                    find(FindingKind.ENTRY_BUNDLE_INVALID, f"{LOG_DIR}/{path}", start,
                         "entries seen in the last run were changed")
                    return None
            leaves.extend(bundle[seen:])
        return leaves

    def _status_lists(self, trust_list: TrustList, find: Any) -> list[_Published]:
        """Every status list the trust list names, signature-checked with its status keys."""
        from ecert.verify import Verifier

        verifier = Verifier(trust_list, self.source, clock=self._clock)
        found = []
        for uri in trust_list.status_lists:
            try:
                verifier.check_status_list(uri)
                data = self.source.fetch(uri, max_bytes=MAX_STATUS_LIST_BYTES)
                payload = parse_compact(data.decode("ascii", "replace").strip(),
                                        max_bytes=MAX_STATUS_LIST_BYTES).payload
                token = read_status_list_payload(payload)
                log_ref = payload.get("log")
                size = log_ref.get("size") if isinstance(log_ref, dict) else None
                root = log_ref.get("root") if isinstance(log_ref, dict) else None
                if type(size) is not int or not isinstance(root, str):
                    raise FormatError("the list names no log tree", code="malformed")
                list_id = int(uri.rsplit("/", 1)[1].split(".", 1)[0])
            except (FormatError, OSError, ValueError) as e:
                find(FindingKind.STATUS_LIST_INVALID, uri, None,
                     getattr(e, "message", str(e)))
                continue
            found.append(_Published(uri, list_id, size, root, token.status_list,
                                    token.issued_at, claimed_taken(log_ref, token.status_list)))
        return found

    @staticmethod
    def _compare_list(p: _Published, replay: Replay, root: bytes, find: Any) -> None:
        if p.root != b64url_encode(root):
            find(FindingKind.STATUS_MISMATCH, p.uri, p.size,
                 "the list names a log root this log did not have at that size")
            return
        lst = p.status_list
        slots = replay.statuses_at(p.list_id, p.issued_at)
        mismatch = taken_mismatch(p.taken, len(slots))
        if mismatch is not None:
            find(FindingKind.STATUS_MISMATCH, p.uri, p.size, mismatch)
        try:
            expected = logged_list(lst.size, lst.bits, slots)
        except ValueError as e:
            find(FindingKind.STATUS_MISMATCH, p.uri, p.size,
                 f"the list cannot hold what the log says: {e}")
            return
        # The first ten by index, and a count: a hostile list of millions of wrong
        # entries costs neither a Python step nor a list entry for each.
        for index in itertools.islice(lst.differences(expected), 10):
            find(FindingKind.STATUS_MISMATCH, f"{p.uri}#{index}", p.size,
                 f"published {lst[index]}, the log says {expected[index]}"
                 + ("" if index in slots else " (an index the log never allocated)"))
        more = lst.count_differences(expected) - 10
        if more > 0:
            find(FindingKind.STATUS_MISMATCH, p.uri, p.size,
                 f"and {more} more indices differ")

    @staticmethod
    def _compare_trust_list(trust_list: TrustList, replay: Replay, root: bytes,
                            find: Any) -> None:
        log = trust_list.log
        if log is not None and log.root != b64url_encode(root):
            find(FindingKind.TRUST_LIST_MISMATCH, "log", log.size,
                 "the trust list names a log root this log did not have at that size")

        def differ(what: str, published: Any, proven: Any) -> None:
            if published != proven:
                extra = sorted(str(x) for x in set(published) - set(proven))
                missing = sorted(str(x) for x in set(proven) - set(published))
                find(FindingKind.TRUST_LIST_MISMATCH, what, None,
                     "published but not proven by the log: " + (", ".join(extra) or "none")
                     + "; proven but not published: " + (", ".join(missing) or "none"))

        differ("agencies",
               {(a.code, a.name, a.uscc, tuple(a.types),
                 tuple((w.code, (w.start, w.end)) for w in a.windows))
                for a in trust_list.agencies},
               {(c, a["name"], a["uscc"], *_published_agency(a))
                for c, a in replay.agencies.items()})
        differ("types", {(t.code, t.version, t.name, t.national_type_code)
                         for t in trust_list.types},
               {(c, t.get("version"), t.get("name"), t.get("national_type_code"))
                for c, t in replay.types.items()})
        published_keys = {(a.code, "agency", _key_text(k))
                          for a in trust_list.agencies for k in a.keys}
        published_keys |= {(a.code, "requester", _key_text(k))
                           for a in trust_list.agencies for k in a.requester_keys}
        published_keys |= {("", "status", _key_text(k)) for k in trust_list.status_keys}
        published_keys |= {("", "sharing", _key_text(k)) for k in trust_list.sharing_keys}
        proven_keys = {(k.agency or "", k.role, _key_text(_trusted(k)))
                       for k in replay.keys.values()
                       if k.agency is not None or k.role in ("status", "sharing")}
        differ("keys", published_keys, proven_keys)
        differ("entitlements", {_agreement_text(e) for e in trust_list.entitlements},
               {_agreement_text(e) for e in replay.entitlements_at(trust_list.issued_at)})
        differ("agreements", {_agreement_text(a) for a in trust_list.agreements},
               {_agreement_text(a) for a in replay.agreements.values()
                if a.valid_until is None or a.valid_until > trust_list.issued_at})
        if list(trust_list.root_rotations) != replay.root_rotations:
            find(FindingKind.TRUST_LIST_MISMATCH, "root_rotations", None,
                 "the root rotations published differ from those the log proves")

    @staticmethod
    def _check_log_key(trust_list: TrustList, replay: Replay, find: Any) -> None:
        log = trust_list.log
        if log is None:
            return
        proven = {jwk_note_key(log.origin, k.jwk, SIG_ED25519) for k in replay.keys.values()
                  if k.role == "log" and k.retired_at is None}
        if log_verifier_key(log.key) not in proven:
            find(FindingKind.LOG_KEY_UNPROVEN, "log", None,
                 "the trust list's log key is no active log key the log proves")
        if log.witness is not None:
            host = log.origin.rsplit("/", 1)[0] + "/" + WITNESS_DIR
            witnesses = {jwk_note_key(host, k.jwk, SIG_COSIGNATURE_V1)
                         for k in replay.keys.values()
                         if k.role == "witness" and k.retired_at is None}
            if witness_verifier_key(log.witness) not in witnesses:
                find(FindingKind.LOG_KEY_UNPROVEN, "witness", None,
                     "the trust list's witness key is no active witness key the log proves")

    def _witnesses(self, trust_list: TrustList, reader: merkle.TileReader, size: int,
                   root: bytes, now: int) -> WitnessTally:
        # The monitor's own trust is the anchor's region: its witnesses are the regions
        # it recognizes (never itself).
        witnesses = trusted_witnesses(trust_list, source=self.source, now=now,
                                      grace=self.grace)
        return count_witnesses(logged=trust_list, witnesses=witnesses, source=self.source,
                               tree=reader, size=size, root=root,
                               required=self.policy.required)

    @staticmethod
    def _compare_tiles(log: RegionLog, known: Mapping[tuple[int, int], bytes], m: int,
                       n: int, find: Any) -> None:
        """Every tile of the tree of ``n`` that changed since ``m`` must be as computed."""
        for level, index, width in merkle.tiles_for_size(n):
            if (index << merkle.TILE_HEIGHT) + width <= m >> (merkle.TILE_HEIGHT * level):
                continue  # unchanged since the last run, which checked it
            expected = known[(level, index)][:width * merkle.HASH_SIZE]
            path = tiles.tile_path(level, index, width)
            try:
                data = log.read_tile(level, index, width)
            except OSError:
                find(FindingKind.TILE_MISSING, f"{LOG_DIR}/{path}", None,
                     "a tile the checkpoint covers is missing")
                continue
            except FormatError as e:
                find(FindingKind.TILE_MISMATCH, f"{LOG_DIR}/{path}", None, e.message)
                continue
            if data != expected:
                find(FindingKind.TILE_MISMATCH, f"{LOG_DIR}/{path}", None,
                     "the published tile is not the hash of the published entries")


def judge_witnesses(tally: WitnessTally, policy: WitnessPolicy, find: Any,
                    warnings: list[str], what: str, size: int = 0) -> None:
    """Apply ``policy`` to ``tally`` for a tree of at least ``size`` entries."""
    if not policy.required:
        return
    good = tally.covering(size)
    if len(good) >= policy.required:
        return
    detail = (f"{what} carries {len(good)} of the {policy.required} witness "
              f"cosignature(s) required"
              + "".join(f"; {w}: {why}" for w, why in sorted(tally.refused.items()))
              + "".join(f"; {w} unreachable: {why}"
                        for w, why in sorted(tally.unreachable.items())))
    if len(good) + len(tally.unreachable) >= policy.required and policy.on_outage == "warn" \
            and not tally.refused:
        warnings.append("witness outage: " + detail)
        return
    find(FindingKind.WITNESSES_INSUFFICIENT, "witnesses", None, detail)


def _trusted(key: KeyState) -> TrustedKey:
    status = ("compromised" if key.compromised_since is not None
              else "retired" if key.retired_at is not None else "active")
    return TrustedKey(jwk=dict(key.jwk), valid_from=key.created_at, valid_until=key.retired_at,
                      status=status, compromised_since=key.compromised_since)


def _key_text(key: TrustedKey) -> str:
    return canonical_json(key.to_json()).decode("utf-8")


def _agreement_text(agreement: Agreement | Entitlement) -> str:
    """An agreement or entitlement as canonical JSON (comparable in a set)."""
    return canonical_json(agreement.to_json()).decode("utf-8")


def _published_agency(logged: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    unlimited, limited = _windows.published(logged)
    return unlimited, tuple(limited)
