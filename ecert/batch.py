"""Batch files: rows to issue from CSV or JSON Lines, and the rejects file.

Pure input and output (no registry): :func:`open_rows` reads a file row by row (memory
stays flat however long it is), :class:`RejectsFile` writes the rows a run refused with
the input's own columns plus ``_line``, ``_code`` and ``_reason``, so the file, once
fixed, is read again as it is. :meth:`ecert.Registry.issue_batch` issues the rows.

CSV: a header line; columns ``holder_id``, ``holder_name``, ``claims`` (a JSON object)
— or, without a ``claims`` column, every other column is a text claim (empty cells are
left out) —, optional ``valid_from`` and ``valid_until`` (YYYY-MM-DD or ISO 8601 with a
zone), and the idempotency column if one is named. Columns starting with ``_`` are
ignored (a rejects file's own). UTF-8 with or without BOM, or GB 18030 (which includes
GBK), detected. JSON Lines: one object per line with the same members, ``claims`` an
object.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from ecert._formats.jose import strict_json_loads
from ecert.errors import FormatError, InputError
from ecert.models import Certificate, CertificateStatus, RevocationReason

__all__ = ["EXPORT_FORMAT", "BatchFile", "BatchRow", "ExportedRow", "RejectCode", "RejectsFile",
           "RevocationRow", "RowOutcome", "RowStatus", "export_record", "open_rows"]

#: Columns (members) with a meaning of their own; the rest are claims when there is no
#: ``claims`` column.
KNOWN_COLUMNS = ("holder_id", "holder_name", "claims", "valid_from", "valid_until")
REJECT_COLUMNS = ("_line", "_code", "_reason")
_SNIFF_BYTES = 1 << 16
_MAX_FIELD = 1 << 20


class RejectCode(StrEnum):
    """Why a row was not issued (the ``_code`` column of a rejects file)."""

    HOLDER_ID_CHECK = "holder_id_check"  #: the holder id breaks the type's scheme
    SCHEMA = "schema"  #: the claims are no JSON object or do not fit the type's schema
    MISSING_HOLDER_NAME = "missing_holder_name"
    #: the holder id or name differs from the claims that name the holder
    HOLDER_CLAIMS_MISMATCH = "holder_claims_mismatch"
    DUPLICATE_ROW = "duplicate_row"  #: its key repeats an earlier row of the same run
    TEXT = "invalid_text"  #: a name or claim holds characters a certificate may not carry
    VALIDITY = "invalid_validity"  #: valid_from / valid_until unreadable or out of order
    QR_TOO_LARGE = "qr_too_large"  #: its short QR form would not fit a printable code
    INPUT = "invalid_input"  #: anything else the issuance refused for this row
    #: a revocation batch's row: no such certificate (or an ambiguous serial)
    NOT_FOUND = "not_found"
    #: a revocation batch's row: not an RFC 5280 reason name
    INVALID_REASON = "invalid_reason"
    #: an imported line: its token does not verify against the exporting registry's
    #: trust list (forged or altered signature, unknown or compromised key, …)
    SIGNATURE = "signature"
    #: an imported line: a member differs from what its signed token states
    EXPORT_MISMATCH = "export_mismatch"
    #: an imported line: its status is less final than the exporting registry's published
    #: status list says (valid where revoked or suspended, suspended where revoked)
    STATUS_ROLLBACK = "status_rollback"
    #: an imported line: its certificate id names another type or agency here, or a
    #: certificate of this registry that is not its import
    ID_TAKEN = "id_taken"


class RowStatus(StrEnum):
    """What became of a row."""

    ISSUED = "issued"
    SKIPPED = "skipped"  #: issued (revoked) by an earlier run
    REJECTED = "rejected"
    REVOKED = "revoked"  #: a row of a revocation batch, revoked now
    IMPORTED = "imported"  #: a line of an export, imported now


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One row to issue.

    ``claims`` is a JSON object, or its JSON text (a CSV column). ``valid_from`` and
    ``valid_until`` are aware datetimes, dates (a day in the registry's time zone;
    9999-12-31 until means no end) or their ISO 8601 text; empty means the default.
    ``key`` is the value of the caller's idempotency column (None: the row's own HMAC).
    """

    line: int
    holder_id: str
    holder_name: str
    claims: Mapping[str, Any] | str
    valid_from: datetime | date | str | None = None
    valid_until: datetime | date | str | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What became of row ``line``: issued (``certificate_id``), skipped (issued by an
    earlier run as ``certificate_id``) or rejected (``code``, ``reason``)."""

    line: int
    status: RowStatus
    certificate_id: str | None = None
    code: RejectCode | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RevocationRow:
    """One row of a revocation batch: a certificate id (or serial) and an RFC 5280
    reason name (``key-compromise``, ``cessation-of-operation``, …)."""

    line: int
    id: str
    reason: str


#: The ``format`` member of every line of ``ecert export``.
EXPORT_FORMAT = "ecert-export/1"


@dataclass(frozen=True, slots=True)
class ExportedRow:
    """One line of an export file (:func:`export_record`): the certificate's token and
    what the exporting registry knew of it."""

    line: int
    record: Mapping[str, Any]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def export_record(cert: Certificate) -> dict[str, Any]:
    """A certificate as a line of an export file: its signed token, the members the token
    states (for people and tools reading the file; an import compares them with the token),
    and the registry's status of it, which only the exporter's published status lists can
    vouch for. A scheduled revocation (a renewal's) reads revoked: an import never makes
    a certificate more valid than its exporter meant it to be."""
    status = cert.status
    reason = cert.revocation_reason
    if cert.revoke_at is not None and status is not CertificateStatus.REVOKED:
        status, reason = CertificateStatus.REVOKED, RevocationReason.SUPERSEDED
    return {
        "format": EXPORT_FORMAT, "id": cert.id, "type": cert.type_code,
        "type_version": cert.type_version, "agency": cert.agency_code, "region": cert.region,
        "holder_name": cert.holder_name, "claims": dict(cert.claims),
        "issued_at": _iso(cert.issued_at), "valid_from": _iso(cert.valid_from),
        "valid_until": _iso(cert.valid_until), "supersedes": cert.supersedes,
        "status": status.value, "reason": None if reason is None else reason.value,
        "token": cert.token,
    }


@dataclass(frozen=True, slots=True)
class _Read:
    """A row as read: what to issue (or why it cannot be), and the record as it was."""

    line: int
    row: BatchRow | RevocationRow | ExportedRow | None
    record: Mapping[str, Any] | str  #: columns (CSV), an object or the line's text (JSON)
    problem: str | None = None


class BatchFile:
    """A batch file opened for reading (:func:`open_rows`); iterate for its rows."""

    def __init__(self, path: Path, kind: str, encoding: str, id_column: str | None, *,
                 revocations: bool = False, exported: bool = False) -> None:
        self.path = path
        #: Rows of certificates to revoke (columns ``id`` and ``reason``), not to issue.
        self.revocations = revocations
        #: Lines of an export file (:class:`ExportedRow`), JSON Lines only.
        self.exported = exported
        #: ``"csv"`` or ``"jsonl"``.
        self.kind = kind
        #: The encoding read (``utf-8-sig`` for UTF-8 with a BOM, ``utf-8``, ``gb18030``).
        self.encoding = encoding
        self.id_column = id_column
        #: The CSV header (JSON Lines: None).
        self.columns: list[str] | None = None
        self._file: IO[str] = open(path, encoding=encoding, newline="")  # noqa: SIM115
        try:
            if kind == "csv":
                self._csv = csv.reader(self._file)
                header = next(self._csv, None)
                if header is None:
                    raise InputError(f"{path} is empty: a CSV batch starts with a header line",
                                     code="batch_header")
                self.columns = [h.strip() for h in header]
                self._check_header()
        except UnicodeDecodeError as e:
            self.close()
            raise _not_encoded(path, encoding, 1) from e
        except BaseException:
            self.close()
            raise

    def _check_header(self) -> None:
        columns = self.columns or []
        required = ("id", "reason") if self.revocations else ("holder_id", "holder_name")
        missing = [c for c in required if c not in columns]
        if self.id_column is not None and self.id_column not in columns:
            missing.append(self.id_column)
        if missing:
            raise InputError(f"{self.path} has no column {', '.join(missing)} (its header: "
                             f"{', '.join(columns)[:200]})", code="batch_header")
        if len(set(columns)) != len(columns):
            raise InputError(f"{self.path} names a column twice", code="batch_header")

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> BatchFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def records(self) -> Iterator[_Read]:
        """Every row with the record it came from, in file order."""
        try:
            if self.kind == "csv":
                yield from self._csv_records()
            else:
                yield from self._json_records()
        except UnicodeDecodeError as e:
            raise _not_encoded(self.path, self.encoding, None) from e
        except csv.Error as e:
            raise InputError(f"{self.path} is not readable CSV: {e}", code="batch_format") from e

    def __iter__(self) -> Iterator[BatchRow]:
        for read in self.records():
            if isinstance(read.row, BatchRow):
                yield read.row

    def _csv_records(self) -> Iterator[_Read]:
        columns = self.columns or []
        claims_from_columns = "claims" not in columns
        last = 1
        for fields in self._csv:
            line = last + 1
            last = self._csv.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            record = dict(zip(columns, fields, strict=False))
            if len(fields) != len(columns):
                yield _Read(line, None, _pad(record, columns),
                            f"line {line} has {len(fields)} fields, the header {len(columns)}")
                continue
            if self.revocations:
                yield _Read(line, RevocationRow(line, record["id"], record["reason"]), record)
                continue
            claims: Mapping[str, Any] | str
            if claims_from_columns:
                claims = {name: value for name, value in record.items()
                          if name not in KNOWN_COLUMNS and name != self.id_column
                          and not name.startswith("_") and value != ""}
            else:
                claims = record["claims"]
            yield _Read(line, BatchRow(
                line, record["holder_id"], record["holder_name"], claims,
                record.get("valid_from") or None, record.get("valid_until") or None,
                None if self.id_column is None else record[self.id_column]), record)

    def _json_records(self) -> Iterator[_Read]:
        for number, text in enumerate(self._file, start=1):
            if not text.strip():
                continue
            try:
                value = strict_json_loads(text)
            except FormatError as e:
                yield _Read(number, None, text.rstrip("\r\n"),
                            f"line {number} is not JSON: {e}")
                continue
            if not isinstance(value, dict):
                yield _Read(number, None, text.rstrip("\r\n"),
                            f"line {number} is not a JSON object")
                continue
            if self.revocations:
                yield _Read(number, RevocationRow(number, _member(value, "id"),
                                                  _member(value, "reason")), value)
                continue
            if self.exported:
                yield _Read(number, ExportedRow(number, value), value)
                continue
            key = None
            if self.id_column is not None:
                key = value.get(self.id_column)
                if key is None:
                    yield _Read(number, None, value, f"line {number} has no {self.id_column}")
                    continue
            yield _Read(number, BatchRow(
                number, _member(value, "holder_id"), _member(value, "holder_name"),
                value.get("claims", {}), value.get("valid_from") or None,
                value.get("valid_until") or None, None if key is None else str(key)), value)


def _member(value: Mapping[str, Any], name: str) -> str:
    found = value.get(name)
    return found if isinstance(found, str) else "" if found is None else str(found)


def _pad(record: dict[str, str], columns: Sequence[str]) -> dict[str, str]:
    return {c: record.get(c, "") for c in columns}


def _not_encoded(path: Path, encoding: str, line: int | None) -> InputError:
    where = f" at line {line}" if line else ""
    return InputError(f"{path} is not {encoding}{where}: save it as UTF-8 or GB 18030, or "
                      "name its encoding", code="batch_encoding")


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` (a BOM), ``utf-8`` if the file's start decodes as UTF-8, otherwise
    ``gb18030`` (a superset of GBK and GB 2312, as Chinese spreadsheets save CSV)."""
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < _SNIFF_BYTES)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def open_rows(path: str | Path, *, id_column: str | None = None,
              encoding: str | None = None, kind: str | None = None,
              revocations: bool = False, exported: bool = False) -> BatchFile:
    """Open a batch file: CSV or JSON Lines (``kind``, else by its name — ``.jsonl``,
    ``.ndjson`` — or its first character), its encoding detected unless given; rows to
    issue, with ``revocations`` rows to revoke (:class:`RevocationRow`), with ``exported``
    the lines of an export file (:class:`ExportedRow`; JSON Lines, UTF-8)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no file {path}", code="not_found")
    csv.field_size_limit(_MAX_FIELD)
    if encoding is None:
        encoding = detect_encoding(path)
    else:
        try:
            codecs.lookup(encoding)
        except LookupError as e:
            raise InputError(f"unknown encoding {encoding!r}", code="batch_encoding") from e
    if kind is None:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            kind = "jsonl"
        elif path.suffix.lower() == ".csv":
            kind = "csv"
        else:
            with open(path, "rb") as f:
                kind = "jsonl" if f.read(64).lstrip(codecs.BOM_UTF8).lstrip()[:1] == b"{" \
                    else "csv"
    if kind not in ("csv", "jsonl"):
        raise InputError(f"unknown batch format {kind!r}: csv or jsonl", code="batch_format")
    if exported and kind != "jsonl":
        raise InputError(f"{path} is no export: an export is JSON Lines", code="batch_format")
    return BatchFile(path, kind, encoding, id_column, revocations=revocations,
                     exported=exported)


class RejectsFile:
    """Where a run's refused rows go: mode 0600 (they hold personal data), in the input's
    format and encoding, with its columns plus ``_line``, ``_code`` and ``_reason``.
    Flushed after every :meth:`flush`, so a run killed half-way leaves what it refused."""

    def __init__(self, path: str | Path, source: BatchFile, *,
                 reason_text: Callable[[str, str], str] | None = None) -> None:
        self.path = Path(path)
        self.count = 0
        #: ``(code, reason) -> the _reason written``: the reader's language (the
        #: ``_code`` column stays the stable code); the reason as given if None.
        self._reason_text = reason_text
        if self.path.resolve() == source.path.resolve():
            raise InputError("the rejects file would overwrite the input", code="batch_rejects")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
        encoding = source.encoding
        self._file = open(fd, "w", encoding=encoding, newline="")  # noqa: SIM115 - closed by close()
        self._kind = source.kind
        self._columns = [c for c in (source.columns or []) if c not in REJECT_COLUMNS]
        if self._kind == "csv":
            self._csv = csv.writer(self._file, lineterminator="\r\n")
            self._csv.writerow([*self._columns, *REJECT_COLUMNS])

    def write(self, record: Mapping[str, Any] | str, line: int, code: str, reason: str) -> None:
        """One refused row: its record as read, where it was, and why."""
        self.count += 1
        if self._reason_text is not None:
            reason = self._reason_text(code, reason)
        if self._kind == "csv":
            values = record if isinstance(record, Mapping) else {}
            self._csv.writerow([*(values.get(c, "") for c in self._columns), line, code,
                                reason])
            return
        item: dict[str, Any] = dict(record) if isinstance(record, Mapping) else {"_text": record}
        for name in REJECT_COLUMNS:
            item.pop(name, None)
        item.update({"_line": line, "_code": code, "_reason": reason})
        self._file.write(json.dumps(item, ensure_ascii=False) + "\n")

    def flush(self) -> None:
        """Push what was written to the file."""
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> RejectsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

