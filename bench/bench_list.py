"""``ecert list`` pages on PostgreSQL: keyset cursor and holder-name prefix at scale.

Run: ECERT_TEST_DATABASE_URL=postgresql+psycopg://… python bench/bench_list.py [N]

Builds a sample registry in a scratch schema, issues one certificate the ordinary way,
then copies its row N times with SQL (distinct ids, serials, slots, issue times and
holder names from 64 two-character name prefixes; 2 % revoked) — listing only reads
rows, so the copies need no tokens of their own. Then it times pages of 100 through
``Registry.find_page``: the first page, a page after a cursor in the middle, name
prefixes common and rare, and a status filter; and prints PostgreSQL's plan for a
prefix search. The scratch schema is dropped at the end.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ecert._pagination import encode_cursor
from tests.support import (
    PG_URL,
    FakeClock,
    create_registry,
    issue_business_licence,
    pg_schema_url,
)

_COPY = """
INSERT INTO certificates (id, serial, agency_code, type_code, type_version, holder,
  holder_name, claims, issued_at, valid_from, valid_until, status, revocation_reason,
  status_list_id, status_index, kid, supersedes, token)
SELECT id || '.' || g, lpad(g::text, 9, '0'), agency_code, type_code, type_version,
  holder || g, (ARRAY['张','王','李','赵','陈','刘','杨','黄'])[1 + g % 8]
    || (ARRAY['伟','芳','娜','敏','静','丽','强','磊'])[1 + (g / 8) % 8] || '公司' || g,
  claims, issued_at + g, valid_from, valid_until,
  CASE WHEN g % 50 = 0 THEN 'revoked' ELSE 'valid' END, NULL,
  status_list_id, 1000000 + g, kid, NULL, token
FROM certificates, generate_series(1, :n) g WHERE id = :id
"""


def main() -> None:
    if not PG_URL:
        sys.exit("set ECERT_TEST_DATABASE_URL to a PostgreSQL URL")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    schema = pg_schema_url()
    url = next(schema)
    try:
        with tempfile.TemporaryDirectory() as home:
            registry = create_registry(Path(home) / "home", region="GD", database_url=url,
                                       clock=FakeClock(), populate=True)
            with registry:
                cert = issue_business_licence(registry)
                started = time.perf_counter()
                with registry.engine.begin() as conn:
                    conn.execute(sqlalchemy.text(_COPY), {"n": n, "id": cert.id})
                    conn.execute(sqlalchemy.text("ANALYZE certificates"))
                print(f"{n} rows copied in {time.perf_counter() - started:.0f} s")
                middle = encode_cursor([int(cert.issued_at.timestamp()) + n // 2, cert.id])
                cases: list[tuple[str, Callable[[], Any]]] = [
                    ("first page", lambda: registry.find_page(limit=100)),
                    ("page after a cursor in the middle",
                     lambda: registry.find_page(limit=100, after=middle)),
                    ("name prefix of 1/64 of the rows",
                     lambda: registry.find_page(name="王芳", limit=100)),
                    ("rare name prefix", lambda: registry.find_page(name="王磊公司12345")),
                    ("name prefix without a match", lambda: registry.find_page(name="欧阳")),
                    ("status revoked (2 %)",
                     lambda: registry.find_page(status="revoked", limit=100)),
                ]
                for label, run in cases:
                    run()
                    times = []
                    for _ in range(7):
                        t = time.perf_counter()
                        page = run()
                        times.append((time.perf_counter() - t) * 1000)
                    print(f"{label}: median {statistics.median(times):.1f} ms "
                          f"({len(page.items)} shown, more={page.more})")
                with registry.engine.connect() as conn:
                    plan = conn.execute(sqlalchemy.text(
                        "EXPLAIN SELECT id FROM certificates WHERE holder_name LIKE "
                        "'王磊公司12345%' ORDER BY issued_at, id LIMIT 101")).scalars()
                    print("\n".join(plan))
    finally:
        next(schema, None)


if __name__ == "__main__":
    main()
