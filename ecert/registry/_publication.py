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
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ecert import _windows
from ecert._allocation import permutation, permutation_digest
from ecert._authority import Action, Resource
from ecert._clock import from_seconds, to_seconds
from ecert._formats import bundle as _bundle
from ecert._formats import merkle, tiles
from ecert._formats.jose import (
    ParsedJws,
    b64url_encode,
    check_header,
    key_from_jwk,
    parse_compact,
    verify_signature,
)
from ecert._formats.log import commitment, token_hash
from ecert._formats.note import Checkpoint, NoteSigner, sign_note
from ecert._formats.statuslist import (
    INVALID,
    MAX_LIST_BYTES,
    STATUS_LIST_TYP,
    StatusList,
    make_status_list_token,
    read_status_list_payload,
)
from ecert._formats.trustlist import (
    TRUST_LIST_TYP,
    LogInfo,
    TrustedAgency,
    TrustedKey,
    TrustList,
    TypeEntry,
    TypeWindow,
)
from ecert._page import PAGE_DIR, build_page, page_digests
from ecert._replay import FindingKind, KeyState, Replay
from ecert._slots import (
    MAX_HOLE_RANGES,
    Slots,
    logged_changes,
    logged_slots,
    read_claim,
    shape_problem,
)
from ecert._sources import MemorySource
from ecert._storage.repository import Repository
from ecert.errors import EcertError, FormatError, LeaseHeld, PublishError, StorageError
from ecert.models import KeyRole, Region
from ecert.monitor import LOG_DIR
from ecert.monitor import log_origin as origin_of_log
from ecert.registry._core import Operation, Target, Unit, _Context
from ecert.registry._lifecycle import STATUS_ACTIONS
from ecert.registry._tree import integrate
from ecert.trust import MAX_TRUST_LIST_BYTES, TrustAnchor, load_trust_list
from ecert.verify import Verifier

log = logging.getLogger("ecert.registry")

#: The lease ``ecert publish --watch`` holds (one watcher per registry).
LEASE_NAME = "publish"
WITNESS_DIR = "witness"
#: Actions whose entries never shape the trust list: about certificates, consent codes,
#: fetches and checks (the many entries of holders' business), which publication need not
#: replay.
_HOLDER_PREFIXES = ("certificate.", "consent.", "share.fetch", "share.check")
#: The others, found through the action index (an entry of an action ecert does not
#: know has no effect on the trust list; ``audit verify`` names it).
_TRUST_ACTIONS = tuple(a.value for a in Action if not a.value.startswith(_HOLDER_PREFIXES))


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
    #: Status lists built or changed (encoded again); the others were the directory's
    #: previous lists, unchanged since, only signed again.
    status_lists_encoded: int = 0

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
    #: Every status list.
    lists: list[_ListOut]
    certificates: int
    root_kid: str
    status_kid: str
    log_key: str
    witness_key: str | None
    cosignatures: dict[str, str]


#: Threads writing the log's tile files: their flushes to disk share the file system's
#: journal commits (measured at 10^6 on one disk: 8 threads as fast as 16, faster than
#: 4 or 32).
_WRITERS = 8
#: Log files written or waiting to be, at most (a tile is 8 KiB, an entry bundle about
#: 100 KiB): the next batch is read from the database while these are flushed.
_IN_FLIGHT = 1024


def _trust_replay(repo: Repository, size: int) -> Replay:
    """Replay every unit that touches the trust list (not the certificates), and the
    units that begin at the size of a checkpoint or publication on record: each
    publication's own unit, whose entry states the lists' slots, is found there even if
    its ``action`` column was edited (the replay reads the action from the entry)."""
    units = set(repo.units_with_actions(_TRUST_ACTIONS, size))
    units.update(s for s in repo.checkpoint_sizes() if s < size)
    units.update(s for s in repo.publication_sizes() if s < size)
    rows = repo.log_rows_of_units(sorted(units))
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
    rows = repo.list_status_lists()
    logged = logged_slots(replay.publications)
    lists = _status_lists(repo, rows, p["previous"], ctx.region.base_url, active["status"],
                          active["root"], size, now, ctx.commitment_key, alerts,
                          {(f.kind, f.seq) for f in replay.findings}, logged)
    cosigned: dict[str, str] = {}
    for _o, witness_region, cs, _r, note, _t in repo.cosignatures_for(origin=origin):
        if cs <= size and witness_region not in cosigned:  # newest first: keep the newest
            cosigned[witness_region] = note
    repo.add_publication(sequence, now, size, root, p["directory"])
    # The lists whose slots changed since the log's last publication entry: what the
    # next publication starts from, whatever the directory holds.
    unit.log(Action.REGISTRY_PUBLISH, ctx.region.code,
             {"sequence": sequence, "size": size, "root": b64url_encode(root),
              "refused_unauthenticated": repo.counter("refused_unauthenticated"),
              "lists": logged_changes([(o.id, o.slots) for o in lists], logged[1])})
    # Every certificate took a slot in its own unit: the lists' counters count them
    # without counting the table.
    return _Snapshot(sequence, now, size, root, checkpoint, replay, keys_out, alerts, lists,
                     sum(r[3] for r in rows), active["root"].kid, active["status"].kid,
                     log_signer.verifier_key.encode(), witness_key, cosigned)


@dataclass(frozen=True, slots=True)
class _Previous:
    """What a list starts from: a status list token the directory holds (verified with
    the active status key), or what the log's last publication entry says of it."""

    log_size: int
    issued_at: int
    #: The published claim, reused as it is when nothing changed (None: always encoded).
    claim: dict[str, Any] | None
    status_list: StatusList
    slots: Slots
    #: False for a list made from the log's last publication entry: it has its taken
    #: slots valid but none of the status changes, which are applied from the replay of
    #: every change the log ever made.
    complete: bool = True


@dataclass(frozen=True, slots=True)
class _ListOut:
    """A status list to publish: the list (or a reused claim) and its slots."""

    id: int
    status_list: StatusList | dict[str, Any]
    slots: Slots


def _signed_by(path: Path, max_bytes: int, typ: str, key: KeyState) -> ParsedJws | None:
    """The compact JWS of type ``typ`` at ``path`` if ``key`` signed it; None if the file
    is missing, too large, malformed, or signed by another key (an earlier one, or an
    insider's: a planted document is never started from, so never signed again)."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        jws = parse_compact(path.read_text("ascii"), max_bytes=max_bytes)
        if check_header(jws.header, typ) != key.kid:
            return None
        alg, public = key_from_jwk(key.jwk)
    except (OSError, UnicodeDecodeError, FormatError):
        return None
    if jws.header.get("alg") != alg or not verify_signature(
            alg, public, jws.signing_input, jws.signature):
        log.warning("%s does not verify with the %s key: not started from", path, key.role)
        return None
    return jws


def _previous_list(path: Path, uri: str, size: int, bits: int, key: KeyState,
                   log_size: int, now: int, alerts: list[str] | None = None
                   ) -> _Previous | None:
    """The list published at ``path`` if the active status key signed it for ``uri`` with
    this shape, at a log size and time not after ours, stating its slots; None
    otherwise (the list then starts from the log's last publication entry).

    Only a signature by the registry's own status key makes a file worth reusing (see
    :func:`_signed_by`). An authentic list of any earlier publication is a sound base:
    the changes logged since the log size it names are applied to it.
    """
    jws = _signed_by(path, 2 * MAX_LIST_BYTES, STATUS_LIST_TYP, key)
    if jws is None:
        return None
    try:
        token = read_status_list_payload(jws.payload)
        logged = jws.payload.get("log")
        if not isinstance(logged, dict):
            return None
        at = logged.get("size")
        slots = read_claim(logged, size, bits)
    except FormatError:
        return None
    if type(at) is int and at > log_size and alerts is not None:
        # Signed by our status key at a larger log: this log lost entries since (a
        # database restored or replaced), or the directory is another registry's.
        alerts.append(f"{path.name}: the directory holds a status list signed at log size "
                      f"{at}, larger than this log ({log_size}): was the database rolled "
                      "back? (run 'ecert audit verify')")
    if (token.uri != uri or token.status_list.size != size or token.status_list.bits != bits
            or type(at) is not int or not 0 <= at <= log_size or token.issued_at > now
            or slots is None):
        return None
    return _Previous(at, token.issued_at, dict(jws.payload["status_list"]), token.status_list,
                     slots)


def _empty(log_size: int, issued_at: int, slots: Slots) -> _Previous:
    """A list that did not exist at ``log_size``: every slot invalid, none taken."""
    return _Previous(log_size, issued_at, None,
                     StatusList.filled(slots.size, slots.bits, INVALID), slots)


@dataclass(frozen=True, slots=True)
class _PreviousTrust:
    """The trust list the directory holds, verified with the active root key: the log
    size it was built from and the status lists it named (every list there was)."""

    log_size: int
    issued_at: int
    status_lists: frozenset[str]


def _previous_trust(path: Path, key: KeyState, log_size: int, now: int
                    ) -> _PreviousTrust | None:
    """The previous publication's trust list at ``path`` if the active root key signed it
    (not an earlier one: signed before a root rotation) at a log size and time not after
    ours; None otherwise (a list it does not name is then built from its counter)."""
    jws = _signed_by(path, MAX_TRUST_LIST_BYTES, TRUST_LIST_TYP, key)
    if jws is None:
        return None
    try:
        trust_list = TrustList.from_payload(jws.payload)
    except FormatError:
        return None
    if (trust_list.log is None or not 0 <= trust_list.log.size <= log_size
            or trust_list.issued_at > now):
        return None
    return _PreviousTrust(trust_list.log.size, trust_list.issued_at,
                          frozenset(trust_list.status_lists))


def _status_lists(repo: Repository, rows: list[tuple[int, int, int, int]],
                  previous: Path | None, base_url: str, status_key: KeyState,
                  root_key: KeyState, log_size: int, now: int, commitment_key: bytes,
                  alerts: list[str], known: set[tuple[str, int | None]],
                  logged: tuple[int | None, dict[int, Slots]] = (None, {})
                  ) -> list[_ListOut]:
    """Every status list as of ``now``, from what the log says, never from the
    certificates' rows.

    Each list starts from the directory's previous list where it verifies (reused as it
    is if nothing changed on it since; an older one too: its changes since are
    replayed), otherwise from what the log's last publication entry says of its slots
    (``logged``: taken slots valid, then every status change the log ever accepted); a
    list that entry did not name is new since and starts empty. Only before the log has
    such an entry is a list built from the database's counter (its slots unjudged:
    threat model).

    Then the changes since: every certificate issued since (its unit replayed: a slot
    turns valid only through an issue the log accepts, and only if its counter was not
    taken or skipped before — a revoked certificate's slot never again), every
    certificate with a status-changing entry since, and scheduled revocations that fell
    due. A status change never turns a slot that read invalid valid or suspended, unless
    an issue judged here took it. What the log does not accept is left out and named in
    ``alerts`` (the publication fails).
    """
    keys: dict[int, bytes] = {}
    digests: dict[int, str] = {}  # of the permutation keys, as lists and entries state them
    shapes: dict[int, tuple[int, int]] = {}
    logged_at, known_slots = logged
    for list_id in sorted(set(known_slots) - {row[0] for row in rows}):
        alerts.append(f"status list {list_id}: the log's publication entries name it, but the "
                      "database has no such list (not published; run 'ecert audit verify')")
    for list_id, size, bits, _allocated in rows:
        found_key = repo.status_list_key(list_id)
        if found_key is None:
            raise StorageError(f"status list {list_id} is missing from the database")
        problem = None if list_id in known_slots else shape_problem(size, bits)
        if problem is not None:
            raise PublishError(f"status list {list_id}: {problem} in the database, a shape "
                               "ecert never makes (run 'ecert audit verify')",
                               code="status_list_tampered")
        keys[list_id] = found_key
        digests[list_id] = permutation_digest(found_key)
        shapes[list_id] = (size, bits)
        stated = known_slots.get(list_id)
        if stated is None:
            continue
        if (stated.size, stated.bits) != (size, bits):
            # The log's shape is the one the certificates' tokens were issued against.
            alerts.append(f"status list {list_id}: its size or bits in the database differ "
                          "from what the log's last publication entry says (published as "
                          "the log has it)")
            shapes[list_id] = (stated.size, stated.bits)
        if stated.permutation != digests[list_id]:
            raise PublishError(
                f"status list {list_id}: its permutation key in the database is not the "
                "one the log's last publication entry names: cannot tell its slots "
                "(run 'ecert audit verify')", code="status_list_tampered")
    found: dict[int, _Previous] = {}
    if previous is not None:
        for list_id, *_rest in rows:
            size, bits = shapes[list_id]
            uri = _bundle.status_list_uri(base_url, list_id)
            prev = _previous_list(previous / _bundle.relative_path(base_url, uri), uri, size,
                                  bits, status_key, log_size, now, alerts)
            if prev is None:
                continue
            if prev.slots.permutation != digests[list_id]:
                log.warning("status list %d: its permutation key in the database is not the "
                            "one its published list was built with", list_id)
                continue
            # Even a list older than the log's last publication entry is a sound start
            # (complete, its changes since replayed): cheaper than every change ever.
            found[list_id] = prev
    for list_id, *_rest in rows:
        if list_id in found or logged_at is None or logged_at > log_size:
            continue
        size, bits = shapes[list_id]
        stated = known_slots.get(list_id)
        if stated is None:
            # No list then: every slot it took is in the log since.
            found[list_id] = _empty(logged_at, now, Slots(0, (), digests[list_id], size, bits))
        else:
            found[list_id] = _Previous(logged_at, now, None, stated.status_list(keys[list_id]),
                                       stated, complete=False)
    if previous is not None and logged_at is None:
        # A log without publication entries that state slots (its first publication
        # under ecert 0.3): a list the previous trust list did not name is new since.
        trust = _previous_trust(previous / _bundle.TRUST_LIST_PATH, root_key, log_size, now)
        for list_id, *_rest in rows:
            uri = _bundle.status_list_uri(base_url, list_id)
            if trust is None or list_id in found or uri in trust.status_lists:
                continue
            size, bits = shapes[list_id]
            found[list_id] = _empty(trust.log_size, trust.issued_at,
                                    Slots(0, (), digests[list_id], size, bits))
    since = min((p.log_size for p in found.values()), default=log_size)
    # Supersessions scheduled before ``since`` that fell due after a reused list was
    # made: found through the rows (a scheduled revocation is rare), applied only as the
    # log has them.
    after = min((p.issued_at for p in found.values()), default=None)
    recent = set(repo.subjects_of_actions(_CHANGE_ACTION_NAMES, since, log_size))
    if found:
        recent.update(repo.revocations_due(after, now))
    subjects = recent
    if len(found) < len(rows) or not all(p.complete for p in found.values()):
        subjects = recent.union(repo.subjects_of_actions(_CHANGE_ACTION_NAMES, 0, log_size))
    statuses, issued = _logged_statuses(
        repo, subjects, log_size, commitment_key, now, alerts, known,
        issued_from=since if found else None)
    changed: dict[int, dict[int, int]] = {}
    counters: dict[int, set[int]] = {}  # the counters issues took since, as judged below
    fresh: dict[int, set[int]] = {}  # and their slots
    for seq, list_id, index, value in issued:
        prev = found.get(list_id)
        if prev is None or seq < prev.log_size:
            continue  # built from its counter, or in the list started from already
        size = prev.slots.size
        if not 0 <= index < size:
            alerts.append(f"log: certificate issue at entry {seq} takes slot {index} of "
                          f"status list {list_id}, which has {size}")
            continue
        counter = permutation(keys[list_id], size).counter_of(index)
        if counter < prev.slots.allocated or counter in counters.get(list_id, ()):
            alerts.append(f"log: certificate issue at entry {seq} takes slot {list_id}/"
                          f"{index}, which was taken or skipped before (left out)")
            continue
        counters.setdefault(list_id, set()).add(counter)
        fresh.setdefault(list_id, set()).add(index)
        changed.setdefault(list_id, {})[index] = value
    for subject, (list_id, index, value) in statuses.items():
        prev = found.get(list_id)
        if prev is None or (prev.complete and subject not in recent):
            continue  # built below, or unchanged since the list started from
        if (value != INVALID and 0 <= index < prev.status_list.size
                and prev.status_list[index] == INVALID
                and index not in fresh.get(list_id, ())):
            # Invalid in the list started from: revoked (final) or never taken; only an
            # issue judged above turns such a slot valid. Another certificate's changes
            # on a slot taken twice (a row moved off it) move nothing.
            alerts.append(f"log: certificate {subject}: its slot {list_id}/{index} is "
                          "invalid in the list started from and was not issued since "
                          "(left out)")
            continue
        changed.setdefault(list_id, {})[index] = value
    built: dict[int, dict[int, int]] = {}
    for list_id, index, value in statuses.values():
        built.setdefault(list_id, {})[index] = value
    result: list[_ListOut] = []
    for list_id, _size, _bits, allocated in rows:
        size, bits = shapes[list_id]
        prev = found.get(list_id)
        if prev is None:
            slots = Slots(min(allocated, size), (), digests[list_id], size, bits)
            result.append(_ListOut(list_id, _build_list(keys[list_id], slots,
                                                        built.get(list_id, {})), slots))
            continue
        slots = prev.slots.after(counters.get(list_id, ()))
        list_changes = changed.get(list_id, {})
        if len(slots.holes) > MAX_HOLE_RANGES:
            # Too many runs of refused or skipped counters to state: the issues since are
            # left out (their slots stay invalid) rather than publication stopped.
            alerts.append(f"status list {list_id}: more than {MAX_HOLE_RANGES} runs of slots "
                          "refused or skipped: the issues since the list started from are "
                          "left out (run 'ecert audit verify')")
            slots = prev.slots
            list_changes = {i: v for i, v in list_changes.items()
                            if i not in fresh.get(list_id, ())}
        if not list_changes and prev.complete and prev.claim is not None:
            result.append(_ListOut(list_id, prev.claim, slots))
            continue
        patched = prev.status_list
        for index, value in list_changes.items():
            if 0 <= index < size:  # an entry naming a slot beyond the list changes nothing
                patched[index] = value
        result.append(_ListOut(list_id, patched, slots))
    return result


#: Entries that set a slot: issuing takes it (valid), the others change it.
STATUS_ACTION_NAMES = tuple(a.value for a in STATUS_ACTIONS)
_CHANGE_ACTION_NAMES = tuple(a for a in STATUS_ACTION_NAMES if a != Action.CERT_ISSUE.value)


def _logged_statuses(repo: Repository, subjects: Iterable[str], end: int,
                     commitment_key: bytes, now: int, alerts: list[str],
                     known: set[tuple[str, int | None]], *, issued_from: int | None = None
                     ) -> tuple[dict[str, tuple[int, int, int]],
                                list[tuple[int, int, int, int]]]:
    """``id -> (list id, index, status at now)`` of the certificates ``subjects``, as the
    log has them: the replay of ``ecert audit verify`` over the units about them and the
    units that shape the trust list, in log order; and with ``issued_from``, ``(entry,
    list id, index, status at now)`` of every certificate whose issue entry is at that
    index or later and accepted, in log order (their units replayed too).

    So a change counts only if its unit verifies under an operator the log made, who held
    the authority at that point (an officer who rotated keys, lost the role or left since
    keeps their earlier changes), a supersession only with its successor, a transition
    only from a status that allows it (a revocation is final), and the slot is the one the
    certificate's first accepted issue entry took. What the replay refuses in those units
    is named in ``alerts``; a certificate with no accepted issue entry is left out. An
    insider who writes signed entries or rows into the database past the registry's
    checks reaches no published list."""
    wanted = {commitment(commitment_key, s): s for s in subjects}
    issue_units = [] if issued_from is None else repo.units_with_actions(
        (Action.CERT_ISSUE.value,), end, start=issued_from)
    if not wanted and not issue_units:
        return {}, []
    units = repo.units_about(sorted(wanted.values()), end)
    units.update(repo.units_with_actions(_TRUST_ACTIONS, end))
    units.update(issue_units)
    replay = Replay(only=frozenset(wanted), issued_from=issued_from)
    # Streamed: at national scale the units about the changed certificates may be most
    # of the log (a batch unit holds a thousand issues).
    replay.apply_leaves(repo.leaves_of_units(units, end))
    for f in replay.findings:
        if (f.kind, f.seq) not in known:  # the trust units' findings are alerts already
            alerts.append(f"log: {f.kind} at entry {f.seq}: {f.detail}")
    found: dict[str, tuple[int, int, int]] = {}
    for public, subject in wanted.items():
        state = replay.certificates.get(public)
        if state is None:
            alerts.append(f"log: certificate {subject}: no issue entry the log accepts (its "
                          "status changes are not published)")
            continue
        found[subject] = (state.list, state.idx, state.status_at(now))
    # An issue the replay applied with a finding (its agency was not given the type at
    # that time) is named above and takes no valid slot.
    refused = {f.seq for f in replay.findings if f.kind == FindingKind.NO_AUTHORITY}
    issued = []
    for public, seq in replay.issued.items():
        if seq in refused:
            continue
        state = replay.certificates[public]
        if type(state.list) is int and type(state.idx) is int:
            issued.append((seq, state.list, state.idx, state.status_at(now)))
    return found, issued


def _build_list(key: bytes, slots: Slots, changes: Mapping[int, int]) -> StatusList:
    """A list from the database's counter (a log without publication entries that state
    slots): its taken slots valid, the log's ``changes`` applied, every other slot
    invalid (a token minted outside the registry with a stolen key points at an index
    that reads invalid)."""
    marks = slots.marks(key)
    for index, value in changes.items():
        if 0 <= index < slots.size:
            marks[index] = value
    return StatusList.from_marks(slots.bits, marks)


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
            lease: str | None = None, verifier_page: bool = True,
            full: bool = False) -> PublishReport:
    """See :meth:`ecert.Registry.publish`; ``lease`` is the holder id of a watcher, which
    publishes only while it holds the publication lease."""
    out = Path(directory)
    snap = ctx.execute(PUBLISH, {"directory": str(out.resolve()), "lease": lease,
                                 "previous": None if full else out})
    for alert in snap.alerts:
        log.error("publication alert: %s", alert)
    region, now = ctx.region, snap.now
    log_ref = {"size": snap.size, "root": b64url_encode(snap.root)}
    documents: dict[str, bytes] = {}
    status_signer = ctx.keystore.signer(snap.status_kid)
    for done, out_list in enumerate(snap.lists, 1):
        uri = _bundle.status_list_uri(region.base_url, out_list.id)
        documents[_bundle.relative_path(region.base_url, uri)] = make_status_list_token(
            uri, out_list.status_list, status_signer, issued_at=now,
            expires_at=now + int(status_list_validity.total_seconds()),
            ttl=int(status_list_ttl.total_seconds()),
            log={**log_ref, **out_list.slots.to_json()},
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
                           for list_id in (out_list.id for out_list in snap.lists)),
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
        written = repo.latest_publication()
        # The log's files first (immutable: right whatever is published next), a batch at
        # a time, so a log of millions of entries never sits in memory at once.
        write_log_files(out, _log_files(repo, out, snap.size, 0 if full or written is None
                                        or written[3] != str(out.resolve()) else written[2]))
        for origin_region, note in _our_cosignatures(repo, region.code).items():
            documents[f"{WITNESS_DIR}/{origin_region}"] = note.encode("utf-8")
    write_bundle(out, documents)
    with ctx._write() as repo:  # bookkeeping: which trust list this sequence became
        repo.finish_publication(snap.sequence, token_hash(trust_token))
    return PublishReport(out, snap.sequence, from_seconds(now),
                         from_seconds(trust_list.next_update),
                         tuple(sorted(documents)), len(snap.lists), snap.certificates,
                         snap.size, tuple(snap.alerts),
                         sum(isinstance(o.status_list, StatusList) for o in snap.lists))


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


def _log_files(repo: Repository, out: Path, size: int, written: int
               ) -> Iterator[dict[str, bytes]]:
    """Tiles and entry bundles of the tree of ``size`` that ``out`` does not have yet, a
    batch of at most 128 tiles (and their entry bundles) at a time.

    Every C2SP tile path names immutable content (a partial tile's path carries its
    width), so a file that exists is already right and is never rewritten. ``written``
    is the log size of the last publication completed into ``out``: the full tiles it
    wrote are not looked for again (``publish(full=True)`` looks for every one).
    """
    missing: list[tuple[int, int, int, bool, bool]] = []
    for level, index, width in merkle.tiles_for_size(size):
        if width == tiles.TILE_WIDTH and (index + 1) << (
                merkle.TILE_HEIGHT * (level + 1)) <= written:
            continue
        tile = not (out / LOG_DIR / tiles.tile_path(level, index, width)).exists()
        bundle = level == 0 and not (out / LOG_DIR / tiles.entries_path(index, width)).exists()
        if tile or bundle:
            missing.append((level, index, width, tile, bundle))
    for run in _runs(missing, 128):
        level, first, last = run[0][0], run[0][1], run[-1][1]
        files: dict[str, bytes] = {}
        stored = repo.read_tiles(level, first, last + 1)
        for _level, index, width, tile, _entries in run:
            if tile:
                found = stored.get(index)
                if found is None or found[0] < width:
                    raise StorageError(f"log tile {level}/{index} is missing from the database")
                files[f"{LOG_DIR}/{tiles.tile_path(level, index, width)}"] = \
                    found[1][:width * merkle.HASH_SIZE]
        if level == 0 and any(m[4] for m in run):
            start = first * tiles.TILE_WIDTH
            leaves = repo.log_leaves(start, last * tiles.TILE_WIDTH + run[-1][2])
            if len(leaves) != last * tiles.TILE_WIDTH + run[-1][2] - start:
                raise StorageError("the log has gaps: run 'ecert audit verify'",
                                   code="log_gap")
            for _level, index, width, _tile, bundle in run:
                if bundle:
                    offset = index * tiles.TILE_WIDTH - start
                    files[f"{LOG_DIR}/{tiles.entries_path(index, width)}"] = \
                        tiles.encode_entry_bundle(leaves[offset:offset + width])
        yield files


def _runs(missing: list[tuple[int, int, int, bool, bool]], most: int
          ) -> Iterator[list[tuple[int, int, int, bool, bool]]]:
    """Consecutive tiles of one level, at most ``most`` a run."""
    run: list[tuple[int, int, int, bool, bool]] = []
    for item in missing:
        if run and (item[0] != run[-1][0] or item[1] != run[-1][1] + 1 or len(run) == most):
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def write_bundle(out: Path, documents: Mapping[str, bytes]) -> None:
    """Write each file atomically; the trust list last, so it never names a missing file.

    Each file is written to a temporary beside it, flushed to disk and renamed over the
    old one: a reader (a web server, a verifier) sees the old file or the new one, never
    part of one, and a crash or a full disk leaves the old bundle standing. A failed
    write removes its temporary, so a watcher retrying on a full disk does not fill it.
    """
    last = [p for p in documents if p == _bundle.TRUST_LIST_PATH]
    rest = sorted(p for p in documents if p != _bundle.TRUST_LIST_PATH)
    try:
        for relative in [*rest, *last]:
            _write_file(out, relative, documents[relative])
    except OSError as e:
        raise PublishError(f"cannot write bundle to {out}: {e.strerror or e}") from e


def write_log_files(out: Path, batches: Iterable[Mapping[str, bytes]]) -> None:
    """Write the files of ``batches`` (each atomically, as :func:`write_bundle` does),
    ``_WRITERS`` at a time, while the next batch is read: reading the entries from the
    database and flushing files to disk overlap, and at most ``_IN_FLIGHT`` files are
    held in memory. Returns once every file is on disk."""
    pending: deque[Future[None]] = deque()
    made: set[str] = set()
    try:
        with ThreadPoolExecutor(_WRITERS) as pool:
            try:
                for batch in batches:
                    for relative, data in batch.items():
                        path = os.path.join(out, relative)
                        folder = os.path.dirname(path)
                        if folder not in made:  # once per folder, not once per file
                            os.makedirs(folder, exist_ok=True)
                            made.add(folder)
                        pending.append(pool.submit(_write_new, path, data))
                    while len(pending) > _IN_FLIGHT:
                        pending.popleft().result()
                while pending:
                    pending.popleft().result()
            finally:
                for future in pending:  # a failure: the rest is not written
                    future.cancel()
    except OSError as e:
        raise PublishError(f"cannot write bundle to {out}: {e.strerror or e}") from e


def _write_new(path: str, data: bytes) -> None:
    """:func:`_write_file` into an existing folder, in system calls alone: the writer
    threads hold the interpreter's lock only briefly, so the thread reading the next
    batch from the database is not kept waiting for it (with pathlib and a file object
    per tile, reading took four times as long)."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)  # on disk before the rename (as _write_file)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _write_file(out: Path, relative: str, data: bytes) -> None:
    path = out / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            # On disk before the rename: after a power cut the name never points at an
            # empty file.
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
