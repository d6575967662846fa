"""Export and import (issue 11, "Batch work"): ``ecert export`` / ``ecert import`` and
``Registry.export_certificates`` / ``import_file``. A registry's certificates move into a
fresh one with their states; every imported line is verified against the exporter's
anchor and published status lists, and a tampered line (a changed claim, a status rolled
back, a forged signature, a token of a look-alike registry) is refused with its code. On
SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import ecert
from ecert._formats.log import Entry
from ecert._storage.schema import log_entries
from ecert.batch import BatchRow, RejectCode, RowStatus
from tests.support.batch import AGENCY, BL, licence_rows
from tests.support.cli import Cli, operator_cli
from tests.support.registries import RegistryFactory


def _cli(registry: ecert.Registry, clock: Any) -> Cli:
    return operator_cli(registry, clock)


def _issue(registry: ecert.Registry, count: int, start: int = 0) -> list[str]:
    rows = licence_rows(count, start)
    outcomes = list(registry.issue_batch(BL, AGENCY, [
        BatchRow(i + 1, r["holder_id"], r["holder_name"], r["claims"])
        for i, r in enumerate(rows)]))
    assert all(o.status is RowStatus.ISSUED for o in outcomes)
    return [str(o.certificate_id) for o in outcomes]


class Exported:
    """A source registry with five certificates (one revoked, one suspended), published,
    exported, and its anchor."""

    def __init__(self, make_registry: RegistryFactory, clock: Any, tmp_path: Path) -> None:
        self.source = make_registry("GD")
        self.ids = _issue(self.source, 5)
        self.source.revoke(self.ids[0], "key-compromise")
        self.source.suspend(self.ids[1], "under review")
        self.bundle = tmp_path / "published"
        self.source.publish(self.bundle)
        self.anchor = tmp_path / "anchor.json"
        self.anchor.write_bytes(self.source.anchor().to_bytes())
        self.file = tmp_path / "export.jsonl"
        self.source_cli = _cli(self.source, clock)
        self.clock = clock

    def verifier(self) -> ecert.Verifier:
        return ecert.Verifier.from_bundle(
            self.bundle, anchor=ecert.TrustAnchor.load(self.anchor), clock=self.clock)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.file.read_text("utf-8").splitlines()]

    def write(self, path: Path, lines: list[dict[str, Any]]) -> Path:
        path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines),
                        "utf-8")
        return path


@pytest.fixture
def exported(make_registry: RegistryFactory, clock: Any, tmp_path: Path) -> Exported:
    return Exported(make_registry, clock, tmp_path)


def test_export_is_refused_to_a_clerk_and_logged_for_an_auditor(
        exported: Exported, tmp_path: Path) -> None:
    source, run = exported.source, exported.source_cli
    source.add_operator("clerk-zhang", roles=["clerk"], agencies=["gd-amr"],
                        passphrase="zhang pass")
    source.add_operator("auditor-li", roles=["auditor"], passphrase="li pass")
    clerk = {"ECERT_OPERATOR": "clerk-zhang", "ECERT_OPERATOR_PASSPHRASE": "zhang pass"}
    auditor = {"ECERT_OPERATOR": "auditor-li", "ECERT_OPERATOR_PASSPHRASE": "li pass"}
    refused = tmp_path / "clerk.jsonl"
    assert "may not registry.export" in run.fails("export", str(refused), env=clerk,
                                                  exit_code=4)
    assert not refused.exists()
    last = source.events(limit=100_000)[-1]
    assert (last.action, last.operator, last.details["action"]) == (
        "access.refused", "clerk-zhang", "registry.export")

    out = run.json("export", str(exported.file), env=auditor)
    digest = hashlib.sha256(exported.file.read_bytes()).hexdigest()
    assert out == {"file": str(exported.file), "certificates": 5, "redacted": 0,
                   "sha256": digest}
    last = source.events(limit=100_000)[-1]
    assert (last.action, last.operator, last.subject, dict(last.details)) == (
        "registry.export", "auditor-li", digest,
        {"count": 5, "redacted": 0, "sha256": digest})
    assert source.audit().intact  # the replay accepts it: an auditor may export


def test_export_then_import_into_a_fresh_registry_end_to_end(
        exported: Exported, make_registry: RegistryFactory, clock: Any,
        tmp_path: Path) -> None:
    result = exported.source_cli("export", str(exported.file), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "file": str(exported.file), "certificates": 5, "redacted": 0,
        "sha256": hashlib.sha256(exported.file.read_bytes()).hexdigest()}
    assert stat.S_IMODE(exported.file.stat().st_mode) == 0o600
    assert [line["id"] for line in exported.lines()] == exported.ids

    target = make_registry("GD")
    cli = _cli(target, clock)
    args = ("import", str(exported.file), "--anchor", str(exported.anchor),
            "--bundle", str(exported.bundle))
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["lines"], summary["imported"], summary["skipped"],
            summary["rejected"]) == (5, 5, 0, 0)

    # the same ids and states; signed by the new registry's own key
    for cert_id, status in zip(exported.ids, ["revoked", "suspended", "valid", "valid",
                                              "valid"], strict=True):
        old, new = exported.source.get(cert_id), target.get(cert_id)
        assert new.status.value == status
        assert (new.claims, new.holder_name, new.valid_from, new.valid_until) == (
            old.claims, old.holder_name, old.valid_from, old.valid_until)
        assert new.kid != old.kid and new.token != old.token
    assert target.get(exported.ids[0]).revocation_reason is ecert.RevocationReason.KEY_COMPROMISE
    # the holder is found by their number in the new registry (its own pseudonym key)
    holder_id = licence_rows(1, 2)[0]["holder_id"]
    assert [c.id for c in target.find(holder_id=holder_id)] == [exported.ids[2]]
    # logged as imported, naming the original; the audit accepts it
    entries = [Entry.decode(bytes(e.leaf)) for e in _log_rows(target)]
    imports = [e for e in entries if e.action == "certificate.issue"]
    assert len(imports) == 5
    originals = {e.details["imported"]["token"] for e in imports}
    assert len(originals) == 5
    assert all(e.details["imported"]["iss"].endswith("/agencies/gd-amr") for e in imports)
    assert [e.action for e in entries].count("certificate.revoke") == 1
    assert [e.action for e in entries].count("certificate.suspend") == 1
    assert target.audit().findings == ()
    # the new registry publishes them with their states
    target.publish(tmp_path / "target-published")
    verifier = ecert.Verifier.from_bundle(tmp_path / "target-published", clock=clock)
    assert [verifier.verify(target.get(i).token).errors for i in exported.ids] == [
        (ecert.ErrorCode.REVOKED,), (ecert.ErrorCode.SUSPENDED,), (), (), ()]
    # running it again imports nothing twice
    again = json.loads(cli(*args, "--json").stdout)
    assert (again["imported"], again["skipped"]) == (0, 5)
    assert target.count() == 5


def _log_rows(registry: ecert.Registry) -> list[Any]:
    with registry.engine.connect() as conn:
        return list(conn.execute(select(log_entries.c.leaf).order_by(log_entries.c.seq)))


def _forge_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[5] ^= 0x01
    return ".".join([header, payload, base64.urlsafe_b64encode(bytes(raw)).decode()
                     .rstrip("=")])


def _edit_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["claims"]["registered_capital"] = "人民币1亿元"
    body = base64.urlsafe_b64encode(json.dumps(claims, ensure_ascii=False).encode()
                                    ).decode().rstrip("=")
    return ".".join([header, body, signature])


TAMPERING = {
    "changed claim": (2, lambda x: {**x, "claims": {**x["claims"], "name": "别的公司"}},
                      RejectCode.EXPORT_MISMATCH),
    "changed holder name": (2, lambda x: {**x, "holder_name": "别的公司"},
                            RejectCode.EXPORT_MISMATCH),
    "changed validity": (3, lambda x: {**x, "valid_until": None}, RejectCode.EXPORT_MISMATCH),
    "revocation rolled back": (0, lambda x: {**x, "status": "valid", "reason": None},
                               RejectCode.STATUS_ROLLBACK),
    "suspension rolled back": (1, lambda x: {**x, "status": "valid"},
                               RejectCode.STATUS_ROLLBACK),
    "revoked made suspended": (0, lambda x: {**x, "status": "suspended"},
                               RejectCode.STATUS_ROLLBACK),
    "forged signature": (2, lambda x: {**x, "token": _forge_signature(x["token"])},
                         RejectCode.SIGNATURE),
    "claim edited in the token": (2, lambda x: {**x, "token": _edit_payload(x["token"])},
                                  RejectCode.SIGNATURE),
    "not an export line": (3, lambda x: {k: v for k, v in x.items() if k != "format"},
                           RejectCode.INPUT),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_tampered_export_line_is_refused_with_its_code(
        case: str, exported: Exported, make_registry: RegistryFactory,
        tmp_path: Path) -> None:
    index, edit, code = TAMPERING[case]
    exported.source.export_certificates(exported.file)
    lines = exported.lines()
    lines[index] = edit(lines[index])
    tampered = exported.write(tmp_path / "tampered.jsonl", lines)
    target = make_registry("GD")
    rejects = tmp_path / "rejects.jsonl"
    outcomes = list(target.import_file(tampered, exported.verifier(), rejects=rejects))
    refused = {o.line: o.code for o in outcomes if o.status is RowStatus.REJECTED}
    assert refused == {index + 1: code}
    assert sum(o.status is RowStatus.IMPORTED for o in outcomes) == 4
    # the rejects file holds the line as it was given, so it can be looked at (or re-run)
    (written,) = [json.loads(line) for line in rejects.read_text("utf-8").splitlines()]
    assert written.pop("_line") == index + 1 and written.pop("_code") == code.value
    assert written.pop("_reason")
    assert written == lines[index]
    assert target.audit().findings == ()


def test_more_final_than_published_is_accepted(
        exported: Exported, make_registry: RegistryFactory, tmp_path: Path) -> None:
    """Revoked after the last publication: the line says so, the list does not yet."""
    exported.source.revoke(exported.ids[2], "privilege-withdrawn")
    exported.source.export_certificates(exported.file)
    target = make_registry("GD")
    outcomes = list(target.import_file(exported.file, exported.verifier()))
    assert all(o.status is RowStatus.IMPORTED for o in outcomes)
    assert target.get(exported.ids[2]).status is ecert.CertificateStatus.REVOKED


def test_a_look_alike_registry_s_tokens_are_refused(
        exported: Exported, make_registry: RegistryFactory, tmp_path: Path) -> None:
    """An insider's own registry of the same region, agencies and ids: its tokens do not
    verify against the real exporter's anchor, whatever bundle comes with them."""
    impostor = make_registry("GD")
    _issue(impostor, 3, 100)
    impostor.publish(tmp_path / "impostor-published")
    impostor.export_certificates(tmp_path / "impostor.jsonl")
    target = make_registry("GD")
    verifier = ecert.Verifier.from_bundle(
        exported.bundle, anchor=ecert.TrustAnchor.load(exported.anchor), clock=exported.clock)
    outcomes = list(target.import_file(tmp_path / "impostor.jsonl", verifier))
    assert {o.code for o in outcomes} == {RejectCode.SIGNATURE}
    with pytest.raises(ecert.TrustListError):
        ecert.Verifier.from_bundle(tmp_path / "impostor-published",
                                   anchor=ecert.TrustAnchor.load(exported.anchor),
                                   clock=exported.clock)
    assert target.count() == 0


def test_an_id_this_registry_issued_itself_is_not_overwritten(
        exported: Exported, make_registry: RegistryFactory) -> None:
    target = make_registry("GD")
    own = _issue(target, 1, 500)  # serial 1 of the same agency: the same id as line 1
    assert own[0] == exported.ids[0]
    exported.source.export_certificates(exported.file)
    outcomes = list(target.import_file(exported.file, exported.verifier()))
    assert outcomes[0].code is RejectCode.ID_TAKEN
    assert [o.status for o in outcomes[1:]] == [RowStatus.IMPORTED] * 4
    # the serial counter moved past the imported ones: the next issue meets none of them
    assert _issue(target, 1, 600)[0] not in exported.ids
    assert target.audit().findings == ()


def test_import_cli_needs_the_exporters_anchor(exported: Exported,
                                               make_registry: RegistryFactory,
                                               clock: Any, tmp_path: Path) -> None:
    exported.source.export_certificates(exported.file)
    cli = _cli(make_registry("GD"), clock)
    result = cli("import", str(exported.file), "--bundle", str(exported.bundle))
    assert result.exit_code == 2
    assert cli.fails("import", str(tmp_path / "missing.jsonl"), "--anchor",
                     str(exported.anchor), "--bundle", str(exported.bundle))
    lines = exported.lines()
    lines[0]["status"] = "valid"
    tampered = exported.write(tmp_path / "t.jsonl", lines)
    result = cli("import", str(tampered), "--anchor", str(exported.anchor), "--bundle",
                 str(exported.bundle), "--progress-every", "0", "--chunk", "2")
    assert result.exit_code == 1
    assert "status_rollback: 1" in result.stdout
    assert result.stderr.splitlines()[-1].startswith("5 of 5 lines: 4 imported")
    assert (tmp_path / "t.rejects.jsonl").exists()
