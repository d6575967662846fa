"""``audit verify``: an insider with the database open changes something; the audit says
what and where. One kind of tampering per test, on SQLite and PostgreSQL, including after
dropping the append-only triggers (issues 7 and 8)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, text, update

import ecert
from ecert._storage.schema import cert_type_versions, cert_types, certificates
from tests.support import issue_business_licence
from tests.support.tamper import drop_triggers, sql


def kinds(report: ecert.AuditReport) -> set[str]:
    return {f.kind for f in report.findings}


@pytest.fixture
def setup(registry: ecert.Registry, tmp_path: Path) -> tuple[ecert.Registry, ecert.Certificate,
                                                               ecert.Certificate, Path]:
    first = issue_business_licence(registry)
    second = issue_business_licence(registry)
    registry.suspend(second.id)
    bundle = tmp_path / "bundle"
    registry.publish(bundle)
    assert registry.audit(bundle=bundle).intact
    return registry, first, second, bundle


def test_intact_registry_audits_clean_with_its_bundle(setup) -> None:
    registry, _first, _second, bundle = setup
    report = registry.audit(bundle=bundle)
    assert report.intact and report.to_json()["findings"] == []
    assert report.log_size == len(registry.events(limit=100_000))


def test_the_log_tables_refuse_update_and_delete(setup) -> None:
    registry = setup[0]
    for statement in ("UPDATE log_entries SET action = 'x' WHERE seq = 0",
                      "DELETE FROM log_entries WHERE seq = 0",
                      "UPDATE checkpoints SET size = 0",
                      "DELETE FROM checkpoints"):
        with pytest.raises(Exception, match="append-only"):
            sql(registry, statement)
    if registry.engine.dialect.name == "postgresql":
        for table in ("log_entries", "checkpoints", "events"):
            with pytest.raises(Exception, match="append-only"):
                sql(registry, f"TRUNCATE {table}")


Tamper = Callable[[ecert.Registry, ecert.Certificate, ecert.Certificate], None]

CASES: dict[str, tuple[Tamper, str]] = {
    "status reinstated": (lambda r, a, b: sql(
        r, "UPDATE certificates SET status = 'valid' WHERE id = :id", id=b.id),
        "status_mismatch"),
    "status revoked": (lambda r, a, b: sql(
        r, "UPDATE certificates SET status = 'revoked' WHERE id = :id", id=a.id),
        "status_mismatch"),
    "token replaced": (lambda r, a, b: sql(
        r, "UPDATE certificates SET token = :t WHERE id = :id", t=b.token, id=a.id),
        "certificate_modified"),
    "holder name edited": (lambda r, a, b: sql(
        r, "UPDATE certificates SET holder_name = 'someone else' WHERE id = :id", id=a.id),
        "certificate_row_mismatch"),
    "expiry extended": (lambda r, a, b: sql(
        r, "UPDATE certificates SET valid_until = 253402300799 WHERE id = :id", id=a.id),
        "certificate_row_mismatch"),
    "row deleted": (lambda r, a, b: sql(
        r, "DELETE FROM certificates WHERE id = :id", id=a.id), "certificate_missing"),
    "key row changed": (lambda r, a, b: sql(
        r, "UPDATE keys SET role = 'status' WHERE kid = :kid", kid=a.kid), "key_modified"),
    "operator widened": (lambda r, a, b: sql(
        r, "UPDATE operators SET grants = :g",
        g='[{"role": "officer", "agencies": null, "types": null}]'), "operator_modified"),
    "agency type added": (lambda r, a, b: sql(
        r, "INSERT INTO agency_types (agency_code, type_code) VALUES ('gd-hrss', "
           "'cn.business-licence')"), "record_modified"),
    # The zone typed dates are read in: moving it would shift every date a clerk types.
    "time zone moved": (lambda r, a, b: sql(r, "UPDATE region SET tz = 'UTC'"),
                        "record_modified"),
    "region renamed": (lambda r, a, b: sql(r, "UPDATE region SET name = 'elsewhere'"),
                       "record_modified"),
}



def change_type(registry: ecert.Registry, *, versions: bool, **values: object) -> None:
    """Edit the business licence's definition in place (current row or version rows)."""
    table = cert_type_versions if versions else cert_types
    with registry.engine.begin() as conn:
        conn.execute(update(table).where(table.c.code == "cn.business-licence").values(**values))


def add_forged_version(registry: ecert.Registry) -> None:
    with registry.engine.begin() as conn:
        row = conn.execute(select(cert_type_versions).where(
            cert_type_versions.c.code == "cn.business-licence")).mappings().first()
        assert row is not None
        conn.execute(insert(cert_type_versions).values(**dict(row, version=99,
                                                              input_rules=None)))


def delete_versions(registry: ecert.Registry) -> None:
    with registry.engine.begin() as conn:
        conn.execute(delete(cert_type_versions).where(
            cert_type_versions.c.code == "cn.business-licence"))


# A type loosened in place would let unchecked data be issued under a definition the log
# never saw: every member of every stored version is compared with its logged entry.
TYPE_CASES: dict[str, Callable[[ecert.Registry], None]] = {
    "input rules nulled": lambda r: change_type(r, versions=False, input_rules=None),
    "version input rules nulled": lambda r: change_type(r, versions=True, input_rules=None),
    "holder id scheme swapped": lambda r: change_type(
        r, versions=True, input_rules={"holder_id_scheme": "pattern:.*"}),
    "schema widened": lambda r: change_type(r, versions=False, schema={"type": "object"}),
    "version schema widened": lambda r: change_type(r, versions=True,
                                                    schema={"type": "object"}),
    "qr claims changed": lambda r: change_type(r, versions=True, qr_claims=[]),
    "renamed": lambda r: change_type(r, versions=False, name="营业执照（副本）"),
    "validity changed": lambda r: change_type(r, versions=True, validity_days=99_999),
    "extra added": lambda r: change_type(r, versions=False, extra={"x-note": "forged"}),
    "version forged": add_forged_version,
    "versions deleted": delete_versions,
}


@pytest.mark.parametrize("case", sorted(TYPE_CASES))
def test_a_type_definition_changed_out_of_band_is_found(setup, case: str) -> None:
    registry = setup[0]
    assert registry.get_type("cn.business-licence").holder_id_scheme == "uscc"
    TYPE_CASES[case](registry)
    report = registry.audit()
    found = [f for f in report.findings if f.kind == "record_modified"]
    assert found and all(f.subject.startswith("type cn.business-licence") for f in found), \
        report.findings


@pytest.mark.parametrize("case", sorted(CASES))
def test_out_of_band_changes_are_found(setup, case: str) -> None:
    registry, first, second, _bundle = setup
    tamper, kind = CASES[case]
    tamper(registry, first, second)
    report = registry.audit()
    assert not report.intact
    assert kind in kinds(report), report.findings


def test_an_unlogged_certificate_row_is_found(setup) -> None:
    registry, first, _second, _bundle = setup
    with registry.engine.begin() as conn:
        row = conn.execute(text("SELECT * FROM certificates WHERE id = :id"),
                           {"id": first.id}).mappings().one()
        forged = dict(row, id=first.id.replace(".00000001.", ".00000099."), serial="00000099",
                      status_index=int(row["status_index"]) + 1)
        conn.execute(insert(certificates).values(**forged))
    assert "certificate_unlogged" in kinds(registry.audit())


@pytest.mark.parametrize("edit", ["delete", "modify", "insert", "reorder"])
def test_log_rewritten_after_dropping_the_triggers(setup, edit: str) -> None:
    registry, first, _second, _bundle = setup
    drop_triggers(registry)
    target = next(e for e in registry.events(first.id) if e.action == "certificate.issue")
    if edit == "delete":
        sql(registry, "DELETE FROM log_entries WHERE seq = :s", s=target.seq)
    elif edit == "modify":
        forged = target.leaf.replace(b'"idx":', b'"idx":1', 1)
        sql(registry, "UPDATE log_entries SET leaf = :l WHERE seq = :s", l=forged, s=target.seq)
    elif edit == "insert":
        sql(registry, "UPDATE log_entries SET seq = seq + 1000 WHERE seq >= :s", s=target.seq)
    else:
        other = target.seq + 1
        sql(registry, "UPDATE log_entries SET seq = -1 WHERE seq = :s", s=target.seq)
        sql(registry, "UPDATE log_entries SET seq = :t WHERE seq = :s", t=target.seq, s=other)
        sql(registry, "UPDATE log_entries SET seq = :t WHERE seq = -1", t=other)
    found = kinds(registry.audit())
    assert "trigger_missing" in found
    assert found & {"checkpoint_mismatch", "entry_deleted", "entry_inserted", "bad_signature",
                    "entry_malformed"}, found


def test_a_published_status_bit_that_differs_from_the_log(setup, clock, tmp_path: Path
                                                          ) -> None:
    registry, _first, second, bundle = setup
    # The insider reinstates in the database and republishes. An incremental publication
    # changes only what the log changed: the bundle still says suspended.
    sql(registry, "UPDATE certificates SET status = 'valid' WHERE id = :id", id=second.id)
    assert registry.publish(bundle).status_lists_encoded == 0
    assert kinds(registry.audit(bundle=bundle)) == {"status_mismatch"}
    # Nor does a full one: lists are built from the log, never from the rows, so the
    # edit reaches no published list; the audit names the row.
    assert registry.publish(bundle, full=True).status_lists_encoded == 1
    assert kinds(registry.audit(bundle=bundle)) == {"status_mismatch"}
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(second.token)
    assert not result.valid and result.status == "suspended", result


@pytest.mark.parametrize("edit", [
    "UPDATE status_lists SET allocated = allocated + 5",  # unissued slots would read valid
    "UPDATE status_lists SET allocated = allocated - 1",  # an issued one would read invalid
    "UPDATE status_lists SET permutation_key = :key",  # other slots than the log issued
    # Shapes ecert never makes: 2**30 slots (the column's largest power of two on
    # PostgreSQL) is far beyond any list a verifier reads, a size of 1000 is no power
    # of two, one bit cannot say suspended.
    "UPDATE status_lists SET size = 1073741824",
    "UPDATE status_lists SET size = 1000",
    "UPDATE status_lists SET bits = 1",
])
def test_a_status_list_counter_or_key_edited_is_named(setup, edit: str) -> None:
    # Publication builds a list from its counter and permutation (not from millions of
    # entries): the audit checks both against the slots the log issued.
    registry = setup[0]
    sql(registry, edit, key=b"\x01" * 32)
    assert ("record_modified", "status list 1") in {
        (f.kind, f.subject) for f in registry.audit().findings}


def test_a_slot_moved_between_certificates_revokes_nobody_else(setup, clock) -> None:
    # An insider gives the first certificate's row the second one's slot, then has the
    # first revoked through the registry: the revocation entry names the slot the row
    # says. Publication takes every change's slot from the certificate's own issue entry
    # (as the log's replay does) and names the difference.
    registry, first, second, bundle = setup
    registry.reinstate(second.id)
    registry.publish(bundle)
    sql(registry, "UPDATE certificates SET status_index = -1 WHERE id = :id", id=second.id)
    sql(registry, "UPDATE certificates SET status_index = :idx WHERE id = :id",
        idx=second.status_index, id=first.id)
    registry.revoke(first.id, "privilege-withdrawn")
    for full in (False, True):
        report = registry.publish(bundle, full=full)
        assert not report.ok
        assert any(f"not the certificate's 1/{first.status_index}" in a
                   for a in report.alerts), report.alerts
        verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
        assert verifier.verify(second.token).valid
        assert verifier.verify(first.token).status == "revoked"
    assert "certificate_modified" in kinds(registry.audit())


def test_a_certificate_moved_to_another_agency_is_not_revoked_by_its_officer(
        setup, clock) -> None:
    # An officer of gd-hrss may not revoke gd-amr's licences. An insider files one under
    # gd-hrss in the database; the registry then lets that officer revoke it (it checks
    # the row), and the entry names gd-hrss. Publication judges the authority by the
    # agency the log issued it under, and refuses.
    from tests.support import as_operator

    registry, first, _second, bundle = setup
    registry.add_operator("hrss-officer", roles=["officer"], agencies=["gd-hrss"],
                          passphrase="hrss officer passphrase")
    sql(registry, "UPDATE certificates SET agency_code = 'gd-hrss' WHERE id = :id",
        id=first.id)
    with as_operator(registry, "hrss-officer", "hrss officer passphrase", clock) as officer:
        officer.revoke(first.id, "privilege-withdrawn")
    for full in (False, True):
        report = registry.publish(bundle, full=full)
        assert any("but the certificate was issued as gd-amr/cn.business-licence" in a
                   for a in report.alerts), report.alerts
        verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
        assert verifier.verify(first.token).valid


def test_a_revocation_scheduled_in_the_database_alone_is_not_published(setup, clock) -> None:
    # An incremental publication finds scheduled supersessions that fell due through
    # the rows (they are rare), but applies only what the log scheduled.
    registry, first, _second, bundle = setup
    due = int(clock().timestamp()) + 60
    sql(registry, "UPDATE certificates SET revoke_at = :at WHERE id = :id", at=due,
        id=first.id)
    clock.advance(seconds=120)
    registry.publish(bundle)
    assert ecert.Verifier.from_bundle(bundle, clock=clock).verify(first.token).valid
    assert "status_mismatch" in kinds(registry.audit())


def test_an_operator_planted_in_the_database_gains_nothing(setup, clock) -> None:
    from tests.support import as_operator, plant_operator

    registry, _first, _second, bundle = setup
    plant_operator(registry, "mole", "mole pass", roles=["key-admin"])
    with as_operator(registry, "mole", "mole pass", clock) as mole:
        planted = mole.rotate_agency_key("gd-amr")  # the runtime trusts the table...
    report = registry.publish(bundle)  # ...publication does not
    assert not report.ok
    assert any(planted.kid in alert for alert in report.alerts)
    keys = ecert.Verifier.from_bundle(bundle, clock=clock).trust_list.agencies
    assert planted.kid not in {k.kid for a in keys for k in a.keys}
    assert {"operator_unlogged", "unknown_operator"} <= kinds(registry.audit())


def test_a_bad_signature_deep_in_a_large_log_is_found_at_its_seq(registry, monkeypatch) -> None:
    """Unit signatures are checked in worker processes, chunk by chunk, ahead of the
    replay: a unit signed with another key, deep in 2,000 entries, is still the one
    bad_signature finding, at its seq, exactly as when the replay checks everything."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from ecert._formats.log import Entry, sign_unit
    from ecert._storage.schema import counters, log_entries
    from ecert.registry import _audit

    class Forger:
        alg, kid = "Ed25519", "forger"
        key = ed25519.Ed25519PrivateKey.generate()

        def sign(self, message: bytes) -> bytes:
            return self.key.sign(message)

    ctx = registry._ctx
    operator, signer = ctx.authenticate()
    start = len(registry.events(limit=100_000))
    count = 2_000
    bad = start + 1_733
    rows = []
    for seq in range(start, start + count):
        entry = Entry(ctx.now(), "access.refused", "certificate.issue", operator.kid,
                      {"action": "certificate.issue", "code": "permission_denied"})
        [signed] = sign_unit([entry], Forger() if seq == bad else signer)
        rows.append({"seq": seq, "leaf": signed.encode(), "action": entry.action,
                     "subject": entry.subject, "plain_subject": entry.subject,
                     "operator": operator.name, "unit": seq, "at": entry.time})
    with registry.engine.begin() as conn:
        conn.execute(insert(log_entries), rows)
        conn.execute(counters.update().where(counters.c.name == "log_size")
                     .values(value=start + count))
    monkeypatch.setattr(_audit, "_CHUNK_ROWS", 64)  # many batches, over both workers
    parallel = _audit.verify(ctx, None, workers=2)
    serial = _audit.verify(ctx, None, workers=0)
    assert registry.audit().findings == parallel.findings == serial.findings
    assert [(f.kind, f.seq) for f in parallel.findings] == [("bad_signature", bad)]
    assert parallel.log_size == start + count


def test_rows_compared_in_workers_give_the_findings_of_the_main_process(
        setup, monkeypatch) -> None:
    """Certificate rows and leaves are checked in worker processes, chunk by chunk: every
    kind of out-of-band change is found there exactly as (and in the order) the main
    process alone finds it."""
    from ecert.registry import _audit

    registry, first, second, _bundle = setup
    third = issue_business_licence(registry)
    drop_triggers(registry)
    sql(registry, "UPDATE certificates SET holder_name = 'someone else' WHERE id = :id",
        id=first.id)
    sql(registry, "UPDATE certificates SET status = 'valid' WHERE id = :id", id=second.id)
    sql(registry, "UPDATE certificates SET token = :t WHERE id = :id", t=first.token,
        id=third.id)
    sql(registry, "UPDATE log_entries SET at = at + 1 WHERE seq = 3")
    with registry.engine.begin() as conn:
        row = conn.execute(text("SELECT * FROM certificates WHERE id = :id"),
                           {"id": first.id}).mappings().one()
        conn.execute(insert(certificates).values(**dict(
            row, id=first.id.replace(".00000001.", ".00000099."), serial="00000099",
            status_index=int(row["status_index"]) + 7)))
    monkeypatch.setattr(_audit, "_CHUNK_ROWS", 2)  # many chunks, over both workers
    parallel = _audit.verify(registry._ctx, None, workers=2)
    serial = _audit.verify(registry._ctx, None, workers=0)
    assert parallel.findings == serial.findings
    found = {(f.kind, f.subject) for f in parallel.findings}
    assert {("certificate_row_mismatch", first.id), ("status_mismatch", second.id),
            ("certificate_modified", third.id), ("certificate_row_mismatch", third.id),
            ("certificate_unlogged", first.id.replace(".00000001.", ".00000099."))} <= found
    assert ("entry_modified", 3) in {(f.kind, f.seq) for f in parallel.findings}


def test_signatures_libsodium_refuses_are_judged_by_openssl(setup, monkeypatch) -> None:
    """libsodium (PyNaCl, the ``audit`` extra) only speeds the check up: what it refuses
    is checked again with ``cryptography``, whose verdict stands; without it the audit
    uses ``cryptography`` alone and says so."""
    from ecert.registry import _audit

    registry = setup[0]

    def refuse(signed: bytes, key: bytes) -> bytes:
        raise ValueError("refused")

    monkeypatch.setattr(_audit, "_SODIUM_VERIFY", refuse)
    report = registry.audit()
    assert report.intact and report.signature_backend == _audit._BACKEND
    monkeypatch.setattr(_audit, "_SODIUM_VERIFY", None)
    report = registry.audit()
    assert report.intact and report.to_json()["signature_backend"] == "cryptography"


def test_the_audit_uses_libsodium_when_pynacl_is_installed(setup) -> None:
    pytest.importorskip("nacl")
    report = setup[0].audit()
    assert report.intact and report.to_json()["signature_backend"] == "pynacl"
