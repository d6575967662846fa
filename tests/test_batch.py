"""Batch issuance (issue 11, "Batch work"): ``Registry.issue_batch`` / ``issue_file`` and
``ecert issue-batch``. The legacy export's 92 bad rows are refused with their codes and
nothing else; rows are issued whole or not at all (a real ``kill -9`` and a real Ctrl-C
in the middle), a re-run issues only what is missing; keys repeated in one file are
``duplicate_row``; CSV in UTF-8 (BOM or not) and GB 18030, and JSON Lines; the audit
accepts batch units and catches what an insider slips in. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import ecert
from ecert._formats.log import Entry
from ecert._storage.schema import issue_keys
from ecert.batch import BatchRow, RejectCode, RowStatus, open_rows
from tests.support import OPERATOR, OPERATOR_PASSPHRASE, PASSPHRASE, database_url_of
from tests.support.batch import (
    AGENCY,
    BL,
    LEGACY_CSV,
    assert_whole_rows,
    counts,
    legacy_expected,
    licence_rows,
    read_rejects,
    write_csv,
    write_jsonl,
)
from tests.support.cli import Cli, operator_cli
from tests.support.registries import as_operator
from tests.support.tamper import drop_triggers, sql

ECERT = Path(sys.executable).parent / "ecert"


def outcomes_of(registry: ecert.Registry, path: Path, **options: Any) -> dict[int, Any]:
    return {o.line: o for o in registry.issue_file(BL, AGENCY, path, **options)}


def rejected(outcomes: dict[int, Any]) -> dict[int, str]:
    return {line: o.code.value for line, o in outcomes.items()
            if o.status is RowStatus.REJECTED}


# -- the legacy export ---------------------------------------------------------------------


def test_the_legacy_export_rejects_exactly_its_known_bad_rows(
        registry: ecert.Registry, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    first = outcomes_of(registry, LEGACY_CSV, id_column="row_id", rejects=rejects)
    expected = legacy_expected()
    assert len(first) == 2001
    assert rejected(first) == expected
    issued = [o for o in first.values() if o.status is RowStatus.ISSUED]
    assert len(issued) == 2001 - 92
    assert len({o.certificate_id for o in issued}) == len(issued)
    # the rejects file: mode 0600, the input's columns plus _line, _code, _reason
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    rows = read_rejects(rejects)
    assert list(rows[0]) == ["row_id", "holder_id", "holder_name", "claims", "_line", "_code",
                             "_reason"]
    assert {int(r["_line"]): r["_code"] for r in rows} == expected
    assert all(r["_reason"] for r in rows)
    with open_rows(LEGACY_CSV, id_column="row_id") as source_file:
        source = {r.record["row_id"]: r.record for r in source_file.records()
                  if isinstance(r.record, dict)}
    for row in rows:  # each rejected row as it was in the input
        assert row["holder_id"] == source[row["row_id"]]["holder_id"]
        assert row["claims"] == source[row["row_id"]]["claims"]
    # the same file again: nothing issued twice, the same rows refused
    before = counts(registry)
    again = outcomes_of(registry, LEGACY_CSV, id_column="row_id", rejects=rejects)
    assert counts(registry) == before
    assert rejected(again) == expected
    assert {o.certificate_id for o in again.values() if o.status is RowStatus.SKIPPED} == {
        o.certificate_id for o in issued}
    assert_whole_rows(registry)


def test_fixed_rejects_run_again_as_they_are(registry: ecert.Registry, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    outcomes_of(registry, LEGACY_CSV, id_column="row_id", rejects=rejects)
    rows = read_rejects(rejects)
    for row in rows:  # the clerk fills in the missing names from the claims
        if row["_code"] == "missing_holder_name":
            row["holder_name"] = json.loads(row["claims"])["name"]
    fixed = write_csv(tmp_path / "fixed.csv", rows)
    again = outcomes_of(registry, fixed, id_column="row_id", rejects=tmp_path / "r2.csv")
    by_code = {code: sum(1 for r in rows if r["_code"] == code)
               for code in {r["_code"] for r in rows}}
    issued = [o for o in again.values() if o.status is RowStatus.ISSUED]
    assert len(issued) == by_code["missing_holder_name"] == 24
    # the duplicate's first occurrence was issued by the first run: skipped, not refused
    assert sum(1 for o in again.values() if o.status is RowStatus.SKIPPED) == 1
    assert sorted(r["_code"] for r in read_rejects(tmp_path / "r2.csv")) == sorted(
        r["_code"] for r in rows if r["_code"] not in ("missing_holder_name", "duplicate_row"))
    assert_whole_rows(registry)


def test_without_an_id_column_the_row_itself_is_the_key(registry: ecert.Registry) -> None:
    """The legacy file's duplicate is the same row twice: refused by its content too."""
    first = outcomes_of(registry, LEGACY_CSV)
    assert rejected(first) == legacy_expected()
    again = outcomes_of(registry, LEGACY_CSV)
    assert sum(1 for o in again.values() if o.status is RowStatus.ISSUED) == 0


# -- keys and duplicates -------------------------------------------------------------------


def test_a_key_repeated_within_one_file_is_a_duplicate(registry: ecert.Registry,
                                                        tmp_path: Path) -> None:
    rows = licence_rows(6)
    changed = dict(rows[1], holder_name=rows[1]["holder_name"])  # same row id, same content
    other = dict(licence_rows(1, start=50)[0], row_id=rows[2]["row_id"])  # same id, new data
    bad = dict(licence_rows(1, start=60)[0], holder_name="")
    bad_again = dict(bad)
    path = write_csv(tmp_path / "d.csv", [*rows, changed, other, bad, bad_again])
    out = outcomes_of(registry, path, id_column="row_id", chunk_size=4)
    assert [o.status for o in out.values()][:6] == [RowStatus.ISSUED] * 6
    assert rejected(out) == {8: "duplicate_row", 9: "duplicate_row", 10: "missing_holder_name",
                             11: "duplicate_row"}
    assert "line 3" in out[8].reason and "line 10" in out[11].reason


def test_the_same_rows_in_another_encoding_or_format_are_recognised(
        registry: ecert.Registry, tmp_path: Path) -> None:
    rows = licence_rows(5)
    plain = [{k: v for k, v in r.items() if k != "row_id"} for r in rows]
    first = outcomes_of(registry, write_csv(tmp_path / "a.csv", plain, encoding="gb18030"))
    assert all(o.status is RowStatus.ISSUED for o in first.values())
    for name, path in [
            ("bom", write_csv(tmp_path / "b.csv", plain, encoding="utf-8-sig")),
            ("utf-8", write_csv(tmp_path / "c.csv", plain)),
            ("gbk", write_csv(tmp_path / "d.csv", plain, encoding="gbk")),
            ("jsonl", write_jsonl(tmp_path / "e.jsonl", plain))]:
        again = outcomes_of(registry, path)
        assert [o.status for o in again.values()] == [RowStatus.SKIPPED] * 5, name
        assert [o.certificate_id for o in again.values()] == [
            o.certificate_id for o in first.values()], name
    assert registry.get(first[2].certificate_id).holder_name == rows[0]["holder_name"]


def test_claims_as_columns_and_validity(registry: ecert.Registry, tmp_path: Path) -> None:
    rows = []
    for row in licence_rows(3):
        claims = json.loads(row["claims"])
        claims.pop("business_term_until", None)
        rows.append({"holder_id": row["holder_id"], "holder_name": row["holder_name"],
                     "valid_from": "2026-02-01", "valid_until": "2030-12-31", **claims})
    rows[2]["valid_until"] = "2026-01-15"
    rows[1]["valid_until"] = "9999-12-31"
    out = outcomes_of(registry, write_csv(tmp_path / "c.csv", rows))
    cert = registry.get(out[2].certificate_id)
    assert cert.claims["uscc"] == rows[0]["holder_id"]
    assert cert.valid_from.isoformat() == "2026-01-31T16:00:00+00:00"  # Asia/Shanghai
    assert cert.valid_until is not None and cert.valid_until.year == 2030
    assert registry.get(out[3].certificate_id).valid_until is None  # 长期
    assert rejected(out) == {4: "invalid_validity"}


def test_unreadable_rows_are_refused_and_kept(registry: ecert.Registry, tmp_path: Path) -> None:
    good = licence_rows(2)
    lines = [json.dumps({**good[0], "claims": json.loads(good[0]["claims"])},
                        ensure_ascii=False), "{not json", "[1, 2]",
             json.dumps({**good[1], "claims": "a string"}, ensure_ascii=False)]
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rejects = tmp_path / "x.rejects.jsonl"
    out = outcomes_of(registry, path, rejects=rejects)
    assert out[1].status is RowStatus.ISSUED
    assert rejected(out) == {2: "invalid_input", 3: "invalid_input", 4: "schema"}
    kept = [json.loads(line) for line in rejects.read_text("utf-8").splitlines()]
    assert [k["_line"] for k in kept] == [2, 3, 4]
    assert kept[0]["_text"] == "{not json"
    assert kept[2]["holder_id"] == good[1]["holder_id"]


def test_a_file_that_is_no_batch_is_a_usage_error(registry: ecert.Registry,
                                                  tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", [{"id": "1", "name": "x"}])
    with pytest.raises(ecert.InputError) as e:
        registry.issue_file(BL, AGENCY, path)
    assert e.value.code == "batch_header"
    with pytest.raises(ecert.InputError):
        registry.issue_file(BL, AGENCY, write_csv(tmp_path / "g.csv", licence_rows(1)),
                            id_column="nope")
    with pytest.raises(ecert.NotFound):
        registry.issue_file("no.such-type", AGENCY, path, rejects=tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()  # nothing written before the run may start


# -- the one path: authority, four eyes, the log -------------------------------------------


def test_a_chunk_is_one_signed_unit_with_an_entry_per_certificate(
        registry: ecert.Registry) -> None:
    before = len(registry.events(limit=100_000))
    rows = [BatchRow(i + 2, r["holder_id"], r["holder_name"], r["claims"])
            for i, r in enumerate(licence_rows(7))]
    out = list(registry.issue_batch(BL, AGENCY, rows, chunk_size=3))
    assert [o.status for o in out] == [RowStatus.ISSUED] * 7
    entries = registry.events(limit=100_000)[before:]
    assert [e.action for e in entries] == ["certificate.issue"] * 7
    # each chunk one unit: the operator's signature only on its last entry
    assert [i for i, e in enumerate(entries) if Entry.decode(e.leaf).sig] == [2, 5, 6]
    assert all(e.details["key"] for e in entries)
    assert_whole_rows(registry)


def test_batch_certificates_publish_verify_and_print(registry: ecert.Registry, clock: Any,
                                                    tmp_path: Path) -> None:
    rows = [BatchRow(i + 2, r["holder_id"], r["holder_name"], r["claims"])
            for i, r in enumerate(licence_rows(3))]
    ids = [o.certificate_id for o in registry.issue_batch(BL, AGENCY, rows)]
    registry.publish(tmp_path / "bundle")
    verifier = ecert.Verifier.from_bundle(tmp_path / "bundle", clock=clock)
    for cert_id in ids:
        cert = registry.get(cert_id)
        result = verifier.verify(cert.token)
        assert result.valid, result
        assert registry.qr_token(cert_id)  # the stored token checks against the log
    assert registry.audit(bundle=tmp_path / "bundle").intact


def test_an_operator_who_may_not_issue_is_refused_before_any_row(
        registry: ecert.Registry, clock: Any, tmp_path: Path) -> None:
    registry.add_operator("officer", roles=["officer"], passphrase="officer pass")
    officer = as_operator(registry, "officer", "officer pass", clock)
    try:
        with pytest.raises(ecert.PermissionDenied):
            officer.issue_file(BL, AGENCY, write_csv(tmp_path / "o.csv", licence_rows(2)))
    finally:
        officer.close()
    assert registry.events(limit=100_000)[-1].action == "access.refused"
    assert counts(registry)[0] == 0


def test_a_four_eyes_policy_on_issuing_refuses_a_batch(registry: ecert.Registry,
                                                        tmp_path: Path) -> None:
    registry.set_policy("certificate.issue", approvals=2, type_code=BL)
    with pytest.raises(ecert.PermissionDenied) as e:
        registry.issue_file(BL, AGENCY, write_csv(tmp_path / "p.csv", licence_rows(2)))
    assert e.value.code == "approval_required"


def test_the_audit_catches_what_an_insider_slips_into_a_batch(registry: ecert.Registry,
                                                              tmp_path: Path) -> None:
    out = outcomes_of(registry, write_csv(tmp_path / "a.csv", licence_rows(6)),
                      id_column="row_id")
    ids = [o.certificate_id for o in out.values()]
    assert registry.audit().intact
    # a key row for a row nobody issued (a re-run would skip it), another one deleted
    sql(registry, "INSERT INTO issue_keys (key, certificate_id, run, line) "
                  "VALUES ('forged', :c, 'x', 1)", c=ids[0])
    sql(registry, "DELETE FROM issue_keys WHERE certificate_id = :c", c=ids[1])
    found = registry.audit().findings
    assert any(f.subject == f"issue key of {ids[0]}" for f in found)
    assert any("missing" in f.detail for f in found)


def test_an_entry_changed_inside_a_batch_unit_breaks_its_signature(
        registry: ecert.Registry, tmp_path: Path) -> None:
    rows = [BatchRow(i + 2, r["holder_id"], r["holder_name"], r["claims"])
            for i, r in enumerate(licence_rows(5))]
    list(registry.issue_batch(BL, AGENCY, rows))
    drop_triggers(registry)
    middle = [e for e in registry.events(limit=100_000)
              if e.action == "certificate.issue"][2]
    forged = middle.leaf.replace(b'"idx":', b'"idx":1', 1)  # another slot: another certificate
    sql(registry, "UPDATE log_entries SET leaf = :l WHERE seq = :s", l=forged, s=middle.seq)
    kinds = {f.kind for f in registry.audit().findings}
    assert "bad_signature" in kinds


# -- the command line ----------------------------------------------------------------------


@pytest.fixture
def cli(registry: ecert.Registry, clock: Any) -> Cli:
    return operator_cli(registry, clock)


def test_issue_batch_exit_codes_and_json(cli: Cli, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", licence_rows(3))
    result = cli("issue-batch", "--type", BL, "--agency", AGENCY, str(good), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "rows": 3, "issued": 3, "skipped": 0, "rejected": 0, "codes": {},
        "rejects_file": None, "seconds": json.loads(result.stdout)["seconds"]}
    rejects = tmp_path / "bad.csv"
    result = cli("issue-batch", "--type", BL, "--agency", AGENCY, str(LEGACY_CSV),
                 "--id-column", "row_id", "--rejects", str(rejects))
    assert result.exit_code == 1
    assert "1909 issued" in result.stdout and "holder_id_check: 20" in result.stdout
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    again = cli("issue-batch", "--type", BL, "--agency", AGENCY, str(good), "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["skipped"] == 3
    assert cli.fails("issue-batch", "--type", BL, "--agency", AGENCY, str(good),
                     "--id-column", "nope").startswith(str(good))
    assert cli.fails("issue-batch", "--type", BL, "--agency", AGENCY,
                     str(tmp_path / "missing.csv"))
    result = cli("issue-batch", "--type", BL, "--agency", AGENCY, str(good),
                 env={"ECERT_LANG": "zh"})
    assert result.exit_code == 0 and "已签发" in result.stdout


def test_a_rejects_file_read_in_chinese_says_why_in_chinese(cli: Cli, tmp_path: Path) -> None:
    """A clerk fixing the rejects file reads each reason in Chinese (the code's summary)
    with the library's detail after it; the code column and the English file stay."""
    import csv

    def rows_of(path: Path) -> dict[str, dict[str, str]]:
        with open(path, encoding="utf-8", newline="") as f:
            return {r["_line"]: r for r in csv.DictReader(f)}

    english, chinese = tmp_path / "en.csv", tmp_path / "zh.csv"
    for rejects, lang in ((english, "en"), (chinese, "zh_CN")):
        result = cli("issue-batch", "--type", BL, "--agency", AGENCY, str(LEGACY_CSV),
                     "--id-column", "row_id", "--rejects", str(rejects),
                     env={"ECERT_LANG": lang})
        assert result.exit_code == 1, result.output
    assert "holder_id_check：20（持证人证件号码不符合该类型的编码规则）" in result.stdout
    en, zh = rows_of(english), rows_of(chinese)
    assert sorted(en) == sorted(zh) and len(en) == len(legacy_expected())
    summaries = {
        "holder_id_check": "持证人证件号码不符合该类型的编码规则：",
        "schema": "声明项不符合该类型的 Schema：",
        "missing_holder_name": "持证人名称为空：",
        "holder_claims_mismatch": "持证人证件号码或名称与声明项中的持证人不一致：",
        "duplicate_row": "与本文件前面的一行重复：",
    }
    for line, row in en.items():
        assert zh[line]["_code"] == row["_code"]
        assert zh[line]["_reason"] == summaries[row["_code"]] + row["_reason"]
        assert not any("\u4e00" <= c <= "\u9fff" for c in row["_reason"])

    # A revocation batch's rejects likewise.
    revocations = tmp_path / "revoke.csv"
    revocations.write_text("id,reason\r\n99999999,unspecified\r\n", encoding="utf-8")
    result = cli("revoke-batch", str(revocations), "--rejects", str(tmp_path / "r.csv"),
                 env={"ECERT_LANG": "zh_CN"})
    assert result.exit_code == 1, result.output
    (refused,) = rows_of(tmp_path / "r.csv").values()
    assert refused["_code"] == "not_found"
    assert refused["_reason"].startswith("没有这份证照（或证照序号不唯一）：")


def test_every_reject_code_has_a_summary_in_both_languages() -> None:
    from ecert_cli._batch import REJECT_SUMMARIES
    from ecert_cli._i18n import _

    assert set(REJECT_SUMMARIES) == set(RejectCode)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECERT_LANG", "zh_CN")
        for summary in REJECT_SUMMARIES.values():
            assert _(summary) != summary, summary


def test_issue_batch_progress_lines_without_a_terminal(cli: Cli, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", licence_rows(4))
    result = cli("issue-batch", "--type", BL, "--agency", AGENCY, str(good),
                 "--progress-every", "0", "--chunk", "2")
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("4 of 4 rows: 4 issued")


# -- stopped at any moment -------------------------------------------------------------------


def _ecert_env(registry: ecert.Registry) -> dict[str, str]:
    env = {**os.environ, "ECERT_PASSPHRASE": PASSPHRASE, "ECERT_OPERATOR": OPERATOR,
           "ECERT_OPERATOR_PASSPHRASE": OPERATOR_PASSPHRASE, "ECERT_LANG": "en",
           "ECERT_HOME": str(registry.home), "PYTHONUNBUFFERED": "1"}
    url = database_url_of(registry)
    if url:
        env["ECERT_DATABASE_URL"] = url
    return env


@pytest.mark.skipif(not ECERT.exists() or os.name != "posix",
                    reason="needs the installed ecert script and POSIX signals")
@pytest.mark.parametrize(("how", "after"), [("kill", 1), ("kill", 230), ("int", 120)])
def test_stopped_at_any_moment_every_row_is_whole_and_a_rerun_finishes(
        registry: ecert.Registry, cli: Cli, clock: Any, tmp_path: Path, how: str,
        after: int) -> None:
    # The program runs on the real clock: the registry's own steps too from here on.
    clock.now = datetime.now(UTC)
    rows = licence_rows(400)
    rows[7]["holder_name"] = ""  # one bad row, refused by every run alike
    path = write_csv(tmp_path / "big.csv", rows)
    args = [str(ECERT), "issue-batch", "--type", BL, "--agency", AGENCY, str(path),
            "--id-column", "row_id", "--chunk", "37", "--progress-every", "0"]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_ecert_env(registry)) as process:
        assert process.stderr is not None
        seen = 0
        errors: list[str] = []
        for line in process.stderr:
            errors.append(line.rstrip("\n"))
            if " of 400 rows" in line:
                seen += 1
                if seen == after:
                    process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
                    break
        rest = threading.Thread(target=lambda: errors.extend(process.stderr or []))
        rest.start()
        code = process.wait(timeout=120)
        rest.join(timeout=30)
    assert seen == after
    if how == "kill":
        assert code == -signal.SIGKILL
    else:
        assert code == 130, errors
        assert any("interrupted after" in e for e in errors), errors
        assert errors[-1].strip() == "ecert: error: interrupted"
    issued_before = counts(registry)[0]
    assert issued_before < 399
    assert_whole_rows(registry)
    result = cli("issue-batch", "--type", BL, "--agency", AGENCY, str(path),
                 "--id-column", "row_id", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["issued"] + summary["skipped"] == 399
    assert summary["skipped"] == issued_before
    assert summary["codes"] == {"missing_holder_name": 1}
    assert counts(registry)[0] == 399
    with registry.engine.connect() as conn:
        assert len(set(conn.execute(select(issue_keys.c.certificate_id)).scalars())) == 399
    assert_whole_rows(registry)


def test_rejects_of_a_reject_code_table_are_documented() -> None:
    """Every reject code has a line in docs/errors.md (the CLI prints them as they are)."""
    text = (Path(__file__).parent.parent / "docs" / "errors.md").read_text("utf-8")
    for code in RejectCode:
        assert f"`{code.value}`" in text, code


class Crash(Exception):
    """A simulated crash inside a chunk's transaction."""


@pytest.mark.parametrize("where", ["add_certificates", "add_issue_keys", "append_log"])
def test_a_crash_inside_a_chunk_leaves_the_chunks_before_it_whole(
        registry: ecert.Registry, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    from ecert._storage.repository import WriteRepository

    real = getattr(WriteRepository, where)
    calls = []

    def second_crashes(self: WriteRepository, rows: Any) -> None:
        calls.append(len(rows))
        if len(calls) == 2:
            raise Crash("simulated crash")
        real(self, rows)

    monkeypatch.setattr(WriteRepository, where, second_crashes)
    rows = [BatchRow(i + 2, r["holder_id"], r["holder_name"], r["claims"])
            for i, r in enumerate(licence_rows(9))]
    seen = []
    with pytest.raises(Crash):
        for outcome in registry.issue_batch(BL, AGENCY, rows, chunk_size=4):
            seen.append(outcome)
    assert len(seen) == 4
    monkeypatch.undo()
    assert counts(registry) == (4, 4, 4)
    assert_whole_rows(registry)
    again = list(registry.issue_batch(BL, AGENCY, rows, chunk_size=4))
    assert [o.status for o in again] == [RowStatus.SKIPPED] * 4 + [RowStatus.ISSUED] * 5
    assert_whole_rows(registry)


# -- revoke-batch ----------------------------------------------------------------------------


def _issued(registry: ecert.Registry, tmp_path: Path, count: int) -> list[str]:
    out = outcomes_of(registry, write_csv(tmp_path / "issue.csv", licence_rows(count)))
    return [o.certificate_id for o in out.values()]


def test_revoke_batch_is_one_unit_and_runs_again(registry: ecert.Registry,
                                                 tmp_path: Path) -> None:
    ids = _issued(registry, tmp_path, 4)
    rows = [{"id": ids[0], "reason": "key-compromise"},
            {"id": ids[1].split(".")[7], "reason": "cessation-of-operation"},  # a serial
            {"id": ids[2], "reason": "no-such-reason"},
            {"id": "1.2.156.3005.2.11100000MB0143028R001.11440000MB2C01234R.99999999.001.X",
             "reason": "key-compromise"},
            {"id": ids[0], "reason": "key-compromise"}]
    path = write_csv(tmp_path / "revoke.csv", rows)
    rejects = tmp_path / "revoke.rejects.csv"
    before = len(registry.events(limit=100_000))
    out = registry.revoke_file(path, rejects=rejects)
    assert [(o.line, o.status.value, o.code and o.code.value) for o in out] == [
        (2, "revoked", None), (3, "revoked", None), (4, "rejected", "invalid_reason"),
        (5, "rejected", "not_found"), (6, "rejected", "duplicate_row")]
    entries = registry.events(limit=100_000)[before:]
    assert [e.action for e in entries] == ["certificate.revoke_batch", "certificate.revoke",
                                           "certificate.revoke"]
    assert [bool(Entry.decode(e.leaf).sig) for e in entries] == [False, False, True]
    assert registry.get(ids[1]).revocation_reason is ecert.RevocationReason(
        "cessation-of-operation")
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    assert [r["_code"] for r in read_rejects(rejects)] == ["invalid_reason", "not_found",
                                                           "duplicate_row"]
    again = registry.revoke_file(path)
    assert [o.status.value for o in again][:2] == ["skipped", "skipped"]
    assert registry.get(ids[3]).status is ecert.CertificateStatus.VALID
    assert registry.audit().intact


def test_four_eyes_hold_a_revocation_batch_as_one_request(
        registry: ecert.Registry, clock: Any, tmp_path: Path) -> None:
    ids = _issued(registry, tmp_path, 3)
    registry.set_policy("certificate.revoke", approvals=2, type_code=BL)
    path = write_csv(tmp_path / "r.csv", [{"id": i, "reason": "privilege-withdrawn"}
                                          for i in ids])
    with pytest.raises(ecert.PendingApproval) as pending:
        registry.revoke_file(path)
    request = pending.value.request
    assert request.action == "certificate.revoke_batch"
    assert request.subject.startswith("revocations:")
    assert all(registry.get(i).status is ecert.CertificateStatus.VALID for i in ids)
    registry.add_operator("officer", roles=["officer"], passphrase="officer pass")
    officer = as_operator(registry, "officer", "officer pass", clock)
    try:
        done = officer.approve(request.id)
    finally:
        officer.close()
    assert done.status is ecert.RequestStatus.APPROVED
    assert all(registry.get(i).status is ecert.CertificateStatus.REVOKED for i in ids)
    assert registry.audit().intact


def test_the_replay_refuses_a_batch_head_that_names_other_revocations() -> None:
    from ecert._authority import revocations_digest
    from ecert._replay import Replay

    revokes = [(10 + i, Entry(1, "certificate.revoke", f"c:{i}", "kid",
                              {"reason": "key-compromise"})) for i in range(3)]
    named = revocations_digest((e.subject, "key-compromise") for _s, e in revokes)
    head = (9, Entry(1, "certificate.revoke_batch", named, "kid", {"count": 3}))
    replay = Replay()
    assert replay._batches_match([head, *revokes])
    assert not replay._batches_match([head, *revokes[:2]])  # one left out
    other = (13, Entry(1, "certificate.revoke", "c:x", "kid", {"reason": "key-compromise"}))
    assert not replay._batches_match([head, *revokes[:2], other])  # one swapped
    assert [f.kind for f in replay.findings] == ["no_authority", "no_authority"]


def test_revoke_batch_command(cli: Cli, registry: ecert.Registry, tmp_path: Path) -> None:
    ids = _issued(registry, tmp_path, 2)
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": ids[0], "reason": "key-compromise"},
                                              {"id": "nope", "reason": "key-compromise"}])
    result = cli("revoke-batch", str(path), "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["revoked"], summary["rejected"], summary["codes"]) == (
        1, 1, {"not_found": 1})
    kept = [json.loads(line) for line in (tmp_path / "r.rejects.jsonl").read_text(
        "utf-8").splitlines()]
    assert kept == [{"id": "nope", "reason": "key-compromise", "_line": 2,
                     "_code": "not_found", "_reason": kept[0]["_reason"]}]
    again = cli("revoke-batch", str(path))
    assert again.exit_code == 1 and "1 revoked before" in again.stdout
