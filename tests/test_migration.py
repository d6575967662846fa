"""A registry made before operators and the log (schema 0002) is adopted: its events
become the first, legacy entries; its keys, catalog and certificates are recorded by the
adopting admin; then it audits clean, publishes, and its certificates still verify."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from sqlalchemy import text

import ecert
from ecert import _samples
from ecert._allocation import permuted_index
from ecert._formats import bundle
from ecert._formats.certificate import CertificateClaims
from ecert._storage.database import (
    HEAD_REVISION,
    _alembic_config,
    make_engine,
    migrate,
    schema_is_current,
    scripts_head,
    sqlite_url,
)
from ecert.identifiers import CertificateId
from ecert.keys import FileKeyStore
from tests.support import EPOCH, PASSPHRASE, PG_URL, FakeClock, credential, pg_schema_url

T0 = int(EPOCH.timestamp())


def _old_registry(home: Path, url: str) -> tuple[str, str]:
    """What ecert 0.1 left behind: tables at 0002, key files, events. Returns (id, token)."""
    engine = make_engine(url)
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    sample = _samples.region("GD")
    keys = FileKeyStore(home / "keys", PASSPHRASE, kdf_rounds=1000)
    root, status, agency = keys.create(), keys.create(), keys.create()
    keys.secret("holder-pseudonym")
    claims = _samples.claims("business-licence-gd")
    entry = next(t for t in _samples.catalog() if t["code"] == "cn.business-licence")
    amr = next(a for a in sample["agencies"] if a["code"] == "gd-amr")
    cert_id = str(CertificateId(entry["national_type_code"], amr["uscc"], "00000001"))
    uri = bundle.status_list_uri(sample["base_url"], 1)
    slot = permuted_index(b"k" * 32, 0, 131_072)  # the first allocation, as ecert made it
    token = CertificateClaims(
        iss=f"{sample['base_url']}/agencies/gd-amr", sub="pseudonym", jti=cert_id, iat=T0,
        nbf=T0, exp=T0 + 86_400 * 365, vct="cn.business-licence", vct_version=1, region="GD",
        holder_name=claims["name"], claims=claims, status_list_uri=uri, status_index=slot,
    ).sign(agency)
    rows = {
        "region": [{"id": 1, "code": "GD", "name": sample["name"],
                    "base_url": sample["base_url"], "created_at": T0}],
        "counters": [{"name": "trust_list_sequence", "value": 3},
                     {"name": "status_list_id", "value": 1},
                     {"name": "serial:gd-amr", "value": 1}],
        "cert_types": [{"code": entry["code"], "version": 1, "name": entry["name"],
                        "national_type_code": entry["national_type_code"],
                        "schema": json.dumps(entry["schema"]),
                        "validity_days": entry["validity_days"],
                        "qr_claims": json.dumps(entry["qr_claims"]), "created_at": T0}],
        "agencies": [{"code": "gd-amr", "name": amr["name"], "uscc": amr["uscc"],
                      "created_at": T0}],
        "agency_types": [{"agency_code": "gd-amr", "type_code": "cn.business-licence"}],
        "keys": [{"kid": k.kid, "role": role, "agency_code": code, "alg": "ES256",
                  "public_jwk": json.dumps(k.public_jwk), "created_at": T0}
                 for k, role, code in ((root, "root", None), (status, "status", None),
                                       (agency, "agency", "gd-amr"))],
        "status_lists": [{"id": 1, "size": 131_072, "bits": 2,
                          "permutation_key": b"k" * 32, "allocated": 1, "created_at": T0}],
        "certificates": [{"id": cert_id, "serial": "00000001", "agency_code": "gd-amr",
                          "type_code": "cn.business-licence", "type_version": 1,
                          "holder": "pseudonym", "holder_name": claims["name"],
                          "claims": json.dumps(claims), "issued_at": T0, "valid_from": T0,
                          "valid_until": T0 + 86_400 * 365, "status": "suspended",
                          "status_list_id": 1, "status_index": slot, "kid": agency.kid,
                          "token": token}],
        "events": [{"at": T0, "operator": "clerk-li", "action": a, "subject": s,
                    "details": "{}"} for a, s in (("registry.init", "GD"),
                                                  ("certificate.issue", cert_id),
                                                  ("certificate.suspend", cert_id))],
    }
    with engine.begin() as conn:
        for table, values in rows.items():
            for value in values:
                names = ", ".join(value)
                marks = ", ".join(f":{n}" for n in value)
                conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({marks})"), value)
    engine.dispose()
    return cert_id, token


def test_a_registry_from_before_the_log_is_adopted(tmp_path: Path, clock: FakeClock) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    schemas = pg_schema_url() if PG_URL else None
    url = next(schemas) if schemas else None
    try:
        cert_id, token = _old_registry(home, url or sqlite_url(home / "registry.db"))
        if url is None:
            (home / "registry.db").chmod(0o600)
        admin = credential("admin-li")
        assert admin is not None
        with ecert.Registry.adopt(home, admin=admin, passphrase=PASSPHRASE,
                                  database_url=url, clock=clock) as registry:
            entries = registry.events(limit=1000)
            assert [e.action for e in entries[:3]] == ["legacy"] * 3
            assert {e.operator for e in entries[:3]} == {"legacy"}
            assert entries[3].action == "registry.adopt"
            assert [e.action for e in registry.events(cert_id)] == [
                "legacy", "legacy", "certificate.issue", "certificate.suspend"]
            report = registry.audit()
            assert report.intact, report.findings
            published = registry.publish(tmp_path / "bundle")
            assert published.ok, published.alerts
            assert published.sequence == 4  # continues the old sequence, never reuses it
            result = ecert.Verifier.from_bundle(tmp_path / "bundle", clock=clock).verify(token)
            assert result.status is ecert.VerificationStatus.SUSPENDED
            registry.reinstate(cert_id)
            assert registry.audit(bundle=tmp_path / "bundle").intact
            # Migration 0005 made the type's one version a version row; a new version
            # leaves the old certificate verifying.
            assert [t.version for t in registry.type_versions("cn.business-licence")] == [1]
            schema = dict(registry.get_type("cn.business-licence").schema)
            registry.update_type("cn.business-licence", schema={**schema, "title": "v2"})
            registry.publish(tmp_path / "bundle2")
            result = ecert.Verifier.from_bundle(tmp_path / "bundle2", clock=clock).verify(token)
            assert result.valid, result.messages
            # Adoption happens once.
        try:
            ecert.Registry.adopt(home, admin=admin, passphrase=PASSPHRASE, database_url=url,
                                 clock=clock)
        except ecert.AlreadyExists:
            pass
        else:
            raise AssertionError("adopted twice")
    finally:
        if schemas is not None:
            next(schemas, None)


def test_the_head_a_registry_is_opened_at_is_the_scripts_head() -> None:
    """Opening compares with HEAD_REVISION instead of loading the scripts: a new migration
    must move it (else an upgraded install would open a database it never migrated)."""
    assert scripts_head() == HEAD_REVISION


def test_a_database_behind_the_head_is_found_and_migrated(tmp_path: Path,
                                                          database_url: str | None) -> None:
    engine = make_engine(database_url or sqlite_url(tmp_path / "registry.db"))
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0014")
    assert not schema_is_current(engine)
    migrate(engine)
    assert schema_is_current(engine)
    engine.dispose()
