"""Regression tests for the outside review's insider findings (issue 8, items 1-5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

import ecert
from ecert import _samples
from ecert._formats.certificate import CertificateClaims
from ecert._formats.jose import parse_compact
from ecert.keys import LocalSigner, generate_private_key
from tests.support import FakeClock, issue_business_licence


def sql(registry: ecert.Registry, statement: str, **params: object) -> None:
    with registry.engine.begin() as conn:
        conn.execute(text(statement), params)


# 1. Database write access alone must not forge certificates.


def test_a_key_planted_in_the_database_is_not_published(registry: ecert.Registry,
                                                        tmp_path: Path,
                                                        clock: FakeClock) -> None:
    genuine = issue_business_licence(registry)
    attacker = LocalSigner(generate_private_key("ES256"))
    sql(registry, "INSERT INTO keys (kid, role, agency_code, alg, public_jwk, created_at) "
                  "VALUES (:kid, 'agency', 'gd-hrss', 'ES256', :jwk, :t)",
        kid=attacker.kid, jwk=__import__("json").dumps(attacker.public_jwk),
        t=int(clock().timestamp()))
    sql(registry, "INSERT INTO agency_types (agency_code, type_code) VALUES "
                  "('gd-hrss', 'cn.business-licence')")
    bundle = tmp_path / "bundle"
    report = registry.publish(bundle)
    assert not report.ok
    assert any(attacker.kid in a and "LEFT OUT" in a for a in report.alerts)
    assert any("gd-hrss" in a for a in report.alerts)
    # The rest was published: the genuine licence verifies, the forgery does not.
    verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
    assert verifier.verify(genuine.token).valid
    payload = dict(parse_compact(genuine.token, max_bytes=1 << 16).payload)
    payload["iss"] = payload["iss"].replace("gd-amr", "gd-hrss")
    forged = CertificateClaims.from_payload(payload).sign(attacker)
    result = verifier.verify(forged)
    assert not result.valid and result.errors == (ecert.ErrorCode.UNKNOWN_KID,)
    hrss = next(a for a in verifier.trust_list.agencies if a.code == "gd-hrss")
    assert "cn.business-licence" not in hrss.types


def test_the_cli_publish_exits_1_with_a_loud_alert(registry: ecert.Registry, tmp_path: Path,
                                                   cli_as_admin) -> None:
    attacker = LocalSigner(generate_private_key("ES256"))
    sql(registry, "INSERT INTO keys (kid, role, agency_code, alg, public_jwk, created_at) "
                  "VALUES (:kid, 'agency', 'gd-amr', 'ES256', :jwk, 0)",
        kid=attacker.kid, jwk=__import__("json").dumps(attacker.public_jwk))
    result = cli_as_admin(registry, "publish", str(tmp_path / "bundle"))
    assert result.exit_code == 1
    assert f"ALERT: key {attacker.kid}" in result.stderr
    assert (tmp_path / "bundle" / "trustlist.jwt").exists()


# 3. The QR path must not sign whatever is stored.


@pytest.mark.parametrize("edit", ["holder", "expiry", "signature", "token-of-another"])
def test_qr_refuses_an_edited_stored_token(registry: ecert.Registry, edit: str) -> None:
    cert = issue_business_licence(registry)
    other_claims = {**_samples.claims("business-licence-gd"), "name": "另一家公司"}
    other = issue_business_licence(registry, holder_name="另一家公司", claims=other_claims)
    if edit == "holder":
        sql(registry, "UPDATE certificates SET holder_name = 'x' WHERE id = :id", id=cert.id)
    elif edit == "expiry":
        sql(registry, "UPDATE certificates SET valid_until = 253402300799 WHERE id = :id",
            id=cert.id)
    elif edit == "signature":
        sql(registry, "UPDATE certificates SET token = :t WHERE id = :id",
            t=cert.token[:-6] + ("AAAAAA" if not cert.token.endswith("AAAAAA") else "BBBBBB"),
            id=cert.id)
    else:
        sql(registry, "UPDATE certificates SET token = :t WHERE id = :id", t=other.token,
            id=cert.id)
    with pytest.raises(ecert.RecordTampered):
        registry.qr_token(cert.id)
    registry.qr_token(other.id)  # an untouched one still works


# 5. A trust-list sequence number is never reused.


def test_a_failed_write_never_reuses_a_sequence(registry: ecert.Registry, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import ecert.registry._publication as publication

    issue_business_licence(registry)
    first = registry.publish(tmp_path / "bundle")

    def crash(out: Path, documents: object, **options: object) -> None:
        raise ecert.PublishError("disk full")

    monkeypatch.setattr(publication, "write_bundle", crash)
    with pytest.raises(ecert.PublishError):
        registry.publish(tmp_path / "bundle")
    monkeypatch.undo()
    third = registry.publish(tmp_path / "bundle")
    assert third.sequence == first.sequence + 2  # a gap, never a reuse
    with registry.engine.connect() as conn:
        rows = conn.execute(text("SELECT sequence, status FROM publications ORDER BY sequence")
                            ).all()
    assert [tuple(r) for r in rows] == [(first.sequence, "written"),
                                        (first.sequence + 1, "started"),
                                        (third.sequence, "written")]


# Step 4: a token minted outside the registry with a stolen agency key.


def test_an_index_the_log_never_allocated_reads_invalid(registry: ecert.Registry,
                                                        tmp_path: Path,
                                                        clock: FakeClock) -> None:
    cert = issue_business_licence(registry)
    bundle = tmp_path / "bundle"
    registry.publish(bundle)
    stolen = registry.keystore.signer(cert.kid)
    payload = dict(parse_compact(cert.token, max_bytes=1 << 16).payload)
    status = payload["status"]["status_list"]
    payload["status"] = {"status_list": {"uri": status["uri"],
                                         "idx": (status["idx"] + 1) % 131_072}}
    payload["holder_name"] = "冒名顶替"
    minted = CertificateClaims.from_payload(payload).sign(stolen)
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(minted)
    assert not result.valid and ecert.ErrorCode.REVOKED in result.errors
    assert ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token).valid
