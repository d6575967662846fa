"""Audit: replay the whole log against the database, and prove entries to others.

``verify`` finds what was changed out of band — by anyone with write access to the
database, triggers dropped or not — and reports each finding with its kind and subject
(kinds in docs/format.md, "Audit findings"). It rebuilds the Merkle tree from the stored
leaves and compares it with every checkpoint the log key signed (and with a published
bundle's), replays authority from the first admin on, and compares the state the log
implies with every certificate, key, operator, agency and agreement row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from ecert import _windows
from ecert._authority import Action
from ecert._clock import from_seconds
from ecert._formats import bundle as _bundle
from ecert._formats import merkle
from ecert._formats.certificate import CertificateClaims
from ecert._formats.jose import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    key_from_jwk,
    parse_compact,
    strict_json_loads,
    verify_signature,
)
from ecert._formats.log import (
    LEGACY_OPERATOR,
    Entry,
    commit,
    commitment,
    token_hash,
    verify_unit,
)
from ecert._formats.statuslist import read_status_list_payload
from ecert._replay import Finding, FindingKind, Replay
from ecert._storage.repository import Repository
from ecert._storage.schema import certificates, log_entries
from ecert.errors import EcertError, FormatError, NotFound, RecordTampered
from ecert.models import Certificate, CertificateStatus, LogEntry, Role
from ecert.registry._core import _Context
from ecert.registry._lifecycle import STATUS_VALUES

__all__ = ["AuditReport", "History", "check_stored_token", "entries", "history", "verify"]

#: Tables whose append-only triggers ``verify`` checks are in place.
_TRIGGERS_SQLITE = ("log_entries_no_update", "log_entries_no_delete",
                    "checkpoints_no_update", "checkpoints_no_delete")
_TRIGGERS_PG = ("log_entries_append_only", "log_entries_no_truncate",
                "checkpoints_append_only", "checkpoints_no_truncate")


@dataclass(frozen=True)
class AuditReport:
    """The outcome of :meth:`ecert.Registry.audit`; truthy when intact."""

    log_size: int
    findings: tuple[Finding, ...]

    @property
    def intact(self) -> bool:
        """Whether nothing was found."""
        return not self.findings

    def __bool__(self) -> bool:
        return self.intact

    def to_json(self) -> dict[str, Any]:
        """What ``ecert audit verify --json`` prints."""
        return {"intact": self.intact, "log_size": self.log_size,
                "findings": [f.to_json() for f in self.findings]}


@dataclass(frozen=True)
class History:
    """Every log entry about one certificate, with inclusion proofs."""

    subject: str
    commitment: str
    checkpoint_size: int
    checkpoint_root: str
    entries: tuple[LogEntry, ...]
    proofs: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What ``ecert audit history --json`` prints."""
        return {
            "subject": self.subject, "commitment": self.commitment,
            "checkpoint": {"size": self.checkpoint_size, "root": self.checkpoint_root},
            "entries": [_entry_json(e, self.proofs.get(e.seq)) for e in self.entries],
        }


def _entry_json(entry: LogEntry, proof: Sequence[str] | None) -> dict[str, Any]:
    return {"seq": entry.seq, "at": entry.at.isoformat(), "operator": entry.operator,
            "operator_kid": entry.operator_kid, "action": entry.action,
            "subject": entry.subject, "details": dict(entry.details),
            "leaf": entry.leaf.decode("utf-8"), "note": entry.note,
            "inclusion_proof": None if proof is None else list(proof)}


def _log_entry(row: Any) -> LogEntry:
    leaf = bytes(row.leaf)
    try:
        entry = Entry.decode(leaf)
        kid: str | None = None if entry.operator == LEGACY_OPERATOR else entry.operator
        details: Mapping[str, Any] = entry.details
    except FormatError:
        kid, details = None, {}
    return LogEntry(int(row.seq), from_seconds(int(row.at)), row.operator, kid, row.action,
                    row.plain_subject, details, leaf, getattr(row, "note", None))


def entries(ctx: _Context, subject: str | None, limit: int, *, start: int = 0
            ) -> list[LogEntry]:
    """Log entries from ``start`` on, oldest first, optionally about one subject."""
    with ctx.read() as repo:
        rows = repo.log_rows(start, plain_subject=subject, limit=limit)
    return [_log_entry(r) for r in rows]


# -- audit verify ------------------------------------------------------------------------------


def _require_auditor(ctx: _Context) -> None:
    """Auditing reads everything: only an authenticated auditor (or admin) may."""
    operator, _signer = ctx.authenticate()
    if not {Role.AUDITOR, Role.ADMIN} & set(operator.roles):
        from ecert.errors import PermissionDenied

        raise PermissionDenied(f"operator {operator.name} may not audit (needs the auditor "
                               "role)")


def verify(ctx: _Context, bundle: Path | None, *, workers: int | None = None) -> AuditReport:
    """See :meth:`ecert.Registry.audit`.

    One pass over the log, streamed in seq order: each leaf is decoded once; the tree is
    integrated chunk by chunk (its root taken at every checkpoint's size); every unit's
    operator signature is checked in ``workers`` processes (by default one per CPU once
    the log holds :data:`PARALLEL_MIN_ENTRIES` entries) a few chunks ahead of the
    replay, which takes each answer from them instead of checking again. Findings, and
    their order, are those of a replay that checks everything itself.
    """
    _require_auditor(ctx)
    early: list[Finding] = []  # triggers, the sequence, the rows' lookup columns

    def find(kind: str, subject: str, seq: int | None, detail: str) -> None:
        early.append(Finding(kind, subject, seq, detail))

    later: list[Finding] = []

    def find_later(kind: str, subject: str, seq: int | None, detail: str) -> None:
        later.append(Finding(kind, subject, seq, detail))

    with ctx.read() as repo:
        size = repo.counter("log_size")
        checkpoints = repo.list_checkpoints()
        _check_triggers(repo, find)
        # published status lists are compared with the state at the log size each names
        published = _published_lists(bundle, find_later) if bundle is not None else []
        if workers is None:
            workers = (os.cpu_count() or 1) if size >= PARALLEL_MIN_ENTRIES else 0
        replay = Replay()
        ahead = _Signatures(workers)
        if ahead.pool is not None:
            replay.verify_unit = ahead
        try:
            walk = _Walk(replay, ahead, find, sorted({c[0] for c in checkpoints}),
                         sorted({p[0] for p in published}))
            # 1. the sequence: no entry deleted, inserted out of turn or reordered;
            # 2. the tree; 3. authority, signatures and the state the log implies
            walk.run(repo, lambda list_size: _compare_list(
                replay, walk.roots, published, list_size, find_later))
        finally:
            ahead.close()
            if ahead.pool is not None:
                del replay.verify_unit
        rows, leaves, roots = walk.rows, walk.leaves, walk.roots
        if rows != size and not early:
            find("entry_deleted", "", rows,
                 f"the log counter says {size} entries, the table holds {rows}")
        findings = list(early)
        # 2. the tree against every checkpoint the log key signed
        for cp_size, cp_root, _note in checkpoints:
            if roots.get(cp_size) != cp_root:
                findings.append(Finding(
                    "checkpoint_mismatch", "", cp_size,
                    f"the entries no longer hash to the checkpoint of size {cp_size}: an "
                    "entry was changed, deleted, inserted or reordered"))
        findings.extend(later)
        findings.extend(replay.findings)

        def find_state(kind: str, subject: str, seq: int | None, detail: str) -> None:
            findings.append(Finding(kind, subject, seq, detail))

        _compare_state(ctx, repo, replay, find_state)
    for list_size, _list_id, path, _lst, _root, _iat in published:
        if list_size > leaves:
            findings.append(Finding(
                "published_status_mismatch", path, None,
                f"built from a log of {list_size} entries; this log has {leaves}"))
    return AuditReport(leaves, tuple(findings))


#: From this many log entries on, unit signatures are checked in worker processes.
PARALLEL_MIN_ENTRIES = 1_024
#: Log rows read (and units sent to a worker) at a time.
_CHUNK_ROWS = 2_048
#: How many chunks the workers may run ahead of the replay.
_AHEAD_CHUNKS = 6
_UNIT_CONTEXT = b"ecert-log-unit-v1\n"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")  # encoded in JSON as it is
_KEY_ACTIONS = frozenset({Action.OPERATOR_ADD.value, Action.OPERATOR_ROTATE_KEY.value,
                          Action.OPERATOR_RESET.value})


def _content_hash(entry: Entry, leaf: bytes) -> bytes:
    """``entry.content_hash()`` from its leaf, which :meth:`Entry.decode` proved canonical:
    the content is the leaf itself, or the leaf less its ``sig`` member (sorted between
    ``s`` and ``t``, so it is followed only by ``t`` and ``v``)."""
    if entry.sig is None:
        return hashlib.sha256(leaf).digest()
    tail = b',"t":%d,"v":1}' % entry.time
    sig = entry.sig
    encoded = (f'"{sig}"' if _BASE64URL.fullmatch(sig) else json.dumps(sig, ensure_ascii=False))
    member = b',"sig":' + encoded.encode("utf-8") + tail
    if leaf.endswith(member):
        return hashlib.sha256(leaf[:-len(member)] + tail).digest()
    return entry.content_hash()  # pragma: no cover - canonical leaves always end so


def _verify_batch(jwks: Mapping[str, Mapping[str, str]],
                  items: Sequence[tuple[str, bytes, str]]) -> list[bool]:
    """Worker: ``verify_unit``'s checks of ``(operator kid, unit message, signature)``."""
    keys: dict[str, Any] = {}
    results = []
    for kid, message, signature in items:
        try:
            if kid not in keys:
                keys[kid] = key_from_jwk(jwks[kid])
            alg, key = keys[kid]
            results.append(verify_signature(alg, key, message, b64url_decode(signature)))
        except FormatError:
            results.append(False)
    return results


class _Signatures:
    """Unit signatures checked in worker processes ahead of the replay.

    Each complete unit is checked with the key its operator id last named in an
    ``operator.add``, ``operator.rotate_key`` or ``operator.reset`` entry (whatever the
    authority of that entry: the replay judges authority). The replay then calls this
    object instead of :func:`verify_unit`; it answers from a worker only for the very
    entries and the same key that were checked, and checks anything else on the spot, so
    the outcome is always the replay's own.
    """

    def __init__(self, workers: int) -> None:
        self.pool: Any = None
        if workers > 0:
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=workers)
        self._keys: dict[str, Mapping[str, str]] = {}
        self._batch: list[tuple[str, bytes, str]] = []
        self._units: list[tuple[tuple[Entry, ...], Mapping[str, str]]] = []
        #: id of a unit's last entry -> (its entries, the key, future, offset)
        self._answers: dict[int, tuple[tuple[Entry, ...], Mapping[str, str], Any, int]] = {}

    def saw(self, entry: Entry) -> None:
        """Note the keys operators are given, in log order."""
        if self.pool is not None and entry.action in _KEY_ACTIONS:
            key = entry.details.get("key")
            if isinstance(key, dict) and isinstance(key.get("kid"), str):
                self._keys[key["kid"]] = key

    def unit(self, unit: Sequence[tuple[int, Entry, bytes]]) -> None:
        """Queue a complete unit (its last entry carries the signature)."""
        if self.pool is None:
            return
        entries = tuple(e for _, e, _ in unit)
        operator, sig = entries[0].operator, entries[-1].sig
        jwk = self._keys.get(operator)
        if jwk is None or sig is None or any(e.operator != operator for e in entries):
            return  # checked on the spot, if the replay gets that far
        message = _UNIT_CONTEXT + b"".join(_content_hash(e, leaf) for _, e, leaf in unit)
        self._batch.append((operator, message, sig))
        self._units.append((entries, jwk))

    def flush(self) -> None:
        """Send the queued units to a worker."""
        if not self._batch:
            return
        jwks = {kid: self._keys[kid] for kid in {kid for kid, _, _ in self._batch}}
        try:
            future = self.pool.submit(_verify_batch, jwks, self._batch)
        except Exception:  # a broken pool: the replay checks these itself
            future = None
        if future is not None:
            for offset, (entries, jwk) in enumerate(self._units):
                self._answers[id(entries[-1])] = (entries, jwk, future, offset)
        self._batch, self._units = [], []

    def __call__(self, entries: Sequence[Entry], jwk: Mapping[str, str]) -> bool:
        found = self._answers.pop(id(entries[-1]), None) if entries else None
        if found is not None:
            checked, checked_jwk, future, offset = found
            if (len(checked) == len(entries)
                    and all(a is b for a, b in zip(checked, entries, strict=True))
                    and checked_jwk == jwk):
                answer = _result(future, offset)
                if answer is not None:
                    return answer
        return verify_unit(entries, jwk)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self._answers.clear()


def _result(future: Any, offset: int) -> bool | None:
    """A worker's answer, or None if it died (the replay then checks on the spot)."""
    try:
        return bool(future.result()[offset])
    except Exception:
        return None


class _Walk:
    """The one pass over the log rows: sequence, lookup columns, tree, replay."""

    def __init__(self, replay: Replay, ahead: _Signatures, find: Any,
                 checkpoint_sizes: Sequence[int], list_sizes: Sequence[int]) -> None:
        self.replay = replay
        self.ahead = ahead
        self.find = find
        self.checkpoint_sizes = set(checkpoint_sizes)
        self.stops = sorted(set(checkpoint_sizes) | set(list_sizes))
        self.list_sizes = set(list_sizes)
        self.rows = 0  #: rows in the table
        self.leaves = 0  #: entries before the first gap in the sequence
        #: The tree's root at each checkpoint's size (that the log reaches).
        self.roots: dict[int, bytes] = {}
        self._tiles: dict[tuple[int, int], bytes] = {}
        self._hashes: list[bytes] = []
        self._tree = 0  # leaves integrated
        self._root = merkle.EMPTY_ROOT
        self._unit: list[tuple[int, Entry, bytes]] = []
        #: Decoded chunks waiting for the replay: (seq, entry or error text).
        self._queue: deque[list[tuple[int, Entry | str]]] = deque()
        self._chunk: list[tuple[int, Entry | str]] = []
        #: The replay's unit in progress (as Replay.apply_leaves groups them).
        self._pending_unit: list[tuple[int, Entry]] = []

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        return self._tiles[(level, index)][:width * merkle.HASH_SIZE]

    def run(self, repo: Repository, compare_list: Any) -> None:
        query = select(log_entries.c.seq, log_entries.c.leaf, log_entries.c.action,
                       log_entries.c.at, log_entries.c.plain_subject
                       ).order_by(log_entries.c.seq).execution_options(yield_per=_CHUNK_ROWS)
        stops = iter(self.stops)
        stop = next(stops, None)
        broken = False
        for row in repo.conn.execute(query):
            self.rows += 1
            if broken:
                continue
            expected = self.leaves
            seq = int(row.seq)
            if seq != expected:
                self.find("entry_deleted" if seq > expected else "entry_inserted",
                          row.plain_subject, expected,
                          f"entry {expected} is missing; the next one is {row.seq}")
                broken = True
                continue
            while stop is not None and stop == expected:
                self._reach(stop, compare_list)
                stop = next(stops, None)
            self._leaf(row, bytes(row.leaf))
            if len(self._hashes) >= _CHUNK_ROWS:
                self._integrate()
                self._end_chunk()
        while stop is not None and stop <= self.leaves:
            self._reach(stop, compare_list)
            stop = next(stops, None)
        self._integrate()
        self._end_chunk()
        self._drain()
        self._unfinished()

    def _unfinished(self) -> None:
        """As Replay.apply_leaves ends: a unit left open is reported."""
        if self._pending_unit:
            first_seq, first = self._pending_unit[0]
            self.replay._find(FindingKind.MALFORMED, first.subject, first_seq,
                              "a unit of work without its signature (truncated or edited)")
        self._pending_unit, self._unit = [], []

    def _leaf(self, row: Any, leaf: bytes) -> None:
        seq = self.leaves
        self.leaves += 1
        self._hashes.append(merkle.leaf_hash(leaf))
        try:
            entry = Entry.decode(leaf)
        except FormatError as e:
            self._chunk.append((seq, e.message))  # the replay reports it
            return
        if entry.action != row.action or entry.time != int(row.at):
            self.find("entry_modified", row.plain_subject, seq,
                      "the entry's lookup columns disagree with its signed content")
        self._chunk.append((seq, entry))
        if entry.operator == LEGACY_OPERATOR:
            return
        self.ahead.saw(entry)
        self._unit.append((seq, entry, leaf))
        if entry.sig is not None:
            self.ahead.unit(self._unit)
            self._unit = []

    def _integrate(self) -> None:
        if not self._hashes:
            return
        result = merkle.integrate(self._tree, self._hashes, self)
        self._tiles.update(result.tiles)
        self._tree, self._hashes = result.new_size, []
        self._root = result.root
        # Only the rightmost tile of each level is read again.
        last: dict[int, int] = {}
        for level, index in self._tiles:
            last[level] = max(index, last.get(level, index))
        for key in [k for k in self._tiles if k[1] != last[k[0]]]:
            del self._tiles[key]

    def _end_chunk(self) -> None:
        self.ahead.flush()
        if self._chunk:
            self._queue.append(self._chunk)
            self._chunk = []
        while len(self._queue) > _AHEAD_CHUNKS:
            self._apply(self._queue.popleft())

    def _drain(self) -> None:
        self.ahead.flush()
        if self._chunk:
            self._queue.append(self._chunk)
            self._chunk = []
        while self._queue:
            self._apply(self._queue.popleft())

    def _reach(self, size: int, compare_list: Any) -> None:
        """The log has ``size`` entries: take the root; compare a list published then."""
        self._integrate()
        if size in self.checkpoint_sizes:
            self.roots[size] = self._root if self._tree else merkle.EMPTY_ROOT
        if size in self.list_sizes:
            # The replay groups each stretch between published lists on its own.
            self._drain()
            self._unfinished()
            compare_list(size)

    def _apply(self, chunk: Sequence[tuple[int, Entry | str]]) -> None:
        """What :meth:`Replay.apply_leaves` does with decoded entries."""
        replay = self.replay
        unit = self._pending_unit
        for seq, entry in chunk:
            if isinstance(entry, str):
                replay._find(FindingKind.MALFORMED, "", seq, entry)
                continue
            if entry.operator == LEGACY_OPERATOR:
                replay._legacy(seq, entry)
                continue
            unit.append((seq, entry))
            if entry.sig is not None:
                replay.apply_unit(unit)
                unit = []
        self._pending_unit = unit


def _check_triggers(repo: Repository, find: Any) -> None:
    conn = repo.conn
    if conn.dialect.name == "postgresql":
        # Only the registry's own schema: other schemas may hold triggers of the same name.
        found = {r[0]: r[1] for r in conn.execute(text(
            "SELECT t.tgname, t.tgenabled FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT t.tgisinternal AND n.nspname = current_schema()"))}
        role = conn.execute(text("SHOW session_replication_role")).scalar()
        if role != "origin":
            find("trigger_bypassed", "session_replication_role", None,
                 f"session_replication_role is {role}: triggers do not fire")
        for name in _TRIGGERS_PG:
            if name not in found:
                find("trigger_missing", name, None, f"trigger {name} was dropped")
            elif found[name] == "D":
                find("trigger_missing", name, None, f"trigger {name} is disabled")
    else:
        found_names = {r[0] for r in conn.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
        for name in _TRIGGERS_SQLITE:
            if name not in found_names:
                find("trigger_missing", name, None, f"trigger {name} was dropped")


def _compare_state(ctx: _Context, repo: Repository, replay: Replay, find: Any) -> None:
    key = ctx.commitment_key
    matches = _TokenRows(ctx)
    logged_certificates = replay.certificates
    status_values = {s.value: v for s, v in STATUS_VALUES.items()}
    matched = 0
    for row in repo.certificate_facts():
        # commitment(key, row.id), with the one-shot HMAC
        logged = logged_certificates.get(commit(
            hmac.digest(key, row.id.encode("utf-8"), "sha256")[:16], row.id))
        if logged is None:
            find("certificate_unlogged", row.id, None,
                 "a certificate row no log entry issued")
            continue
        matched += 1
        stored_hash = token_hash(row.token) if row.token else row.token_hash
        if stored_hash != logged.token or (row.token_hash and row.token_hash != logged.token):
            find("certificate_modified", row.id, None,
                 "the stored token is not the one the log recorded at issue")
        if (int(row.status_list_id), int(row.status_index)) != (logged.list, logged.idx):
            find("certificate_modified", row.id, None, "its status-list slot was changed")
        status = status_values.get(row.status)
        if status is None:
            status = STATUS_VALUES[CertificateStatus(row.status)]
        if status != logged.status:
            find("status_mismatch", row.id, None,
                 f"the database says {row.status}, the log says {logged.status}")
        if row.revoke_at != logged.revoke_at:
            find("status_mismatch", row.id, None,
                 f"the database schedules its revocation at {row.revoke_at}, "
                 f"the log at {logged.revoke_at}")
        if (row.redacted_at is not None) != logged.redacted:
            find("certificate_modified", row.id, None,
                 "redacted in the database without a logged redaction"
                 if row.redacted_at is not None else "a logged redaction was undone")
        if row.token and row.redacted_at is None and not matches(row):
            _check_row_against_token(row, find)
    if matched != len(logged_certificates):
        # Rows have distinct ids, so distinct commitments: some logged one has no row.
        seen = {commitment(key, cert_id) for cert_id in repo.conn.execute(
            select(certificates.c.id)).scalars()}
        for c, logged in logged_certificates.items():
            if c not in seen:
                find("certificate_missing", c, None,
                     f"the log issued a certificate of {logged.type} that the database lacks")
    for info in repo.list_keys():
        proven = replay.keys.get(info.kid)
        if proven is None:
            find("key_unproven", info.kid, None, "no signed log entry created this key")
        elif (proven.role, proven.agency, dict(proven.jwk)) != (
                info.role.value, info.agency_code, dict(info.public_jwk)):
            find("key_modified", info.kid, None, "the key row differs from its logged creation")
        elif (proven.retired_at is None) != (info.retired_at is None) or (
                proven.compromised_since != (None if info.compromised_since is None
                                             else int(info.compromised_since.timestamp()))):
            find("key_modified", info.kid, None, "its retirement or compromise was changed")
    for operator in repo.list_operators():
        logged_op = replay.operators.get(commitment(key, operator.name))
        if logged_op is None:
            find("operator_unlogged", operator.name, None,
                 "an operator no admin's signed entry added")
        elif (logged_op.kid, logged_op.active, sorted(g.to_json()["role"]
              for g in logged_op.grants)) != (operator.kid, operator.active,
                                              sorted(g.role.value for g in operator.grants)) \
                or [g.to_json() for g in logged_op.grants] != [g.to_json()
                                                                for g in operator.grants]:
            find("operator_modified", operator.name, None,
                 "the operator's key, roles or status differ from the log")
    for agency in repo.list_agencies():
        if not _windows.matches(agency, replay.agencies.get(agency.code)):
            find("record_modified", f"agency {agency.code}", None,
                 "the agency row (or its types) differs from the log")
    for cert_type in repo.list_types():
        if cert_type.code not in replay.types:
            find("record_modified", f"type {cert_type.code}", None, "a type the log never added")
        elif replay.types[cert_type.code].get("version") != cert_type.version:
            find("record_modified", f"type {cert_type.code}", None,
                 "the type's current version differs from the log")
    for agreement in repo.list_agreements():
        if replay.agreements.get(agreement.region) != agreement:
            find("record_modified", f"agreement {agreement.region}", None,
                 "the agreement differs from the log")
    for list_id, _size, _bits, allocated in repo.list_status_lists():
        logged_count = len(replay.statuses.get(list_id, {}))
        if allocated < logged_count:
            find("record_modified", f"status list {list_id}", None,
                 f"{allocated} slots allocated but the log issued {logged_count}")


class _TokenRows:
    """Whether a certificate row says exactly what its token says, cheaply.

    The payload issuance signs is the canonical JSON of claims that are all columns of
    the row (or follow from them and the region), so the row is rebuilt into that JSON
    and compared with the token's decoded payload, byte for byte. Equal bytes mean the
    token parses and :func:`_check_row_against_token` would find nothing; any other
    token (another shape, an adopted one, a changed row) is compared the slow way.
    """

    def __init__(self, ctx: _Context) -> None:
        self.base_url = ctx.region.base_url
        self.region = ctx.region.code
        self.headers: set[str] = set()  # header segments seen to parse

    def __call__(self, row: Any) -> bool:
        token = row.token
        parts = token.split(".") if isinstance(token, str) else ()
        if len(parts) != 3 or not all(parts) or len(token) > 1 << 20:
            return False
        header = parts[0]
        try:
            if header not in self.headers:
                if not isinstance(strict_json_loads(b64url_decode(header)), dict):
                    return False
                if len(self.headers) < 1_024:
                    self.headers.add(header)
            payload = b64url_decode(parts[1])
            b64url_decode(parts[2])
            claims = CertificateClaims(
                iss=f"{self.base_url}/agencies/{row.agency_code}", sub=row.holder, jti=row.id,
                iat=row.issued_at, nbf=row.valid_from, exp=row.valid_until, vct=row.type_code,
                vct_version=row.type_version, region=self.region, holder_name=row.holder_name,
                claims=row.claims, status_index=row.status_index,
                status_list_uri=_bundle.status_list_uri(self.base_url, row.status_list_id),
                supersedes=row.supersedes).to_payload()
            if canonical_json(claims) != payload:
                return False
            CertificateClaims.from_payload(claims)  # what the slow way would refuse
        except (FormatError, ValueError, TypeError):
            return False
        return True


def _check_row_against_token(row: Any, find: Any) -> None:
    """The row's columns must say what its (logged) token says."""
    try:
        claims = CertificateClaims.from_payload(parse_compact(row.token, max_bytes=1 << 20)
                                                .payload)
    except FormatError:
        find("certificate_modified", row.id, None, "the stored token does not parse")
        return
    facts = (claims.jti, claims.sub, claims.holder_name, dict(claims.claims), claims.iat,
             claims.nbf, claims.exp, claims.status_index, claims.vct)
    stored = (row.id, row.holder, row.holder_name, dict(row.claims), int(row.issued_at),
              int(row.valid_from), None if row.valid_until is None else int(row.valid_until),
              int(row.status_index), row.type_code)
    if facts != stored:
        find("certificate_row_mismatch", row.id, None,
             "the row's holder, name, claims, dates or slot differ from its signed token")


_Published = tuple[int, int, str, Any, str, int]


def _published_lists(bundle: Path, find: Any) -> list[_Published]:
    """``(log size, list id, file, status list, log root, iat)`` of each published list."""
    found: list[_Published] = []
    status_dir = bundle / "status"
    for path in sorted(status_dir.glob("*.jwt")) if status_dir.is_dir() else []:
        try:
            list_id = int(path.stem)
            payload = parse_compact(path.read_text("ascii").strip(),
                                    max_bytes=16 << 20).payload
            token = read_status_list_payload(payload)
        except (OSError, ValueError, EcertError) as e:
            find("published_status_mismatch", path.name, None, f"unreadable: {e}")
            continue
        log_ref = payload.get("log")
        size = log_ref.get("size") if isinstance(log_ref, dict) else None
        root = log_ref.get("root") if isinstance(log_ref, dict) else None
        if type(size) is not int or not isinstance(root, str):
            find("published_status_mismatch", path.name, None, "names no log tree")
            continue
        found.append((size, list_id, path.name, token.status_list, root, token.issued_at))
    return found


def _compare_list(replay: Replay, roots: Mapping[int, bytes], published: Sequence[_Published],
                  size: int, find: Any) -> None:
    for list_size, list_id, name, lst, root, issued_at in published:
        if list_size != size:
            continue
        known = roots.get(size)
        if known is not None and b64url_encode(known) != root:
            find("published_status_mismatch", name, None,
                 "the list names a log root this log never had at that size")
        # What the log says at the list's iat: scheduled revocations due by then count.
        expected = replay.statuses_at(list_id, issued_at)
        for index in range(lst.size):
            want = expected.get(index, 1)
            if lst[index] != want:
                find("published_status_mismatch", f"{name}#{index}", None,
                     f"published {lst[index]}, the log says {want}")
                break


# -- proving ---------------------------------------------------------------------------------


def check_stored_token(ctx: _Context, repo: Repository, cert: Certificate) -> None:
    """Refuse a stored certificate whose token does not verify or is not the logged one."""
    def tampered(why: str) -> RecordTampered:
        return RecordTampered(f"certificate {cert.id} in the database does not verify ({why}): "
                              "nothing was signed; run 'ecert audit verify'")

    if not cert.token:
        raise tampered("it was redacted")
    try:
        parsed = parse_compact(cert.token, max_bytes=1 << 20)
        claims = CertificateClaims.from_payload(parsed.payload)
    except FormatError as e:
        raise tampered("its token does not parse") from e
    key = repo.get_key(str(parsed.header.get("kid")))
    if key is None or key.agency_code != cert.agency_code:
        raise tampered("its token names no key of its agency")
    alg, public = key_from_jwk(key.public_jwk)
    if parsed.header.get("alg") != alg or not verify_signature(
            alg, public, parsed.signing_input, parsed.signature):
        raise tampered("its signature does not verify")
    if (claims.jti, claims.sub, claims.holder_name, dict(claims.claims), claims.exp,
            claims.status_index) != (cert.id, cert.holder, cert.holder_name, dict(cert.claims),
                                     None if cert.valid_until is None
                                     else int(cert.valid_until.timestamp()),
                                     cert.status_index):
        raise tampered("its row differs from its signed token")
    issued = [r for r in repo.log_rows(plain_subject=cert.id, actions=[Action.CERT_ISSUE.value])]
    if len(issued) != 1:
        raise tampered("the log holds no single issue entry for it")
    try:
        logged = Entry.decode(bytes(issued[0].leaf)).details.get("token")
    except FormatError as e:
        raise tampered("its issue entry does not parse") from e
    if logged != token_hash(cert.token):
        raise tampered("its token is not the one the log recorded at issue")


def history(ctx: _Context, cert_id: str) -> History:
    """See :meth:`ecert.Registry.history`."""
    with ctx.read() as repo:
        rows = repo.log_rows(plain_subject=cert_id)
        if not rows:
            raise NotFound(f"the log holds nothing about {cert_id}")
        latest = repo.latest_checkpoint()
        proofs: dict[int, tuple[str, ...]] = {}
        size, root = (0, b"") if latest is None else (latest[0], latest[1])
        if latest is not None:
            from ecert.registry._publication import _DbTiles

            reader = _DbTiles(repo)
            for row in rows:
                if int(row.seq) < size:
                    proofs[int(row.seq)] = tuple(
                        b64url_encode(h) for h in merkle.tile_inclusion_proof(
                            int(row.seq), size, reader))
    return History(cert_id, commitment(ctx.commitment_key, cert_id), size,
                   b64url_encode(root), tuple(_log_entry(r) for r in rows), proofs)
