"""End-to-end tests of the ``ecert`` command line.

Commands run in-process through :class:`click.testing.CliRunner` (the autouse fixture of
``conftest`` keeps key derivation cheap), against SQLite in a temporary home or, when
``ECERT_TEST_DATABASE_URL`` is set, a PostgreSQL schema of the test's own passed with
``--database-url``. One test runs the real entry point in a subprocess.

Every error case checks the CLI contract: exit code 2 (1 for a certificate that is not
valid), exactly one line ``ecert: error: …`` on stderr, and never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import ecert
import ecert.keys
import ecert.registry
import ecert.verify
from ecert import _samples
from ecert_cli import cli
from tests.support import (
    FAST_KDF_ROUNDS,
    OPERATOR_PASSPHRASE,
    PASSPHRASE,
    PG_URL,
    FakeClock,
    copy_tree,
    uscc,
)
from tests.support.cli import (
    CATALOG,
    DATA,
    Cli,
    agency_args,
    assert_no_traceback,
    assert_one_line_error,
    collect_leaked_connections,
    type_args,
)

OPERATOR = "clerk-li"
BL = "cn.business-licence"
PQ = "cn.professional-qualification"
BL_CLAIMS = _samples.claims("business-licence-gd")
PQ_CLAIMS = _samples.claims("professional-qualification-gd")
GD = _samples.region("GD")


# -- harness -------------------------------------------------------------------------------


def cli_at(home: Path, database_url: str | None, clock: FakeClock) -> Cli:
    return Cli(home, database_url, env={
        "ECERT_PASSPHRASE": PASSPHRASE, "ECERT_OPERATOR": OPERATOR,
        "ECERT_OPERATOR_PASSPHRASE": OPERATOR_PASSPHRASE,
        "ECERT_HOME": None, "ECERT_DATABASE_URL": None,
    }, clock=clock)


@pytest.fixture
def run(tmp_path: Path, database_url: str | None, clock: FakeClock) -> Cli:
    """An ``ecert`` with a passphrase and an operator, on an empty home, on the test clock
    (2026-01-01, injected at the CLI's composition root), so dates are deterministic."""
    return cli_at(tmp_path / "home", database_url, clock)


def init(run: Cli) -> Result:
    return run.ok("init", "--region", "GD", "--name", GD["name"], "--base-url", GD["base_url"])


def set_up_gd(run: Cli) -> None:
    init(run)
    for code in (BL, "cn.food-business-licence", PQ):
        run.ok(*type_args(code))
    for code in ("gd-amr", "gd-hrss"):
        run.ok(*agency_args(code))


@pytest.fixture(scope="module")
def gd_home(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """SQLite: the home ``gd`` sets up, made once (closed) for the tests to copy.
    PostgreSQL: ``None`` (each test sets up its own schema)."""
    if PG_URL:
        return None
    home = tmp_path_factory.mktemp("gd-template") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ecert.keys, "DEFAULT_KDF_ROUNDS", FAST_KDF_ROUNDS)
        set_up_gd(cli_at(home, None, FakeClock()))
    return home


@pytest.fixture
def gd(run: Cli, gd_home: Path | None) -> Cli:
    """The GD sample registry, set up through the CLI (types and agencies), on the test
    clock: on SQLite a copy of the home set up once per module."""
    if gd_home is None:
        set_up_gd(run)
    else:
        copy_tree(gd_home, run.home)
    return run


def write_json(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return str(path)


def issue_bl(run: Cli, tmp_path: Path, *extra: str, **claims: Any) -> dict[str, Any]:
    """Issue the sample business licence (claims overridden by ``claims``) with --json."""
    data = {**BL_CLAIMS, **claims}
    path = write_json(tmp_path / "bl-claims.json", data)
    out: dict[str, Any] = run.json("issue", "--type", BL, "--agency", "gd-amr",
                                   "--holder-id", data["uscc"], "--holder-name", data["name"],
                                   "--claims", path, *extra)
    return out


def issue_pq(run: Cli) -> dict[str, Any]:
    """Issue the sample qualification from its sample claims file."""
    out: dict[str, Any] = run.json(
        "issue", "--type", PQ, "--agency", "gd-hrss", "--holder-id", PQ_CLAIMS["id_number"],
        "--holder-name", PQ_CLAIMS["name"],
        "--claims", str(DATA / "claims" / "professional-qualification-gd.json"))
    return out


def mistype(cert_id: str) -> str:
    """The id with a wrong check character."""
    wrong = "0" if cert_id[-1] != "0" else "1"
    return cert_id[:-1] + wrong


def all_command_paths() -> Iterator[list[str]]:
    def walk(group: click.Group, path: list[str]) -> Iterator[list[str]]:
        for name, command in sorted(group.commands.items()):
            yield [*path, name]
            if isinstance(command, click.Group):
                yield from walk(command, [*path, name])

    yield []
    yield from walk(cli, [])


# -- init ----------------------------------------------------------------------------------


def test_init_then_init_again_fails(run: Cli) -> None:
    result = init(run)
    assert "initialised region GD (广东省)" in result.stdout
    assert "root key " in result.stdout
    message = run.fails("init", "--region", "GD", "--name", GD["name"],
                        "--base-url", GD["base_url"])
    assert "exists already" in message
    collect_leaked_connections()


def test_init_json_and_bad_input(run: Cli) -> None:
    message = run.fails("init", "--region", "G D", "--name", "x", "--base-url", GD["base_url"])
    assert "region code" in message
    message = run.fails("init", "--region", "GD", "--name", "x", "--base-url", "ftp://gd")
    assert "URL" in message
    out = run.json("init", "--region", "gd", "--name", GD["name"], "--base-url", GD["base_url"])
    assert out["region"] == "GD"
    assert out["root_kid"]
    assert out["trust_list"].startswith(GD["base_url"] + "/")


def test_commands_need_an_initialised_registry(run: Cli) -> None:
    assert "ecert init" in run.fails("list")
    assert "ecert init" in run.fails("type", "list", "--json")
    collect_leaked_connections()


# -- catalog and agencies -------------------------------------------------------------------


def test_type_add_from_sample_schema_files_and_list(run: Cli) -> None:
    init(run)
    assert "no types yet" in run.ok("type", "list").stdout
    assert run.items("type", "list") == []
    out = run.json(*type_args(BL))
    assert out == {"code": BL, "version": 1, "name": "营业执照",
                   "national_type_code": "11100000MB0143028R001", "validity_days": 3650,
                   "qr_claims": CATALOG[BL]["qr_claims"], "holder_id_scheme": "uscc",
                   "holder_claims": {"holder_id": "uscc", "holder_name": "name"}}
    result = run.ok(*type_args(PQ))
    assert f"added type {PQ}" in result.stdout
    listed = run.items("type", "list")
    assert [t["code"] for t in listed] == sorted([BL, PQ])
    assert {t["code"]: t["validity_days"] for t in listed} == {BL: 3650, PQ: None}
    human = run.ok("type", "list").stdout
    assert BL in human and "3650 days" in human and "no expiry" in human
    assert "exists" in run.fails(*type_args(BL))


def test_type_add_errors(run: Cli, tmp_path: Path) -> None:
    init(run)
    schema = str(DATA / CATALOG[BL]["schema"])
    national = CATALOG[BL]["national_type_code"]

    message = run.fails("type", "add", "x.t", "--name", "x", "--schema",
                        str(tmp_path / "missing.json"), "--national-code", national)
    assert "missing.json" in message
    not_json = tmp_path / "schema.txt"
    not_json.write_text("this is not JSON {", "utf-8")
    assert "not valid JSON" in run.fails("type", "add", "x.t", "--name", "x", "--schema",
                                         str(not_json), "--national-code", national)
    array = tmp_path / "array.json"
    array.write_text("[1, 2]", "utf-8")
    assert "JSON Schema object" in run.fails("type", "add", "x.t", "--name", "x", "--schema",
                                             str(array), "--national-code", national)
    binary = tmp_path / "schema.bin"
    binary.write_bytes(b"\xff\xfe\x00\x80")
    run.fails("type", "add", "x.t", "--name", "x", "--schema", str(binary),
              "--national-code", national)
    for bad in ("11100000MB0143028R00X", "11100000MB0143028X001", "short"):
        message = run.fails("type", "add", "x.t", "--name", "x", "--schema", schema,
                            "--national-code", bad)
        assert bad[:18].upper() in message  # national codes are upper-cased first
    run.fails("type", "add", "x.t", "--name", "x", "--schema", schema,
              "--national-code", national, "--validity-days", "0")
    assert run.items("type", "list") == []


def test_agency_add_list_rotate_key(run: Cli) -> None:
    init(run)
    run.ok(*type_args(BL))
    run.ok(*type_args("cn.food-business-licence"))
    assert "no agencies yet" in run.ok("agency", "list").stdout
    added = run.json(*agency_args("gd-amr"))
    assert added["code"] == "gd-amr"
    assert added["uscc"] == "11440000MB2C01234R"
    assert added["types"] == [BL, "cn.food-business-licence"]
    assert [(k["alg"], k["role"], k["status"]) for k in added["keys"]] == [
        ("ES256", "agency", "active")]
    first_kid = added["keys"][0]["kid"]

    assert "11440000MB2C01234X" in run.fails(
        "agency", "add", "gd-x", "--name", "x", "--uscc", "11440000MB2C01234X", "--types", BL)
    assert "cn.nope" in run.fails(
        "agency", "add", "gd-y", "--name", "y", "--uscc", "11440000MB2D05678G",
        "--types", "cn.nope")
    run.fails("agency", "add", "gd-z", "--name", "z", "--uscc", "11440000MB2D05678G",
              "--types", BL, "--alg", "RSA")
    assert "exists" in run.fails(*agency_args("gd-amr"))

    ed = run.json("agency", "add", "gd-ed", "--name", "ed", "--uscc", "11440000MB2D05678G",
                  "--types", BL, "--alg", "Ed25519")
    assert ed["keys"][0]["alg"] == "Ed25519"

    rotated = run.json("agency", "rotate-key", "gd-amr")
    assert rotated["kid"] != first_kid
    assert rotated["status"] == "active"
    assert "gd-nope" in run.fails("agency", "rotate-key", "gd-nope")

    listed = {a["code"]: a for a in run.items("agency", "list")}
    assert set(listed) == {"gd-amr", "gd-ed"}
    keys = {k["kid"]: k["status"] for k in listed["gd-amr"]["keys"]}
    assert keys[rotated["kid"]] == "active"
    assert keys[first_kid] != "active"
    human = run.ok("agency", "list").stdout
    assert "gd-amr" in human and rotated["kid"] in human and first_kid in human


# -- issuing and looking up -----------------------------------------------------------------


def test_issue_json_has_id_and_token(gd: Cli, tmp_path: Path) -> None:
    out = issue_bl(gd, tmp_path)
    parsed = ecert.CertificateId.parse(out["id"])
    assert parsed.type_code == "11100000MB0143028R001"
    assert parsed.issuer_code == "11440000MB2C01234R"
    assert int(parsed.serial) == 1
    assert out["token"].count(".") == 2
    assert out["type"] == BL and out["agency"] == "gd-amr" and out["status"] == "valid"
    assert out["holder_name"] == BL_CLAIMS["name"]
    assert BL_CLAIMS["uscc"] not in json.dumps(out["holder"])  # a pseudonym only
    assert out["claims"] == BL_CLAIMS
    assert out["valid_from"] == "2026-01-01T00:00:00Z"
    assert out["valid_until"] == "2035-12-30T00:00:00Z"  # 3650 days, the type's default

    human = gd.ok("issue", "--type", BL, "--agency", "gd-amr", "--holder-id",
                  BL_CLAIMS["uscc"], "--holder-name", BL_CLAIMS["name"], "--claims",
                  str(DATA / "claims" / "business-licence-gd.json")).stdout
    assert human.startswith("issued 1.2.156.3005.2.")
    assert "token:" in human


def test_issue_without_expiry(gd: Cli) -> None:
    out = issue_pq(gd)
    assert out["type"] == PQ
    assert out["claims"] == PQ_CLAIMS
    assert out["valid_until"] is None  # the type has no expiry
    assert "no expiry" in gd.ok("show", out["id"]).stdout


def test_issue_claims_from_stdin(gd: Cli) -> None:
    base = ["issue", "--type", PQ, "--agency", "gd-hrss", "--holder-id",
            PQ_CLAIMS["id_number"], "--holder-name", PQ_CLAIMS["name"], "--claims", "-"]
    out = gd.json(*base, input=json.dumps(PQ_CLAIMS, ensure_ascii=False))
    assert out["claims"] == PQ_CLAIMS
    ecert.CertificateId.parse(out["id"])
    assert "not valid JSON" in gd.fails(*base, input="{nope")
    assert "JSON object" in gd.fails(*base, input="[1]")
    assert len(gd.items("list")) == 1


def test_issue_claims_violating_the_schema(gd: Cli, tmp_path: Path) -> None:
    missing_name = {k: v for k, v in BL_CLAIMS.items() if k != "name"}
    for claims, json_path in [
        ({**BL_CLAIMS, "uscc": "not-a-credit-code"}, "$.claims.uscc"),
        ({**BL_CLAIMS, "established_on": "2019-13-45"}, "$.claims.established_on"),
        ({**BL_CLAIMS, "name": None}, "$.claims.name"),
        (missing_name, "$.claims.name"),
        ({**BL_CLAIMS, "surprise": 1}, "$.claims.surprise"),
    ]:
        path = write_json(tmp_path / "claims.json", claims)
        message = gd.fails("issue", "--type", BL, "--agency", "gd-amr", "--holder-id",
                           BL_CLAIMS["uscc"], "--holder-name", "x", "--claims", path)
        assert json_path in message, (json_path, message)
    assert gd.items("list") == []


def test_issue_input_errors(gd: Cli, tmp_path: Path) -> None:
    claims = write_json(tmp_path / "claims.json", BL_CLAIMS)
    base = ["issue", "--holder-id", BL_CLAIMS["uscc"], "--holder-name", "x"]
    not_json = tmp_path / "claims.txt"
    not_json.write_text("{nope", "utf-8")
    assert "not valid JSON" in gd.fails(*base, "--type", BL, "--agency", "gd-amr",
                                        "--claims", str(not_json))
    array = write_json(tmp_path / "array.json", [BL_CLAIMS])
    assert "JSON object" in gd.fails(*base, "--type", BL, "--agency", "gd-amr",
                                     "--claims", array)
    gd.fails(*base, "--type", BL, "--agency", "gd-amr", "--claims", str(tmp_path / "none"))
    assert "cn.nope" in gd.fails(*base, "--type", "cn.nope", "--agency", "gd-amr",
                                 "--claims", claims)
    assert "gd-nope" in gd.fails(*base, "--type", BL, "--agency", "gd-nope", "--claims", claims)
    assert "gd-hrss" in gd.fails(*base, "--type", BL, "--agency", "gd-hrss", "--claims", claims)
    assert "valid-until" in gd.fails(*base, "--type", BL, "--agency", "gd-amr",
                                     "--claims", claims, "--valid-until", "31/12/2030")
    assert "zone" in gd.fails(*base, "--type", BL, "--agency", "gd-amr", "--claims", claims,
                              "--valid-until", "2030-12-31T12:00:00")
    gd.fails(*base, "--type", BL, "--agency", "gd-amr", "--claims", claims,
             "--valid-until", "2020-01-01")
    gd.fails("issue", "--type", BL)  # missing required options
    assert gd.items("list") == []


def test_valid_until_is_reflected_in_show_json(gd: Cli, tmp_path: Path) -> None:
    out = issue_bl(gd, tmp_path, "--valid-until", "2030-12-31")
    shown = gd.json("show", out["id"])
    # A date is the last valid day: the certificate expires at the end of it in the
    # registry's time zone (Asia/Shanghai by default, UTC+8); JSON stays UTC.
    assert shown["valid_until"] == "2030-12-31T16:00:00Z"
    assert shown["valid_until"] == out["valid_until"]
    assert shown["valid_from"] == "2026-01-01T00:00:00Z"
    with_time = issue_bl(gd, tmp_path, "--valid-until", "2030-06-30T12:00:00+08:00")
    assert gd.json("show", with_time["id"])["valid_until"] == "2030-06-30T04:00:00Z"


def test_show_displays_the_last_valid_day_given(gd: Cli, tmp_path: Path) -> None:
    out = issue_bl(gd, tmp_path, "--valid-until", "2030-12-31")
    human = gd.ok("show", out["id"]).stdout
    valid = next(line for line in human.splitlines() if line.startswith("valid:"))
    # --valid-until is documented as the "last valid day": the clerk must see that day.
    assert valid.split() == ["valid:", "2026-01-01", "to", "2030-12-31"]


def test_show_by_id_serial_and_mistyped_id(gd: Cli, tmp_path: Path) -> None:
    out = issue_bl(gd, tmp_path)
    by_id = gd.json("show", out["id"])
    assert by_id["id"] == out["id"]
    assert by_id["token"] == out["token"]
    assert gd.json("show", "1") == by_id
    assert gd.json("show", "00000001") == by_id
    assert gd.json("show", out["id"].lower()) == by_id

    human = gd.ok("show", "1").stdout
    assert f"id:          {out['id']}" in human
    assert "claims:" in human and BL_CLAIMS["legal_representative"] in human
    assert gd.ok("show", "1", "--token").stdout.strip() == out["token"]
    assert gd.json("show", "1", "--token") == {"id": out["id"], "token": out["token"]}

    assert "mistyped" in gd.fails("show", mistype(out["id"]))
    assert "99" in gd.fails("show", "99")
    gd.fails("show", "1.2.156.3005.2.garbage")
    gd.fails("show", "not a serial!")


def test_list_with_filters(gd: Cli, tmp_path: Path) -> None:
    assert "no certificates match" in gd.ok("list").stdout
    first = issue_bl(gd, tmp_path)
    other_holder = issue_bl(gd, tmp_path, uscc=uscc(1234567, "91110108MA"))
    qualification = issue_pq(gd)
    gd.ok("suspend", other_holder["id"])

    def ids(*args: str) -> list[str]:
        rows = gd.items("list", *args)
        assert all("token" not in row for row in rows)
        return [row["id"] for row in rows]

    assert ids() == [first["id"], other_holder["id"], qualification["id"]]
    assert ids("--holder-id", BL_CLAIMS["uscc"]) == [first["id"]]
    assert ids("--holder-id", PQ_CLAIMS["id_number"]) == [qualification["id"]]
    assert ids("--holder-id", "91440300MA5F3K2L8X") == []
    assert ids("--type", BL) == [first["id"], other_holder["id"]]
    assert ids("--type", PQ) == [qualification["id"]]
    assert ids("--agency", "gd-hrss") == [qualification["id"]]
    assert ids("--status", "suspended") == [other_holder["id"]]
    assert ids("--status", "valid", "--type", BL) == [first["id"]]
    assert ids("--status", "revoked") == []
    first_page = gd.json("list", "--limit", "1")
    assert first_page["more"] is True and len(first_page["items"]) == 1
    assert ids("--limit", "1", "--after", first_page["next"]) == [other_holder["id"]]
    last = gd.json("list", "--limit", "5")
    assert last["more"] is False and last["next"] is None and len(last["items"]) == 3
    shown = gd.ok("list", "--limit", "2").stdout
    assert "2 shown, more: use --after " in shown
    gd.fails("list", "--after", "not-a-cursor")
    human = gd.ok("list", "--status", "suspended").stdout
    assert other_holder["id"] in human and "suspended" in human
    gd.fails("list", "--status", "lost")
    gd.fails("list", "--limit", "0")


# -- status changes -------------------------------------------------------------------------


def test_suspend_reinstate_revoke_and_invalid_transitions(gd: Cli, tmp_path: Path) -> None:
    cert_id = issue_bl(gd, tmp_path)["id"]
    out = gd.json("suspend", cert_id)
    assert (out["id"], out["status"], out["revocation_reason"]) == (cert_id, "suspended", None)
    assert "token" not in out
    assert "suspended" in gd.fails("suspend", cert_id)
    out = gd.json("reinstate", "1")
    assert out["status"] == "valid"
    assert "valid" in gd.fails("reinstate", cert_id)
    human = gd.ok("suspend", "1").stdout
    assert "now suspended" in human and "ecert publish" in human
    out = gd.json("revoke", cert_id, "--reason", "superseded")
    assert (out["status"], out["revocation_reason"]) == ("revoked", "superseded")
    for args in (["revoke", cert_id, "--reason", "superseded"], ["reinstate", cert_id],
                 ["suspend", cert_id]):
        assert "revoked" in gd.fails(*args)
    gd.fails("revoke", cert_id, "--reason", "bogus")
    assert "mistyped" in gd.fails("suspend", mistype(cert_id))
    gd.fails("suspend", "42")
    assert "(superseded)" in gd.ok("show", cert_id).stdout


# -- publish and verify ---------------------------------------------------------------------


def verify(run: Cli, token: str, bundle: Path, *extra: str, **kwargs: Any) -> Result:
    """A verdict: exit 0 (valid) or 1 (not valid), on stdout; not an error on stderr."""
    result = run("verify", token, "--bundle", str(bundle), *extra, **kwargs)
    assert result.exit_code in (0, 1), result.output
    assert result.stderr == ""
    return result


def verify_json(run: Cli, token: str, bundle: Path, **kwargs: Any) -> tuple[int, Any]:
    result = verify(run, token, bundle, "--json", **kwargs)
    return result.exit_code, json.loads(result.stdout)


def test_publish_and_verify_through_the_lifecycle(gd: Cli, tmp_path: Path) -> None:
    cert = issue_bl(gd, tmp_path)
    bundle = tmp_path / "public"
    report = gd.json("publish", str(bundle))
    assert report["sequence"] == 1
    assert set(report["files"]) >= {"anchor.json", "trustlist.jwt", ".well-known/jwks.json"}
    assert any(f.startswith("status/") for f in report["files"])
    assert all((bundle / f).is_file() for f in report["files"])
    assert (report["certificates"], report["status_lists"]) == (1, 1)
    assert gd.json("publish", str(bundle))["sequence"] == 2
    assert "published trust list #3" in gd.ok("publish", str(bundle)).stdout

    code, out = verify_json(gd, cert["token"], bundle)
    assert code == 0
    assert (out["valid"], out["status"], out["errors"]) == (True, "valid", [])
    assert out["certificate"]["id"] == cert["id"]
    assert out["issuer"]["agency"] == "gd-amr"
    human = verify(gd, cert["token"], bundle)
    assert human.exit_code == 0
    assert human.stdout.startswith(f"VALID  {BL}  {cert['id']}")
    assert "广东省市场监督管理局" in human.stdout
    # The token from `show --token`, piped in: `verify -` reads stdin.
    token = gd.ok("show", "1", "--token").stdout
    code, out = verify_json(gd, "-", bundle, input=token)
    assert (code, out["valid"]) == (0, True)
    anchor = verify(gd, cert["token"], bundle, "--anchor", str(bundle / "anchor.json"))
    assert anchor.exit_code == 0

    gd.ok("suspend", cert["id"])
    assert verify(gd, cert["token"], bundle).exit_code == 0  # verifiers see it once published
    gd.ok("publish", str(bundle))
    code, out = verify_json(gd, cert["token"], bundle)
    assert (code, out["valid"], out["status"], out["errors"]) == (1, False, "suspended",
                                                                   ["suspended"])
    human = verify(gd, cert["token"], bundle)
    assert human.exit_code == 1
    assert human.stdout.startswith("NOT VALID (suspended)")

    gd.ok("reinstate", cert["id"])
    gd.ok("publish", str(bundle))
    assert verify(gd, cert["token"], bundle).exit_code == 0

    gd.ok("revoke", cert["id"], "--reason", "superseded")
    gd.ok("publish", str(bundle))
    code, out = verify_json(gd, "-", bundle, input=cert["token"] + "\n")
    assert (code, out["valid"], out["status"], out["errors"]) == (1, False, "revoked",
                                                                   ["revoked"])
    assert verify(gd, cert["token"], bundle).stdout.startswith("NOT VALID (revoked)")


def test_verify_garbage_tampered_and_missing_bundle(gd: Cli, tmp_path: Path) -> None:
    cert = issue_bl(gd, tmp_path)
    bundle = tmp_path / "public"
    gd.ok("publish", str(bundle))

    code, out = verify_json(gd, "garbage", bundle)
    assert (code, out["valid"], out["status"], out["errors"]) == (1, False, "invalid",
                                                                   ["malformed"])
    human = verify(gd, "garbage", bundle)
    assert human.exit_code == 1
    assert human.stdout.startswith("NOT VALID (invalid)")
    code, out = verify_json(gd, "-", bundle, input="")
    assert (code, out["status"]) == (1, "invalid")
    head, payload, signature = cert["token"].split(".")
    forged = f"{head}.{payload}.{signature[:-6]}{'A' * 6 if signature[-6:] != 'A' * 6 else 'B' * 6}"
    code, out = verify_json(gd, forged, bundle)
    assert (code, out["valid"], out["status"]) == (1, False, "invalid")
    assert out["errors"]

    message = gd.fails("verify", cert["token"], "--bundle", str(tmp_path / "no-such-dir"))
    assert "no-such-dir" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    gd.fails("verify", cert["token"], "--bundle", str(empty))
    gd.fails("verify", cert["token"], "--bundle", str(bundle), "--anchor",
             str(tmp_path / "no-anchor.json"))
    # A trust list that cannot be trusted makes nothing valid: a verdict, not a usage error.
    trust_list = (bundle / "trustlist.jwt").read_text("ascii")
    (bundle / "trustlist.jwt").write_text("tampered", "ascii")
    code, out = verify_json(gd, cert["token"], bundle)
    assert (code, out["valid"], out["status"]) == (1, False, "untrusted")
    assert out["errors"]
    assert verify(gd, cert["token"], bundle).stdout.startswith("NOT VALID (untrusted)")
    (bundle / "trustlist.jwt").unlink()
    gd.fails("verify", cert["token"], "--bundle", str(bundle))
    (bundle / "trustlist.jwt").write_text(trust_list, "ascii")
    assert verify(gd, cert["token"], bundle).exit_code == 0


def test_verify_against_another_regions_anchor_fails(gd: Cli, tmp_path: Path) -> None:
    cert = issue_bl(gd, tmp_path)
    bundle = tmp_path / "public"
    gd.ok("publish", str(bundle))
    # A second registry of another region, on the embedded database of its own home.
    other = Cli(tmp_path / "other", None, env=gd.env)
    other.ok("init", "--region", "ZJ", "--name", "浙江省", "--base-url", "https://ecert.zj.example")
    other_bundle = tmp_path / "zj"
    other.ok("publish", str(other_bundle))
    # GD's bundle under a pinned ZJ anchor: its trust list is not signed by that root.
    result = verify(gd, cert["token"], bundle, "--anchor", str(other_bundle / "anchor.json"))
    assert result.exit_code == 1
    assert result.stdout.startswith("NOT VALID (untrusted)")
    # ZJ's own bundle does not vouch for a GD agency.
    code, out = verify_json(gd, cert["token"], other_bundle)
    assert (code, out["valid"]) == (1, False)
    assert out["status"] != "valid"


# -- the event record -----------------------------------------------------------------------


def test_events_record_the_operator_of_every_action(gd: Cli, tmp_path: Path) -> None:
    cert_id = issue_bl(gd, tmp_path)["id"]
    gd.ok("agency", "rotate-key", "gd-amr")
    gd.ok("suspend", cert_id)
    gd.ok("reinstate", cert_id)
    gd.ok("publish", str(tmp_path / "public"))
    (tmp_path / "wang.pass").write_text("officer wang\n", "utf-8")
    gd.ok("operator", "add", "clerk-wang", "--role", "officer", "--passphrase-file",
          str(tmp_path / "wang.pass"))
    gd.ok("--operator", "clerk-wang", "revoke", cert_id, "--reason", "superseded",
          env={"ECERT_OPERATOR_PASSPHRASE": "officer wang"})

    events = gd.items("events")
    actions = [e["action"] for e in events]
    for action in ("registry.init", "operator.add", "type.add", "agency.add", "key.create",
                   "key.rotate", "key.retire", "certificate.issue", "certificate.suspend",
                   "certificate.reinstate", "registry.publish", "certificate.revoke"):
        assert action in actions
    assert {e["operator"] for e in events if e["action"] != "certificate.revoke"} == {OPERATOR}
    assert all(e["at"].startswith("2026-01-01T00:00:00") for e in events)
    assert [e["seq"] for e in events] == list(range(len(events)))

    mine = gd.items("events", cert_id)
    assert [(e["action"], e["operator"]) for e in mine] == [
        ("certificate.issue", OPERATOR), ("certificate.suspend", OPERATOR),
        ("certificate.reinstate", OPERATOR), ("certificate.revoke", "clerk-wang")]
    assert mine[-1]["details"]["reason"] == "superseded"
    assert {e["subject"] for e in mine} == {cert_id}
    assert gd.items("events", cert_id.lower()) == mine
    assert len(gd.items("events", "--limit", "2")) == 2

    human = gd.ok("events", cert_id).stdout.splitlines()
    assert len(human) == 4
    assert all(OPERATOR in line or "clerk-wang" in line for line in human)
    assert "mistyped" in gd.fails("events", mistype(cert_id))


# -- errors under --json, passphrase, usage -------------------------------------------------


def test_json_errors_are_an_object_on_stdout(gd: Cli, tmp_path: Path) -> None:
    path = write_json(tmp_path / "claims.json", {**BL_CLAIMS, "uscc": "x"})
    result = gd("issue", "--type", BL, "--agency", "gd-amr", "--holder-id",
                BL_CLAIMS["uscc"], "--holder-name", BL_CLAIMS["name"], "--claims", path,
                "--json")
    message = assert_one_line_error(result)
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "claims_invalid"
    assert error["message"] == message
    assert "$.claims.uscc" in message

    result = gd("--json", "show", "99")
    assert_one_line_error(result)
    assert json.loads(result.stdout)["error"]["code"] == "not_found"

    result = gd("show", "1.2.156.3005.2.11100000MB0143028R001.11440000MB2C01234R.1.001.0",
                "--json")
    assert_one_line_error(result)
    assert json.loads(result.stdout)["error"]["code"] == "invalid_certificate_id"


@pytest.mark.parametrize("args", [
    ["revoke", "1", "--reason", "bogus", "--json"],
    ["--json", "frobnicate"],
    ["list", "--status", "lost", "--json"],
], ids=" ".join)
def test_json_usage_errors_are_an_object_on_stdout(run: Cli, args: list[str]) -> None:
    result = run(*args)
    message = assert_one_line_error(result)
    assert json.loads(result.stdout) == {"error": {"code": "usage_error", "message": message}}


def test_missing_passphrase_when_a_key_is_needed(gd: Cli, tmp_path: Path) -> None:
    cert_id = issue_bl(gd, tmp_path)["id"]
    no_passphrase = {"ECERT_PASSPHRASE": None}
    claims = write_json(tmp_path / "claims.json", BL_CLAIMS)
    for args in (
        ["issue", "--type", BL, "--agency", "gd-amr", "--holder-id", BL_CLAIMS["uscc"],
         "--holder-name", "x", "--claims", claims],
        ["agency", "rotate-key", "gd-amr"],
        ["publish", str(tmp_path / "public")],
    ):
        message = gd.fails(*args, env=no_passphrase)
        assert "ECERT_PASSPHRASE" in message
    assert "ECERT_PASSPHRASE" in gd.fails(*args, env={"ECERT_PASSPHRASE": ""})
    # Nothing more was issued; reading and status changes need no private key.
    assert [c["id"] for c in gd.items("list", env=no_passphrase)] == [cert_id]
    assert len(gd.items("type", "list", env=no_passphrase)) == 3
    # A status change is logged under a commitment keyed by a registry secret: it needs
    # the passphrase too now (an insider with only the database changes nothing).
    assert "ECERT_PASSPHRASE" in gd.fails("suspend", cert_id, env=no_passphrase)
    assert gd.json("show", cert_id)["status"] == "valid"

    fresh = Cli(tmp_path / "fresh", None, env={**gd.env, **no_passphrase})
    message = fresh.fails("init", "--region", "GD", "--name", "x", "--base-url", GD["base_url"])
    assert "ECERT_PASSPHRASE" in message


def test_wrong_passphrase_is_one_line(gd: Cli, tmp_path: Path) -> None:
    claims = write_json(tmp_path / "claims.json", BL_CLAIMS)
    gd.fails("issue", "--type", BL, "--agency", "gd-amr", "--holder-id", BL_CLAIMS["uscc"],
             "--holder-name", "x", "--claims", claims, env={"ECERT_PASSPHRASE": "wrong"})
    assert gd.items("list") == []


@pytest.mark.parametrize("path", list(all_command_paths()), ids=lambda p: " ".join(p) or "ecert")
def test_help_for_every_command(path: list[str]) -> None:
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(cli, [*path, flag], prog_name="ecert")
        assert_no_traceback(result)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"Usage: {' '.join(['ecert', *path])}")
        assert result.stderr == ""


def test_all_commands_are_covered_by_help() -> None:
    names = {" ".join(p) for p in all_command_paths()}
    assert names >= {"", "init", "type", "type add", "type list", "agency", "agency add",
                     "agency list", "agency rotate-key", "issue", "show", "list", "suspend",
                     "reinstate", "revoke", "publish", "verify", "events", "demo"}


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"], prog_name="ecert")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ecert, version {ecert.__version__}"


@pytest.mark.parametrize("args", [
    [],  # after --home: "Missing command"
    ["frobnicate"],
    ["type", "frobnicate"],
    ["list", "--bogus"],
    ["show"],
    ["issue", "--type", BL],
    ["revoke", "1"],
    ["agency", "add", "gd-x", "--name", "x", "--uscc", "11440000MB2D05678G", "--types", BL,
     "--alg", "RSA"],
    ["publish"],
    ["verify", "x"],
    ["--home"],
], ids=lambda args: " ".join(args) or "no-command")
def test_usage_errors_are_one_line(run: Cli, args: list[str]) -> None:
    message = run.fails(*args)
    if args[:1] == ["frobnicate"]:
        assert "frobnicate" in message


@pytest.mark.parametrize("args", [[], ["type"], ["agency"]], ids=["ecert", "type", "agency"])
def test_group_without_subcommand_is_one_line(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args, prog_name="ecert")
    message = assert_one_line_error(result)
    assert f"'{' '.join(['ecert', *args])} --help'" in message


# -- the real entry point ---------------------------------------------------------------------


def test_entry_point_in_a_subprocess(tmp_path: Path, database_url: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECERT_")}
    env.update(ECERT_PASSPHRASE=PASSPHRASE, ECERT_OPERATOR=OPERATOR,
               ECERT_HOME=str(tmp_path / "home"), PYTHONIOENCODING="utf-8")
    if database_url:
        env["ECERT_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "ecert_cli"]

    demo = subprocess.run([*command, "demo", "--json"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr
    out = json.loads(demo.stdout)
    assert out["final_status"] == "revoked"
    assert [s["verified"] for s in out["steps"] if "verified" in s][:4] == [
        "valid", "suspended", "valid", "revoked"]

    failed = subprocess.run([*command, "show", "1"], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert failed.returncode == 2
    assert "Traceback" not in failed.stdout + failed.stderr
    assert failed.stdout == ""
    lines = failed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ecert: error: "), failed.stderr
    assert "ecert init" in lines[0]


# -- renew, reissue, suspend --reason, list --name, show (issue 9, "Upkeep") ----------------


def test_renew_and_reissue(gd: Cli, tmp_path: Path, clock: FakeClock) -> None:
    first = issue_bl(gd, tmp_path)
    renewed = gd.json("renew", first["id"], "--valid-until", "2031-12-31")
    new, old = renewed["certificate"], renewed["replaced"]
    assert old["id"] == first["id"] and old["status"] == "revoked"
    assert old["revocation_reason"] == "superseded"
    assert new["supersedes"] == first["id"] and new["claims"] == first["claims"]
    # Dates are days in the registry's time zone (Asia/Shanghai): through the end of 12-31.
    assert new["valid_until"] == "2031-12-31T16:00:00Z"

    patch = write_json(tmp_path / "patch.json", {"address": "广州市天河区1号"})
    human = gd.ok("reissue", new["id"], "--claims-patch", patch, "--valid-from", "2026-03-01",
                  "--at-start").stdout
    assert f"{new['id']} stays valid until 2026-03-01 00:00," in human  # local time
    third = gd.items("list", "--status", "valid")
    assert next(c["id"] for c in third) == new["id"] and len(third) == 2
    assert third[1]["claims"]["address"] == "广州市天河区1号"
    assert third[1]["valid_until"] == new["valid_until"]
    assert gd.json("show", new["id"])["revoke_at"] == "2026-02-28T16:00:00Z"
    assert "scheduled at 2026-03-01" in gd.ok("show", new["id"]).stdout
    bad = write_json(tmp_path / "bad.json", ["not", "an", "object"])
    assert "merge patch" in gd.fails("reissue", third[1]["id"], "--claims-patch", bad)
    gd.fails("reissue", third[1]["id"])  # --claims-patch is required
    report = gd.json("audit", "verify")
    assert report["intact"] is True, report


def test_suspend_reason_shows_in_show_and_history(gd: Cli, tmp_path: Path) -> None:
    cert = issue_bl(gd, tmp_path)
    gd.ok("suspend", cert["id"], "--reason", "材料待核实")
    assert "reason:      材料待核实" in gd.ok("show", cert["id"]).stdout
    assert gd.json("show", cert["id"])["status_note"] == "材料待核实"
    assert "(材料待核实)" in gd.ok("audit", "history", cert["id"]).stdout
    events = gd.items("events", cert["id"])
    assert events[-1]["note"] == "材料待核实"


def test_list_by_name_and_pages_in_human_output(gd: Cli, tmp_path: Path) -> None:
    a = issue_bl(gd, tmp_path)
    b = issue_bl(gd, tmp_path, uscc=uscc(4242, "91110108MA"), name="深圳市前海另一家公司")
    assert [c["id"] for c in gd.items("list", "--name", "深圳市前海")] == [a["id"], b["id"]]
    assert [c["id"] for c in gd.items("list", "--name", "深圳市前海另")] == [b["id"]]
    out = gd.ok("list", "--name", "深圳", "--limit", "1").stdout
    assert "1 shown, more: use --after " in out
    cursor = out.rsplit("--after ", 1)[1].strip()
    assert [c["id"] for c in gd.items("list", "--name", "深圳", "--after", cursor)] == [b["id"]]
    for listing in (("type", "list"), ("agency", "list"), ("operator", "list"),
                    ("policy", "list"), ("requests",), ("events",)):
        page = gd.json(*listing, "--limit", "1")
        assert set(page) == {"items", "more", "next"}
        assert len(page["items"]) <= 1
        if page["more"]:
            following = gd.json(*listing, "--limit", "1", "--after", page["next"])
            assert following["items"] and following["items"] != page["items"]
