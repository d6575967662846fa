"""Operators, roles, four-eyes approval and the one path every change takes (issue 7).

Registries come from the support factory: the default operator is the registry's first
admin (every role); :func:`as_operator` opens the same registry as someone else.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

import ecert
from ecert._formats.log import Entry, verify_unit
from ecert._replay import Replay
from tests.support import (
    OPERATOR,
    PASSPHRASE,
    FakeClock,
    as_operator,
    issue_business_licence,
)

CLERK_PASS = "clerk passphrase"
OFFICER_PASS = "officer passphrase"


def leaves(registry: ecert.Registry) -> list[tuple[int, bytes]]:
    return [(e.seq, e.leaf) for e in registry.events(limit=100_000)]


def replay(registry: ecert.Registry) -> Replay:
    result = Replay()
    result.apply_leaves(leaves(registry))
    return result


def refused_count(registry: ecert.Registry) -> int:
    with registry.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT value FROM counters WHERE name = 'refused_unauthenticated'")).scalar_one())


@pytest.fixture
def staff(registry: ecert.Registry, clock: FakeClock) -> Iterator[dict[str, ecert.Registry]]:
    """A clerk of gd-amr, an officer, a second officer, opened as themselves."""
    registry.add_operator("clerk-amr", roles=["clerk"], agencies=["gd-amr"],
                          passphrase=CLERK_PASS)
    registry.add_operator("officer-1", roles=["officer"], passphrase=OFFICER_PASS)
    registry.add_operator("officer-2", roles=["officer"], passphrase=OFFICER_PASS)
    opened = {"clerk": as_operator(registry, "clerk-amr", CLERK_PASS, clock),
              "officer1": as_operator(registry, "officer-1", OFFICER_PASS, clock),
              "officer2": as_operator(registry, "officer-2", OFFICER_PASS, clock)}
    yield opened
    for other in opened.values():
        other.close()


# -- the one path ----------------------------------------------------------------------------


def test_every_change_is_one_signed_unit_in_the_log(registry: ecert.Registry) -> None:
    before = len(registry.events(limit=100_000))
    cert = issue_business_licence(registry)
    registry.suspend(cert.id)
    registry.reinstate(cert.id)
    registry.revoke(cert.id, "superseded")
    entries = registry.events(limit=100_000)[before:]
    assert [e.action for e in entries] == [
        "certificate.issue", "certificate.suspend", "certificate.reinstate",
        "certificate.revoke"]
    assert {e.operator for e in entries} == {OPERATOR}
    assert all(e.subject == cert.id for e in entries)
    # Each entry is a unit of its own, signed by the operator's registered key.
    admin = next(o for o in registry.operators() if o.name == OPERATOR)
    for e in entries:
        decoded = Entry.decode(e.leaf)
        assert decoded.sig is not None and decoded.operator == admin.kid
        assert verify_unit([decoded], admin.public_jwk)
        # The public leaf never names the certificate in clear.
        assert cert.id.encode() not in e.leaf and decoded.subject.startswith("c:")
    assert replay(registry).findings == []


def test_no_operator_changes_nothing_and_is_counted(registry: ecert.Registry,
                                                    clock: FakeClock) -> None:
    anonymous = as_operator(registry, None, None, clock)
    before = len(registry.events(limit=100_000))
    counted = refused_count(registry)
    with anonymous, pytest.raises(ecert.NotAuthenticated):
        issue_business_licence(anonymous)
    assert registry.count() == 0
    assert len(registry.events(limit=100_000)) == before  # counted, not logged
    assert refused_count(registry) == counted + 1


@pytest.mark.parametrize("case", ["unknown", "wrong-passphrase", "disabled"])
def test_unauthenticated_operators_are_refused(registry: ecert.Registry, clock: FakeClock,
                                               case: str) -> None:
    registry.add_operator("clerk-amr", roles=["clerk"], passphrase=CLERK_PASS)
    if case == "disabled":
        registry.disable_operator("clerk-amr")
    name = "nobody" if case == "unknown" else "clerk-amr"
    passphrase = "wrong" if case == "wrong-passphrase" else CLERK_PASS
    with as_operator(registry, name, passphrase, clock) as other, \
            pytest.raises(ecert.NotAuthenticated):
        issue_business_licence(other)
    assert registry.count() == 0


def test_roles_are_scoped_to_agencies_and_refusals_are_logged(
        registry: ecert.Registry, staff: dict[str, ecert.Registry]) -> None:
    clerk = staff["clerk"]
    cert = issue_business_licence(clerk)
    assert cert.agency_code == "gd-amr"
    with pytest.raises(ecert.PermissionDenied, match="gd-hrss"):
        clerk.issue("cn.professional-qualification", "gd-hrss", holder_id="440106199502281567",
                    holder_name="y", claims={})
    with pytest.raises(ecert.PermissionDenied, match="revoke"):
        clerk.revoke(cert.id, "unspecified")
    refusals = [e for e in registry.events(limit=100_000) if e.action == "access.refused"]
    assert [(e.operator, e.details["action"]) for e in refusals] == [
        ("clerk-amr", "certificate.issue"), ("clerk-amr", "certificate.revoke")]
    assert registry.get(cert.id).status is ecert.CertificateStatus.VALID
    staff["officer1"].revoke(cert.id, "unspecified")
    assert registry.get(cert.id).status is ecert.CertificateStatus.REVOKED
    assert replay(registry).findings == []


@pytest.mark.parametrize("holder_id", ["440106199502281567", "not an id", "440106199502281568"])
def test_a_refused_operator_is_refused_whatever_their_holder_id(
        registry: ecert.Registry, staff: dict[str, ecert.Registry], holder_id: str) -> None:
    """The holder id is checked after authorization: an operator who may not issue the
    type learns nothing of the id's validity, and their attempt is logged as refused."""
    with pytest.raises(ecert.PermissionDenied, match="gd-hrss"):
        staff["clerk"].issue("cn.professional-qualification", "gd-hrss", holder_id=holder_id,
                             holder_name="y", claims={})
    refusals = [e for e in registry.events(limit=100_000) if e.action == "access.refused"]
    assert [(e.operator, e.details["action"]) for e in refusals] == [
        ("clerk-amr", "certificate.issue")]
    assert replay(registry).findings == []


def test_an_agency_not_allowed_a_type_stays_an_input_error(
        staff: dict[str, ecert.Registry]) -> None:
    with pytest.raises(ecert.NotAuthorized) as caught:
        staff["clerk"].issue("cn.professional-qualification", "gd-amr",
                             holder_id="440106199502281567",
                             holder_name="y", claims={})
    assert isinstance(caught.value, ecert.InputError)
    assert not isinstance(caught.value, ecert.AccessError)


def test_recognition_needs_a_trust_admin(registry: ecert.Registry, make_registry,
                                         staff: dict[str, ecert.Registry]) -> None:
    zj = make_registry("ZJ")
    with pytest.raises(ecert.PermissionDenied):
        staff["clerk"].recognize(zj.anchor(), {"zj.spjyxkz": "cn.food-business-licence"})
    assert registry.agreements() == []
    registry.recognize(zj.anchor(), {"zj.spjyxkz": "cn.food-business-licence"})
    assert [a.region for a in registry.agreements()] == ["ZJ"]


# -- four eyes -------------------------------------------------------------------------------


def test_four_eyes_revocation(registry: ecert.Registry, staff: dict[str, ecert.Registry],
                              clock: FakeClock) -> None:
    registry.set_policy("certificate.revoke", approvals=2, type_code="cn.business-licence")
    cert = issue_business_licence(staff["clerk"])
    with pytest.raises(ecert.PendingApproval) as pending:
        staff["officer1"].revoke(cert.id, "privilege-withdrawn")
    request = pending.value.request
    assert (request.action, request.subject, request.requested_by) == (
        "certificate.revoke", cert.id, "officer-1")
    assert request.expires_at - request.created_at == timedelta(hours=72)
    assert registry.get(cert.id).status is ecert.CertificateStatus.VALID
    with pytest.raises(ecert.PermissionDenied, match="another operator"):
        staff["officer1"].approve(request.id)
    with pytest.raises(ecert.PermissionDenied):
        staff["clerk"].approve(request.id)  # no officer role
    assert [r.id for r in registry.requests(pending=True)] == [request.id]
    done = staff["officer2"].approve(request.id)
    assert done.status is ecert.RequestStatus.APPROVED and done.approved_by == ("officer-2",)
    after = registry.get(cert.id)
    assert after.status is ecert.CertificateStatus.REVOKED
    assert after.revocation_reason is ecert.RevocationReason.PRIVILEGE_WITHDRAWN
    with pytest.raises(ecert.InvalidTransition):
        staff["officer2"].approve(request.id)
    assert registry.requests(pending=True) == []
    assert replay(registry).findings == []


def test_parameters_edited_after_the_request_are_never_approved(
        registry: ecert.Registry, staff: dict[str, ecert.Registry]) -> None:
    """An insider who edits a pending request's parameters in the database (another
    reason, another certificate) cannot have the approver sign off what they never saw."""
    from sqlalchemy import update

    from ecert._storage.schema import requests

    registry.set_policy("certificate.revoke", approvals=2, type_code="cn.business-licence")
    cert = issue_business_licence(staff["clerk"])
    other = issue_business_licence(staff["clerk"])
    with pytest.raises(ecert.PendingApproval) as pending:
        staff["officer1"].revoke(cert.id, "privilege-withdrawn")
    request = pending.value.request
    with registry.engine.begin() as conn:
        params = dict(conn.execute(requests.select().where(
            requests.c.id == request.id)).one().params)
        conn.execute(update(requests).where(requests.c.id == request.id).values(
            params={**params, "id": other.id}))
    with pytest.raises(ecert.RecordTampered, match="parameters"):
        staff["officer2"].approve(request.id)
    assert {registry.get(c.id).status for c in (cert, other)} == {
        ecert.CertificateStatus.VALID}
    with registry.engine.begin() as conn:  # put back as logged: approvable again
        conn.execute(update(requests).where(requests.c.id == request.id).values(
            params=params))
    assert staff["officer2"].approve(request.id).status is ecert.RequestStatus.APPROVED
    assert registry.get(cert.id).status is ecert.CertificateStatus.REVOKED
    assert registry.get(other.id).status is ecert.CertificateStatus.VALID


def test_four_eyes_rejection_and_expiry(registry: ecert.Registry,
                                        staff: dict[str, ecert.Registry],
                                        clock: FakeClock) -> None:
    registry.set_policy("certificate.revoke", approvals=2)
    first, second = issue_business_licence(staff["clerk"]), issue_business_licence(
        staff["clerk"])
    with pytest.raises(ecert.PendingApproval) as a:
        staff["officer1"].revoke(first.id, "unspecified")
    with pytest.raises(ecert.PendingApproval) as b:
        staff["officer1"].revoke(second.id, "unspecified")
    rejected = staff["officer2"].reject(a.value.request.id, reason="wrong licence")
    assert rejected.status is ecert.RequestStatus.REJECTED and rejected.reason == "wrong licence"
    clock.advance(hours=73)
    with pytest.raises(ecert.InvalidTransition, match="expired"):
        staff["officer2"].approve(b.value.request.id)
    statuses = {r.id: r.status for r in registry.requests()}
    assert statuses == {a.value.request.id: ecert.RequestStatus.REJECTED,
                        b.value.request.id: ecert.RequestStatus.EXPIRED}
    assert {registry.get(c.id).status for c in (first, second)} == {
        ecert.CertificateStatus.VALID}
    assert replay(registry).findings == []


def test_with_two_admins_changing_who_may_act_needs_the_other(
        registry: ecert.Registry, clock: FakeClock) -> None:
    registry.add_operator("admin-2", roles=["admin"], passphrase="second admin")
    with pytest.raises(ecert.PendingApproval) as pending:
        registry.add_operator("puppet", roles=["officer"], passphrase="puppet")
    assert "puppet" not in {o.name for o in registry.operators()}
    with pytest.raises(ecert.PendingApproval):
        registry.set_policy("certificate.revoke", approvals=1)
    with as_operator(registry, "admin-2", "second admin", clock) as other:
        other.approve(pending.value.request.id)
    assert "puppet" in {o.name for o in registry.operators()}
    assert replay(registry).findings == []


def test_operator_keys_rotate_and_passphrases_change(registry: ecert.Registry,
                                                     clock: FakeClock) -> None:
    registry.add_operator("clerk-amr", roles=["clerk"], passphrase=CLERK_PASS)
    with as_operator(registry, "clerk-amr", CLERK_PASS, clock) as clerk:
        old = clerk.whoami().kid
        clerk.change_passphrase("new clerk passphrase")
        rotated = clerk.rotate_operator_key(passphrase="rotated passphrase")
        assert rotated.kid != old
        issue_business_licence(clerk)
    with as_operator(registry, "clerk-amr", "rotated passphrase", clock) as clerk:
        assert clerk.whoami().kid == rotated.kid
    with as_operator(registry, "clerk-amr", CLERK_PASS, clock) as clerk, \
            pytest.raises(ecert.NotAuthenticated):
        clerk.whoami()
    assert replay(registry).findings == []


def test_a_revocation_stays_published_after_its_officer_changed(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    # Publication judges each status change by the operator's key and grants at that
    # point of the log: a later key rotation, loss of the role or departure of the
    # officer leaves earlier revocations published.
    cert = issue_business_licence(registry)
    suspended = issue_business_licence(registry)
    registry.add_operator("officer-x", roles=["officer", "clerk"], passphrase=OFFICER_PASS)
    with as_operator(registry, "officer-x", OFFICER_PASS, clock) as officer:
        officer.revoke(cert.id, "privilege-withdrawn")
        officer.suspend(suspended.id)
        officer.rotate_operator_key(passphrase="rotated passphrase")
    registry.grant("officer-x", roles=["clerk"])
    registry.disable_operator("officer-x")
    for full in (False, True):
        report = registry.publish(tmp_path / "bundle", full=full)
        assert report.ok, report.alerts
        verifier = ecert.Verifier.from_bundle(tmp_path / "bundle", clock=clock)
        assert verifier.verify(cert.token).status == "revoked"
        assert verifier.verify(suspended.token).status == "suspended"


def test_changes_without_the_registry_passphrase_are_refused(registry: ecert.Registry,
                                                             clock: FakeClock) -> None:
    cert = issue_business_licence(registry)
    with as_operator(registry, OPERATOR, None, clock, registry_passphrase=None) as other, \
            pytest.raises(ecert.EcertError):
        other.revoke(cert.id, "unspecified")
    assert registry.get(cert.id).status is ecert.CertificateStatus.VALID


def test_published_log_checkpoint_verifies_and_matches_the_tiles(
        registry: ecert.Registry, tmp_path: Path) -> None:
    from ecert._formats import merkle, tiles
    from ecert._formats.note import VerifierKey, open_checkpoint
    from ecert.trust import load_trust_list

    issue_business_licence(registry)
    bundle = tmp_path / "bundle"
    report = registry.publish(bundle)
    assert report.ok, report.alerts
    trust = load_trust_list((bundle / "trustlist.jwt").read_text(), registry.anchor(),
                            now=int(registry._now()), grace=0)
    assert trust.log is not None and trust.log.size == report.log_size
    checkpoint, _note = open_checkpoint((bundle / "log/checkpoint").read_bytes(),
                                        [VerifierKey.parse(trust.log.key)],
                                        origin=trust.log.origin)
    assert checkpoint.size == report.log_size

    class Files:
        def read_tile(self, level: int, index: int, width: int) -> bytes:
            return (bundle / "log" / tiles.tile_path(level, index, width)).read_bytes()

    assert merkle.tile_root(checkpoint.size, Files()) == checkpoint.root
    bundled = tiles.decode_entry_bundle(
        (bundle / "log" / tiles.entries_path(0, checkpoint.size)).read_bytes())
    assert [merkle.leaf_hash(b) for b in bundled] == [
        merkle.leaf_hash(leaf) for _seq, leaf in leaves(registry)[:checkpoint.size]]


def test_an_operator_whose_key_is_held_elsewhere(registry: ecert.Registry,
                                                 clock: FakeClock) -> None:
    """A smart card or HSM: the registry only ever sees the public key and signatures."""
    from ecert.keys import LocalSigner, generate_private_key
    from tests.support import database_url_of

    card = LocalSigner(generate_private_key("Ed25519"))  # stands in for the card
    with pytest.raises(ecert.InputError):
        registry.add_operator("officer-card", roles=["officer"])  # neither key nor passphrase
    added = registry.add_operator("officer-card", roles=["officer"],
                                  public_jwk=card.public_jwk)
    assert added.kid == card.kid
    assert not (registry.home / "operators" / "officer-card").exists()
    cert = issue_business_licence(registry)
    with ecert.Registry.open(registry.home, database_url=database_url_of(registry),
                             passphrase=PASSPHRASE,
                             clock=clock,
                             operator=ecert.OperatorCredential("officer-card",
                                                               signer=card)) as other:
        other.revoke(cert.id, "unspecified")
    forged = LocalSigner(generate_private_key("Ed25519"))
    with ecert.Registry.open(registry.home, database_url=database_url_of(registry),
                             clock=clock, operator=ecert.OperatorCredential(
                                 "officer-card", signer=forged)) as other, \
            pytest.raises(ecert.NotAuthenticated):
        other.whoami()
    assert replay(registry).findings == []
