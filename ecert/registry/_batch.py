"""Batch issuance: many certificates per unit of work, each row issued fully or not at all.

Rows come in chunks. Each chunk is one unit of work through the registry's one path
(:meth:`_Context.execute`): authenticated, authorized and signed by the operator once,
with one ``certificate.issue`` log entry per certificate (the unit signature covers every
entry's content, so no certificate can be slipped into a chunk the operator did not
sign). Status-list slots are taken N at a time, rows inserted in one statement per table.

Idempotency: every row has a key, an HMAC under a registry secret of the row (or of the
value of a column the caller names), scoped to the type and agency. The key is written
in the transaction that issues the certificate (table ``issue_keys``) and carried by its
log entry (``details.key``), so a key exists exactly when its certificate does: a run
killed at any moment leaves every row issued or not, and running the same rows again
issues only what is missing (an earlier run's keys are skipped and counted). A key met
twice within one run is ``duplicate_row``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from ecert._allocation import permutation
from ecert._authority import Action, approvals_needed
from ecert._clock import start_of_day, to_seconds, zone
from ecert._formats.certificate import CERTIFICATE_TYP
from ecert._formats.jose import CompactSigner, b64url_encode, canonical_json, strict_json_loads
from ecert._formats.log import token_hash
from ecert._formats.text import MAX_NAME, check_text
from ecert._mac import hmac_sha256
from ecert.batch import BatchFile, BatchRow, RejectCode, RejectsFile, RowOutcome, RowStatus
from ecert.errors import (
    ClaimsInvalid,
    Conflict,
    EcertError,
    FormatError,
    HolderIdInvalid,
    InputError,
    NotAuthorized,
    NotFound,
    PermissionDenied,
    TextInvalid,
)
from ecert.holder_ids import normalize_id, parse_scheme
from ecert.identifiers import CertificateIdPrefix
from ecert.models import Certificate, KeyRole
from ecert.registry._core import Operation, Target, Unit, _Context
from ecert.registry._issuance import (
    ISSUE,
    check_input,
    holder_pseudonym,
    issuable,
    plain_claims,
    signed_certificate,
    validity,
)
from ecert.registry._rules import NO_END, until_seconds

#: Rows per unit of work by default: large enough that the operator's signature, the
#: transaction and the statements are spread thin, small enough that a chunk's rows and
#: tokens stay a few megabytes.
DEFAULT_CHUNK = 500


@dataclass(frozen=True, slots=True)
class _Ready:
    """A row that passed the checks made where the raw holder id is known."""

    line: int
    key: str
    holder: str  #: the holder's pseudonym (the unit of work never sees the raw id)
    holder_name: str
    claims: dict[str, Any]
    valid_from: int | None
    valid_until: int | None
    default_validity: bool


class _Redo(Exception):
    """A chunk must run again without some rows (refused after their slots were taken)."""

    def __init__(self, refused: dict[int, RowOutcome]) -> None:
        super().__init__("redo")
        self.refused = refused


class _Nothing(Exception):
    """No row of a chunk is left to issue (the unit rolls back, nothing is logged)."""

    def __init__(self, refused: dict[int, RowOutcome]) -> None:
        super().__init__("nothing")
        self.refused = refused


def reject_code(error: EcertError) -> RejectCode:
    """The reject code of an issuance refusal."""
    if isinstance(error, HolderIdInvalid):
        return RejectCode.HOLDER_ID_CHECK
    if isinstance(error, ClaimsInvalid):
        return RejectCode.SCHEMA
    if error.code in ("holder_id_mismatch", "holder_name_mismatch"):
        return RejectCode.HOLDER_CLAIMS_MISMATCH
    if error.code == "invalid_validity":
        return RejectCode.VALIDITY
    if error.code == "qr_short_form_too_large":
        return RejectCode.QR_TOO_LARGE
    if isinstance(error, TextInvalid):
        return RejectCode.TEXT
    return RejectCode.INPUT


def _rejected(line: int, code: RejectCode, reason: str) -> RowOutcome:
    return RowOutcome(line, RowStatus.REJECTED, code=code, reason=reason)


@dataclass
class _Run:
    """One call of :func:`issue_batch`: its id, and the keys it refused (a repetition of
    a refused row is a duplicate too; issued and skipped keys are found in the table)."""

    ctx: _Context
    type_code: str
    agency_code: str
    scheme: str | None
    tz: str
    id: str = field(default_factory=lambda: secrets.token_hex(16))
    refused: dict[str, int] = field(default_factory=dict)

    def key(self, row: BatchRow, claims: Any) -> str | None:
        """The row's idempotency key; None if the row cannot be hashed (bad claims).

        ``claims`` are the row's claims as parsed (its text where they do not parse), so
        the same row is the same key in CSV or JSON Lines, in any encoding."""
        if row.key is not None:
            material: list[Any] = ["id", self.type_code, self.agency_code, str(row.key)]
        else:
            material = ["row", self.type_code, self.agency_code,
                        normalize_id(row.holder_id) if isinstance(row.holder_id, str) else "",
                        row.holder_name.strip() if isinstance(row.holder_name, str) else "",
                        claims, _text(row.valid_from), _text(row.valid_until)]
        try:
            data = canonical_json(material)
        except (ValueError, TypeError, RecursionError):
            return None
        return b64url_encode(hmac_sha256(self.ctx.batch_key, data)[:18])

    def prepare(self, row: BatchRow, key: str, claims: dict[str, Any] | ClaimsInvalid,
                today: date) -> _Ready | RowOutcome:
        """The checks made before the unit of work, where the raw holder id is known."""
        try:
            if not isinstance(row.holder_name, str) or not row.holder_name.strip():
                return _rejected(row.line, RejectCode.MISSING_HOLDER_NAME,
                                 "the holder name is empty")
            check_text(row.holder_name, label="holder name", max_length=MAX_NAME,
                       required=True)
            holder_id = normalize_id(row.holder_id) if isinstance(row.holder_id, str) else ""
            if self.scheme is not None:
                holder_id = parse_scheme(self.scheme).check(holder_id, today=today)
            holder = holder_pseudonym(self.ctx.pseudonym_key, holder_id)
            if isinstance(claims, ClaimsInvalid):
                raise claims
            start = _start(row.valid_from, self.tz)
            no_end = _is_no_end(row.valid_until)
            end = None if no_end else _until(row.valid_until, self.tz)
        except EcertError as e:
            return _rejected(row.line, reject_code(e), e.message)
        return _Ready(row.line, key, holder, row.holder_name.strip(), claims, start, end,
                      default_validity=not no_end and _empty(row.valid_until))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _claims(value: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            parsed = strict_json_loads(value)
        except (FormatError, ValueError, UnicodeError) as e:
            raise ClaimsInvalid(f"claims are not JSON: {str(e)[:100]}", field="$.claims") from e
        if not isinstance(parsed, dict):
            raise ClaimsInvalid("claims must be a JSON object", field="$.claims")
        return parsed  # plain JSON values already, and nobody else's
    if not isinstance(value, Mapping):
        raise ClaimsInvalid("claims must be a JSON object", field="$.claims")
    return plain_claims(value)


def _when(value: Any, what: str) -> date | datetime | None:
    if _empty(value):
        return None
    if isinstance(value, datetime | date):
        return value
    text = str(value).strip()
    try:
        if "T" in text:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                raise _validity(f"{what} {text!r} with a time needs a zone, e.g. +08:00")
            return parsed
        return date.fromisoformat(text)
    except ValueError as e:
        raise _validity(f"{what} {text!r} is not a date (YYYY-MM-DD)") from e


def _validity(message: str) -> InputError:
    return InputError(message, code="invalid_validity")


def _start(value: Any, tz: str) -> int | None:
    when = _when(value, "valid_from")
    if when is None:
        return None
    if isinstance(when, datetime):
        return to_seconds(when, "valid_from")
    return start_of_day(when, zone(tz))


def _is_no_end(value: Any) -> bool:
    when = _when(value, "valid_until")
    return isinstance(when, date) and not isinstance(when, datetime) and when == NO_END


def _until(value: Any, tz: str) -> int | None:
    return until_seconds(_when(value, "valid_until"), tz)


def start(ctx: _Context, type_code: str, agency_code: str) -> _Run:
    """A run of ``type_code`` by ``agency_code``, once the operator, the type, the agency
    and the four-eyes policies allow it (before any row is read or any file written)."""
    params = {"type": type_code, "agency": agency_code}
    # An operator who may not issue this is refused (and logged) once, before any row.
    ctx.precheck(ISSUE, params)
    with ctx.read() as repo:
        cert_type = repo.get_type(type_code)
        if cert_type is None:
            raise NotFound(f"no certificate type {type_code!r}")
        if repo.get_agency(agency_code) is None:
            raise NotFound(f"no agency {agency_code!r}")
        _refuse_four_eyes(repo.list_policies(), type_code)
    return _Run(ctx, type_code, agency_code, cert_type.holder_id_scheme, ctx.region.tz)


R = TypeVar("R")


def chunked(rows: Iterable[R], chunk_size: int,
            apply: Callable[[Sequence[R]], list[RowOutcome]]) -> Iterator[RowOutcome]:
    """The outcomes of ``apply`` over ``rows``, ``chunk_size`` at a time."""
    if chunk_size < 1:
        raise InputError("a chunk holds at least one row")
    chunk: list[R] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= chunk_size:
            yield from apply(chunk)
            chunk = []
    if chunk:
        yield from apply(chunk)


def issue_batch(run: _Run, rows: Iterable[BatchRow], *, chunk_size: int = DEFAULT_CHUNK
                ) -> Iterator[RowOutcome]:
    """See :meth:`ecert.Registry.issue_batch`."""
    return chunked(rows, chunk_size, lambda chunk: _chunk(run, chunk))


def through_file(source: BatchFile, rejects: RejectsFile | None, kind: type[R],
                 process: Callable[[Iterator[R]], Iterator[RowOutcome]]
                 ) -> Iterator[RowOutcome]:
    """``process`` over the rows of ``source`` (those read as ``kind``); what it refuses,
    and lines that cannot be read, to ``rejects`` as they were, flushed chunk by chunk."""
    pending: dict[int, Mapping[str, Any] | str] = {}
    unreadable: list[RowOutcome] = []

    def rows() -> Iterator[R]:
        for read in source.records():
            if not isinstance(read.row, kind):
                line = read.line
                outcome = _rejected(line, RejectCode.INPUT, read.problem or "unreadable")
                if rejects is not None:
                    rejects.write(read.record, line, outcome.code or "", outcome.reason or "")
                unreadable.append(outcome)
                continue
            pending[read.line] = read.record
            yield read.row

    for outcome in process(rows()):
        yield from unreadable
        unreadable.clear()
        record = pending.pop(outcome.line, "")
        if outcome.status is RowStatus.REJECTED and rejects is not None:
            rejects.write(record, outcome.line, outcome.code or "", outcome.reason or "")
        if not pending and rejects is not None:
            rejects.flush()  # a chunk is done: what it refused is on disk
        yield outcome
    yield from unreadable
    if rejects is not None:
        rejects.flush()


def issue_file(run: _Run, source: BatchFile, rejects: RejectsFile | None, *,
               chunk_size: int = DEFAULT_CHUNK) -> Iterator[RowOutcome]:
    """See :meth:`ecert.Registry.issue_file`: rows of ``source``, refusals to ``rejects``."""
    return through_file(source, rejects, BatchRow,
                        lambda rows: issue_batch(run, rows, chunk_size=chunk_size))


def _refuse_four_eyes(policies: Mapping[tuple[str, str], int], type_code: str) -> None:
    needed = approvals_needed(policies, Action.CERT_ISSUE, type_code, 0)
    if needed > 1:
        raise PermissionDenied(
            f"issuing {type_code} needs the approval of {needed} operators: a batch is not "
            "held for approval (issue those certificates one by one)",
            code="approval_required")


def _chunk(run: _Run, rows: Sequence[BatchRow]) -> list[RowOutcome]:
    """Issue one chunk; the outcome of every row, in line order."""
    ctx = run.ctx
    today = datetime.fromtimestamp(ctx.now(), UTC).date()
    outcomes: dict[int, RowOutcome] = {}
    keyed: list[tuple[BatchRow, str, dict[str, Any] | ClaimsInvalid]] = []
    for row in rows:
        try:
            claims: dict[str, Any] | ClaimsInvalid = _claims(row.claims)
        except ClaimsInvalid as e:
            claims = e
        key = run.key(row, row.claims if isinstance(claims, ClaimsInvalid) else claims)
        if key is None:
            outcomes[row.line] = _rejected(row.line, RejectCode.SCHEMA,
                                           "the row cannot be read as JSON values")
        else:
            keyed.append((row, key, claims))
    for _attempt in range(3):
        try:
            done = _attempt_chunk(run, keyed, today)
        except Conflict:
            continue  # a concurrent run issued some of these keys first: look again
        outcomes.update(done)
        return [outcomes[line] for line in sorted(outcomes)]
    raise Conflict("another run kept issuing the same rows; try again")


def _attempt_chunk(run: _Run,
                   keyed: Sequence[tuple[BatchRow, str, dict[str, Any] | ClaimsInvalid]],
                   today: date) -> dict[int, RowOutcome]:
    ctx = run.ctx
    outcomes: dict[int, RowOutcome] = {}
    with ctx.read() as repo:
        found = repo.issue_keys_of([key for _row, key, _claims in keyed])
    seen: dict[str, int] = {}
    met: list[tuple[str, int]] = []
    ready: list[_Ready] = []
    for row, key, claims in keyed:
        first = seen.get(key, run.refused.get(key))
        earlier = found.get(key)
        if first is None and earlier is not None and earlier[1] == run.id:
            first = earlier[2]
        if first is not None:
            outcomes[row.line] = _rejected(row.line, RejectCode.DUPLICATE_ROW,
                                           f"the same row as line {first}")
            continue
        seen[key] = row.line
        if earlier is not None:
            outcomes[row.line] = RowOutcome(row.line, RowStatus.SKIPPED,
                                            certificate_id=earlier[0])
            met.append((key, row.line))
            continue
        prepared = run.prepare(row, key, claims, today)
        if isinstance(prepared, RowOutcome):
            outcomes[row.line] = prepared
            run.refused[key] = row.line
        else:
            ready.append(prepared)
    if met:
        # Bookkeeping, not a change of state: which run last met a key.
        with ctx._write() as write:
            write.meet_issue_keys(met, run.id)
    while ready:
        try:
            issued, refused = ctx.execute(ISSUE_CHUNK, {
                "type": run.type_code, "agency": run.agency_code, "run": run.id,
                "rows": ready})
        except _Nothing as nothing:
            issued, refused = [], nothing.refused
        except _Redo as redo:
            _refuse(run, ready, redo.refused, outcomes)
            ready = [r for r in ready if r.line not in redo.refused]
            continue
        _refuse(run, ready, refused, outcomes)
        for line, cert_id in issued:
            outcomes[line] = RowOutcome(line, RowStatus.ISSUED, certificate_id=cert_id)
        break
    return outcomes


def _refuse(run: _Run, ready: Sequence[_Ready], refused: Mapping[int, RowOutcome],
            outcomes: dict[int, RowOutcome]) -> None:
    outcomes.update(refused)
    for r in ready:
        if r.line in refused:
            run.refused[r.key] = r.line


def _target(_repo: Any, p: Mapping[str, Any]) -> Target:
    return ISSUE.target(_repo, p)


def _issue_chunk(unit: Unit, p: Mapping[str, Any]) -> tuple[list[tuple[int, str]],
                                                            dict[int, RowOutcome]]:
    repo, region, now, ctx = unit.repo, unit.region, unit.now, unit.ctx
    cert_type, agency = issuable(repo, p["type"], p["agency"], now)
    # Checked again here, in the transaction: a policy set since the run began holds.
    _refuse_four_eyes(repo.list_policies(), cert_type.code)
    key = repo.active_key(KeyRole.AGENCY, agency.code)
    if key is None:
        raise NotAuthorized(f"agency {agency.code} has no active signing key")
    today = datetime.fromtimestamp(now, UTC).date()
    refused: dict[int, RowOutcome] = {}
    good: list[tuple[_Ready, dict[str, Any], int, int | None]] = []
    for r in p["rows"]:
        try:
            claims = check_input(cert_type, r.holder, r.holder_name, r.claims,
                                 ctx.pseudonym_key, today)
            start, end = validity(cert_type, now, r.valid_from, r.valid_until,
                                  r.default_validity)
        except InputError as e:
            refused[r.line] = _rejected(r.line, reject_code(e), e.message)
            continue
        good.append((r, claims, start, end))
    if not good:
        raise _Nothing(refused)
    serial_end = repo.add_to_counter(f"serial:{agency.code}", len(good))
    slots = _take_slots(unit, len(good))
    compact = _compact_signer(ctx, key.kid)
    iss = region.agency_uri(agency.code)
    id_prefix = CertificateIdPrefix(cert_type.national_type_code, agency.uscc)
    rows: list[tuple[Certificate, str, int, str]] = []
    keys: list[dict[str, Any]] = []
    issued: list[tuple[int, str]] = []
    redo: dict[int, RowOutcome] = {}
    for i, ((r, claims, start, end), (list_id, index)) in enumerate(
            zip(good, slots, strict=True)):
        serial = f"{serial_end - len(good) + 1 + i:08d}"
        cert_id = id_prefix.id_of(serial)
        try:
            cert = signed_certificate(compact, cert_type, agency.code, region, key, now, iss=iss,
                           cert_id=cert_id, holder=r.holder, holder_name=r.holder_name,
                           claims=claims, start=start, end=end, list_id=list_id, index=index)
        except InputError as e:
            redo[r.line] = _rejected(r.line, reject_code(e), e.message)
            continue
        digest = token_hash(cert.token)
        rows.append((cert, serial, list_id, digest))
        keys.append({"key": r.key, "certificate_id": cert_id, "run": p["run"], "line": r.line})
        unit.log(Action.CERT_ISSUE, cert_id,
                 {"agency": agency.code, "type": cert_type.code, "kid": key.kid,
                  "list": list_id, "idx": index, "token": digest, "key": r.key},
                 private=True)
        issued.append((r.line, cert_id))
    if redo:
        # Taken serials and slots must not be left unused: the chunk runs again without.
        raise _Redo({**refused, **redo})
    repo.add_certificates(rows)
    repo.add_issue_keys(keys)
    return issued, refused


def _take_slots(unit: Unit, count: int) -> list[tuple[int, int]]:
    """``count`` status-list slots ``(list id, index)``, opening lists as they fill."""
    repo, ctx = unit.repo, unit.ctx
    slots: list[tuple[int, int]] = []
    while len(slots) < count:
        taken = repo.allocate_slots(count - len(slots))
        if taken is None:
            list_id = repo.next_value("status_list_id")
            repo.add_status_list(list_id, ctx.status_list_size, 2, secrets.token_bytes(32),
                                 unit.now)
            continue
        list_id, perm_key, first, many, size = taken
        permute = permutation(perm_key, size)
        slots.extend((list_id, permute(first + i)) for i in range(many))
    return slots


def _compact_signer(ctx: _Context, kid: str) -> CompactSigner:
    return CompactSigner(ctx.signer(kid), CERTIFICATE_TYP)


ISSUE_CHUNK = Operation(Action.CERT_ISSUE, _target, _issue_chunk, guarded=False, private=True,
                        integrate=True)
"""Not registered: a four-eyes policy on issuance refuses a batch instead of holding it
(``approval_required``), so no approved request ever names this operation."""
