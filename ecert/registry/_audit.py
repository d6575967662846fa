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
from collections import deque, namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from ecert import _windows
from ecert._allocation import permutation
from ecert._authority import Action
from ecert._clock import from_seconds
from ecert._formats import bundle as _bundle
from ecert._formats import merkle
from ecert._formats.certificate import CertificateClaims
from ecert._formats.jose import (
    ED25519,
    b64url_decode,
    b64url_encode,
    canonical_json_probe,
    fast_json_loads,
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
)
from ecert._formats.statuslist import read_status_list_payload
from ecert._replay import Finding, FindingKind, Replay
from ecert._slots import claimed_taken, logged_list, shape_problem, taken_mismatch
from ecert._storage.repository import Repository
from ecert._storage.schema import certificates, log_entries
from ecert.errors import EcertError, FormatError, NotFound, RecordTampered
from ecert.models import Certificate, CertificateStatus, KeyInfo, LogEntry, Role
from ecert.registry._core import _Context, logged_entries
from ecert.registry._lifecycle import STATUS_VALUES
from ecert.registry._sharing import (
    BY_STATUTE,
    CHECK_KIND,
    FETCH_KIND,
    consent_commitments,
    covering,
    scope_of,
    use_details,
    use_subject,
)

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
    #: Which library checked the operators' Ed25519 signatures: ``"pynacl"`` (libsodium,
    #: with the ``audit`` extra installed) or ``"cryptography"`` (OpenSSL).
    signature_backend: str = "cryptography"

    @property
    def intact(self) -> bool:
        """Whether nothing was found."""
        return not self.findings

    def __bool__(self) -> bool:
        return self.intact

    def to_json(self) -> dict[str, Any]:
        """What ``ecert audit verify --json`` prints."""
        return {"intact": self.intact, "log_size": self.log_size,
                "findings": [f.to_json() for f in self.findings],
                "signature_backend": self.signature_backend}


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

    One pass over the log, streamed in seq order through one read transaction: the main
    process reads the rows and checks the sequence; ``workers`` processes (by default one
    per CPU once the log holds :data:`PARALLEL_MIN_ENTRIES` entries) hash and decode each
    leaf once, compare its lookup columns and check the unit signatures, a few chunks
    ahead; the main process integrates the tree (its root taken at every checkpoint's
    size) and replays, taking each signature's verdict from them instead of checking
    again. Certificate rows are then compared with their tokens in the workers and with
    the replayed state in the main process. Findings, and their order, are those of a
    replay that checks everything itself.
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
        signatures = _Signatures()
        replay.verify_unit = signatures
        pool: Any = None
        if workers > 0:
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(max_workers=workers)
        try:
            walk = _Walk(replay, signatures, pool, find, sorted({c[0] for c in checkpoints}),
                         sorted({p[0] for p in published}))
            # The workers check a unit's signature only under a key they know. Until the
            # first chunks are replayed they know only what the operators table says; that
            # is a hint, never trusted: the replay uses a verdict only for the key it
            # derived itself from the log.
            walk.hint_keys({o.kid: o.public_jwk for o in repo.list_operators()})
            # 1. the sequence: no entry deleted, inserted out of turn or reordered;
            # 2. the tree; 3. authority, signatures and the state the log implies
            walk.run(repo, lambda list_size: _compare_list(
                replay, walk.roots, published, list_size, find_later))
            findings: list[Finding] = []
            rows, leaves, roots = walk.rows, walk.leaves, walk.roots
            if rows != size and not early:
                find("entry_deleted", "", rows,
                     f"the log counter says {size} entries, the table holds {rows}")
            findings.extend(early)
            # 2. the tree against every checkpoint the log key signed
            for cp_size, cp_root, _note in checkpoints:
                if roots.get(cp_size) != cp_root:
                    findings.append(Finding(
                        "checkpoint_mismatch", "", cp_size,
                        f"the entries no longer hash to the checkpoint of size {cp_size}: "
                        "an entry was changed, deleted, inserted or reordered"))
            findings.extend(later)
            findings.extend(replay.findings)

            def find_state(kind: str, subject: str, seq: int | None, detail: str) -> None:
                findings.append(Finding(kind, subject, seq, detail))

            _compare_state(ctx, repo, replay, find_state, pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            del replay.verify_unit
    for list_size, _list_id, path, _lst, _root, _iat, _taken in published:
        if list_size > leaves:
            findings.append(Finding(
                "published_status_mismatch", path, None,
                f"built from a log of {list_size} entries; this log has {leaves}"))
    return AuditReport(leaves, tuple(findings), signature_backend())


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


def _ed25519_backend() -> tuple[str, Any]:
    """Which library checks Ed25519 unit signatures: libsodium through PyNaCl when it is
    installed (``pip install 'ecert[audit]'``; about twice as fast), else ``cryptography``."""
    try:
        from nacl.bindings import crypto_sign_open
    except ImportError:
        return "cryptography", None
    return "pynacl", crypto_sign_open


_BACKEND, _SODIUM_VERIFY = _ed25519_backend()


def signature_backend() -> str:
    """``"pynacl"`` when libsodium checks Ed25519 signatures, else ``"cryptography"``."""
    return _BACKEND if _SODIUM_VERIFY is not None else "cryptography"


class _Verifier:
    """``verify_signature`` with a key cache, through libsodium when it can.

    libsodium is stricter than OpenSSL (it also refuses small-order keys and ``R``
    values), so what it accepts OpenSSL accepts too; what it refuses is checked again
    with ``cryptography``, so the outcome is always ``cryptography``'s and only a bad
    signature pays for two checks.
    """

    def __init__(self) -> None:
        self._keys: dict[str, tuple[Mapping[str, str], Any, Any, bytes | None]] = {}

    def __call__(self, jwk: Mapping[str, str], message: bytes, signature: str) -> bool:
        kid = jwk.get("kid")
        cached = self._keys.get(kid) if isinstance(kid, str) else None
        if cached is None or cached[0] != jwk:
            try:
                alg, key = key_from_jwk(jwk)
            except FormatError:
                return False
            raw = None
            if alg == ED25519 and _SODIUM_VERIFY is not None:
                raw = b64url_decode(str(jwk.get("x")))  # key_from_jwk checked it
            cached = (dict(jwk), alg, key, raw)
            if isinstance(kid, str) and len(self._keys) < 4_096:
                self._keys[kid] = cached
        _jwk, alg, key, raw = cached
        try:
            sig = b64url_decode(signature)
        except FormatError:
            return False
        if raw is not None and len(sig) == 64:
            try:
                _SODIUM_VERIFY(sig + message, raw)  # the message if the signature verifies
                return True
            except Exception:  # noqa: S110 - refused: OpenSSL's verdict is the reference
                pass
        return verify_signature(alg, key, message, sig)


def _verify_unit_fast(verifier: _Verifier, entries: Sequence[Entry],
                      jwk: Mapping[str, str]) -> bool:
    """:func:`ecert._formats.log.verify_unit`, through ``verifier``."""
    if not entries or entries[-1].sig is None or any(e.sig for e in entries[:-1]):
        return False
    if any(e.operator != entries[0].operator for e in entries):
        return False
    message = _UNIT_CONTEXT + b"".join(e.content_hash() for e in entries)
    return verifier(jwk, message, entries[-1].sig)


# -- worker processes ------------------------------------------------------------------------

_WORKER_VERIFIER: _Verifier | None = None


def _worker_verifier() -> _Verifier:
    global _WORKER_VERIFIER
    if _WORKER_VERIFIER is None:
        _WORKER_VERIFIER = _Verifier()
    return _WORKER_VERIFIER


#: seq, leaf, action, at, plain subject, subject (as published)
_Row = tuple[int, bytes, str, int, str | None, str]
#: Per leaf: the decoded entry's fields (or the decoding error's text).
_Decoded = tuple[int, str, str, str, Mapping[str, Any], str | None] | str


def _decode_chunk(keys: Mapping[str, Mapping[str, str]], rows: Sequence[_Row]
                  ) -> tuple[bytes, list[_Decoded], list[tuple[int, str | None]],
                             dict[int, tuple[int, Mapping[str, str], bool]]]:
    """Worker (or the main process, with no workers): the per-leaf work of the pass.

    Returns the leaf hashes (concatenated), each leaf decoded, the entries whose lookup
    columns disagree with them, and, for each unit that lies whole in the chunk and whose
    operator's key is known (from ``keys`` or an earlier entry of the chunk), whether its
    signature verifies under that key: ``{last seq: (first seq, key, verdict)}``.
    """
    verifier = _worker_verifier()
    known = dict(keys)
    leaf_hash = merkle.leaf_hash
    hashes: list[bytes] = []
    decoded: list[_Decoded] = []
    modified: list[tuple[int, str | None]] = []
    verdicts: dict[int, tuple[int, Mapping[str, str], bool]] = {}
    unit: list[tuple[int, Entry, bytes]] = []
    for seq, leaf, action, at, plain, subject in rows:
        hashes.append(leaf_hash(leaf))
        try:
            entry = Entry.decode(leaf)
        except FormatError as e:
            decoded.append(e.message)
            unit = []
            continue
        decoded.append((entry.time, entry.action, entry.subject, entry.operator,
                        entry.details, entry.sig))
        if entry.action != action or entry.time != at or entry.subject != subject:
            modified.append((seq, plain))
        if entry.operator == LEGACY_OPERATOR:
            continue
        if entry.action in _KEY_ACTIONS:
            key = entry.details.get("key")
            if isinstance(key, dict) and isinstance(key.get("kid"), str):
                known[key["kid"]] = key
        unit.append((seq, entry, leaf))
        if entry.sig is None:
            continue
        operator, sig = unit[0][1].operator, entry.sig
        jwk = known.get(operator)
        if jwk is not None and all(e.operator == operator for _, e, _ in unit):
            message = _UNIT_CONTEXT + b"".join(_content_hash(e, b) for _, e, b in unit)
            verdicts[seq] = (unit[0][0], jwk, verifier(jwk, message, sig))
        unit = []
    return b"".join(hashes), decoded, modified, verdicts


class _Signatures:
    """The replay's ``verify_unit``: answers from what :func:`_decode_chunk` checked.

    Each unit whole in a chunk was checked with the key its operator id last received in
    an ``operator.add``, ``operator.rotate_key`` or ``operator.reset`` entry (whatever
    the authority of that entry: the replay judges authority). The answer is used only
    for the very entries and the same key the replay asks about; anything else is
    checked on the spot, so the outcome is always the replay's own.
    """

    def __init__(self) -> None:
        self.verifier = _Verifier()
        #: id of a unit's first entry -> (number of entries, id of the last, key, verdict)
        self._answers: dict[int, tuple[int, int, Mapping[str, str], bool]] = {}

    def answer(self, first: Entry, count: int, last: Entry, jwk: Mapping[str, str],
               verdict: bool) -> None:
        self._answers[id(first)] = (count, id(last), jwk, verdict)

    def __call__(self, entries: Sequence[Entry], jwk: Mapping[str, str]) -> bool:
        found = self._answers.pop(id(entries[0]), None) if entries else None
        if found is not None:
            count, last, checked_jwk, verdict = found
            if count == len(entries) and last == id(entries[-1]) and checked_jwk == jwk:
                return verdict
        return _verify_unit_fast(self.verifier, entries, jwk)

    def forget(self) -> None:
        self._answers.clear()


class _Walk:
    """The one pass over the log rows: sequence, lookup columns, tree, replay.

    The main process reads the rows and checks the sequence; the per-leaf work (hash,
    strict decoding, lookup columns, content hashes, unit signatures) runs in the
    workers, a few chunks ahead; the main process takes their answers in order,
    integrates the tree and replays.
    """

    def __init__(self, replay: Replay, signatures: _Signatures, pool: Any, find: Any,
                 checkpoint_sizes: Sequence[int], list_sizes: Sequence[int]) -> None:
        self.replay = replay
        self.signatures = signatures
        self.pool = pool
        self.find = find
        self.checkpoint_sizes = set(checkpoint_sizes)
        self.list_sizes = set(list_sizes)
        self._stops = iter(sorted(set(checkpoint_sizes) | set(list_sizes)))
        self._stop = next(self._stops, None)
        self.rows = 0  #: rows in the table
        self.leaves = 0  #: entries before the first gap in the sequence
        self.taken = 0  #: leaves integrated and replayed
        #: The tree's root at each checkpoint's size (that the log reaches).
        self.roots: dict[int, bytes] = {}
        self._tiles: dict[tuple[int, int], bytes] = {}
        self._tree = 0  # leaves integrated
        self._root = merkle.EMPTY_ROOT
        #: Operator keys as the entries taken so far gave them (a hint for the workers).
        self._keys: dict[str, Mapping[str, str]] = {}
        self._pending: deque[Any] = deque()
        #: The replay's unit in progress (as Replay.apply_leaves groups them).
        self._pending_unit: list[tuple[int, Entry]] = []
        self._gap: tuple[str, str | None, int, str] | None = None

    def hint_keys(self, keys: Mapping[str, Mapping[str, str]]) -> None:
        """Operator keys the workers may check signatures under before the replay has
        reached the entries that add them."""
        for kid, jwk in keys.items():
            self._keys.setdefault(kid, dict(jwk))

    def read_tile(self, level: int, index: int, width: int) -> bytes:
        return self._tiles[(level, index)][:width * merkle.HASH_SIZE]

    def run(self, repo: Repository, compare_list: Any) -> None:
        self._compare_list = compare_list
        query = select(log_entries.c.seq, log_entries.c.leaf, log_entries.c.action,
                       log_entries.c.at, log_entries.c.plain_subject, log_entries.c.subject
                       ).order_by(log_entries.c.seq).execution_options(yield_per=_CHUNK_ROWS)
        batch: list[_Row] = []
        broken = False
        expected = 0
        for seq, leaf, action, at, plain, subject in repo.conn.execute(query):
            self.rows += 1
            if broken:
                continue
            if seq != expected:
                self._gap = ("entry_deleted" if seq > expected else "entry_inserted", plain,
                             expected, f"entry {expected} is missing; the next one is {seq}")
                broken = True
                continue
            expected += 1
            batch.append((seq, bytes(leaf), action, int(at), plain, subject))
            if len(batch) >= _CHUNK_ROWS:
                self._submit(batch)
                batch = []
        self.leaves = expected
        if batch:
            self._submit(batch)
        while self._pending:
            self._take(self._pending.popleft())
        self._integrate_to(self.leaves, b"")
        while self._stop is not None and self._stop <= self.leaves:
            self._reach(self._stop)
            self._stop = next(self._stops, None)
        self._unfinished()
        if self._gap is not None:
            self.find(*self._gap)

    def _submit(self, batch: list[_Row]) -> None:
        future = None
        if self.pool is not None:
            try:
                future = self.pool.submit(_decode_chunk, dict(self._keys), batch)
            except Exception:  # a broken pool: the main process does the work itself
                future = None
        self._pending.append((batch, future))
        while len(self._pending) > (_AHEAD_CHUNKS if self.pool is not None else 0):
            self._take(self._pending.popleft())

    def _take(self, pending: tuple[list[_Row], Any]) -> None:
        batch, future = pending
        result = None
        if future is not None:
            try:
                result = future.result()
            except Exception:  # a worker died: the main process does the work itself
                result = None
        if result is None:
            result = _decode_chunk(dict(self._keys), batch)
        hashes, decoded, modified, verdicts = result
        for seq, plain in modified:
            self.find("entry_modified", plain, seq,
                      "the entry's lookup columns disagree with its signed content")
        base = batch[0][0]
        n = len(batch)
        pos = 0
        while self._stop is not None and self._stop <= base + n:
            k = self._stop - base
            self._consume(base, hashes, decoded, verdicts, pos, k)
            pos = k
            self._reach(self._stop)
            self._stop = next(self._stops, None)
        self._consume(base, hashes, decoded, verdicts, pos, n)

    def _consume(self, base: int, hashes: bytes, decoded: Sequence[_Decoded],
                 verdicts: Mapping[int, tuple[int, Mapping[str, str], bool]],
                 start: int, stop: int) -> None:
        """Integrate and replay leaves ``start:stop`` of a chunk taken from a worker."""
        if start >= stop:
            return
        size = merkle.HASH_SIZE
        self._integrate_to(base + stop, hashes[start * size:stop * size])
        replay = self.replay
        unit = self._pending_unit
        firsts: dict[int, Entry] = {}
        for i in range(start, stop):
            seq = base + i
            item = decoded[i]
            if isinstance(item, str):
                replay._find(FindingKind.MALFORMED, "", seq, item)
                continue
            entry = Entry(*item)
            if entry.operator == LEGACY_OPERATOR:
                replay._legacy(seq, entry)
                continue
            if entry.action in _KEY_ACTIONS:
                key = entry.details.get("key")
                if isinstance(key, dict) and isinstance(key.get("kid"), str):
                    self._keys[key["kid"]] = key
            if entry.sig is None:
                firsts[seq] = entry
            unit.append((seq, entry))
            if entry.sig is not None:
                checked = verdicts.get(seq)
                if checked is not None:
                    first_seq, jwk, verdict = checked
                    first = entry if first_seq == seq else firsts.get(first_seq)
                    if first is not None:
                        self.signatures.answer(first, seq - first_seq + 1, entry, jwk, verdict)
                replay.apply_unit(unit)
                self.signatures.forget()
                unit = []
                firsts.clear()
        self._pending_unit = unit
        self.taken = base + stop

    def _integrate_to(self, size: int, hashes: bytes) -> None:
        if not hashes:
            return
        step = merkle.HASH_SIZE
        leaf_hashes = [hashes[i:i + step] for i in range(0, len(hashes), step)]
        result = merkle.integrate(self._tree, leaf_hashes, self)
        self._tiles.update(result.tiles)
        self._tree = result.new_size
        self._root = result.root
        # Only the rightmost tile of each level is read again.
        last: dict[int, int] = {}
        for level, index in self._tiles:
            last[level] = max(index, last.get(level, index))
        for key in [k for k in self._tiles if k[1] != last[k[0]]]:
            del self._tiles[key]

    def _unfinished(self) -> None:
        """As Replay.apply_leaves ends: a unit left open is reported."""
        if self._pending_unit:
            first_seq, first = self._pending_unit[0]
            self.replay._find(FindingKind.MALFORMED, first.subject, first_seq,
                              "a unit of work without its signature (truncated or edited)")
        self._pending_unit = []

    def _reach(self, size: int) -> None:
        """The log has ``size`` entries: take the root; compare a list published then."""
        if size in self.checkpoint_sizes:
            self.roots[size] = self._root if self._tree else merkle.EMPTY_ROOT
        if size in self.list_sizes:
            # The replay groups each stretch between published lists on its own.
            self._unfinished()
            self._compare_list(size)


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


_CERT_COLUMNS = tuple(c.name for c in certificates.columns)
_CertRow = namedtuple("_CertRow", _CERT_COLUMNS)  # type: ignore[misc]
#: What a worker says of a certificate row: (id, commitment, hash of its stored token (or
#: the kept hash), the token_hash column, list, index, status, redacted, row findings).
_CertFacts = tuple[str, str, str | None, str | None, int, int, str, bool, int | None,
                   list[tuple[str, str]]]


class _Collect:
    """A ``find`` that keeps ``(kind, detail)``."""

    def __init__(self, into: list[tuple[str, str]]) -> None:
        self.into = into

    def __call__(self, kind: str, _subject: str, _seq: int | None, detail: str) -> None:
        self.into.append((kind, detail))


def _certificate_facts(key: bytes, base_url: str, region: str,
                       rows: Sequence[tuple[Any, ...]]) -> list[_CertFacts]:
    """Worker (or the main process): the per-row work of comparing certificates."""
    matches = _TokenRows(base_url, region)
    facts: list[_CertFacts] = []
    for values in rows:
        row: Any = _CertRow(*values)
        raw_claims = row.claims
        if isinstance(raw_claims, str | bytes):
            # A candidate only: the comparison with the signed token confirms it.
            row = row._replace(claims=fast_json_loads(raw_claims))
        # commitment(key, row.id), with the one-shot HMAC
        public = commit(hmac.digest(key, row.id.encode("utf-8"), "sha256")[:16], row.id)
        found: list[tuple[str, str]] = []
        if row.token and row.redacted_at is None and not matches(row):
            if isinstance(raw_claims, str | bytes):  # the slow way reads as the stdlib does
                row = row._replace(claims=json.loads(raw_claims))
            try:
                _check_row_against_token(row, _Collect(found))
            except (TypeError, ValueError):  # reported only if the log issued the row
                found.append(("certificate_row_mismatch",
                              "the row's columns cannot be compared with its signed token"))
        facts.append((row.id, public, token_hash(row.token) if row.token else row.token_hash,
                      row.token_hash, int(row.status_list_id), int(row.status_index),
                      row.status, row.redacted_at is not None, row.revoke_at, found))
    return facts


def _compare_state(ctx: _Context, repo: Repository, replay: Replay, find: Any,
                   pool: Any = None) -> None:
    logged_certificates = replay.certificates
    status_values = {s.value: v for s, v in STATUS_VALUES.items()}
    matched = 0
    # Plain driver tuples in the table's column order (_CertRow): claims as the driver
    # gives them (SQLite: the stored text; PostgreSQL: parsed).
    query = select(certificates).order_by(certificates.c.id)
    args = (ctx.commitment_key, ctx.region.base_url, ctx.region.code)
    pending: deque[tuple[list[tuple[Any, ...]], Any]] = deque()

    def take() -> list[_CertFacts]:
        batch, future = pending.popleft()
        result = None
        if future is not None:
            try:
                result = list(future.result())
            except Exception:  # a worker died: the main process does the work itself
                result = None
        return _certificate_facts(*args, batch) if result is None else result

    def chunks() -> Any:
        return repo.stream_tuples(query, _CHUNK_ROWS)

    def all_facts() -> Any:
        for batch in chunks():
            future = None
            if pool is not None:
                try:
                    future = pool.submit(_certificate_facts, *args, batch)
                except Exception:  # a broken pool: the main process does the work itself
                    future = None
            pending.append((batch, future))
            while len(pending) > (_AHEAD_CHUNKS if pool is not None else 0):
                yield from take()
        while pending:
            yield from take()

    for (cert_id, public, stored_hash, hash_column, list_id, index, row_status, redacted,
         revoke_at, row_findings) in all_facts():
        logged = logged_certificates.get(public)
        if logged is None:
            find("certificate_unlogged", cert_id, None,
                 "a certificate row no log entry issued")
            continue
        matched += 1
        if stored_hash != logged.token or (hash_column and hash_column != logged.token):
            find("certificate_modified", cert_id, None,
                 "the stored token is not the one the log recorded at issue")
        if (list_id, index) != (logged.list, logged.idx):
            find("certificate_modified", cert_id, None, "its status-list slot was changed")
        status = status_values.get(row_status)
        if status is None:
            status = STATUS_VALUES[CertificateStatus(row_status)]
        if status != logged.status:
            find("status_mismatch", cert_id, None,
                 f"the database says {row_status}, the log says {logged.status}")
        if revoke_at != logged.revoke_at:
            find("status_mismatch", cert_id, None,
                 f"the database schedules its revocation at {revoke_at}, "
                 f"the log at {logged.revoke_at}")
        if redacted != logged.redacted:
            find("certificate_modified", cert_id, None,
                 "redacted in the database without a logged redaction"
                 if redacted else "a logged redaction was undone")
        for kind, detail in row_findings:
            find(kind, cert_id, None, detail)
    key = ctx.commitment_key
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
    region = repo.get_region()
    if region is not None and replay.region == region.code and (
            region.name, region.base_url, region.tz) != (
            replay.region_name, replay.base_url, replay.tz):
        find("record_modified", f"region {region.code}", None,
             "the region's name, base URL or time zone differs from the log")
    for agency in repo.list_agencies():
        if not _windows.matches(agency, replay.agencies.get(agency.code)):
            find("record_modified", f"agency {agency.code}", None,
                 "the agency row (or its types) differs from the log")
    _compare_types(repo, replay, find)
    for agreement in repo.list_agreements():
        if replay.agreements.get(agreement.region) != agreement:
            find("record_modified", f"agreement {agreement.region}", None,
                 "the agreement differs from the log")
    _compare_sharing(ctx, repo, replay, find)
    _compare_issue_keys(repo, replay, key, find)
    for list_id, size, bits, allocated in repo.list_status_lists():
        slots = replay.statuses.get(list_id, {})
        logged_count = len(slots)
        problem = shape_problem(size, bits)
        if problem is not None:
            find("record_modified", f"status list {list_id}", None,
                 f"{problem}: a shape ecert never makes")
            continue
        # Publication builds a list from its allocation counter (the first ``allocated``
        # slots of its permutation): a counter raised past the log would publish slots
        # nobody issued as valid, one lowered would publish issued ones as invalid.
        if allocated != logged_count:
            find("record_modified", f"status list {list_id}", None,
                 f"{allocated} slots allocated but the log issued {logged_count}")
            continue
        list_key = repo.status_list_key(list_id)
        if list_key is not None and slots:
            permute = permutation(list_key, size)
            if any(permute(n) not in slots for n in range(allocated)):
                find("record_modified", f"status list {list_id}", None,
                     "the log issued slots other than the list's first allocations (its "
                     "permutation key or counter was changed)")


def _compare_issue_keys(repo: Repository, replay: Replay, key: bytes, find: Any) -> None:
    """Batch idempotency keys against the issue entries that carry them: a key row the
    log does not back would make a re-run skip a row nobody issued; a logged key without
    its row would make a re-run issue that row a second time."""
    matched = 0
    for chunk in repo.all_issue_keys():
        for value, cert_id in chunk:
            logged = replay.certificates.get(commitment(key, str(cert_id)))
            if logged is None or logged.key != value:
                find("record_modified", f"issue key of {cert_id}", None,
                     "a batch idempotency key that no logged issue of this certificate "
                     "carries (a re-run would skip its row unissued)")
            else:
                matched += 1  # keys are distinct (primary key): each logged one once
    logged_keys = sum(1 for c in replay.certificates.values() if c.key is not None)
    if matched < logged_keys:
        present = {str(v) for chunk in repo.all_issue_keys() for v, _c in chunk}
        for subject, logged in replay.certificates.items():
            if logged.key is not None and logged.key not in present:
                find("record_modified", subject, None,
                     "the batch idempotency key of a logged issue is missing (a re-run "
                     "would issue its row again)")


class _TokenRows:
    """Whether a certificate row says exactly what its token says, cheaply.

    The payload issuance signs is the canonical JSON of claims that are all columns of
    the row (or follow from them and the region), so the row is rebuilt into that JSON
    and compared with the token's payload segment, byte for byte. Equal bytes mean the
    token parses and :func:`_check_row_against_token` would find nothing; any other
    token (another shape, an adopted one, a changed row) is compared the slow way.
    """

    def __init__(self, base_url: str, region: str) -> None:
        self.base_url = base_url
        self.region = region
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
            b64url_decode(parts[2])
            claims = CertificateClaims(
                iss=f"{self.base_url}/agencies/{row.agency_code}", sub=row.holder, jti=row.id,
                iat=row.issued_at, nbf=row.valid_from, exp=row.valid_until, vct=row.type_code,
                vct_version=row.type_version, region=self.region, holder_name=row.holder_name,
                claims=row.claims, status_index=row.status_index,
                status_list_uri=_bundle.status_list_uri(self.base_url, row.status_list_id),
                supersedes=row.supersedes).to_payload()
            expected = canonical_json_probe(claims)
            # Encoding the expected payload costs a third of decoding the token's (with
            # its checks); unpadded base64url is unique, so equal text is equal bytes, and
            # a token encoded any other way goes the slow way.
            if expected is None or b64url_encode(expected) != parts[1]:
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


_Published = tuple[int, int, str, Any, str, int, int | None]


def _published_lists(bundle: Path, find: Any) -> list[_Published]:
    """``(log size, list id, file, status list, log root, iat, slots taken or None)`` of
    each published list (taken: ``allocated`` but the holes its ``log`` claim states)."""
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
        found.append((size, list_id, path.name, token.status_list, root, token.issued_at,
                      claimed_taken(log_ref, token.status_list)))
    return found


def _compare_list(replay: Replay, roots: Mapping[int, bytes], published: Sequence[_Published],
                  size: int, find: Any) -> None:
    for list_size, list_id, name, lst, root, issued_at, taken in published:
        if list_size != size:
            continue
        known = roots.get(size)
        if known is not None and b64url_encode(known) != root:
            find("published_status_mismatch", name, None,
                 "the list names a log root this log never had at that size")
        # What the log says at the list's iat: scheduled revocations due by then count.
        expected = replay.statuses_at(list_id, issued_at)
        mismatch = taken_mismatch(taken, len(expected))
        if mismatch is not None:
            find("published_status_mismatch", name, None, mismatch)
        try:
            logged = logged_list(lst.size, lst.bits, expected)
        except ValueError as e:
            find("published_status_mismatch", name, None,
                 f"the list cannot hold what the log says: {e}")
            continue
        index = next(lst.differences(logged), None)
        if index is not None:
            find("published_status_mismatch", f"{name}#{index}", None,
                 f"published {lst[index]}, the log says {expected.get(index, 1)}")


# -- proving ---------------------------------------------------------------------------------


def check_stored_token(ctx: _Context, repo: Repository, cert: Certificate, *,
                       key: KeyInfo | None = None,
                       issue_leaves: Sequence[bytes] | None = None) -> None:
    """Refuse a stored certificate whose token does not verify or is not the logged one.

    ``key`` and ``issue_leaves``: the key row and the leaves of the issue entries if the
    caller read them already (:meth:`Repository.certificates_with_proof`); a key that
    is not the one the token names is looked up again."""
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
    kid = str(parsed.header.get("kid"))
    if key is None or key.kid != kid:
        key = repo.get_key(kid)
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
    if issue_leaves is None:
        issue_leaves = [bytes(r.leaf) for r in repo.log_rows(
            plain_subject=cert.id, actions=[Action.CERT_ISSUE.value])]
    if len(issue_leaves) != 1:
        raise tampered("the log holds no single issue entry for it")
    try:
        logged = Entry.decode(issue_leaves[0]).details.get("token")
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
            from ecert.registry._tree import DbTiles

            reader = DbTiles(repo)
            for row in rows:
                if int(row.seq) < size:
                    proofs[int(row.seq)] = tuple(
                        b64url_encode(h) for h in merkle.tile_inclusion_proof(
                            int(row.seq), size, reader))
    return History(cert_id, commitment(ctx.commitment_key, cert_id), size,
                   b64url_encode(root), tuple(_log_entry(r) for r in rows), proofs)


def _compare_types(repo: Repository, replay: Replay, find: Any) -> None:
    """Every type and every stored version of it against its logged definition.

    Comparing the whole definition, not just which version is current, is what stops an
    insider from loosening a type in place: nulling its holder id scheme, widening its
    schema or changing its QR claims by raw SQL would let unchecked data be issued under a
    definition the log never saw.
    """
    from ecert.registry._catalog import type_details

    stored_versions: set[tuple[str, int]] = set()
    for cert_type in repo.list_types():
        subject = f"type {cert_type.code}"
        logged = replay.types.get(cert_type.code)
        if logged is None:
            find("record_modified", subject, None, "a type the log never added")
            continue
        if logged.get("version") != cert_type.version:
            find("record_modified", subject, None,
                 "the type's current version differs from the log")
        elif not _same_definition(type_details(cert_type), logged):
            find("record_modified", subject, None,
                 "the type's current definition (name, schema, QR claims, validity or input "
                 "rules) differs from the log")
        for version in repo.list_type_versions(cert_type.code):
            stored_versions.add((version.code, version.version))
            logged_version = replay.type_versions.get((version.code, version.version))
            if logged_version is None:
                find("record_modified", f"{subject} version {version.version}", None,
                     "a type version the log never added")
            elif not _same_definition(type_details(version), logged_version):
                find("record_modified", f"{subject} version {version.version}", None,
                     "the stored version's definition differs from the log")
    for code, version_number in sorted(set(replay.type_versions) - stored_versions):
        find("record_modified", f"type {code} version {version_number}", None,
             "a type version the log added is missing from the database")


def _same_definition(stored: Mapping[str, Any], logged: Mapping[str, Any]) -> bool:
    # Compare what a definition states, both ways: a member dropped from the row (input
    # rules nulled) is as much a change as one altered.
    return _definition(stored) == _definition(logged)


def _definition(details: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in details.items() if key in _DEFINITION_KEYS}


_DEFINITION_KEYS = frozenset({"name", "national_type_code", "version", "validity_days",
                              "qr_claims", "schema", "extra", "holder_id_scheme",
                              "holder_claims"})


def _compare_sharing(ctx: _Context, repo: Repository, replay: Replay, find: Any) -> None:
    """Entitlements and consent codes against the log: a row inserted, widened or
    re-opened by raw SQL, or a logged one deleted, is a finding."""
    stored = {e.id: e for e in repo.list_entitlements()}
    for ident, value in stored.items():
        logged = replay.entitlements.get(ident)
        if logged is None:
            find("entitlement_unlogged", ident, None,
                 f"an entitlement of {value.requester} that no signed entry gave")
        elif logged != value:
            find("record_modified", f"entitlement {ident}", None,
                 "the entitlement differs from the log (types, purposes, claims, consent "
                 "or validity)")
    for ident in replay.entitlements.keys() - stored.keys():
        find("record_modified", f"entitlement {ident}", None,
             "a logged entitlement is missing from the database")
    key = ctx.commitment_key
    seen: set[str] = set()
    for row in repo.list_consents():
        public = commitment(key, row.id)
        seen.add(public)
        logged_consent = replay.consents.get(public)
        if logged_consent is None:
            find("consent_unlogged", row.id, None, "a consent code no signed entry made")
            continue
        holder, requester, purpose = consent_commitments(key, str(row.id), row.holder,
                                                         row.requester, row.purpose)
        facts = (holder, requester, tuple(row.types), purpose, int(row.expires_at),
                 row.channel, scope_of(row.scope))
        if facts != (logged_consent.holder, logged_consent.requester, logged_consent.types,
                     logged_consent.purpose, logged_consent.expires, logged_consent.channel,
                     logged_consent.scope):
            find("record_modified", f"consent {row.id}", None,
                 "the consent's holder, requester, types, purpose, expiry or agencies "
                 "differ from the log")
        if (row.revoked_at is None) != (logged_consent.revoked_at is None) or (
                row.used_at is None) != (logged_consent.used_at is None):
            find("record_modified", f"consent {row.id}", None,
                 "the consent's revocation or use differs from the log")
    for public in replay.consents.keys() - seen:
        find("record_modified", public, None, "a logged consent is missing from the database")
    seen = set()
    granted: list[Any] = []  #: granted uses whose rows say what their entries commit to
    for use in repo.list_all_uses():
        public = commitment(key, use_subject(int(use.id)))
        seen.add(public)
        logged_use = replay.uses.get(public)
        if logged_use is None:
            find("use_unlogged", f"use {use.id}", None, "a use record no signed entry made")
            continue
        expected = use_details(key, dict(use._mapping), use_subject(int(use.id)))
        if expected != logged_use:
            find("record_modified", f"use {use.id}", None,
                 "the use record differs from its log entry")
        elif use.outcome == "granted":
            # The row is now known to say what its entry commits to: judge the use itself.
            granted.append(use)
            why = _use_not_covered(key, replay, use)
            if why is not None:
                find("use_unauthorized", f"use {use.id}", None, why)
    for public in replay.uses.keys() - seen:
        find("record_modified", public, None, "a logged use record is missing from the "
                                              "database")
    _check_sharing_lookups(key, repo, replay, find)
    _check_hourly_limits(repo, granted, find)
    # The limits in force are read from the log, not from this row (registry/_limits.py):
    # a row that differs changes nothing, but says someone wrote it out of band.
    from ecert.registry._limits import SETTING, logged_limits

    if repo.setting(SETTING) != logged_limits(repo):
        find("record_modified", f"setting {SETTING}", None,
             "the sharing limits in the database differ from the newest share.limits entry")


#: How long after a request was counted its unit may take its own time (the use's ``at``):
#: a use made this long into a window may have been counted in the window before.
_COUNT_SKEW = 300


def _check_hourly_limits(repo: Repository, granted: list[Any], find: Any) -> None:
    """More requests of a requester granted in an hour than the limits let through
    (``over_limit``). The counts the limits are enforced with (``request_counts``) are
    bookkeeping outside the log, which an insider could lower to let a requester past
    its limit; the granted uses are in the log.

    No finding is a false alarm: only granted uses are counted (refused ones count
    against the limit too); a request is counted a moment before its unit takes the time
    its use records, so only uses at least ``_COUNT_SKEW`` seconds into a window are
    counted as that window's (those certainly were); and against the highest limit in
    force at any moment from ``_COUNT_SKEW`` before the window to its end.
    """
    from collections import Counter

    from ecert.registry._limits import SETTING, WINDOW, ShareLimits, window_of

    history: list[tuple[int, ShareLimits]] = []
    for entry in logged_entries(repo, SETTING, [Action.SHARE_LIMITS]):
        if entry is not None:
            try:
                history.append((int(entry.time), ShareLimits.from_json(entry.details)))
            except (EcertError, ValueError, TypeError, KeyError):
                continue  # an entry that does not decode limits nothing (defaults hold)

    def highest(window: int, kind: str) -> int:
        start, end = window - _COUNT_SKEW, window + WINDOW
        before = [limits for at, limits in history if at <= start]
        in_force = [before[-1] if before else ShareLimits()]
        in_force += [limits for at, limits in history if start < at < end]
        return max(limits.checks_per_hour if kind == CHECK_KIND else
                   limits.fetches_per_hour for limits in in_force)

    counts = Counter((use.kind or FETCH_KIND, use.requester, window_of(int(use.at)))
                     for use in granted if int(use.at) - window_of(int(use.at)) >= _COUNT_SKEW)
    for (kind, requester, window), count in sorted(counts.items()):
        limit = highest(window, kind)
        if count > limit:
            find("over_limit", f"{requester} {kind}", None,
                 f"at least {count} {kind} requests granted in the hour from "
                 f"{from_seconds(window).isoformat()} against a limit of {limit}: the "
                 "request counts were lowered out of band, or not kept")


def _use_not_covered(key: bytes, replay: Replay, use: Any) -> str | None:
    """Why a granted use (a row that says what its entry commits to) was not allowed by
    what the log had in force at its time (None: it was): for every type asked, an
    entitlement naming the requester for that type and purpose (and one without consent
    for a use by statute); on a consent, that consent's holder, requester, purpose and
    types, and only certificates of the agencies it releases. Entitlements in the replay
    only ever end earlier (``share.revoke``), so their final state answers for any time."""
    at, requester, purpose = int(use.at), use.requester, use.purpose
    in_force = list(replay.entitlements.values())
    for type_code in use.types:
        found = covering(in_force, requester, type_code, purpose, at)
        if not found:
            return (f"no entitlement in force at its time let {requester} have {type_code} "
                    "for its purpose")
        if use.by_statute and not any(e.without_consent for e in found):
            return f"by statute, but no entitlement for {type_code} was without consent"
    if use.by_statute or use.consent is None:
        return None if use.by_statute else "granted with neither a consent nor by statute"
    state = replay.consents.get(commitment(key, use.consent))
    if state is None:
        return "granted on a consent the log never made"
    terms = consent_commitments(key, str(use.consent), use.holder, requester, purpose)
    if terms != (state.holder, state.requester, state.purpose) \
            or not set(use.types) <= set(state.types):
        return "granted for another holder, requester, purpose or type than its consent's"
    # A fetch's certificates are those it released; a check's is the one it was about,
    # matched or not (it releases none, and matches only within the scope).
    if state.scope is not None and use.kind != CHECK_KIND:
        for cert_id in use.certificates:
            cert = replay.certificates.get(commitment(key, cert_id))
            if cert is None or (cert.agency, cert.type) not in state.scope:
                return "released a certificate of an agency its consent does not name"
    return None


#: Entries whose lookup columns the registry reads at use time (registry/_fetch.py).
_SHARING_LOOKUPS = (Action.SHARE_ALLOW.value, Action.SHARE_REVOKE.value,
                    Action.CONSENT_GRANT.value, Action.CONSENT_REVOKE.value,
                    Action.SHARE_FETCH.value, Action.SHARE_CHECK.value)


def _check_sharing_lookups(key: bytes, repo: Repository, replay: Replay, find: Any) -> None:
    """The lookup columns of the sharing entries against their signed content: the fetch
    finds a consent's grant, revocation and spends by ``plain_subject`` and ``ref``, so
    an entry hidden from those look-ups (a column edited, triggers dropped) would let a
    consent be used again. The published ``subject`` column was compared with the leaf
    in the pass over the log; the plain subject must open it, and ``ref`` must name the
    consent a granted use's entry commits to (and only then be set)."""
    query = select(log_entries.c.seq, log_entries.c.action, log_entries.c.subject,
                   log_entries.c.plain_subject, log_entries.c.ref
                   ).where(log_entries.c.action.in_(_SHARING_LOOKUPS)
                           ).execution_options(yield_per=_CHUNK_ROWS)
    for seq, action, subject, plain, ref in repo.conn.execute(query):
        public = plain if action.startswith("share.") and action not in (
            Action.SHARE_FETCH.value, Action.SHARE_CHECK.value) else commitment(key, plain)
        expected_ref = None
        if action in (Action.SHARE_FETCH.value, Action.SHARE_CHECK.value):
            d = replay.uses.get(subject) or {}
            if d.get("outcome") == "granted" and d.get("consent") not in (None, BY_STATUTE):
                expected_ref = d["consent"]
        if public != subject or (None if ref is None else commitment(key, ref)) != expected_ref:
            find("entry_modified", plain, int(seq),
                 "the entry's lookup columns (plain subject, spent consent) disagree with "
                 "its signed content")
