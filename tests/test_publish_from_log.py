"""Publication judges every status change by the log (issue 11, insider premise).

A certificate's published status is what the log's replay makes of its history: the
units about it, replayed in log order with the units that shape the trust list. Each
test is a legitimate flow that must still publish, or an insider's move through the
database (rows edited, rows inserted past the append-only triggers) that must reach no
published list — on SQLite and PostgreSQL, incremental and ``--full``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, text

import ecert
from ecert._formats.log import Entry
from ecert.batch import RevocationRow
from ecert.registry._publication import _TRUST_ACTIONS
from tests.support import FakeClock, as_operator, issue_business_licence, plant_operator
from tests.support.tamper import drop_triggers, sql

OFFICER = "officer passphrase"
CLERK = "clerk passphrase"


def status(bundle: Path, clock: FakeClock, cert: ecert.Certificate) -> str:
    return ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token).status.value


def both(registry: ecert.Registry, bundle: Path) -> list[ecert.PublishReport]:
    """An incremental publication, then a full one into the same directory."""
    return [registry.publish(bundle), registry.publish(bundle, full=True)]


def insert_leaf(registry: ecert.Registry, leaf: bytes, plain_subject: str, *,
                action: str = "certificate.issue", unit: int | None = None) -> None:
    """What an insider can do past the triggers (they refuse UPDATE and DELETE): append a
    row of their own making to the log and count it."""
    with registry.engine.begin() as conn:
        seq = conn.execute(text("SELECT value FROM counters WHERE name = 'log_size'")
                           ).scalar_one()
        conn.execute(text("INSERT INTO log_entries (seq, leaf, action, subject, "
                          "plain_subject, operator, unit, at) VALUES (:s, :l, :a, 'x', :p, "
                          "'x', :u, 0)"),
                     {"s": seq, "l": leaf, "p": plain_subject, "a": action,
                      "u": seq if unit is None else unit})
        conn.execute(text("UPDATE counters SET value = value + 1 WHERE name = 'log_size'"))


def unsigned_fragment(registry: ecert.Registry, cert_id: str, action: str) -> bytes:
    """An entry without a signature, as the first part of a unit that never ends."""
    real = Entry.decode(bytes(next(e for e in registry.events(cert_id)
                                   if e.action == "certificate.issue").leaf))
    return Entry(real.time, action, real.subject, real.operator, {}).encode()


def units_of(registry: ecert.Registry, where: str, **params: object) -> set[int]:
    with registry.engine.begin() as conn:
        return {int(u) for (u,) in conn.execute(
            text(f"SELECT unit FROM log_entries WHERE {where}"), params)}


def trust_units(registry: ecert.Registry) -> set[int]:
    """The units publication replays for the trust list."""
    with registry.engine.begin() as conn:
        return {int(u) for (u,) in conn.execute(
            text("SELECT unit FROM log_entries WHERE action IN :a").bindparams(
                bindparam("a", expanding=True)), {"a": list(_TRUST_ACTIONS)})}


def pad_before(registry: ecert.Registry, target: int, units: set[int], action: str,
               subject: str, fragment: bytes) -> None:
    """Rows with made-up unit numbers, so that a reader taking units a hundred at a time
    would meet the fragment just before the ``target`` unit."""
    before = sum(1 for u in units if u < target)
    for i in range((-(before + 1)) % 100):
        insert_leaf(registry, b"not json", subject, action=action, unit=-1000 - i)
    insert_leaf(registry, fragment, subject, action=action, unit=-1)


def issued_by_a_planted_operator(registry: ecert.Registry, clock: FakeClock
                                 ) -> ecert.Certificate:
    """A certificate the registry issues for an operator the insider wrote into the
    database (the log never made them): the registry authorizes from that table."""
    plant_operator(registry, "insider", "insider passphrase", ["clerk"])
    with as_operator(registry, "insider", "insider passphrase", clock) as insider:
        return issue_business_licence(insider)


def free_the_slot_of(registry: ecert.Registry, victim: ecert.Certificate, *,
                     rewind: int) -> None:
    """The insider's move that makes the next genuine issue take ``victim``'s slot: the
    list's counter rewound by ``rewind`` (to the victim's counter) and the victim's row
    moved off its slot, so the database's unique slot constraint lets the issue in."""
    sql(registry, "UPDATE status_lists SET allocated = allocated - :n", n=rewind)
    sql(registry, "UPDATE certificates SET status_index = -1 WHERE id = :id", id=victim.id)


# -- legitimate flows still publish ---------------------------------------------------------


def test_a_renewal_now_and_at_its_start(registry: ecert.Registry, clock: FakeClock,
                                        tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    now_old = issue_business_licence(registry)
    later_old = issue_business_licence(registry)
    registry.publish(bundle)
    now_new, _ = registry.renew(now_old.id)
    registry.renew(later_old.id, valid_from=clock() + timedelta(days=2), at_start=True)
    for report in both(registry, bundle):
        assert report.ok, report.alerts
        assert status(bundle, clock, now_old) == "revoked"
        assert status(bundle, clock, now_new) == "valid"
        assert status(bundle, clock, later_old) == "valid"
    clock.advance(days=3)  # the successor's start: nobody acts but publication
    for report in both(registry, bundle):
        assert report.ok, report.alerts
        assert status(bundle, clock, later_old) == "revoked"


def test_four_eyes_revocations_one_and_in_a_batch(registry: ecert.Registry, clock: FakeClock,
                                                  tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    certs = [issue_business_licence(registry) for _ in range(3)]
    registry.publish(bundle)
    registry.set_policy("certificate.revoke", approvals=2, type_code="cn.business-licence")
    registry.add_operator("officer-1", roles=["officer"], passphrase=OFFICER)
    with pytest.raises(ecert.PendingApproval) as one:
        registry.revoke(certs[0].id, "privilege-withdrawn")
    with pytest.raises(ecert.PendingApproval) as batch:
        registry.revoke_batch([RevocationRow(1, certs[1].id, "key-compromise"),
                               RevocationRow(2, certs[2].id, "key-compromise")])
    with as_operator(registry, "officer-1", OFFICER, clock) as officer:
        officer.approve(one.value.request.id)
        officer.approve(batch.value.request.id)
    for report in both(registry, bundle):
        assert report.ok, report.alerts
        assert [status(bundle, clock, c) for c in certs] == ["revoked"] * 3


def test_a_new_list_leaves_the_unchanged_lists_as_they_were(
        registry: ecert.Registry, tmp_path: Path) -> None:
    www = tmp_path / "www"
    cert = issue_business_licence(registry)
    registry.revoke(cert.id, "unspecified")
    sql(registry, "UPDATE status_lists SET allocated = size")  # list 1 is full
    assert registry.publish(www).status_lists_encoded == 1
    issue_business_licence(registry)  # opens list 2
    report = registry.publish(www)
    assert (report.status_lists, report.status_lists_encoded) == (2, 1)


# -- an insider through the database reaches no list ----------------------------------------


def test_a_revoked_certificate_set_suspended_in_its_row_is_not_reinstated(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # The registry checks the row, so a clerk may reinstate it; the log says revoked, and
    # a revocation is final.
    bundle = tmp_path / "bundle"
    cert = issue_business_licence(registry)
    registry.revoke(cert.id, "key-compromise")
    registry.publish(bundle)
    registry.add_operator("clerk-amr", roles=["clerk"], agencies=["gd-amr"], passphrase=CLERK)
    sql(registry, "UPDATE certificates SET status = 'suspended' WHERE id = :id", id=cert.id)
    with as_operator(registry, "clerk-amr", CLERK, clock) as clerk:
        clerk.reinstate(cert.id)
    for report in both(registry, bundle):
        assert any("invalid_transition" in a for a in report.alerts), report.alerts
        assert status(bundle, clock, cert) == "revoked"
    assert "invalid_transition" in {f.kind for f in registry.audit().findings}


def test_a_second_certificate_under_the_same_id_takes_no_revocation_away(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # The victim's row moved aside and the serial counter rewound: the next issue gets
    # the victim's id and another slot. The log's first issue of that id holds.
    bundle = tmp_path / "bundle"
    victim = issue_business_licence(registry)
    registry.publish(bundle)
    sql(registry, "UPDATE certificates SET id = 'moved', serial = '99999999' WHERE id = :id",
        id=victim.id)
    sql(registry, "UPDATE counters SET value = value - 1 WHERE name = 'serial:gd-amr'")
    twin = issue_business_licence(registry)
    assert twin.id == victim.id and twin.status_index != victim.status_index
    registry.revoke(victim.id, "key-compromise")
    for report in both(registry, bundle):
        assert not report.ok
        assert status(bundle, clock, victim) == "revoked"


def test_an_issue_row_inserted_past_the_triggers_moves_no_revocation(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # A copy of the victim's issue entry naming an innocent certificate's slot, inserted
    # unsigned: only an issue entry in a unit the log accepts gives a certificate a slot.
    bundle = tmp_path / "bundle"
    victim = issue_business_licence(registry)
    innocent = issue_business_licence(registry)
    registry.publish(bundle)
    event = next(e for e in registry.events(victim.id) if e.action == "certificate.issue")
    real = Entry.decode(bytes(event.leaf))
    forged = Entry(real.time, real.action, real.subject, real.operator,
                   {**real.details, "idx": innocent.status_index}, sig="AAAA").encode()
    insert_leaf(registry, forged, victim.id)
    registry.revoke(victim.id, "key-compromise")
    for report in both(registry, bundle):
        assert not report.ok
        assert status(bundle, clock, victim) == "revoked"
        assert status(bundle, clock, innocent) == "valid"


@pytest.mark.parametrize("leaf", [
    b"not json", b"[]", b'{"s": "x", "d": "x"}', b'{"a": "certificate.issue", "d": []}'])
def test_a_malformed_row_inserted_into_the_log_stops_nothing(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path, leaf: bytes) -> None:
    bundle = tmp_path / "bundle"
    victim = issue_business_licence(registry)
    registry.publish(bundle)
    insert_leaf(registry, leaf, victim.id)
    registry.revoke(victim.id, "key-compromise")
    for report in both(registry, bundle):
        assert any("entry_malformed" in a for a in report.alerts), report.alerts
        assert status(bundle, clock, victim) == "revoked"


def test_an_unfinished_unit_is_not_joined_to_a_later_one(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # Publication replays only some units: an unsigned fragment about the victim must not
    # swallow the victim's revocation, which the whole log's replay keeps.
    bundle = tmp_path / "bundle"
    victim = issue_business_licence(registry)
    registry.publish(bundle)
    insert_leaf(registry, unsigned_fragment(registry, victim.id, "certificate.qr"), victim.id,
                action="certificate.qr")
    issue_business_licence(registry)  # a unit publication does not replay
    registry.revoke(victim.id, "key-compromise")
    for report in both(registry, bundle):
        assert not report.ok
        assert status(bundle, clock, victim) == "revoked"


def test_made_up_unit_numbers_do_not_reorder_the_log(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    victim = issue_business_licence(registry)
    registry.revoke(victim.id, "key-compromise")
    registry.publish(bundle)
    (target,) = units_of(registry, "plain_subject = :p AND action = 'certificate.revoke'",
                         p=victim.id)
    units = units_of(registry, "plain_subject = :p", p=victim.id) | trust_units(registry)
    pad_before(registry, target, units, "certificate.qr", victim.id,
               unsigned_fragment(registry, victim.id, "certificate.qr"))
    for report in both(registry, bundle):
        assert status(bundle, clock, victim) == "revoked", report.alerts


def test_made_up_unit_numbers_do_not_drop_a_key_compromise(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    cert = issue_business_licence(registry)
    clock.advance(minutes=10)
    registry.mark_key_compromised(cert.kid, since=clock() - timedelta(minutes=20))
    registry.publish(bundle)
    assert not ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token).valid
    (target,) = units_of(registry, "action = 'key.compromise'")
    units = trust_units(registry)
    pad_before(registry, target, units, "policy.set", "x",
               unsigned_fragment(registry, cert.id, "policy.set"))
    for report in both(registry, bundle):
        assert not ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token).valid, \
            report.alerts


@pytest.mark.parametrize("leaf", [
    b'{"a":"certificate.issue","d":{"list":1,"idx":99999999}}',
    b'{"a":"certificate.issue","d":{"list":1,"idx":-1}}',
    b"[" * 60_000])
def test_an_issue_row_out_of_shape_breaks_no_publication(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path, leaf: bytes) -> None:
    bundle = tmp_path / "bundle"
    cert = issue_business_licence(registry)
    registry.publish(bundle)
    insert_leaf(registry, leaf, "x")
    for _report in both(registry, bundle):
        assert status(bundle, clock, cert) == "valid"


# -- issues since the previous lists are judged like status changes --------------------------


def test_a_certificate_issued_by_a_planted_operator_is_not_published_valid(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # The registry authorizes from the operators table, which the insider wrote; the log
    # never made that operator, so its issue takes no valid slot in the next list.
    bundle = tmp_path / "bundle"
    genuine = issue_business_licence(registry)
    registry.publish(bundle)
    forged = issued_by_a_planted_operator(registry, clock)
    later = issue_business_licence(registry)  # a genuine issue after it still counts
    report = registry.publish(bundle)
    assert any("unknown_operator" in a for a in report.alerts), report.alerts
    assert not report.ok
    assert status(bundle, clock, forged) != "valid"
    assert status(bundle, clock, genuine) == "valid"
    assert status(bundle, clock, later) == "valid"


def test_an_issue_row_inserted_past_the_triggers_revalidates_no_revoked_slot(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # A new certificate's issue entry naming the revoked victim's slot, inserted past the
    # triggers with a signature nobody made.
    bundle = tmp_path / "bundle"
    victim = issue_business_licence(registry)
    registry.revoke(victim.id, "key-compromise")
    registry.publish(bundle)
    donor = issue_business_licence(registry)
    real = Entry.decode(bytes(next(e for e in registry.events(donor.id)
                                   if e.action == "certificate.issue").leaf))
    forged = Entry(real.time, real.action, "forged" + real.subject[6:], real.operator,
                   {**real.details, "idx": victim.status_index}, sig="AAAA").encode()
    insert_leaf(registry, forged, "forged")
    incremental = registry.publish(bundle)  # replays the units of the issues since
    assert any("bad_signature" in a for a in incremental.alerts), incremental.alerts
    assert status(bundle, clock, victim) == "revoked"
    assert status(bundle, clock, donor) == "valid"
    registry.publish(bundle, full=True)
    assert status(bundle, clock, victim) == "revoked"
    assert status(bundle, clock, donor) == "valid"


def test_a_genuine_issue_into_a_slot_taken_before_revalidates_no_revoked_slot(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # The insider lowers the list's counter and moves the revoked victim's row off its
    # slot: the next genuine issue, signed by the admin, takes the victim's slot. The
    # published list said how many slots were taken, so that slot is not fresh.
    bundle = tmp_path / "bundle"
    victim = issue_business_licence(registry)
    registry.revoke(victim.id, "key-compromise")
    registry.publish(bundle)
    free_the_slot_of(registry, victim, rewind=1)
    twin = issue_business_licence(registry)
    assert (twin.status_list_uri, twin.status_index) == (victim.status_list_uri,
                                                         victim.status_index)
    report = registry.publish(bundle)
    assert any("taken or skipped before" in a for a in report.alerts), \
        report.alerts
    assert status(bundle, clock, victim) == "revoked"
    # Later genuine work on the twin (a suspension and a reinstatement in the same
    # publication, or apart) or a revoke_at written into its row brings the twin's status
    # to that slot no more than its issue did.
    registry.suspend(twin.id, "under review")
    report = registry.publish(bundle)
    assert any("invalid in the list started from" in a for a in report.alerts), \
        report.alerts
    assert status(bundle, clock, victim) == "revoked"
    registry.reinstate(twin.id)
    registry.publish(bundle)
    assert status(bundle, clock, victim) == "revoked"
    clock.advance(seconds=10)
    sql(registry, "UPDATE certificates SET revoke_at = :t WHERE id = :id",
        t=int(clock().timestamp()) - 5, id=twin.id)
    registry.publish(bundle)
    assert status(bundle, clock, victim) == "revoked"
    # Built again from the log's last publication entry: the revocation holds there too.
    registry.publish(bundle, full=True)
    assert status(bundle, clock, victim) == "revoked"


def test_each_list_says_how_many_slots_were_taken(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    from ecert._formats.jose import parse_compact

    bundle = tmp_path / "bundle"
    certs = [issue_business_licence(registry) for _ in range(3)]
    registry.revoke(certs[0].id, "unspecified")

    def logged() -> dict[str, object]:
        path = bundle / "status" / certs[0].status_list_uri.rsplit("/", 1)[1]
        return dict(parse_compact(path.read_text("ascii"), max_bytes=10**7).payload["log"])

    registry.publish(bundle)
    first = logged()
    assert first["allocated"] == 3 and isinstance(first["permutation"], str)
    issue_business_licence(registry)
    registry.publish(bundle)  # incremental: the count follows the issues the log accepts
    assert logged()["allocated"] == 4 and logged()["permutation"] == first["permutation"]
    registry.publish(bundle, full=True)
    assert logged()["allocated"] == 4


def test_a_list_opened_since_the_previous_publication_is_judged_too(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # The previous trust list named every list there was: one it did not name starts
    # empty, and only the issues the log accepts make its slots valid.
    bundle = tmp_path / "bundle"
    first = issue_business_licence(registry)
    registry.publish(bundle)
    sql(registry, "UPDATE status_lists SET allocated = size")  # the next issue opens list 2
    forged = issued_by_a_planted_operator(registry, clock)
    genuine = issue_business_licence(registry)
    assert forged.status_list_uri == genuine.status_list_uri != first.status_list_uri
    report = registry.publish(bundle)
    assert any("unknown_operator" in a for a in report.alerts), report.alerts
    assert status(bundle, clock, forged) != "valid"
    assert status(bundle, clock, genuine) == "valid"
    assert status(bundle, clock, first) == "valid"


def test_files_deleted_from_the_directory_bring_back_no_unjudged_slot(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # Each publication logs how many slots each list had taken: a list file (or the
    # whole directory) removed is built again from that count, not from the counter.
    bundle = tmp_path / "bundle"
    genuine = issue_business_licence(registry)
    victim = issue_business_licence(registry)
    registry.revoke(victim.id, "key-compromise")
    registry.publish(bundle)
    forged = issued_by_a_planted_operator(registry, clock)
    list_file = bundle / "status" / genuine.status_list_uri.rsplit("/", 1)[1]
    list_file.unlink()
    report = registry.publish(bundle)
    assert any("unknown_operator" in a for a in report.alerts), report.alerts
    assert status(bundle, clock, forged) != "valid"
    assert status(bundle, clock, genuine) == "valid"
    assert status(bundle, clock, victim) == "revoked"
    # The counter lowered and the victim's row moved off its slot, the file removed
    # again: the next genuine issue takes the victim's slot, which stays revoked.
    free_the_slot_of(registry, victim, rewind=2)
    list_file.unlink()
    twin = issue_business_licence(registry)
    assert twin.status_index == victim.status_index
    registry.publish(bundle)
    assert status(bundle, clock, victim) == "revoked"
    for directory in (bundle, tmp_path / "elsewhere"):  # --full, and a new directory
        registry.publish(directory, full=True)
        assert status(directory, clock, victim) == "revoked"
        assert status(directory, clock, forged) != "valid"
        assert status(directory, clock, genuine) == "valid"


def valid_slots(bundle: Path, cert: ecert.Certificate) -> int:
    from ecert._formats.jose import parse_compact
    from ecert._formats.statuslist import read_status_list_payload

    path = bundle / "status" / cert.status_list_uri.rsplit("/", 1)[1]
    jws = parse_compact(path.read_text("ascii"), max_bytes=10**8)
    lst = read_status_list_payload(jws.payload).status_list
    return sum(1 for i in range(lst.size) if lst[i] == 0)


def test_a_refused_issue_is_a_hole_every_later_list_keeps(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # The forged issue's counter lies below the genuine one after it: the count the log
    # and the lists state has it as a hole, so no list built from that count shows it.
    bundle = tmp_path / "bundle"
    genuine = issue_business_licence(registry)
    registry.publish(bundle)
    forged = issued_by_a_planted_operator(registry, clock)
    later = issue_business_licence(registry)
    assert not registry.publish(bundle).ok
    (bundle / "status" / genuine.status_list_uri.rsplit("/", 1)[1]).unlink()
    registry.publish(bundle)
    for directory in (bundle, tmp_path / "elsewhere"):
        registry.publish(directory, full=True)
        assert status(directory, clock, forged) != "valid"
        assert status(directory, clock, later) == "valid"
        assert valid_slots(directory, genuine) == 2
    # The lists state what the log took: the audit finds no other count.
    assert not [f for f in registry.audit(bundle=bundle).findings
                if "slots were taken" in f.detail]


def test_a_raised_counter_makes_no_slot_valid(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    first = issue_business_licence(registry)
    registry.publish(bundle)
    sql(registry, "UPDATE status_lists SET allocated = allocated + 1000")
    issue_business_licence(registry)  # takes counter 1001: 1,000 skipped
    registry.publish(bundle)
    assert valid_slots(bundle, first) == 2
    registry.publish(bundle, full=True)
    assert valid_slots(bundle, first) == 2


def test_a_list_shape_edited_in_the_database_is_published_as_the_log_has_it(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    certs = [issue_business_licence(registry) for _ in range(3)]
    registry.publish(bundle)
    sql(registry, "UPDATE status_lists SET size = size * 2")
    for report in both(registry, bundle):
        assert any("size or bits in the database differ" in a for a in report.alerts)
        assert all(status(bundle, clock, c) == "valid" for c in certs)
        assert valid_slots(bundle, certs[0]) == 3


def test_publication_entries_hidden_by_their_action_column_are_still_found(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # Found again at the sizes of the checkpoints and publications on record.
    bundle = tmp_path / "bundle"
    issue_business_licence(registry)
    registry.publish(bundle)
    forged = issued_by_a_planted_operator(registry, clock)
    drop_triggers(registry)
    sql(registry, "UPDATE log_entries SET action = 'certificate.qr' "
                  "WHERE action = 'registry.publish'")
    registry.publish(tmp_path / "new")
    assert status(tmp_path / "new", clock, forged) != "valid"


def test_too_many_runs_of_refused_slots_leave_issues_out_but_publication_goes_on(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ecert.registry import _publication

    monkeypatch.setattr(_publication, "MAX_HOLE_RANGES", 2)
    bundle = tmp_path / "bundle"
    first = issue_business_licence(registry)
    registry.publish(bundle)
    later = []
    for _ in range(3):  # each skipped counter a run of its own
        sql(registry, "UPDATE status_lists SET allocated = allocated + 1")
        later.append(issue_business_licence(registry))
    report = registry.publish(bundle)
    assert any("runs of slots refused or skipped" in a for a in report.alerts), report.alerts
    assert status(bundle, clock, first) == "valid"
    assert all(status(bundle, clock, c) != "valid" for c in later)
    registry.revoke(first.id, "unspecified")
    registry.publish(bundle, full=True)  # still publishes, revocations included
    assert status(bundle, clock, first) == "revoked"


def test_status_list_rows_edited_or_deleted_are_named(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    issue_business_licence(registry)
    registry.publish(bundle)
    sql(registry, "UPDATE status_lists SET allocated = size")
    opened = issue_business_licence(registry)  # list 2, not in any publication entry yet
    sql(registry, "UPDATE status_lists SET bits = 1 WHERE id = 2")
    registry.suspend(opened.id, "under review")
    with pytest.raises(ecert.PublishError) as refused:
        registry.publish(bundle)
    assert refused.value.code == "status_list_tampered"
    sql(registry, "UPDATE status_lists SET bits = 2 WHERE id = 2")
    for size in (2**30, 1000):  # refused before a permutation of that size is built
        sql(registry, "UPDATE status_lists SET size = :size WHERE id = 2", size=size)
        with pytest.raises(ecert.PublishError) as refused:
            registry.publish(bundle)
        assert refused.value.code == "status_list_tampered"
    sql(registry, "UPDATE status_lists SET size = 131072 WHERE id = 2")
    registry.publish(bundle)
    sql(registry, "DELETE FROM certificates")  # rows first: they name the lists
    sql(registry, "DELETE FROM status_lists")
    report = registry.publish(bundle)
    assert sum("the database has no such list" in a for a in report.alerts) == 2, \
        report.alerts


def test_a_database_rolled_back_under_a_published_directory_is_named(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    import sqlite3

    if registry.engine.dialect.name != "sqlite":
        pytest.skip("copies the database with SQLite's backup API")
    bundle = tmp_path / "bundle"
    cert = issue_business_licence(registry)
    registry.publish(bundle)
    saved = sqlite3.connect(":memory:")
    raw = registry.engine.raw_connection()
    try:
        raw.driver_connection.backup(saved)  # type: ignore[union-attr]
        registry.revoke(cert.id, "key-compromise")
        registry.publish(bundle)
        saved.backup(raw.driver_connection)  # type: ignore[arg-type]
    finally:
        raw.close()
    report = registry.publish(bundle)
    assert any("was the database rolled back" in a for a in report.alerts), report.alerts


def append_unit_again(registry: ecert.Registry, unit: int) -> None:
    """INSERT only (the triggers allow it): the rows of an earlier signed unit appended
    again at the end of the log, the ``log_size`` counter raised."""
    with registry.engine.begin() as conn:
        rows = conn.execute(text("SELECT leaf, action, subject, plain_subject, operator, at "
                                 "FROM log_entries WHERE unit = :u ORDER BY seq"),
                            {"u": unit}).all()
        seq = conn.execute(text("SELECT value FROM counters WHERE name = 'log_size'")
                           ).scalar_one()
        for i, r in enumerate(rows):
            conn.execute(text("INSERT INTO log_entries (seq, leaf, action, subject, "
                              "plain_subject, operator, unit, at) VALUES (:s, :l, :a, :sub, "
                              ":p, :o, :u, :at)"),
                         {"s": seq + i, "l": r.leaf, "a": r.action, "sub": r.subject,
                          "p": r.plain_subject, "o": r.operator, "u": seq, "at": r.at})
        conn.execute(text("UPDATE counters SET value = value + :n WHERE name = 'log_size'"),
                     {"n": len(rows)})


def test_a_signed_unit_appended_again_is_not_applied_again(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # A reinstatement copied after a later suspension (within the five minutes a unit may
    # run behind): its signature verifies, but the replay applied that unit before.
    bundle = tmp_path / "bundle"
    cert = issue_business_licence(registry)
    registry.suspend(cert.id, "first")
    registry.reinstate(cert.id)
    clock.advance(seconds=60)
    registry.suspend(cert.id, "again")
    registry.publish(bundle)
    (unit,) = units_of(registry, "plain_subject = :p AND action = 'certificate.reinstate'",
                       p=cert.id)
    append_unit_again(registry, unit)
    for report in both(registry, bundle):
        assert any("replayed_unit" in a for a in report.alerts), report.alerts
        assert status(bundle, clock, cert) == "suspended"
    assert "replayed_unit" in {f.kind for f in registry.audit(bundle=bundle).findings}
