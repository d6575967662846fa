"""The accountable registry through the command line: operators, exit code 4, four-eyes
requests, the pending answer, audit verify and the demo."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ecert import _samples
from tests.support import OPERATOR, OPERATOR_PASSPHRASE, PASSPHRASE, FakeClock
from tests.support.cli import Cli, agency_args, type_args

BL = "cn.business-licence"
CLAIMS = _samples.claims("business-licence-gd")
GD = _samples.region("GD")


@pytest.fixture
def gd(tmp_path: Path, database_url: str | None, clock: FakeClock) -> Cli:
    run = Cli(tmp_path / "home", database_url, env={
        "ECERT_PASSPHRASE": PASSPHRASE, "ECERT_OPERATOR": OPERATOR,
        "ECERT_OPERATOR_PASSPHRASE": OPERATOR_PASSPHRASE,
        "ECERT_HOME": None, "ECERT_DATABASE_URL": None}, clock=clock)
    run.ok("init", "--region", "GD", "--name", GD["name"], "--base-url", GD["base_url"])
    for code in (BL, "cn.food-business-licence"):
        run.ok(*type_args(code))
    run.ok(*agency_args("gd-amr"))
    return run


def passfile(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / f"{name}.pass"
    path.write_text(value + "\n", "utf-8")
    return str(path)


def as_(name: str, passphrase: str) -> dict[str, str | None]:
    return {"ECERT_OPERATOR": name, "ECERT_OPERATOR_PASSPHRASE": passphrase}


def issue(run: Cli, tmp_path: Path, **env: str | None) -> str:
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps(CLAIMS, ensure_ascii=False), "utf-8")
    out = run.json("issue", "--type", BL, "--agency", "gd-amr", "--holder-id", CLAIMS["uscc"],
                   "--holder-name", CLAIMS["name"], "--claims", str(claims), env=env or None)
    return str(out["id"])


def test_init_needs_a_first_admin(tmp_path: Path, clock: FakeClock) -> None:
    run = Cli(tmp_path / "home", None, env={"ECERT_PASSPHRASE": PASSPHRASE,
                                            "ECERT_OPERATOR": None, "ECERT_HOME": None,
                                            "ECERT_DATABASE_URL": None}, clock=clock)
    assert "--admin" in run.fails("init", "--region", "GD", "--name", "x",
                                  "--base-url", GD["base_url"])
    out = run.json("init", "--region", "GD", "--name", "x", "--base-url", GD["base_url"],
                   "--admin", "li.ming", env={"ECERT_OPERATOR_PASSPHRASE": "li ming"})
    assert out["admin"] == "li.ming"
    listed = run.items("operator", "list")
    assert [o["name"] for o in listed] == ["li.ming"]
    assert {g["role"] for g in listed[0]["grants"]} == {
        "admin", "key-admin", "trust-admin", "clerk", "officer", "auditor", "service"}


def test_operators_roles_and_exit_code_4(gd: Cli, tmp_path: Path) -> None:
    added = gd.json("operator", "add", "clerk-zhang", "--role", "clerk", "--agency", "gd-amr",
                    "--passphrase-file", passfile(tmp_path, "zhang", "zhang pass"))
    assert added["grants"] == [{"role": "clerk", "agencies": ["gd-amr"], "types": None}]
    zhang = as_("clerk-zhang", "zhang pass")
    cert_id = issue(gd, tmp_path, **zhang)
    assert gd.json("operator", "whoami", env=zhang)["name"] == "clerk-zhang"
    # Not permitted, unknown, wrong passphrase, disabled: one line, exit 4, nothing changed.
    message = gd.fails("revoke", cert_id, "--reason", "unspecified", env=zhang, exit_code=4)
    assert "may not certificate.revoke" in message
    gd.fails("suspend", cert_id, env=as_("nobody", "x"), exit_code=4)
    gd.fails("suspend", cert_id, env=as_("clerk-zhang", "wrong"), exit_code=4)
    gd.ok("operator", "disable", "clerk-zhang")
    gd.fails("suspend", cert_id, env=zhang, exit_code=4)
    assert gd.json("show", cert_id)["status"] == "valid"
    refusals = [e for e in gd.items("events") if e["action"] == "access.refused"]
    assert [(e["operator"], e["details"]["action"]) for e in refusals] == [
        ("clerk-zhang", "certificate.revoke")]
    error = json.loads(gd("revoke", cert_id, "--reason", "unspecified", "--json",
                          env=zhang).stdout)
    assert error["error"]["code"] == "not_authenticated"


def test_four_eyes_through_the_cli(gd: Cli, tmp_path: Path) -> None:
    for name in ("officer-a", "officer-b"):
        gd.ok("operator", "add", name, "--role", "officer",
              "--passphrase-file", passfile(tmp_path, name, f"{name} pass"))
    gd.ok("policy", "set", "certificate.revoke", "--approvals", "2")
    assert gd.items("policy", "list") == [
        {"action": "certificate.revoke", "type": None, "approvals": 2}]
    cert_id = issue(gd, tmp_path)
    a, b = as_("officer-a", "officer-a pass"), as_("officer-b", "officer-b pass")
    pending = gd.json("revoke", cert_id, "--reason", "superseded", env=a)
    assert pending["pending"] is True
    request = pending["request"]
    assert set(request) == {"id", "action", "subject", "requested_by", "expires_at"}
    assert (request["action"], request["subject"], request["requested_by"]) == (
        "certificate.revoke", cert_id, "officer-a")
    human = gd.ok("revoke", cert_id, "--reason", "superseded", env=a).stdout
    assert "waiting for approval" in human
    assert gd.json("show", cert_id)["status"] == "valid"
    assert len(gd.items("requests", "--pending")) == 2
    gd.fails("approve", str(request["id"]), env=a, exit_code=4)
    gd.ok("reject", str(request["id"] + 1), "--reason", "duplicate", env=b)
    done = gd.json("approve", str(request["id"]), env=b)
    assert done["status"] == "approved" and done["approved_by"] == ["officer-b"]
    assert gd.json("show", cert_id)["status"] == "revoked"
    assert gd.items("requests", "--pending") == []


def test_audit_verify_exit_codes(gd: Cli, tmp_path: Path, database_url: str | None) -> None:
    cert_id = issue(gd, tmp_path)
    gd.ok("publish", str(tmp_path / "public"))
    report = gd.json("audit", "verify", "--bundle", str(tmp_path / "public"))
    assert report == {"intact": True, "log_size": report["log_size"], "findings": []}
    assert gd.json("audit", "history", cert_id)["entries"][0]["action"] == "certificate.issue"
    by_holder = gd.items("audit", "history", "--holder-id", CLAIMS["uscc"].lower())
    assert [h["subject"] for h in by_holder] == [cert_id]
    assert gd.fails("audit", "history")
    proof = gd.json("audit", "prove", cert_id)
    assert proof["entries"][0]["inclusion_proof"] is not None and proof["opening"]
    if database_url is not None:
        return  # the raw edit below is SQLite's; test_audit.py tampers on both
    with sqlite3.connect(tmp_path / "home" / "registry.db") as db:
        db.execute("UPDATE certificates SET status = 'revoked' WHERE id = ?", (cert_id,))
    result = gd("audit", "verify", "--json")
    assert result.exit_code == 1
    findings = json.loads(result.stdout)["findings"]
    assert [(f["kind"], f["subject"]) for f in findings] == [("status_mismatch", cert_id)]
    assert "TAMPERED" in gd("audit", "verify").stdout


def test_demo_shows_the_guarantees(tmp_path: Path, clock: FakeClock) -> None:
    run = Cli(tmp_path / "home", None, env={"ECERT_HOME": None}, clock=clock)
    out = run.json("demo")
    titles = [s["step"] for s in out["steps"]]
    assert any("tries to revoke" in t for t in titles)
    assert out["final_status"] == "revoked" and out["tampering_detected"] is True
