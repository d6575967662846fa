"""Catalog and agency upkeep: catalog import/export, type versions, agency rename and
per-type validity windows in the trust list, judged at a certificate's issue time."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

import ecert
from ecert import _windows
from ecert._formats.catalog import catalog_document, parse_catalog
from ecert._formats.jose import b64url_decode
from ecert._formats.trustlist import TrustedAgency, TrustList
from ecert._replay import Replay
from ecert.errors import FormatError
from ecert.qr import qr_text
from tests.support import FakeClock, as_operator, issue_business_licence

DATA = Path(__file__).parent / "data" / "catalog"
TYPES = ["cn.business-licence", "cn.driving-licence", "cn.food-business-licence",
         "cn.professional-qualification", "zj.spjyxkz"]


def replay(registry: ecert.Registry) -> Replay:
    with registry.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT seq, leaf FROM log_entries ORDER BY seq").all()
    result = Replay()
    result.apply_leaves((int(seq), bytes(leaf)) for seq, leaf in rows)
    return result


def payload(token: str) -> dict[str, Any]:
    """A compact JWS's payload, unverified (the tests look at what was signed)."""
    value: dict[str, Any] = json.loads(b64url_decode(token.strip().split(".")[1]))
    return value


def trust_payload(bundle: Path) -> dict[str, Any]:
    return payload((bundle / "trustlist.jwt").read_text())


def catalog_copy(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(DATA, target)
    return target / "catalog.json"


# -- catalog import / export -----------------------------------------------------------------


def test_catalog_import_is_one_unit_and_idempotent(make_registry: Any, tmp_path: Path) -> None:
    registry = make_registry("GD", populate=False)
    before = len(registry.events(limit=100_000))
    report = registry.import_catalog(catalog_copy(tmp_path))
    assert sorted(report.added) == TYPES and not report.updated and report.changed
    entries = registry.events(limit=100_000)[before:]
    assert [e.action for e in entries] == ["catalog.import"] + ["type.add"] * 5
    # One unit of work: one operator signature, on its last entry.
    with registry.engine.connect() as conn:
        units = conn.execute(text("SELECT DISTINCT unit FROM log_entries WHERE seq >= :s"),
                             {"s": before}).all()
    assert len(units) == 1
    business = registry.get_type("cn.business-licence")
    # The catalog's input rules become the type's own.
    assert business.holder_id_scheme == "uscc"
    assert business.holder_claims == {"holder_id": "uscc", "holder_name": "name"}
    assert business.extra == {}
    assert business.schema["title"].startswith("营业执照")
    again = registry.import_catalog(catalog_copy(tmp_path / "again"))
    assert not again.changed and sorted(again.unchanged) == TYPES
    assert len(registry.events(limit=100_000)) == before + 6  # nothing logged
    assert replay(registry).findings == []


def test_a_changed_definition_becomes_a_new_version(make_registry: Any, tmp_path: Path) -> None:
    registry = make_registry("GD", populate=False)
    path = catalog_copy(tmp_path)
    registry.import_catalog(path)
    document = json.loads(path.read_text("utf-8"))
    document["types"][0]["qr_claims"] = ["name", "uscc"]
    path.write_text(json.dumps(document, ensure_ascii=False), "utf-8")
    assert registry.import_catalog(path, dry_run=True).updated == (("cn.business-licence", 2),)
    assert registry.get_type("cn.business-licence").version == 1  # dry run changed nothing
    report = registry.import_catalog(path)
    assert report.updated == (("cn.business-licence", 2),) and not report.added
    assert [t.version for t in registry.type_versions("cn.business-licence")] == [1, 2]
    assert registry.get_type("cn.business-licence", version=1).qr_claims[-1] == (
        "business_term_until")
    # A national type code is part of every id issued: a catalog cannot change it.
    document["types"][0]["national_type_code"] = document["types"][1]["national_type_code"]
    path.write_text(json.dumps(document, ensure_ascii=False), "utf-8")
    with pytest.raises(ecert.InputError) as refused:
        registry.import_catalog(path)
    assert refused.value.code == "national_type_code_fixed"
    assert registry.get_type("cn.business-licence").version == 2


def test_export_round_trips(make_registry: Any, tmp_path: Path) -> None:
    registry = make_registry("GD", populate=False)
    registry.import_catalog(catalog_copy(tmp_path))
    exported = registry.export_catalog()
    assert [t["code"] for t in exported["types"]] == TYPES
    assert exported["types"][0]["holder_id_scheme"] == "uscc"
    other = make_registry("SH", populate=False)
    assert sorted(other.import_catalog(exported).added) == TYPES
    assert other.export_catalog() == exported
    assert not other.import_catalog(exported).changed


def test_catalog_import_refuses_bad_files(make_registry: Any, tmp_path: Path) -> None:
    registry = make_registry("GD", populate=False)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"types": [{"code": "x.y", "name": "n",
                                          "national_type_code": "11100000MB0143028R001",
                                          "schema": "../../etc/passwd"}]}))
    with pytest.raises(ecert.InputError, match="leaves the catalog's directory"):
        registry.import_catalog(bad)
    bad.write_text("\ufeff{\"types\": 3}", "utf-8")  # a BOM is fine, the content is not
    with pytest.raises(ecert.InputError) as refused:
        registry.import_catalog(bad)
    assert refused.value.code == "invalid_catalog"
    assert registry.types() == []


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(
                        ["types", "code", "name", "national_type_code", "schema",
                         "validity_days", "qr_claims", "version", "holder_id_scheme",
                         "holder_claims", "x"]), inner, max_size=6),
                    max_leaves=30))
def test_parse_catalog_accepts_or_refuses_cleanly(document: Any) -> None:
    try:
        types = parse_catalog(document, lambda ref: {"type": "object", "ref": ref})
    except FormatError as e:
        assert e.code == "invalid_catalog"
        return
    for entry in types:
        assert isinstance(entry["schema"], dict) and isinstance(entry["extra"], dict)
    assert parse_catalog(catalog_document(
        {**t, "version": t["version"] or 1} for t in types), lambda _r: {}) is not None


# -- type versions -----------------------------------------------------------------------------


def test_certificates_keep_their_type_version(registry: ecert.Registry, tmp_path: Path,
                                              clock: FakeClock) -> None:
    old = issue_business_licence(registry)
    schema = dict(registry.get_type("cn.business-licence").schema)
    schema["properties"] = {**schema["properties"], "note": {"type": "string"}}
    new_type = registry.update_type("cn.business-licence", schema=schema,
                                    qr_claims=["name", "uscc"])
    assert new_type.version == 2
    with pytest.raises(ecert.InvalidTransition):  # the same definition again
        registry.update_type("cn.business-licence", schema=schema, qr_claims=["name", "uscc"])
    with pytest.raises(ecert.InputError):
        registry.update_type("cn.business-licence", schema=schema, version=2)
    new = issue_business_licence(registry)
    assert (old.type_version, new.type_version) == (1, 2)
    assert payload(new.token)["vct_version"] == 2
    registry.publish(tmp_path / "bundle")
    published = trust_payload(tmp_path / "bundle")
    assert {"code": "cn.business-licence", "version": 2, "name": new_type.name,
            "national_type_code": new_type.national_type_code} in published["types"]
    verifier = ecert.Verifier.from_bundle(tmp_path / "bundle", clock=clock)
    assert verifier.verify(old.token).valid and verifier.verify(new.token).valid
    # The QR of the old certificate carries the QR claims of its own version.
    result = verifier.verify(qr_text(registry.qr_token(old.id)))
    assert result.valid and "business_term_until" in result.claims_present
    assert registry.audit(bundle=tmp_path / "bundle").intact


# -- agencies ----------------------------------------------------------------------------------


def test_rename_and_new_types_show_in_the_trust_list(registry: ecert.Registry,
                                                     tmp_path: Path) -> None:
    updated = registry.update_agency("gd-hrss", name="广东省人力资源厅(新)",
                                     allow_types=["cn.business-licence"])
    assert updated.name == "广东省人力资源厅(新)"
    assert "cn.business-licence" in updated.types and not updated.windows
    actions = [e.action for e in registry.events("gd-hrss")][-2:]
    assert actions == ["agency.rename", "agency.allow_type"]
    registry.publish(tmp_path / "bundle")
    (hrss,) = [a for a in trust_payload(tmp_path / "bundle")["agencies"]
               if a["code"] == "gd-hrss"]
    assert hrss["name"] == "广东省人力资源厅(新)" and "cn.business-licence" in hrss["types"]
    assert "type_windows" not in hrss
    with pytest.raises(ecert.InvalidTransition):
        registry.update_agency("gd-hrss", allow_types=["cn.business-licence"])
    assert registry.audit(bundle=tmp_path / "bundle").intact


def test_denying_a_type_keeps_what_was_issued_before(registry: ecert.Registry, tmp_path: Path,
                                                     clock: FakeClock) -> None:
    before = issue_business_licence(registry)
    deny_at = clock() + timedelta(days=10)
    with pytest.raises(ecert.InputError):  # never before now: that would void issued ones
        registry.update_agency("gd-amr", deny_types=["cn.business-licence"],
                               deny_from=clock() - timedelta(days=1))
    agency = registry.update_agency("gd-amr", deny_types=["cn.business-licence"],
                                    deny_from=deny_at)
    assert agency.windows == (ecert.TypeWindow("cn.business-licence", None, deny_at),)
    still = issue_business_licence(registry)  # before the date, it may still issue
    clock.advance(days=11)
    with pytest.raises(ecert.NotAuthorized):
        issue_business_licence(registry)
    # A certificate signed after the date (as a rogue or lagging issuer would) is refused.
    late = _sign_like(registry, before, int(clock().timestamp()))
    registry.publish(tmp_path / "bundle")
    (amr,) = [a for a in trust_payload(tmp_path / "bundle")["agencies"] if a["code"] == "gd-amr"]
    assert "cn.business-licence" not in amr["types"]
    assert amr["type_windows"] == [{"code": "cn.business-licence",
                                    "until": int(deny_at.timestamp())}]
    verifier = ecert.Verifier.from_bundle(tmp_path / "bundle", clock=clock)
    assert verifier.verify(before.token).valid and verifier.verify(still.token).valid
    refused = verifier.verify(late)
    assert not refused.valid
    assert refused.errors == (ecert.ErrorCode.TYPE_NOT_AUTHORIZED_AT_IAT,)
    # The QR path judges by the same window.
    assert verifier.verify(qr_text(registry.qr_token(before.id))).valid
    assert registry.audit(bundle=tmp_path / "bundle").intact
    # Given again later: a second window; the gap stays closed.
    clock.advance(days=1)
    again = registry.update_agency("gd-amr", allow_types=["cn.business-licence"])
    assert [(w.start, w.end) for w in again.windows] == [(None, deny_at), (clock(), None)]
    assert issue_business_licence(registry).valid_from == clock()
    assert replay(registry).findings == []


def _sign_like(registry: ecert.Registry, cert: ecert.Certificate, iat: int) -> str:
    """``cert``'s token re-signed by its agency's key with another issue time."""
    from ecert._formats.certificate import CertificateClaims
    from ecert.keys import FileKeyStore
    from tests.support import PASSPHRASE

    claims = CertificateClaims.from_payload(payload(cert.token))
    keys = FileKeyStore(registry.home / "keys", PASSPHRASE)
    return claims._replace(iat=iat, nbf=iat).sign(keys.signer(cert.kid))


def test_old_trust_lists_and_windows_parse() -> None:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    from ecert._formats.jose import jwk_thumbprint

    jwk["kid"] = jwk_thumbprint(jwk)
    old = {"code": "a", "name": "A", "uscc": "u", "uri": "https://x/agencies/a",
           "types": ["t1"], "keys": [{"jwk": jwk, "valid_from": 0, "status": "active"}]}
    agency = TrustedAgency.from_json(old)
    assert agency.windows == () and agency.authorizes("t1", 5) and agency.to_json() == old
    windowed = TrustedAgency.from_json({**old, "type_windows": [
        {"code": "t2", "until": 100}, {"code": "t2", "from": 200}]})
    assert windowed.authorizes("t2", 99) and not windowed.authorizes("t2", 150)
    assert windowed.authorizes("t2", 200) and windowed.type_codes == ("t1", "t2")
    for bad in ([{"code": "t1", "until": 5}], [{"code": "t2"}],
                [{"code": "t2", "from": 5, "until": 5}], [{"code": 3, "until": 1}], {}):
        with pytest.raises(FormatError):
            TrustedAgency.from_json({**old, "type_windows": bad})
    assert TrustList  # the payload of a whole list parses agencies with this same code


@given(st.lists(st.fixed_dictionaries({}, optional={
    "code": st.sampled_from(["t1", "t2", 3]), "from": st.integers(-5, 5) | st.none(),
    "until": st.integers(-5, 5) | st.text(max_size=2)}), max_size=4))
def test_type_windows_parse_or_refuse(windows: list[dict[str, Any]]) -> None:
    value = {"code": "a", "name": "A", "uscc": "u", "uri": "u", "types": ["t1"], "keys": [],
             "type_windows": windows}
    try:
        agency = TrustedAgency.from_json(value)
    except FormatError:
        return
    assert TrustedAgency.from_json(agency.to_json()) == agency


def test_window_rules() -> None:
    assert _windows.deny(None, 10, 5) == [(None, 10)]
    assert _windows.allow([(None, 10)], 8, True) == [(None, None)]  # denial called off
    assert _windows.allow([(None, 10)], 12, True) == [(None, 10), (12, None)]
    assert _windows.allow(None, 12, False) is None
    with pytest.raises(ecert.InvalidTransition):
        _windows.allow(None, 12, True)
    with pytest.raises(ecert.InvalidTransition):
        _windows.deny([(None, 10)], 12, 11)
    assert _windows.covers([(None, 10), (12, None)], 9)
    assert not _windows.covers([(None, 10), (12, None)], 11)


# -- four eyes, CLI ------------------------------------------------------------------------


def test_four_eyes_hold_upkeep(make_registry: Any, tmp_path: Path, clock: FakeClock) -> None:
    registry = make_registry("GD")
    registry.add_operator("trust-2", roles=["trust-admin"], passphrase="second trust admin")
    registry.set_policy("type.add", approvals=2)
    registry.set_policy("agency.deny_type", approvals=2)
    with pytest.raises(ecert.PendingApproval) as pending:
        registry.import_catalog(catalog_copy(tmp_path))
    assert pending.value.request.action == "catalog.import"
    with pytest.raises(ecert.PendingApproval) as denied:
        registry.update_agency("gd-amr", deny_types=["cn.business-licence"])
    with as_operator(registry, "trust-2", "second trust admin", clock) as other:
        other.approve(pending.value.request.id)
        other.approve(denied.value.request.id)
    assert "cn.driving-licence" in {t.code for t in registry.types()}
    assert registry.get_agency("gd-amr").windows[0].end == clock()
    assert replay(registry).findings == []


def test_cli_upkeep(registry: ecert.Registry, cli_as_admin: Any, tmp_path: Path) -> None:
    path = catalog_copy(tmp_path)
    out = cli_as_admin(registry, "catalog", "import", str(path), "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert sorted(data["added"]) == ["cn.driving-licence", "zj.spjyxkz"]
    # The registry's own types lacked the catalog's holder fields: new versions.
    assert {u["code"]: u["version"] for u in data["updated"]}["cn.business-licence"] == 2
    again = cli_as_admin(registry, "catalog", "import", str(path))
    assert again.exit_code == 0 and "nothing to change" in again.stdout
    exported = tmp_path / "out" / "catalog.json"
    assert cli_as_admin(registry, "catalog", "export", str(exported), "--split").exit_code == 0
    assert (exported.parent / "types" / "cn.business-licence.schema.json").exists()
    assert not registry.import_catalog(exported).changed
    schema = tmp_path / "schema.json"
    business = dict(registry.get_type("cn.business-licence").schema)
    business["required"] = [*business["required"], "registered_capital"]
    schema.write_text(json.dumps(business), "utf-8")
    out = cli_as_admin(registry, "type", "update", "cn.business-licence", "--schema",
                       str(schema), "--version", "3", "--json")
    assert out.exit_code == 0 and json.loads(out.stdout)["version"] == 3
    out = cli_as_admin(registry, "agency", "update", "gd-amr", "--name", "广东省市场监管局",
                       "--deny-type", "cn.business-licence", "--from", "2031-01-01", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["name"] == "广东省市场监管局"
    # 2031-01-01 starts at midnight in the registry's zone (Asia/Shanghai)
    assert data["type_windows"][0]["until"] == "2030-12-31T16:00:00Z"
    bad = cli_as_admin(registry, "agency", "update", "gd-amr", "--from", "2031-13-01",
                       "--deny-type", "cn.business-licence")
    assert bad.exit_code == 2 and "not a date" in bad.stderr
    assert cli_as_admin(registry, "agency", "update", "gd-amr").exit_code == 2


def test_audit_finds_issuance_outside_a_window_planted_in_the_database(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    registry.update_agency("gd-amr", deny_types=["cn.business-licence"])
    with registry.engine.begin() as conn:  # someone removes the denial behind the log's back
        conn.execute(text("DELETE FROM agency_type_windows"))
    cert = issue_business_licence(registry)
    findings = replay(registry).findings
    assert [f.kind for f in findings] == ["no_authority"]
    assert "not given cn.business-licence" in findings[0].detail
    kinds = {f.kind for f in registry.audit().findings}
    assert {"record_modified", "no_authority"} <= kinds, kinds
    # Publication goes by the log: the window is published, and verifiers refuse the
    # certificate, as a token and as a QR code.
    report = registry.publish(tmp_path / "bundle")
    assert any("gd-amr" in alert for alert in report.alerts)
    verifier = ecert.Verifier.from_bundle(tmp_path / "bundle", clock=clock)
    for presented in (cert.token, qr_text(registry.qr_token(cert.id))):
        result = verifier.verify(presented)
        assert result.errors == (ecert.ErrorCode.TYPE_NOT_AUTHORIZED_AT_IAT,), result.messages


def test_an_edited_export_becomes_the_next_version_and_a_stale_one_changes_nothing(
        make_registry: Any, tmp_path: Path) -> None:
    registry = make_registry("GD", populate=False)
    registry.import_catalog(catalog_copy(tmp_path))
    stale = registry.export_catalog()
    edited = json.loads(json.dumps(stale))
    edited["types"][0]["schema"]["title"] = "edited"
    assert edited["types"][0]["version"] == 1
    assert registry.import_catalog(edited).updated == (("cn.business-licence", 2),)
    # An export from before that version describes version 1 as stored: nothing to do.
    assert not registry.import_catalog(stale).changed
    assert registry.get_type("cn.business-licence").schema["title"] == "edited"
    # An old version edited is refused: it would silently undo version 2.
    stale["types"][0]["schema"]["title"] = "other"
    with pytest.raises(ecert.InputError) as refused:
        registry.import_catalog(stale)
    assert refused.value.code == "invalid_version"


@given(st.none() | st.lists(st.lists(st.none() | st.integers(-3, 3) | st.text(max_size=1),
                                     max_size=3), max_size=3) | st.integers())
def test_logged_windows_parse_or_refuse(value: Any) -> None:
    try:
        windows = _windows.parse(value)
    except ValueError:
        return
    assert _windows.to_json(windows) == value
