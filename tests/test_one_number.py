"""One number (issue 11): ``ecert list --holder-id`` finds every certificate of a holder
across types and agencies through the keyed pseudonym (the raw id is stored nowhere but
in the claims the type binds to it), displays mask the id (``4403**********2116``), and
the lookup is index-bound (the query plan on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

import ecert
from ecert import _samples
from ecert._storage.schema import certificates, log_entries
from ecert.holder_ids import mask_claims, mask_id
from tests.support.batch import read_rejects, write_csv
from tests.support.cli import Cli, operator_cli
from tests.support.issuing import issue_business_licence, uscc

HOLDER = uscc(4242)  # 91440300MA0004242…
OTHER = uscc(4343)
FOOD = "cn.food-business-licence"


@pytest.fixture
def cli(registry: ecert.Registry, clock: Any) -> Cli:
    return operator_cli(registry, clock)


def _holdings(registry: ecert.Registry) -> list[str]:
    """A licence of gd-amr and a food licence of a second agency for HOLDER; one licence
    for OTHER. Returns HOLDER's ids."""
    registry.add_agency("gd-sz-amr", name="深圳市市场监督管理局", uscc=uscc(77, "11440300MB"),
                        types=[FOOD])
    first = issue_business_licence(registry, holder_id=HOLDER, holder_name="深圳一号有限公司")
    issue_business_licence(registry, holder_id=OTHER, holder_name="深圳二号有限公司")
    food = {**_samples.claims("food-business-licence-sh"), "uscc": HOLDER,
            "operator_name": "深圳一号有限公司"}
    second = registry.issue(FOOD, "gd-sz-amr", holder_id=HOLDER.lower(),
                            holder_name="深圳一号有限公司", claims=food)
    return [first.id, second.id]


def test_mask_claims_masks_the_holder_claim_and_resident_ids() -> None:
    schema = {"properties": {"uscc": {"type": "string", "format": "uscc"},
                             "legal_rep_id": {"type": "string", "format": "cn-resident-id"},
                             "name": {"type": "string"}}}
    claims = {"uscc": HOLDER, "legal_rep_id": "440305199001012116", "name": "某公司",
              "capital": 100}
    assert mask_claims(claims, schema, {"holder_id": "uscc"}) == {
        **claims, "uscc": mask_id(HOLDER), "legal_rep_id": "4403**********2116"}
    # A company's code is masked only where it names the holder.
    assert mask_claims(claims, schema, {})["uscc"] == HOLDER


def test_mask_id() -> None:
    assert mask_id("440305199001012116") == "4403**********2116"
    assert mask_id(HOLDER) == HOLDER[:4] + "*" * 10 + HOLDER[-4:]
    assert mask_id("A1234567") == "A******7"  # short: mostly masked
    assert mask_id("1234") == "****"
    assert mask_id("") == ""
    for n in range(1, 40):
        shown = mask_id("x" * n)
        assert len(shown) == n and shown.count("*") > n / 2


def test_list_holder_id_finds_every_certificate_across_types_and_agencies(
        registry: ecert.Registry, cli: Cli) -> None:
    ids = _holdings(registry)
    # typed as a clerk might: lower case, full-width digits
    typed = HOLDER.lower().translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
    items = cli.items("list", "--holder-id", typed)
    assert [i["id"] for i in items] == ids
    assert {i["type"] for i in items} == {"cn.business-licence", FOOD}
    assert {c.agency_code for c in registry.find(holder_id=HOLDER)} == {"gd-amr", "gd-sz-amr"}
    assert [c.id for c in registry.find(holder_id=HOLDER)] == ids
    human = cli.ok("list", "--holder-id", HOLDER).stdout
    assert all(i in human for i in ids) and HOLDER not in human
    # no raw id outside the claims the types bind to it (and the signed token)
    with registry.engine.connect() as conn:
        rows = conn.execute(select(certificates)).mappings().all()
        logged = conn.execute(select(log_entries.c.plain_subject, log_entries.c.note)).all()
    for row in rows:
        for name, value in row.items():
            if name not in ("claims", "token"):
                assert HOLDER not in str(value), name
    assert {r["holder"] for r in rows} == {registry.holder_pseudonym(HOLDER),
                                           registry.holder_pseudonym(OTHER)}
    assert all(HOLDER not in str(x) for x in logged)


def test_displays_mask_the_holder_id(registry: ecert.Registry, cli: Cli,
                                     tmp_path: Path) -> None:
    _holdings(registry)
    masked = mask_id(HOLDER)
    bad = HOLDER[:-1] + ("0" if HOLDER[-1] != "0" else "1")  # a wrong check character
    claims = {**_samples.claims("business-licence-gd"), "uscc": bad, "name": "某公司"}
    claims_file = tmp_path / "claims.json"
    claims_file.write_text(json.dumps(claims, ensure_ascii=False), "utf-8")
    message = cli.fails("issue", "--type", "cn.business-licence", "--agency", "gd-amr",
                        "--holder-id", bad, "--holder-name", "某公司",
                        "--claims", str(claims_file))
    assert mask_id(bad) in message and bad not in message
    first, second = (c.id for c in registry.find(holder_id=HOLDER))
    for args in (("uses", "--holder-id", HOLDER), ("consent", "list", "--holder-id", HOLDER),
                 ("list", "--holder-id", HOLDER), ("show", first), ("show", second)):
        result = cli.ok(*args)
        assert HOLDER not in result.output + result.stderr, args
    # The claim naming the holder is on screen, masked; programs get it as issued.
    for cert_id in (first, second):
        assert masked in cli.ok("show", cert_id).output
        assert cli.json("show", cert_id)["claims"]["uscc"] == HOLDER
    # a batch: the reason masks the id, the rejected row keeps it as given (to re-run)
    row = {"holder_id": bad, "holder_name": "某公司",
           "claims": json.dumps(claims, ensure_ascii=False)}
    rejects = tmp_path / "rejects.csv"
    result = cli("issue-batch", "--type", "cn.business-licence", "--agency", "gd-amr",
                 str(write_csv(tmp_path / "rows.csv", [row])), "--rejects", str(rejects))
    assert result.exit_code == 1 and bad not in result.output + result.stderr
    (rejected,) = read_rejects(rejects)
    assert rejected["holder_id"] == bad and rejected["_code"] == "holder_id_check"
    assert masked[:4] in rejected["_reason"] and bad not in rejected["_reason"]


def _captured_find(registry: ecert.Registry, **filters: Any) -> tuple[str, Any]:
    """The SQL and parameters ``Registry.find`` sends."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM certificates" in statement:
            seen.append((statement, parameters))

    event.listen(registry.engine, "before_cursor_execute", capture)
    try:
        registry.find(limit=20, **filters)
    finally:
        event.remove(registry.engine, "before_cursor_execute", capture)
    return seen[-1]


@pytest.mark.parametrize("filters", [{"holder_id": HOLDER}, {"type_code": FOOD}],
                         ids=["holder", "type"])
def test_the_lookup_is_index_bound(registry: ecert.Registry,
                                   filters: dict[str, Any]) -> None:
    """Holder lookup and a type's first page: a range scan of the index that ends in the
    order asked for — no table scan, no sort of every match."""
    _holdings(registry)
    index = "ix_certificates_holder" if "holder_id" in filters else \
        "ix_certificates_type_issued"
    statement, parameters = _captured_find(registry, **filters)
    with registry.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        if conn.dialect.name == "postgresql":
            # a few rows: the planner would read the table; ask what it does with an index
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN " + statement, parameters)
            plan = "\n".join(r[0] for r in cursor.fetchall())
            cursor.execute("RESET enable_seqscan")
            assert f"Index Scan using {index}" in plan, plan
            assert "Sort" not in plan and "Seq Scan on certificates" not in plan, plan
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = "\n".join(str(r[-1]) for r in cursor.fetchall())
            assert f"USING INDEX {index}" in plan, plan
            assert "TEMP B-TREE" not in plan and "SCAN certificates" not in plan, plan
        cursor.close()
