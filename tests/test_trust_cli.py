"""Cross-region recognition through the ``ecert`` command line.

The three sample regions of ``regions.json`` are set up only with CLI commands (``init``,
``type add``, ``agency add``, ``trust export-anchor``, ``publish``, ``trust recognize``,
``issue``), each with its own home (and, with ``ECERT_TEST_DATABASE_URL``, its own
PostgreSQL schema), served over real HTTP by ``tests/support/http.py``. The
clock is the system's. Exit codes: 0 valid (or done), 1 not valid, 2 input error, with
one ``ecert: error:`` line and never a traceback.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ecert import _samples
from ecert import keys as ecert_keys
from ecert_cli import cli
from tests.support import (
    FAST_KDF_ROUNDS,
    OPERATOR_PASSPHRASE,
    PASSPHRASE,
    PG_URL,
    LocalServer,
    pg_schema_url,
    serve,
)
from tests.support.cli import DATA, assert_no_traceback, type_args
from tests.support.http import ServerHost
from tests.support.regions import (
    BL,
    CLAIMS,
    DL,
    FBL,
    HOLDER,
    PQ,
    REGIONS,
    SPJY,
    mapping,
    recognitions,
)
from tests.support.worlds import copy_template

ENV: dict[str, str | None] = {"ECERT_PASSPHRASE": PASSPHRASE, "ECERT_OPERATOR": "clerk-cli",
                              "ECERT_OPERATOR_PASSPHRASE": OPERATOR_PASSPHRASE,
                              "ECERT_HOME": None, "ECERT_DATABASE_URL": None}


# -- harness -----------------------------------------------------------------------------------


def invoke(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=input, env=ENV, prog_name="ecert")
    assert_no_traceback(result)
    return result


def one_line_error(result: Result, exit_code: int = 2) -> str:
    """The CLI error contract; returns the message."""
    assert result.exit_code == exit_code, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ecert: error: "), lines[0]
    gc.collect()  # a connection a failed command leaked is blamed here
    return lines[0].removeprefix("ecert: error: ")


@dataclass
class Node:
    """One region's registry, driven through the CLI."""

    code: str
    home: Path
    database_url: str | None
    www: Path
    anchor_file: Path

    def __call__(self, *args: str, input: str | None = None) -> Result:
        root = ["--home", str(self.home)]
        if self.database_url:
            root += ["--database-url", self.database_url]
        return invoke(*root, *args, input=input)

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (result.output, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def fails(self, *args: str, exit_code: int = 2) -> str:
        return one_line_error(self(*args), exit_code)


@dataclass
class Net:
    server: LocalServer
    tmp: Path
    nodes: dict[str, Node]
    #: Tokens by (region, type code), and the ids.
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    ids: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Anchor files as first exported (before any root rotation).
    anchors: dict[str, Path] = field(default_factory=dict)
    _verifiers: int = 0

    def __getitem__(self, code: str) -> Node:
        return self.nodes[code]

    def verify(self, token: str, *args: str, home: Path | None = None) -> Result:
        """``ecert verify`` with a verifier home of its own (a fresh cache) unless given."""
        if home is None:
            self._verifiers += 1
            home = self.tmp / f"verifier-{self._verifiers}"
        return invoke("--home", str(home), "verify", token, *args)

    def verify_json(self, token: str, *args: str, home: Path | None = None,
                    exit_code: int = 0) -> Any:
        result = self.verify(token, *args, "--json", home=home)
        assert result.exit_code == exit_code, (result.output, result.stderr)
        assert result.stderr == ""
        return json.loads(result.stdout)

    def publish_all(self) -> None:
        for node in self.nodes.values():
            node.ok("publish", str(node.www))


def build_net(server: LocalServer, tmp: Path, schemas: list[Iterator[str]]) -> Net:
    nodes: dict[str, Node] = {}
    anchors_dir = tmp / "anchors"
    anchors_dir.mkdir()
    for code in REGIONS:
        url: str | None = None
        if PG_URL:
            gen = pg_schema_url()
            url = next(gen)
            schemas.append(gen)
        low = code.lower()
        node = Node(code, tmp / f"home-{low}", url, server.root / low,
                    anchors_dir / f"{low}.anchor.json")
        nodes[code] = node
        sample = _samples.region(code)
        out = node.json("init", "--region", code, "--name", sample["name"],
                        "--base-url", server.url(low))
        assert out["trust_list"] == server.url(f"{low}/trustlist.jwt")
        wanted = [t for agency in sample["agencies"] for t in agency["types"]]
        wanted += [ours for entry in recognitions() if entry["verifier_region"] == code
                   for ours in entry["types"].values()]
        for type_code in dict.fromkeys(wanted):
            node.ok(*type_args(type_code))
        for agency in sample["agencies"]:
            node.ok("agency", "add", agency["code"], "--name", agency["name"],
                    "--uscc", agency["uscc"], "--types", ",".join(agency["types"]))
        exported = node.json("trust", "export-anchor", "-o", str(node.anchor_file))
        assert exported["region"] == code
        assert exported["root_kid"] == out["root_kid"]
    net = Net(server, tmp, nodes, anchors={c: n.anchor_file for c, n in nodes.items()})
    net.publish_all()  # --auto reads their published trust list
    # GD: one explicit mapping, the rest suggested by national type code.
    gd = nodes["GD"].json("trust", "recognize", "ZJ", "--anchor", str(nodes["ZJ"].anchor_file),
                          "--map", f"{DL}={DL}", "--auto")
    assert gd["types"] == mapping("GD", "ZJ")
    for entry in recognitions():
        if entry["verifier_region"] == "GD":
            continue
        maps = [f"--map={theirs}={ours}" for theirs, ours in entry["types"].items()]
        out = nodes[entry["verifier_region"]].json(
            "trust", "recognize", entry["recognizes"].lower(), "--anchor",
            str(nodes[entry["recognizes"]].anchor_file), *maps)
        assert out["types"] == entry["types"]
        assert out["valid_until"] is None
    for code, node in nodes.items():
        for agency in _samples.region(code)["agencies"]:
            for type_code in agency["types"]:
                claims_name = CLAIMS[type_code]
                claims = _samples.claims(claims_name)
                id_field, name_field = HOLDER[claims_name]
                cert = node.json("issue", "--type", type_code, "--agency", agency["code"],
                                 "--holder-id", claims[id_field],
                                 "--holder-name", claims[name_field],
                                 "--claims", str(DATA / "claims" / f"{claims_name}.json"))
                net.tokens[code, type_code] = cert["token"]
                net.ids[code, type_code] = cert["id"]
    net.publish_all()
    return net


def _nets(server: LocalServer, tmp: Path) -> Iterator[Net]:
    schemas: list[Iterator[str]] = []
    try:
        yield build_net(server, tmp, schemas)
    finally:
        gc.collect()
        for gen in schemas:
            next(gen, None)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """Three regions for the tests that change nothing (failing commands, verifications)."""
    tmp = tmp_path_factory.mktemp("cli-shared")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ecert_keys, "DEFAULT_KDF_ROUNDS", FAST_KDF_ROUNDS)
        for server in serve(tmp / "www"):
            yield from _nets(server, tmp)


@pytest.fixture(scope="module")
def template(server_host: ServerHost, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Net | None]:
    """SQLite: the ``net`` of every test, built once through the CLI; tests get copies.
    PostgreSQL: ``None`` (each test builds its own)."""
    if PG_URL:
        yield None
        return
    root = tmp_path_factory.mktemp("cli-template")
    server = server_host.serve(root / "www")
    assert server is not None  # the host's first server has not been stopped
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ecert_keys, "DEFAULT_KDF_ROUNDS", FAST_KDF_ROUNDS)
        yield from _nets(server, root)


@pytest.fixture
def net(request: pytest.FixtureRequest, server_host: ServerHost, template: Net | None,
        tmp_path: Path) -> Iterator[Net]:
    """Three regions of the test's own: a copy of the template (SQLite), else built afresh."""
    server = server_host.serve(tmp_path / "www")
    if server is not None and template is not None:
        copy_template(template.tmp, tmp_path)

        def moved(path: Path) -> Path:
            return tmp_path / path.relative_to(template.tmp)

        nodes = {code: dataclasses.replace(node, home=moved(node.home), www=moved(node.www),
                                           anchor_file=moved(node.anchor_file))
                 for code, node in template.nodes.items()}
        yield Net(server, tmp_path, nodes, dict(template.tokens), dict(template.ids),
                  {code: moved(path) for code, path in template.anchors.items()})
        gc.collect()
        return
    if server is None:  # the port was lost after a test stopped the server
        server = request.getfixturevalue("http_server")
    yield from _nets(server, tmp_path)


# -- setup and the expectations of regions.json ------------------------------------------------


def test_trust_show_lists_the_agreements_of_regions_json(shared: Net) -> None:
    for code, node in shared.nodes.items():
        shown = node.json("trust", "show")
        anchor = json.loads(node.anchor_file.read_text("utf-8"))
        assert shown["region"] == code
        assert shown["root_kid"] == anchor["root_key"]["kid"]
        assert shown["trust_list"] == anchor["trust_list"]
        expected = {e["recognizes"]: e["types"] for e in recognitions()
                    if e["verifier_region"] == code}
        assert {a["region"]: a["types"] for a in shown["agreements"]} == expected
        for agreement in shown["agreements"]:
            other = json.loads(shared[agreement["region"]].anchor_file.read_text("utf-8"))
            assert agreement["root_key"] == other["root_key"]
            assert agreement["trust_list"] == other["trust_list"]
            assert "valid_until" not in agreement
    printed = shared["GD"].ok("trust", "export-anchor").stdout
    assert printed.encode("utf-8") == shared["GD"].anchor_file.read_bytes()
    human = shared["GD"].ok("trust", "show").stdout
    assert "recognizes ZJ" in human
    assert f"    {SPJY} -> {FBL}" in human
    assert "open-ended" in human
    assert "no recognition agreements" in shared["SH"].ok("trust", "show").stdout


def test_gd_accepts_zj_licences_with_local_types(shared: Net) -> None:
    gd_anchor = str(shared.anchors["GD"])
    for type_code, local in ((DL, DL), (BL, BL), (SPJY, FBL)):
        out = shared.verify_json(shared.tokens["ZJ", type_code], "--anchor", gd_anchor)
        assert out["valid"] is True
        assert out["status"] == "valid"
        assert out["errors"] == []
        assert out["local_type"] == local
        assert out["agreement"] == {"region": "ZJ", "types": mapping("GD", "ZJ")}
        assert out["issuer"]["region"] == "ZJ"
        assert out["certificate"]["type"] == type_code
        assert out["certificate"]["id"] == shared.ids["ZJ", type_code]
    human = shared.verify(shared.tokens["ZJ", SPJY], "--anchor", gd_anchor)
    assert human.exit_code == 0, human.output
    assert human.stdout.startswith(f"VALID  {SPJY}  ")
    assert f"recognized under the agreement with ZJ as {FBL}" in human.stdout
    home = shared.verify_json(shared.tokens["GD", BL], "--anchor", gd_anchor)
    assert (home["local_type"], home["agreement"]) == (BL, None)
    # A verifier over GD's bundle directory reaches ZJ over HTTP.
    out = shared.verify_json(shared.tokens["ZJ", SPJY], "--bundle", str(shared["GD"].www),
                             "--anchor", gd_anchor)
    assert out["local_type"] == FBL
    # The token may come on stdin.
    piped = invoke("--home", str(shared.tmp / "stdin-verifier"), "verify", "-", "--anchor",
                   gd_anchor, "--json", input=shared.tokens["ZJ", DL] + "\n")
    assert piped.exit_code == 0, piped.output
    assert json.loads(piped.stdout)["local_type"] == DL


def test_gd_refuses_sh_not_transitive(shared: Net) -> None:
    zj = shared.verify_json(shared.tokens["SH", FBL], "--anchor", str(shared.anchors["ZJ"]))
    assert zj["local_type"] == SPJY
    assert zj["agreement"]["region"] == "SH"
    for type_code in (FBL, BL):
        out = shared.verify_json(shared.tokens["SH", type_code], "--anchor",
                                 str(shared.anchors["GD"]), exit_code=1)
        assert out["valid"] is False
        assert out["status"] == "untrusted"
        assert out["errors"] == ["region_not_recognized"]
        assert out["local_type"] is None
        assert out["agreement"] is None
    human = shared.verify(shared.tokens["SH", FBL], "--anchor", str(shared.anchors["GD"]))
    assert human.exit_code == 1
    assert human.stdout == "NOT VALID (untrusted): GD does not recognize region SH\n"
    assert human.stderr == ""


def test_zj_accepts_gd_business_licences_not_qualifications(shared: Net) -> None:
    zj_anchor = str(shared.anchors["ZJ"])
    out = shared.verify_json(shared.tokens["GD", BL], "--anchor", zj_anchor)
    assert out["local_type"] == BL
    assert out["agreement"] == {"region": "GD", "types": mapping("ZJ", "GD")}
    for type_code in (PQ, FBL):
        refused = shared.verify_json(shared.tokens["GD", type_code], "--anchor", zj_anchor,
                                     exit_code=1)
        assert refused["status"] == "untrusted"
        assert refused["errors"] == ["type_not_recognized"]


# -- input errors: one line, exit 2, nothing changed -------------------------------------------


def test_recognize_input_errors(shared: Net) -> None:
    gd = shared["GD"]
    sh_anchor = str(shared.anchors["SH"])
    before = gd.json("trust", "show")["agreements"]
    for bad in ("nomapping", "=cn.business-licence", "cn.business-licence=", " = "):
        message = gd.fails("trust", "recognize", "SH", "--anchor", sh_anchor, "--map", bad)
        assert "THEIRS=OURS" in message, message
    assert "region SH, not ZJ" in gd.fails("trust", "recognize", "ZJ", "--anchor", sh_anchor,
                                           "--map", f"{BL}={BL}")
    missing = str(shared.tmp / "no-such.anchor.json")
    message = gd.fails("trust", "recognize", "SH", "--anchor", missing, "--map", f"{BL}={BL}")
    assert "cannot read anchor" in message
    assert missing in message
    garbage = shared.tmp / "garbage.anchor.json"
    garbage.write_text('{"region": "SH"', "utf-8")
    assert "anchor is malformed" in gd.fails("trust", "recognize", "SH", "--anchor",
                                             str(garbage), "--map", f"{BL}={BL}")
    assert "no-such-type" in gd.fails("trust", "recognize", "SH", "--anchor", sh_anchor,
                                      "--map", f"{FBL}=no-such-type")
    # Their side is read from their verified trust list: SH issues no driving licences.
    message = gd.fails("trust", "recognize", "SH", "--anchor", sh_anchor, "--map", f"{BL}={BL}",
                       "--map", f"{DL}={DL}")
    assert f"SH's trust list has no type {DL} (it lists {BL}, {FBL})" in message
    message = gd.fails("trust", "recognize", "SH", "--anchor", sh_anchor, "--map",
                       f"{FBL}={BL}", "--their-bundle", str(shared["SH"].www))
    assert f"SH's {FBL} is 11100000MB0143028R002, our {BL} is 11100000MB0143028R001" in message
    result = gd("trust", "recognize", "SH", "--anchor", sh_anchor, "--map", f"{FBL}={BL}",
                "--json")
    one_line_error(result)
    assert json.loads(result.stdout)["error"]["code"] == "national_code_mismatch"
    assert "itself" in gd.fails("trust", "recognize", "GD", "--anchor",
                                str(shared.anchors["GD"]), "--map", f"{BL}={BL}")
    assert "at least one type" in gd.fails("trust", "recognize", "SH", "--anchor", sh_anchor)
    assert "--until" in gd.fails("trust", "recognize", "SH", "--anchor", sh_anchor,
                                 "--map", f"{BL}={BL}", "--until", "next year")
    assert "after" in gd.fails("trust", "recognize", "SH", "--anchor", sh_anchor,
                               "--map", f"{BL}={BL}", "--until", "2020-01-01")
    assert "no agreement with region sh" in gd.fails("trust", "withdraw", "sh").lower()
    # Under --json the error is also a JSON object on stdout.
    result = gd("trust", "recognize", "SH", "--anchor", sh_anchor, "--map", "bad", "--json")
    one_line_error(result)
    assert json.loads(result.stdout)["error"]["code"] == "input_error"
    assert gd.json("trust", "show")["agreements"] == before


def test_verify_and_sync_input_errors(shared: Net) -> None:
    token = shared.tokens["ZJ", DL]
    home = str(shared.tmp / "verifier-errors")
    missing = str(shared.tmp / "no-such.anchor.json")
    message = one_line_error(invoke("--home", home, "verify", token, "--anchor", missing))
    assert "cannot read anchor" in message
    assert "--anchor" in one_line_error(invoke("--home", home, "verify", token))
    result = invoke("--home", home, "verify", token, "--anchor", missing, "--json")
    one_line_error(result)
    assert json.loads(result.stdout)["error"]["code"] == "anchor_unreadable"
    assert "exactly one" in one_line_error(
        invoke("trust", "sync", "--out", str(shared.tmp / "mirror-x")))
    assert "exactly one" in one_line_error(
        invoke("trust", "sync", "--anchor", str(shared.anchors["GD"]),
               "--bundle", str(shared["GD"].www), "--out", str(shared.tmp / "mirror-y")))
    assert "cannot read anchor" in one_line_error(
        invoke("trust", "sync", "--anchor", missing, "--out", str(shared.tmp / "mirror-z")))
    assert not (shared.tmp / "mirror-z").exists()


# -- changing agreements and roots -------------------------------------------------------------


def test_withdraw_then_recognize_again_with_auto(net: Net) -> None:
    gd = net["GD"]
    assert gd.json("trust", "withdraw", "zj") == {"region": "ZJ", "withdrawn": True}
    assert gd.json("trust", "show")["agreements"] == []
    # Not yet published: verifiers still follow the published list.
    net.verify_json(net.tokens["ZJ", DL], "--anchor", str(net.anchors["GD"]))
    gd.ok("publish", str(gd.www))
    out = net.verify_json(net.tokens["ZJ", DL], "--anchor", str(net.anchors["GD"]),
                          exit_code=1)
    assert out["errors"] == ["region_not_recognized"]
    assert out["status"] == "untrusted"

    again = gd.json("trust", "recognize", "ZJ", "--anchor", str(net.anchors["ZJ"]), "--auto")
    assert again["types"] == mapping("GD", "ZJ")  # every type, by national type code
    gd.ok("publish", str(gd.www))
    out = net.verify_json(net.tokens["ZJ", SPJY], "--anchor", str(net.anchors["GD"]))
    assert out["local_type"] == FBL
    actions = [e["action"] for e in gd.json("events", "ZJ")["items"]]
    assert actions == ["agreement.add", "agreement.withdraw", "agreement.add"]
    # Their driving licence as our business licence: national codes differ, --force needed.
    zj_anchor = str(net.anchors["ZJ"])
    message = gd.fails("trust", "recognize", "ZJ", "--anchor", zj_anchor, "--map",
                       f"{DL}={BL}")
    assert f"ZJ's {DL} is 11100000MB01750230001, our {BL} is 11100000MB0143028R001" in message
    assert "--force" in message
    result = gd("trust", "recognize", "ZJ", "--anchor", zj_anchor, "--map", f"{DL}={BL}",
                "--force", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["types"] == {DL: BL}
    assert out["national_codes_differ"] == [
        {"theirs": DL, "their_national_code": "11100000MB01750230001", "ours": BL,
         "our_national_code": "11100000MB0143028R001"}]
    assert result.stderr == (f"warning: ZJ's {DL} (11100000MB01750230001) is accepted as our "
                             f"{BL} (11100000MB0143028R001) although their national type "
                             "codes differ\n")
    logged = gd.json("events", "ZJ")["items"][-1]
    assert logged["action"] == "agreement.update"
    assert logged["details"]["national_codes_differ"] == out["national_codes_differ"]


def test_root_rotation_followed_by_old_anchors(net: Net) -> None:
    gd, zj = net["GD"], net["ZJ"]
    old_kid = json.loads(net.anchors["GD"].read_text("utf-8"))["root_key"]["kid"]
    rotated = gd.json("root", "rotate")
    assert rotated["kid"] != old_kid
    gd.ok("publish", str(gd.www))
    verifier_home = net.tmp / "gd-verifier"
    out = net.verify_json(net.tokens["GD", BL], "--anchor", str(net.anchors["GD"]),
                          home=verifier_home)
    assert out["valid"] is True
    state = json.loads((verifier_home / "verifier-cache" / "trust-state.json")
                       .read_text("utf-8"))
    assert state["regions"]["GD"]["root_key"]["kid"] == rotated["kid"]
    new_anchor = net.tmp / "gd-new.anchor.json"
    exported = gd.json("trust", "export-anchor", "-o", str(new_anchor))
    assert exported["root_kid"] == rotated["kid"]
    assert gd.json("trust", "show")["root_kid"] == rotated["kid"]
    net.verify_json(net.tokens["GD", PQ], "--anchor", str(new_anchor))

    # ZJ rotates too; GD's agreement still pins ZJ's old root, and verifiers follow.
    zj.ok("root", "rotate")
    zj.ok("publish", str(zj.www))
    out = net.verify_json(net.tokens["ZJ", DL], "--anchor", str(net.anchors["GD"]))
    assert out["local_type"] == DL
    assert out["agreement"]["region"] == "ZJ"
    # ZJ's own (old) anchor is followed as well.
    net.verify_json(net.tokens["ZJ", DL], "--anchor", str(net.anchors["ZJ"]))


def test_rollback_and_hostile_lists_are_not_valid(net: Net) -> None:
    gd, zj = net["GD"], net["ZJ"]
    old = (gd.www / "trustlist.jwt").read_bytes()
    gd.ok("publish", str(gd.www))
    verifier_home = net.tmp / "seen-sequence-2"
    net.verify_json(net.tokens["GD", BL], "--anchor", str(net.anchors["GD"]),
                    home=verifier_home)
    (gd.www / "trustlist.jwt").write_bytes(old)
    out = net.verify_json(net.tokens["GD", BL], "--anchor", str(net.anchors["GD"]),
                          home=verifier_home, exit_code=1)
    assert out["errors"] == ["trust_list_rollback"]
    assert out["status"] == "untrusted"
    human = net.verify(net.tokens["GD", BL], "--anchor", str(net.anchors["GD"]),
                       home=verifier_home)
    assert human.exit_code == 1
    assert human.stdout.startswith("NOT VALID (untrusted): ")
    assert "rollback" in human.stdout

    (zj.www / "trustlist.jwt").write_text("not a trust list", "ascii")
    out = net.verify_json(net.tokens["ZJ", DL], "--anchor", str(net.anchors["GD"]),
                          exit_code=1)
    assert out["errors"] == ["foreign_trust_list_invalid"]
    (gd.www / "trustlist.jwt").write_text("not a trust list", "ascii")
    out = net.verify_json(net.tokens["GD", BL], "--anchor", str(net.anchors["GD"]),
                          exit_code=1)
    assert out["errors"] == ["trust_list_malformed"]


# -- unreachable regions and offline mirrors ---------------------------------------------------


def test_foreign_region_down_then_offline_mirror_after_server_stopped(net: Net) -> None:
    gd_anchor = str(net.anchors["GD"])
    net.server.down.add("/zj/")
    out = net.verify_json(net.tokens["ZJ", DL], "--anchor", gd_anchor, exit_code=1)
    assert out["errors"] == ["foreign_trust_list_invalid"]
    assert "trust list of ZJ" in out["messages"][0]
    human = invoke("trust", "sync", "--anchor", gd_anchor, "--out", str(net.tmp / "partial"))
    assert human.exit_code == 0, human.output
    assert "warning: ZJ: " in human.stdout
    net.server.down.clear()

    zj = net["ZJ"]
    zj.ok("revoke", net.ids["ZJ", DL], "--reason", "key-compromise")
    zj.ok("publish", str(zj.www))
    mirror = net.tmp / "mirror"
    report = json.loads(invoke("trust", "sync", "--anchor", gd_anchor, "--out", str(mirror),
                               "--json").stdout)
    assert report["regions"] == ["GD", "ZJ"]
    assert report["problems"] == []
    assert report["documents"] == 4
    assert (mirror / "anchor.json").is_file()

    net.server.stop()
    for type_code, local in ((BL, BL), (SPJY, FBL)):
        out = net.verify_json(net.tokens["ZJ", type_code], "--anchor", gd_anchor,
                              "--offline", str(mirror))
        assert out["local_type"] == local
        assert out["agreement"]["region"] == "ZJ"
    revoked = net.verify_json(net.tokens["ZJ", DL], "--anchor", gd_anchor,
                              "--offline", str(mirror), exit_code=1)
    assert revoked["status"] == "revoked"
    assert revoked["errors"] == ["revoked"]
    assert revoked["local_type"] == DL
    # --offline alone reads the mirror's anchor.json.
    net.verify_json(net.tokens["GD", PQ], "--offline", str(mirror))
    sh = net.verify_json(net.tokens["SH", FBL], "--offline", str(mirror), exit_code=1)
    assert sh["errors"] == ["region_not_recognized"]
    # Online, with the server gone and nothing cached: an input problem, said in one line.
    message = one_line_error(net.verify(net.tokens["ZJ", BL], "--anchor", gd_anchor))
    assert "cannot fetch the trust list of GD" in message


def test_deleted_foreign_bundle(net: Net) -> None:
    shutil.rmtree(net["ZJ"].www)
    out = net.verify_json(net.tokens["ZJ", DL], "--anchor", str(net.anchors["GD"]),
                          exit_code=1)
    assert out["errors"] == ["foreign_trust_list_invalid"]
    assert out["status"] == "untrusted"
    assert "404" in out["messages"][0]
    net.verify_json(net.tokens["GD", BL], "--anchor", str(net.anchors["GD"]))
    report = json.loads(invoke("trust", "sync", "--anchor", str(net.anchors["GD"]), "--out",
                               str(net.tmp / "mirror"), "--json").stdout)
    assert report["regions"] == ["GD"]
    assert len(report["problems"]) == 1
    assert report["problems"][0].startswith("ZJ: ")
    message = net["GD"].fails("trust", "recognize", "ZJ", "--anchor", str(net.anchors["ZJ"]),
                              "--auto")
    assert "cannot fetch the trust list of ZJ" in message
    # --auto reads their list only if their pinned root signed it.
    (net["ZJ"].www).mkdir()
    shutil.copy(net["SH"].www / "trustlist.jwt", net["ZJ"].www / "trustlist.jwt")
    message = net["GD"].fails("trust", "recognize", "ZJ", "--anchor", str(net.anchors["ZJ"]),
                              "--auto")
    assert "not signed by its pinned root key" in message
    assert [a["region"] for a in net["GD"].json("trust", "show")["agreements"]] == ["ZJ"]


# -- the verifier's trust state ----------------------------------------------------------------


def test_corrupt_trust_state_then_reset_state(shared: Net) -> None:
    gd_anchor, zj_anchor = str(shared.anchors["GD"]), str(shared.anchors["ZJ"])
    token = shared.tokens["GD", BL]
    home = shared.tmp / "state-verifier"
    shared.verify_json(token, "--anchor", gd_anchor, home=home)
    state = home / "verifier-cache" / "trust-state.json"
    assert state.stat().st_mode & 0o777 == 0o600
    state.write_text('{"regions": ', "utf-8")
    message = one_line_error(shared.verify(token, "--anchor", gd_anchor, home=home))
    assert "ecert trust reset-state --anchor FILE" in message
    result = shared.verify(token, "--anchor", gd_anchor, "--json", home=home)
    one_line_error(result)
    assert json.loads(result.stdout)["error"]["code"] == "trust_state_corrupt"

    reset = ["--home", str(home), "trust", "reset-state", "--anchor", gd_anchor]
    declined = invoke(*reset, input="n\n")
    assert declined.exit_code == 2
    prompt, error = declined.stderr.splitlines()  # the question, then one error line
    assert prompt.startswith("Forget the trust list sequences")
    assert error == "ecert: error: aborted"
    assert state.read_text("utf-8") == '{"regions": '
    confirmed = invoke(*reset, input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "started afresh for GD" in confirmed.stdout
    shared.verify_json(token, "--anchor", gd_anchor, home=home)

    # The state now belongs to GD's anchor: ZJ's is refused until reset for it.
    message = one_line_error(shared.verify(shared.tokens["ZJ", DL], "--anchor", zj_anchor,
                                           home=home))
    assert "belongs to the anchor of region GD" in message
    out = json.loads(invoke("--home", str(home), "trust", "reset-state", "--anchor",
                            zj_anchor, "--yes", "--json").stdout)
    assert out["region"] == "ZJ"
    assert out["regions_forgotten"] == 1
    shared.verify_json(shared.tokens["ZJ", DL], "--anchor", zj_anchor, home=home)
    assert "--anchor" in one_line_error(invoke("--home", str(home), "trust", "reset-state"))


def test_urls_ecert_would_not_fetch_are_one_line_errors(shared: Net) -> None:
    long_label = "https://" + "a" * 64 + ".example"
    result = invoke("--home", str(shared.tmp / "bad-url-home"), "init", "--region", "GD",
                    "--name", "广东省", "--base-url", long_label, "--json")
    message = one_line_error(result)
    assert "invalid host" in message
    assert json.loads(result.stdout)["error"]["code"] == "invalid_url"
    anchor = json.loads(shared.anchors["GD"].read_text("utf-8"))
    for url in ("http://../trustlist.jwt", long_label + "/trustlist.jwt"):
        bad = shared.tmp / "bad-url.anchor.json"
        bad.write_text(json.dumps({**anchor, "trust_list": url}), "utf-8")
        message = one_line_error(shared.verify(shared.tokens["GD", BL], "--anchor", str(bad)))
        assert message.startswith("anchor is malformed: URL"), message
        assert "anchor is malformed" in shared["GD"].fails(
            "trust", "recognize", "ZJ", "--anchor", str(bad), "--map", f"{DL}={DL}")
