"""Export and import: certificates as JSON Lines, for migration and for backup.

An export line (:func:`ecert.batch.export_record`) carries the certificate's signed token
and its status as the exporting registry knows it. Importing is issuing again, through
the one path: every line is first checked where nothing is written — its token against
the exporting registry's trust list (signature, key, claims bound to the issuer), its
members against the token, its status against the exporter's published status list (a
line may be *more* final than the list, never less: no insider rolls a revocation
back through an export) — then imported in chunks, one unit of work per agency and type
of a chunk: the claims checked against this registry's type (schema, text, the claims
that name the holder, its holder id scheme), signed again by this registry's agency key
under the same certificate id, with a status-list slot of this registry, one
``certificate.issue`` entry each (``details.imported``: the original's issuer, key, issue
time and token hash) and a ``certificate.suspend`` / ``certificate.revoke`` entry where
the line is not valid. Keys and the old log are not copied.

Idempotency as in batch issuance: each line's key is an HMAC of its original token,
written with the certificate (table ``issue_keys``), so a run stopped at any moment is
finished by running it again and a line imported before is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ecert._authority import Action, Resource, approvals_needed
from ecert._clock import to_seconds
from ecert._formats.jose import b64url_encode, canonical_json
from ecert._formats.log import token_hash
from ecert.batch import (
    EXPORT_FORMAT,
    BatchFile,
    ExportedRow,
    RejectCode,
    RejectsFile,
    RowOutcome,
    RowStatus,
    export_record,
)
from ecert.errors import EcertError, InputError, InvalidCertificateId, PermissionDenied
from ecert.holder_ids import normalize_id, parse_scheme
from ecert.identifiers import CertificateId
from ecert.models import (
    Certificate,
    CertificateStatus,
    CertificateType,
    KeyRole,
    RevocationReason,
)
from ecert.registry._batch import (
    DEFAULT_CHUNK,
    _compact_signer,
    _Nothing,
    _Redo,
    _take_slots,
    chunked,
    reject_code,
    through_file,
)
from ecert.registry._core import Operation, Target, Unit, _Context
from ecert.registry._issuance import (
    check_input,
    holder_pseudonym,
    issuable,
    signed_certificate,
)
from ecert.registry._lifecycle import _change, effective
from ecert.verify import ErrorCode, Verifier

#: Verification errors that say what became of a certificate, not that its token is bad.
_LIFECYCLE = frozenset({ErrorCode.REVOKED, ErrorCode.SUSPENDED, ErrorCode.EXPIRED,
                        ErrorCode.NOT_YET_VALID})
#: How final a status is: a line may never be less final than the published list.
_RANK = {CertificateStatus.VALID: 0, CertificateStatus.SUSPENDED: 1,
         CertificateStatus.REVOKED: 2}
#: Certificates read per transaction when exporting.
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What :meth:`ecert.Registry.export_certificates` wrote."""

    path: Path
    count: int  #: certificates written
    redacted: int  #: erased certificates left out (they have no token to verify)
    #: SHA-256 of the file (hex), as its ``registry.export`` log entry records it.
    sha256: str = ""


def _exported(unit: Unit, p: Mapping[str, Any]) -> None:
    unit.log(Action.REGISTRY_EXPORT, p["sha256"],
             {"count": p["count"], "redacted": p["redacted"], "sha256": p["sha256"]})


#: The log entry of an export (authorized before the file is written: see :func:`export`).
EXPORT = Operation(Action.REGISTRY_EXPORT,
                   lambda _repo, _p: Target(Resource(), "certificates"), _exported,
                   guarded=False)


def export(ctx: _Context, path: str | Path,
           progress: Callable[[int], None] | None = None) -> ExportReport:
    """See :meth:`ecert.Registry.export_certificates`.

    Authorized before anything is read (a refusal leaves its ``access.refused`` entry),
    logged once the file is complete: the entry, signed by the exporting operator, says
    how many certificates went out and the file's hash. If it cannot be logged the file
    is removed.
    """
    ctx.precheck(EXPORT, {})
    path = Path(path)
    try:
        report = _write_export(ctx, path, progress)
        ctx.execute(EXPORT, {"count": report.count, "redacted": report.redacted,
                             "sha256": report.sha256})
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return report


def _write_export(ctx: _Context, path: Path,
                  progress: Callable[[int], None] | None) -> ExportReport:
    count = redacted = 0
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    with open(fd, "wb") as out:
        after: tuple[int, str] | None = None
        while True:
            now = ctx.now()
            with ctx.read() as repo:
                page = repo.find_certificates(holder=None, type_code=None, status=None,
                                              agency_code=None, limit=_PAGE, after=after,
                                              now=now)
            if not page:
                break
            for cert in page:
                if not cert.token:
                    redacted += 1
                    continue
                line = canonical_json(export_record(effective(cert, now))) + b"\n"
                out.write(line)
                digest.update(line)
                count += 1
            after = (to_seconds(page[-1].issued_at), page[-1].id)
            if progress is not None:
                progress(count + redacted)
    return ExportReport(path, count, redacted, digest.hexdigest())


@dataclass(frozen=True, slots=True)
class _Incoming:
    """A line that passed the checks made before the unit of work."""

    line: int
    key: str
    id: str
    type_code: str
    agency_code: str
    holder: str  #: the holder's pseudonym here
    holder_name: str
    claims: dict[str, Any]
    valid_from: int
    valid_until: int | None
    status: CertificateStatus
    reason: RevocationReason | None
    supersedes: str | None
    original: dict[str, Any]  #: what the log says of the original


def _rejected(line: int, code: RejectCode, reason: str) -> RowOutcome:
    return RowOutcome(line, RowStatus.REJECTED, code=code, reason=reason)


@dataclass
class _Run:
    """One import: the exporter's trust, this registry's types, the ids met so far."""

    ctx: _Context
    verifier: Verifier
    id: str = field(default_factory=lambda: secrets.token_hex(16))
    types: dict[str, CertificateType | None] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)  # key or certificate id -> line

    def cert_type(self, code: str) -> CertificateType | None:
        if code not in self.types:
            with self.ctx.read() as repo:
                self.types[code] = repo.get_type(code)
        return self.types[code]

    def check(self, row: ExportedRow) -> _Incoming | RowOutcome:
        """Everything that can be judged before the unit of work."""
        rec, line = row.record, row.line
        if rec.get("format") != EXPORT_FORMAT:
            return _rejected(line, RejectCode.INPUT,
                             f"not a line of an ecert export (format {EXPORT_FORMAT})")
        token = rec.get("token")
        if not isinstance(token, str) or not token:
            return _rejected(line, RejectCode.INPUT, "the line has no token")
        result = self.verifier.verify(token)
        cert = result.certificate
        bad = [e.value for e in result.errors if e not in _LIFECYCLE]
        if (cert is None or bad or result.issuer is None or result.qr
                or result.agreement is not None):
            why = ", ".join(bad or [e.value for e in result.errors]) or result.status.value
            return _rejected(line, RejectCode.SIGNATURE,
                             f"the token does not verify against the exporting registry's "
                             f"trust list ({why})")
        mismatch = _mismatch(rec, cert, result.issuer.agency_code)
        if mismatch is not None:
            return _rejected(line, RejectCode.EXPORT_MISMATCH,
                             f"{mismatch} differs from what the signed token states")
        try:
            status = CertificateStatus(str(rec.get("status")))
            reason = None
            if status is CertificateStatus.REVOKED:
                reason = RevocationReason(rec.get("reason") or "unspecified")
        except ValueError:
            return _rejected(line, RejectCode.INPUT,
                             f"unknown status {str(rec.get('status'))[:20]!r} or reason "
                             f"{str(rec.get('reason'))[:40]!r}")
        published = (CertificateStatus.REVOKED if ErrorCode.REVOKED in result.errors else
                     CertificateStatus.SUSPENDED if ErrorCode.SUSPENDED in result.errors else
                     CertificateStatus.VALID)
        if _RANK[status] < _RANK[published]:
            return _rejected(line, RejectCode.STATUS_ROLLBACK,
                             f"the line says {status.value}, the exporting registry's "
                             f"published status list says {published.value}")
        key = b64url_encode(hmac.digest(
            self.ctx.batch_key, canonical_json(["import", token_hash(token)]), "sha256")[:18])
        first = self.seen.get(key, self.seen.get(cert.id))
        if first is not None:
            return _rejected(line, RejectCode.DUPLICATE_ROW,
                             f"the same certificate as line {first}")
        self.seen[key] = self.seen[cert.id] = line
        cert_type = self.cert_type(cert.type_code)
        if cert_type is None:
            return _rejected(line, RejectCode.INPUT, f"no certificate type {cert.type_code!r} "
                                                     "in this registry")
        try:
            holder = self._holder(cert_type, cert)
        except EcertError as e:
            return _rejected(line, reject_code(e), e.message)
        return _Incoming(
            line, key, cert.id, cert.type_code, result.issuer.agency_code, holder,
            cert.holder_name, dict(cert.claims), to_seconds(cert.valid_from),
            None if cert.valid_until is None else to_seconds(cert.valid_until), status,
            reason, cert.supersedes,
            {"iss": result.issuer.uri, "kid": result.issuer.kid,
             "iat": to_seconds(cert.issued_at), "token": token_hash(token)})

    def _holder(self, cert_type: CertificateType, cert: Certificate) -> str:
        """The holder's pseudonym here: from the claim that names the holder (checked by
        the type's holder id scheme) where the type has one; else the original's."""
        id_claim = cert_type.holder_claims.get("holder_id")
        value = cert.claims.get(id_claim) if id_claim is not None else None
        if not isinstance(value, str):
            return cert.holder  # check_input refuses a type whose claim is missing
        holder_id = normalize_id(value)
        if cert_type.holder_id_scheme is not None:
            holder_id = parse_scheme(cert_type.holder_id_scheme).check(
                holder_id, today=datetime.fromtimestamp(self.ctx.now(), UTC).date(),
                label=f"claim {id_claim}")
        return holder_pseudonym(self.ctx.pseudonym_key, holder_id)


def _mismatch(rec: Mapping[str, Any], cert: Certificate, agency: str) -> str | None:
    """The first member of ``rec`` that is not what the verified token states."""
    stated: dict[str, Any] = {
        "id": cert.id, "type": cert.type_code, "type_version": cert.type_version,
        "agency": agency, "region": cert.region, "holder_name": cert.holder_name,
        "supersedes": cert.supersedes}
    for name, value in stated.items():
        if rec.get(name) != value:
            return name
    try:
        if canonical_json(rec.get("claims")) != canonical_json(dict(cert.claims)):
            return "claims"
    except (ValueError, TypeError, RecursionError):
        return "claims"
    for name, when in (("issued_at", cert.issued_at), ("valid_from", cert.valid_from),
                       ("valid_until", cert.valid_until)):
        if _seconds(rec.get(name)) != (None if when is None else to_seconds(when)):
            return name
    return None


def _seconds(value: Any) -> int | str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
        return to_seconds(parsed) if parsed.tzinfo is not None else "naive"
    except (ValueError, EcertError):
        return "unreadable"


def import_rows(ctx: _Context, verifier: Verifier, rows: Iterable[ExportedRow], *,
                chunk_size: int = DEFAULT_CHUNK) -> Iterator[RowOutcome]:
    """See :meth:`ecert.Registry.import_certificates`."""
    ctx.authenticate()
    run = _Run(ctx, verifier)
    return chunked(rows, chunk_size, lambda chunk: _chunk(run, chunk))


def import_file(ctx: _Context, verifier: Verifier, source: BatchFile,
                rejects: RejectsFile | None, *, chunk_size: int = DEFAULT_CHUNK
                ) -> Iterator[RowOutcome]:
    """See :meth:`ecert.Registry.import_file`."""
    return through_file(source, rejects, ExportedRow, lambda rows: import_rows(
        ctx, verifier, rows, chunk_size=chunk_size))


def _chunk(run: _Run, rows: Sequence[ExportedRow]) -> list[RowOutcome]:
    outcomes: dict[int, RowOutcome] = {}
    incoming: list[_Incoming] = []
    for row in rows:
        checked = run.check(row)
        if isinstance(checked, RowOutcome):
            outcomes[row.line] = checked
        else:
            incoming.append(checked)
    with run.ctx.read() as repo:
        found = repo.issue_keys_of([i.key for i in incoming])
    groups: dict[tuple[str, str], list[_Incoming]] = {}
    for i in incoming:
        earlier = found.get(i.key)
        if earlier is not None:
            outcomes[i.line] = RowOutcome(i.line, RowStatus.SKIPPED, certificate_id=earlier[0])
        else:
            groups.setdefault((i.agency_code, i.type_code), []).append(i)
    for ready in groups.values():
        while ready:
            try:
                imported, refused = run.ctx.execute(IMPORT_CHUNK, {"run": run.id,
                                                                   "rows": ready})
            except _Nothing as nothing:
                imported, refused = [], nothing.refused
            except _Redo as redo:
                outcomes.update(redo.refused)
                ready = [r for r in ready if r.line not in redo.refused]
                continue
            outcomes.update(refused)
            for line, cert_id in imported:
                outcomes[line] = RowOutcome(line, RowStatus.IMPORTED, certificate_id=cert_id)
            break
    return [outcomes[line] for line in sorted(outcomes)]


def _target(_repo: Any, p: Mapping[str, Any]) -> Target:
    first = p["rows"][0]
    return Target(Resource(agency=first.agency_code, type=first.type_code),
                  f"{first.agency_code}/{first.type_code}")


_TRANSITION = {CertificateStatus.SUSPENDED: Action.CERT_SUSPEND,
               CertificateStatus.REVOKED: Action.CERT_REVOKE}


def _import_chunk(unit: Unit, p: Mapping[str, Any]) -> tuple[list[tuple[int, str]],
                                                             dict[int, RowOutcome]]:
    repo, region, now, ctx = unit.repo, unit.region, unit.now, unit.ctx
    rows: Sequence[_Incoming] = p["rows"]
    cert_type, agency = issuable(repo, rows[0].type_code, rows[0].agency_code, now)
    resource = Resource(agency.code, cert_type.code)
    policies = repo.list_policies()
    for action in (Action.CERT_ISSUE, *_TRANSITION.values()):
        if approvals_needed(policies, action, cert_type.code, 0) > 1:
            raise PermissionDenied(
                f"{action.value} of {cert_type.code} needs the approval of several "
                "operators: an import is not held for approval", code="approval_required")
    for action in {_TRANSITION[r.status] for r in rows if r.status in _TRANSITION}:
        unit.require(action, resource)
    key = repo.active_key(KeyRole.AGENCY, agency.code)
    if key is None:
        raise InputError(f"agency {agency.code} has no active signing key")
    today = datetime.fromtimestamp(now, UTC).date()
    refused: dict[int, RowOutcome] = {}
    good: list[tuple[_Incoming, dict[str, Any], str]] = []
    for r in rows:
        try:
            claims = check_input(cert_type, r.holder, r.holder_name, r.claims,
                                 ctx.pseudonym_key, today)
            parsed = CertificateId.parse(r.id)
        except (InputError, InvalidCertificateId) as e:
            refused[r.line] = _rejected(r.line, reject_code(e), e.message)
            continue
        if (parsed.type_code, parsed.issuer_code) != (cert_type.national_type_code,
                                                      agency.uscc):
            refused[r.line] = _rejected(
                r.line, RejectCode.ID_TAKEN,
                f"the id names type {parsed.type_code} of issuer {parsed.issuer_code}; here "
                f"{cert_type.code} is {cert_type.national_type_code} and {agency.code} is "
                f"{agency.uscc}")
            continue
        if repo.get_certificate(r.id) is not None or any(
                agency.uscc in taken for taken in repo.ids_with_serial(parsed.serial)):
            refused[r.line] = _rejected(r.line, RejectCode.ID_TAKEN,
                                        "a certificate of this registry has this id or serial")
            continue
        good.append((r, claims, parsed.serial))
    if not good:
        raise _Nothing(refused)
    counter = f"serial:{agency.code}"
    highest = max((int(s) for _r, _c, s in good if s.isdigit()), default=0)
    current = repo.add_to_counter(counter, 0)
    if highest > current:  # serials this registry issues from now on never meet these
        repo.add_to_counter(counter, highest - current)
    slots = _take_slots(unit, len(good))
    compact = _compact_signer(ctx, key.kid)
    iss = region.agency_uri(agency.code)
    made: list[tuple[Certificate, str, int, str]] = []
    keys: list[dict[str, Any]] = []
    imported: list[tuple[int, str]] = []
    redo: dict[int, RowOutcome] = {}
    for (r, claims, serial), (list_id, index) in zip(good, slots, strict=True):
        supersedes = (r.supersedes if r.supersedes is not None
                      and repo.get_certificate(r.supersedes) is not None else None)
        try:
            cert = signed_certificate(compact, cert_type, agency.code, region, key, now, iss=iss,
                           cert_id=r.id, holder=r.holder, holder_name=r.holder_name,
                           claims=claims, start=r.valid_from, end=r.valid_until,
                           list_id=list_id, index=index, supersedes=supersedes)
        except InputError as e:
            redo[r.line] = _rejected(r.line, reject_code(e), e.message)
            continue
        digest = token_hash(cert.token)
        made.append((cert, serial, list_id, digest))
        keys.append({"key": r.key, "certificate_id": r.id, "run": p["run"], "line": r.line})
        unit.log(Action.CERT_ISSUE, r.id,
                 {"agency": agency.code, "type": cert_type.code, "kid": key.kid,
                  "list": list_id, "idx": index, "token": digest,
                  "key": r.key, "imported": r.original},
                 private=True)
        imported.append((r.line, r.id))
    if redo:
        raise _Redo({**refused, **redo})
    repo.add_certificates(made)
    repo.add_issue_keys(keys)
    # Then what became of them, as the line says (never less final than published).
    for (cert, _serial, _list, _digest), (r, _claims, _s) in zip(made, good, strict=True):
        change = _TRANSITION.get(r.status)
        if change is not None:
            _change(unit, change, cert, r.reason, None)
    return imported, refused


IMPORT_CHUNK = Operation(Action.CERT_ISSUE, _target, _import_chunk, guarded=False,
                         private=True, integrate=True)
"""Not registered (as batch issuance): a four-eyes policy on issuing, suspending or
revoking the type refuses an import instead of holding it (``approval_required``)."""
