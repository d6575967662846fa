"""The conformance vectors (``tests/vectors``): what the generator makes, byte for byte;
valid by their published schema; passed by the Python verifier, case by case, exactly."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ecert import conformance
from ecert._formats.jose import ED25519, ES256
from ecert._vectors.keys import SeededSigner
from ecert.verify import ErrorCode, VerificationStatus
from tests.support.cli import Cli
from tests.support.vectors import REGENERATE, VECTORS_DIR, differences, files_of, vector_cases

CASES = vector_cases()
INDEX = conformance.load_index(VECTORS_DIR)


@pytest.fixture(scope="module")
def generated() -> dict[str, bytes]:
    return conformance.generate()


def test_checked_in_vectors_are_what_the_generator_makes(generated: dict[str, bytes]) -> None:
    assert differences(generated, files_of(VECTORS_DIR)) == [], REGENERATE


def test_generating_again_gives_the_same_bytes(generated: dict[str, bytes]) -> None:
    again = conformance.generate()
    assert list(again) == list(generated)
    assert [p for p in again if again[p] != generated[p]] == []


@pytest.mark.parametrize("alg", [ES256, ED25519])
def test_keys_come_from_the_seed_and_the_label(alg: str) -> None:
    def kid(seed: bytes, label: str) -> str:
        return SeededSigner(seed, label, alg).kid

    assert kid(b"seed", "GD/root/1") == kid(b"seed", "GD/root/1")
    assert len({kid(b"seed", "GD/root/1"), kid(b"seed", "GD/root/2"),
                kid(b"other", "GD/root/1")}) == 3
    signer = SeededSigner(b"seed", "GD/root/1", alg)
    assert signer.sign(b"message") == signer.sign(b"message")  # no random nonce


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_python_verifier_answers_as_expected(case: dict[str, Any]) -> None:
    outcome = conformance.run_case(VECTORS_DIR, case, index=INDEX)
    assert outcome.actual == case["expected"]
    assert outcome.ok, outcome.problems


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = conformance.index_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_index_is_valid_by_its_schema(validator: jsonschema.Draft202012Validator) -> None:
    validator.validate(INDEX)
    assert json.loads((VECTORS_DIR / conformance.SCHEMA_FILE).read_bytes()) == \
        conformance.index_schema()


def _case(index: dict[str, Any], case_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in index["cases"] if c["id"] == case_id]
    assert len(found) == 1, case_id
    return found[0]


def _expected(case_id: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def expected(index: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = _case(index, case_id)["expected"]
        return found

    return expected


@pytest.mark.parametrize(("where", "member", "value"), [
    (lambda index: index, "version", 2),
    (_expected("lifecycle/revoked"), "status", "withdrawn"),
    (_expected("lifecycle/revoked"), "errors", "revoked"),
    (_expected("lifecycle/valid"), "errors", ["revoked"]),  # valid with an error
    (_expected("header/crit"), "issuer", {"region": "GD", "agency": "gd-amr", "kid": "k"}),
    (lambda index: _case(index, "qr/short"), "anchor", "../outside/anchor.json"),
    (lambda index: _case(index, "qr/short")["input"], "form", "image"),  # without image
    (lambda index: _case(index, "inclusion/included")["options"], "leaf_index", None),
    (lambda index: _case(index, "lifecycle/valid"), "extra", True),
], ids=["version", "status", "errors-not-a-list", "valid-with-errors", "refused-with-issuer",
        "path-outside", "image-without-file", "inclusion-without-index", "unknown-member"])
def test_schema_refuses_a_broken_index(validator: jsonschema.Draft202012Validator,
                                       where: Callable[[dict[str, Any]], dict[str, Any]],
                                       member: str, value: Any) -> None:
    # The cases changed below, and nothing else (validating them all takes a while).
    kept = {"lifecycle/valid", "lifecycle/revoked", "header/crit", "qr/short",
            "inclusion/included"}
    broken = json.loads(json.dumps({**INDEX, "cases": [c for c in INDEX["cases"]
                                                       if c["id"] in kept]}))
    assert list(validator.iter_errors(broken)) == []
    where(broken)[member] = value
    assert list(validator.iter_errors(broken)) != []


def test_every_status_and_error_code_has_a_case() -> None:
    statuses = {c["expected"]["status"] for c in CASES}
    codes = {code for c in CASES for code in c["expected"]["errors"]}
    assert statuses == {s.value for s in VerificationStatus}
    assert {e.value for e in ErrorCode} - codes == set()
    assert {"trust_list_rollback", "trust_list_expired", "trust_list_bad_signature"} <= codes
    forms = {c["input"]["form"] for c in CASES}
    assert forms == {"token", "copy", "qr", "image"}
    assert any(c["options"]["require_inclusion"] for c in CASES)
    assert any(c["prior_state"]["trust_list_sequences"] for c in CASES)


def test_every_path_of_the_index_names_a_file_of_the_set() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    for bundle in INDEX["bundles"].values():
        assert (VECTORS_DIR / bundle["path"] / "trustlist.jwt").is_file()
        anchor = json.loads((VECTORS_DIR / bundle["path"] / "anchor.json").read_bytes())
        assert anchor["trust_list"] == bundle["base_url"] + "/trustlist.jwt"
    for case in CASES:
        assert (VECTORS_DIR / case["anchor"]).is_file()
        if "image" in case["input"]:
            assert (VECTORS_DIR / case["input"]["image"]).is_file()
        served = [INDEX["bundles"][b]["base_url"] for b in case["bundles"]]
        assert len(served) == len(set(served)), case["id"]


def _small_set(tmp_path: Path, keep: list[str]) -> Path:
    """A copy of the set with only the cases ``keep``."""
    root = tmp_path / "set"
    shutil.copytree(VECTORS_DIR, root)
    index = json.loads((root / conformance.INDEX_FILE).read_bytes())
    index["cases"] = [_case(index, case_id) for case_id in keep]
    (root / conformance.INDEX_FILE).write_text(json.dumps(index, ensure_ascii=False), "utf-8")
    return root


def test_a_verifier_answering_otherwise_is_reported(tmp_path: Path) -> None:
    root = _small_set(tmp_path, ["lifecycle/valid", "lifecycle/revoked", "qr/short-image"])
    index = conformance.load_index(root)
    _case(index, "lifecycle/revoked")["expected"]["errors"] = ["suspended"]
    (root / "images" / "qr-short.png").write_bytes((root / "images" / "qr-full.png")
                                                  .read_bytes())
    outcomes = {o.case_id: o for o in (conformance.run_case(root, c, index=index)
                                       for c in index["cases"])}
    assert outcomes["lifecycle/valid"].ok
    assert outcomes["lifecycle/revoked"].problems == (
        "errors: expected ['suspended'], got ['revoked']",)
    assert outcomes["qr/short-image"].problems[0] == \
        "the image does not decode to the case's text"


def test_cli_writes_the_set_and_replaces_an_earlier_one(
        tmp_path: Path, generated: dict[str, bytes]) -> None:
    cli = Cli(tmp_path / "home", None)
    out = tmp_path / "vectors"
    report = cli.json("vectors", str(out))
    assert report == {"directory": str(out), "cases": len(CASES), "files": len(generated),
                      "bytes": sum(map(len, generated.values())), "removed": 0}
    assert files_of(out) == generated
    stale = out / "bundles" / "gd-9" / "trustlist.jwt"
    stale.parent.mkdir()
    stale.write_text("left over", "ascii")
    assert cli.json("vectors", str(out))["removed"] == 1
    assert files_of(out) == generated


def test_cli_refuses_a_directory_that_holds_something_else(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", None)
    (tmp_path / "mine").mkdir()
    precious = tmp_path / "mine" / "notes.txt"
    precious.write_text("keep me", "utf-8")
    message = cli.fails("vectors", str(tmp_path / "mine"), env={"ECERT_LANG": "en"})
    assert "neither empty nor a set of conformance vectors" in message
    assert precious.read_text("utf-8") == "keep me"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_cli_check(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", None)
    root = _small_set(tmp_path, ["lifecycle/valid", "copy/wrong-purpose"])
    assert cli.json("vectors", str(root), "--check") == {
        "directory": str(root), "cases": 2, "failed": []}
    index = json.loads((root / conformance.INDEX_FILE).read_bytes())
    _case(index, "copy/wrong-purpose")["options"]["purpose"] = None  # now it verifies
    (root / conformance.INDEX_FILE).write_text(json.dumps(index, ensure_ascii=False), "utf-8")
    result = cli("vectors", str(root), "--check", env={"ECERT_LANG": "en"})
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0].startswith("FAILED copy/wrong-purpose: valid: ")
    assert result.stdout.splitlines()[-1] == "1 of 2 cases failed"
