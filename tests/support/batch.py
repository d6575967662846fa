"""Batch files for ``issue_file`` / ``ecert issue-batch`` tests, and the invariant every run
must leave behind (each row issued fully or not at all)."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

import ecert
from ecert import _samples
from ecert._storage.schema import certificates, issue_keys, log_entries
from tests.support.issuing import uscc

#: The 2,001-row legacy export (``row_id``) and its 92 known bad rows (shared/samples).
LEGACY = Path(__file__).parent.parent / "data" / "legacy"
LEGACY_CSV = LEGACY / "gd-business-licences.csv"
BL = "cn.business-licence"
AGENCY = "gd-amr"


def legacy_expected() -> dict[int, str]:
    """``line -> reject code`` of the legacy file's known bad rows."""
    expected = json.loads((LEGACY / "expected.json").read_text("utf-8"))
    return {r["line"]: r["kind"] for r in expected["rejects"]}


def licence_rows(count: int, start: int = 0) -> list[dict[str, str]]:
    """``count`` valid business-licence rows (``row_id``, ``holder_id``, ``holder_name``,
    ``claims`` as JSON text), numbered from ``start``."""
    base = _samples.claims("business-licence-gd")
    rows = []
    for i in range(start, start + count):
        code = uscc(i)
        name = f"深圳市批量{i:05d}科技有限公司"
        rows.append({"row_id": f"R{i:06d}", "holder_id": code, "holder_name": name,
                     "claims": json.dumps({**base, "uscc": code, "name": name},
                                          ensure_ascii=False)})
    return rows


def write_csv(path: Path, rows: Sequence[dict[str, Any]], *, encoding: str = "utf-8",
              columns: Sequence[str] | None = None) -> Path:
    """Rows as CSV in ``encoding`` (``utf-8-sig`` for a BOM)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns or rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Rows as JSON Lines (``claims`` as an object)."""
    lines = []
    for row in rows:
        item = dict(row)
        if isinstance(item.get("claims"), str):
            item["claims"] = json.loads(item["claims"])
        lines.append(json.dumps(item, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_rejects(path: Path) -> list[dict[str, str]]:
    """A CSV rejects file's rows (any encoding the reader accepts)."""
    data = path.read_bytes()
    text = data.decode("utf-8-sig") if data.startswith(codecs.BOM_UTF8) else None
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("gb18030")
    return list(csv.DictReader(io.StringIO(text)))


def counts(registry: ecert.Registry) -> tuple[int, int, int]:
    """``(certificates, idempotency keys, certificate.issue log entries)``."""
    with registry.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(certificates)).scalar_one(),
                conn.execute(select(func.count()).select_from(issue_keys)).scalar_one(),
                conn.execute(select(func.count()).select_from(log_entries).where(
                    log_entries.c.action == "certificate.issue")).scalar_one())


def assert_whole_rows(registry: ecert.Registry) -> None:
    """Every certificate has its key and its log entry, every key its certificate (no row
    half issued), and the audit finds nothing."""
    with registry.engine.connect() as conn:
        orphans = conn.execute(
            select(func.count()).select_from(issue_keys).outerjoin(
                certificates, certificates.c.id == issue_keys.c.certificate_id)
            .where(certificates.c.id.is_(None))).scalar_one()
    assert orphans == 0
    certs, keys, entries = counts(registry)
    assert certs == keys == entries
    report = registry.audit()
    assert report.intact, report.findings[:5]
