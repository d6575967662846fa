"""Audit: replay the whole log against the database, and prove entries to others.

``verify`` finds what was changed out of band — by anyone with write access to the
database, triggers dropped or not — and reports each finding with its kind and subject
(kinds in docs/format.md, "Audit findings"). It rebuilds the Merkle tree from the stored
leaves and compares it with every checkpoint the log key signed (and with a published
bundle's), replays authority from the first admin on, and compares the state the log
implies with every certificate, key, operator, agency and agreement row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from ecert._authority import Action
from ecert._clock import from_seconds
from ecert._formats import merkle
from ecert._formats.certificate import CertificateClaims
from ecert._formats.jose import b64url_encode, key_from_jwk, parse_compact, verify_signature
from ecert._formats.log import LEGACY_OPERATOR, Entry, commitment, token_hash
from ecert._formats.statuslist import read_status_list_payload
from ecert._replay import Finding, Replay
from ecert._storage.repository import Repository
from ecert.errors import EcertError, FormatError, NotFound, RecordTampered
from ecert.models import Certificate, LogEntry, Role
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
            "leaf": entry.leaf.decode("utf-8"),
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
                    row.plain_subject, details, leaf)


def entries(ctx: _Context, subject: str | None, limit: int) -> list[LogEntry]:
    """Log entries, oldest first, optionally about one subject (in clear)."""
    with ctx.read() as repo:
        rows = repo.log_rows(plain_subject=subject, limit=limit)
    return [_log_entry(r) for r in rows]


# -- audit verify ------------------------------------------------------------------------------


def _require_auditor(ctx: _Context) -> None:
    """Auditing reads everything: only an authenticated auditor (or admin) may."""
    operator, _signer = ctx.authenticate()
    if not {Role.AUDITOR, Role.ADMIN} & set(operator.roles):
        from ecert.errors import PermissionDenied

        raise PermissionDenied(f"operator {operator.name} may not audit (needs the auditor "
                               "role)")


def verify(ctx: _Context, bundle: Path | None) -> AuditReport:
    """See :meth:`ecert.Registry.audit`."""
    _require_auditor(ctx)
    findings: list[Finding] = []

    def find(kind: str, subject: str, seq: int | None, detail: str) -> None:
        findings.append(Finding(kind, subject, seq, detail))

    with ctx.read() as repo:
        rows = repo.log_rows()
        size = repo.counter("log_size")
        checkpoints = repo.list_checkpoints()
        _check_triggers(repo, find)
        # 1. the sequence: no entry deleted, inserted out of turn or reordered
        leaves: list[bytes] = []
        for expected, row in enumerate(rows):
            if int(row.seq) != expected:
                find("entry_deleted" if int(row.seq) > expected else "entry_inserted",
                     row.plain_subject, expected,
                     f"entry {expected} is missing; the next one is {row.seq}")
                break
            leaves.append(bytes(row.leaf))
            _check_row(row, find)
        if len(rows) != size and not findings:
            find("entry_deleted", "", len(rows),
                 f"the log counter says {size} entries, the table holds {len(rows)}")
        # 2. the tree against every checkpoint the log key signed
        hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
        roots = _roots_at(hashes, sorted({c[0] for c in checkpoints}))
        for cp_size, cp_root, _note in checkpoints:
            if roots.get(cp_size) != cp_root:
                find("checkpoint_mismatch", "", cp_size,
                     f"the entries no longer hash to the checkpoint of size {cp_size}: an "
                     "entry was changed, deleted, inserted or reordered")
        # 3. authority, signatures and the state the log implies; published status
        #    lists are compared with the state at the log size each one names
        published = _published_lists(bundle, find) if bundle is not None else []
        replay = Replay()
        done = 0
        for list_size, _list_id, _path, _lst, _root in sorted(published, key=lambda p: p[0]):
            if list_size > len(leaves):
                continue
            replay.apply_leaves((i, leaves[i]) for i in range(done, list_size))
            done = list_size
            _compare_list(replay, roots, published, list_size, find)
        replay.apply_leaves((i, leaves[i]) for i in range(done, len(leaves)))
        findings.extend(replay.findings)
        _compare_state(ctx, repo, replay, find)
    for list_size, _list_id, path, _lst, _root in published:
        if list_size > len(leaves):
            find("published_status_mismatch", path, None,
                 f"built from a log of {list_size} entries; this log has {len(leaves)}")
    return AuditReport(len(leaves), tuple(findings))


def _check_row(row: Any, find: Any) -> None:
    try:
        entry = Entry.decode(bytes(row.leaf))
    except FormatError:
        return  # the replay reports it
    if entry.action != row.action or entry.time != int(row.at):
        find("entry_modified", row.plain_subject, int(row.seq),
             "the entry's lookup columns disagree with its signed content")


def _roots_at(hashes: Sequence[bytes], sizes: Sequence[int]) -> dict[int, bytes]:
    """The tree root at each of ``sizes``, in one pass over the leaf hashes."""
    tiles: dict[tuple[int, int], bytes] = {}

    class _Memory:
        def read_tile(self, level: int, index: int, width: int) -> bytes:
            return tiles[(level, index)][:width * merkle.HASH_SIZE]

    reader = _Memory()
    roots: dict[int, bytes] = {}
    done = 0
    for wanted in sizes:
        if wanted > len(hashes):
            continue
        if wanted == done:
            roots[wanted] = merkle.tile_root(done, reader) if done else merkle.EMPTY_ROOT
            continue
        result = merkle.integrate(done, hashes[done:wanted], reader)
        tiles.update(result.tiles)
        done, roots[wanted] = wanted, result.root
    return roots


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
    seen: set[str] = set()
    for row in repo.certificate_facts():
        c = commitment(key, row.id)
        seen.add(c)
        logged = replay.certificates.get(c)
        if logged is None:
            find("certificate_unlogged", row.id, None,
                 "a certificate row no log entry issued")
            continue
        stored_hash = token_hash(row.token) if row.token else row.token_hash
        if stored_hash != logged.token or (row.token_hash and row.token_hash != logged.token):
            find("certificate_modified", row.id, None,
                 "the stored token is not the one the log recorded at issue")
        if (int(row.status_list_id), int(row.status_index)) != (logged.list, logged.idx):
            find("certificate_modified", row.id, None, "its status-list slot was changed")
        from ecert.models import CertificateStatus

        if STATUS_VALUES[CertificateStatus(row.status)] != logged.status:
            find("status_mismatch", row.id, None,
                 f"the database says {row.status}, the log says {logged.status}")
        if (row.redacted_at is not None) != logged.redacted:
            find("certificate_modified", row.id, None,
                 "redacted in the database without a logged redaction"
                 if row.redacted_at is not None else "a logged redaction was undone")
        if row.token and row.redacted_at is None:
            _check_row_against_token(row, find)
    for c, logged in replay.certificates.items():
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
        logged_agency = replay.agencies.get(agency.code)
        if logged_agency is None or (logged_agency["name"], logged_agency["uscc"],
                                     tuple(logged_agency["types"])) != (
                agency.name, agency.uscc, agency.types):
            find("record_modified", f"agency {agency.code}", None,
                 "the agency row (or its types) differs from the log")
    for cert_type in repo.list_types():
        if cert_type.code not in replay.types:
            find("record_modified", f"type {cert_type.code}", None, "a type the log never added")
    for agreement in repo.list_agreements():
        if replay.agreements.get(agreement.region) != agreement:
            find("record_modified", f"agreement {agreement.region}", None,
                 "the agreement differs from the log")
    for list_id, _size, _bits, allocated in repo.list_status_lists():
        logged_count = len(replay.statuses.get(list_id, {}))
        if allocated < logged_count:
            find("record_modified", f"status list {list_id}", None,
                 f"{allocated} slots allocated but the log issued {logged_count}")


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


_Published = tuple[int, int, str, Any, str]


def _published_lists(bundle: Path, find: Any) -> list[_Published]:
    """``(log size, list id, file, status list, log root)`` of each published list."""
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
        found.append((size, list_id, path.name, token.status_list, root))
    return found


def _compare_list(replay: Replay, roots: Mapping[int, bytes], published: Sequence[_Published],
                  size: int, find: Any) -> None:
    for list_size, list_id, name, lst, root in published:
        if list_size != size:
            continue
        known = roots.get(size)
        if known is not None and b64url_encode(known) != root:
            find("published_status_mismatch", name, None,
                 "the list names a log root this log never had at that size")
        expected = replay.statuses.get(list_id, {})
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
