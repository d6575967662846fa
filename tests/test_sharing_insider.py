"""The insider review of the sharing service (issue 10): an insider with the database, or
with the ``service`` operator's key, tries to release more than the log allows.

Each test names the defect it guards against; each refusal is at use time (the log is the
authority, the rows only its cache), and ``audit verify`` reports the edit afterwards.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text, update

import ecert
from ecert._storage.schema import consents, entitlements
from ecert.registry import _fetch, _sharing
from tests.support import FakeClock
from tests.support.registries import as_operator
from tests.support.sharing_registry import (
    HOLDER,
    LICENCE,
    SECOND_ISSUER,
    Sharing,
    licence_of_second_issuer,
)

OTHER_HOLDER = "91440300MA5F3K2L9X"
PURPOSE = "跨省迁移登记"


def kinds(report: ecert.AuditReport) -> set[str]:
    return {f.kind for f in report.findings}


def run(registry: ecert.Registry, statement: Any) -> None:
    with registry.engine.begin() as conn:
        conn.execute(statement)


# -- 1. single use, revocation and every other term of a consent, by the log -------------------


def test_a_spent_consent_whose_used_at_was_cleared_is_refused(
        sharing: Sharing, registry: ecert.Registry) -> None:
    given = sharing.consent()
    assert sharing.fetch(consent=given.code).granted
    run(registry, update(consents).where(consents.c.id == given.id).values(used_at=None))
    # The row says open; the log holds its spend: refused, before any audit.
    assert sharing.fetch(consent=given.code).problem == "consent_invalid"
    # Even with the use record deleted too (the log's own index still names the consent).
    run(registry, text("DELETE FROM uses"))
    assert sharing.fetch(consent=given.code).problem == "consent_invalid"
    assert "record_modified" in kinds(registry.audit())


def test_a_revoked_consent_whose_revoked_at_was_cleared_is_refused(
        sharing: Sharing, registry: ecert.Registry) -> None:
    given = sharing.consent()
    sharing.clerk.consent_revoke(given.id)
    run(registry, update(consents).where(consents.c.id == given.id).values(revoked_at=None))
    assert sharing.fetch(consent=given.code).problem == "consent_invalid"
    # Nor can it be revoked "again" (which would log a second revocation).
    with pytest.raises(ecert.InvalidTransition):
        sharing.clerk.consent_revoke(given.id)
    assert "record_modified" in kinds(registry.audit())


def _other_holder(registry: ecert.Registry) -> str:
    return registry.holder_pseudonym(OTHER_HOLDER)


# (column edit, the fetch that the edit would release) for each term a consent binds.
TERMS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("expires_at", {"expires_at": 99_999_999_999}, {}),
    ("holder", {"holder": _other_holder}, {"holder": OTHER_HOLDER}),
    ("requester", {"requester": "ZJ/zj-psb-traffic"}, {"requester": "ZJ/zj-psb-traffic"}),
    ("types", {"types": [LICENCE, "cn.food-business-licence"]},
     {"types": (LICENCE, "cn.food-business-licence")}),
    ("purpose", {"purpose": "其他事由"}, {"purpose": "其他事由"}),
]


@pytest.mark.parametrize(("column", "values", "fetch"), TERMS, ids=[t[0] for t in TERMS])
def test_a_consent_term_edited_in_the_database_releases_nothing(
        sharing: Sharing, registry: ecert.Registry, clock: FakeClock, column: str,
        values: dict[str, Any], fetch: dict[str, Any]) -> None:
    # Entitlements that would cover the widened fetch, so only the consent stands between.
    registry.share_allow("ZJ", [LICENCE, "cn.food-business-licence"], [PURPOSE, "其他事由"])
    given = sharing.consent(ttl=60)
    if column == "expires_at":
        clock.advance(seconds=61)
    row = {k: v(registry) if callable(v) else v for k, v in values.items()}
    run(registry, update(consents).where(consents.c.id == given.id).values(**row))
    assert sharing.fetch(consent=given.code, **fetch).problem == "consent_invalid"
    assert "record_modified" in kinds(registry.audit())


def test_a_consent_widened_to_another_agency_releases_nothing(
        sharing: Sharing, registry: ecert.Registry) -> None:
    other = licence_of_second_issuer(registry)
    given = sharing.consent()
    run(registry, update(consents).where(consents.c.id == given.id).values(
        scope=[["gd-amr", LICENCE], [SECOND_ISSUER, LICENCE]]))
    assert sharing.fetch(consent=given.code).problem == "consent_invalid"
    run(registry, update(consents).where(consents.c.id == given.id).values(scope=None))
    assert sharing.fetch(consent=given.code).problem == "consent_invalid"
    run(registry, update(consents).where(consents.c.id == given.id).values(
        scope=[["gd-amr", LICENCE]]))
    copies = sharing.fetch(consent=given.code).copies
    assert [c.copy_of for c in copies] == [sharing.licence.id] and other.id != \
        sharing.licence.id


# (column edit, fetch) for each term of an entitlement the decision depends on.
ENTITLEMENT_TERMS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("requester", {"requester": "ZJ"}, {"requester": "ZJ/zj-psb-traffic"}),
    ("types", {"types": [LICENCE, "cn.food-business-licence"]},
     {"types": ("cn.food-business-licence",)}),
    ("purposes", {"purposes": [PURPOSE, "其他事由"]}, {"purpose": "其他事由"}),
    ("without_consent", {"without_consent": 1}, {}),
    ("claims", {"claims": None}, {}),
    ("valid_until", {"valid_until": None}, {}),
]


@pytest.mark.parametrize(("column", "values", "fetch"), ENTITLEMENT_TERMS,
                         ids=[t[0] for t in ENTITLEMENT_TERMS])
def test_an_entitlement_term_edited_in_the_database_releases_nothing(
        sharing: Sharing, registry: ecert.Registry, column: str, values: dict[str, Any],
        fetch: dict[str, Any]) -> None:
    (given,) = [e for e in registry.share_list().items if e.requester == "ZJ/zj-amr"]
    assert given.claims is not None  # the sample's hands out some claims only
    if column == "valid_until":
        registry.share_revoke(given.id)
    run(registry, update(entitlements).where(entitlements.c.id == given.id).values(**values))
    result = sharing.fetch(**fetch)  # no consent: by statute only if the edit counted
    assert not result.granted and result.problem in ("not_entitled", "purpose_not_permitted")
    if column == "claims":  # with a consent: the edited row is not believed at all
        assert sharing.fetch(consent=sharing.consent().code).problem == "not_entitled"
    assert "record_modified" in kinds(registry.audit())


# -- 4. a consent is the act of the operator who signs it, in their channel's role -----------


def test_the_service_cannot_grant_or_revoke_as_a_clerk(sharing: Sharing,
                                                       registry: ecert.Registry) -> None:
    with pytest.raises(ecert.PermissionDenied):
        sharing.service.consent_grant(HOLDER, "ZJ/zj-amr", [LICENCE], PURPOSE)
    assert registry.events()[-1].action == "access.refused"
    given = sharing.consent()
    with pytest.raises(ecert.PermissionDenied):  # at the window: a clerk's act
        sharing.service.consent_revoke(given.id)
    sharing.service.consent_revoke(given.id, holder_id=HOLDER)  # for the holder: its own
    with pytest.raises(ecert.PermissionDenied):  # a clerk never acts as the holder
        sharing.clerk.consent_grant_by_holder(HOLDER, "ZJ/zj-amr", [LICENCE], PURPOSE)
    assert registry.audit().intact


def test_a_clerk_grant_signed_by_the_service_is_an_audit_finding(
        sharing: Sharing, registry: ecert.Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """The insider holds the service's key and runs a registry whose channel rule was
    removed: the grant is made, but the replay judges it by the log's rules."""
    monkeypatch.setitem(_sharing.CHANNEL_ROLES, _sharing.CLERK_CHANNEL, ecert.Role.SERVICE)
    sharing.service.consent_grant(HOLDER, "ZJ/zj-amr", [LICENCE], PURPOSE)
    monkeypatch.undo()
    findings = registry.audit().findings
    grant = [e for e in registry.events() if e.action == "consent.grant"][-1]
    (finding,) = [f for f in findings if f.kind == "no_authority"]
    assert finding.seq == grant.seq and "clerk channel" in finding.detail
    # Its effects are not applied: the row is one no authorized entry made.
    assert {f.kind for f in findings} == {"no_authority", "consent_unlogged"}


# -- 5. a clerk's consent releases only their agencies' certificates --------------------------


def test_a_clerks_consent_releases_only_their_agencies_certificates(
        sharing: Sharing, registry: ecert.Registry) -> None:
    other = licence_of_second_issuer(registry)
    given = sharing.consent()  # by clerk-amr, scoped to gd-amr
    (consent,) = [c for c in registry.consents(HOLDER) if c.id == given.id]
    assert consent.scope == (("gd-amr", LICENCE),)
    grant = [e for e in registry.events() if e.action == "consent.grant"][-1]
    assert grant.details["scope"] == [["gd-amr", LICENCE]] and grant.details["version"] == 2
    copies = sharing.fetch(consent=given.code).copies
    assert [c.copy_of for c in copies] == [sharing.licence.id]
    # The holder's own consent (through the service) releases every agency's.
    own = sharing.service.consent_grant_by_holder(HOLDER, "ZJ/zj-amr", [LICENCE], PURPOSE)
    assert {c.copy_of for c in sharing.fetch(consent=own.code).copies} == {
        sharing.licence.id, other.id}
    # A check on a clerk's consent does not match another agency's certificate either.
    check = sharing.check({"certificate_id": other.id}, consent=sharing.consent().code)
    assert check.granted and not check.match
    assert registry.audit().intact


def test_a_clerk_of_both_agencies_releases_both(sharing: Sharing, registry: ecert.Registry,
                                                clock: FakeClock) -> None:
    other = licence_of_second_issuer(registry)
    registry.add_operator("clerk-both", roles=["clerk"], agencies=["gd-amr", SECOND_ISSUER],
                          passphrase="clerk both passphrase")
    with as_operator(registry, "clerk-both", "clerk both passphrase", clock) as clerk:
        given = clerk.consent_grant(HOLDER, "ZJ/zj-amr", [LICENCE], PURPOSE)
    (consent,) = [c for c in registry.consents(HOLDER) if c.id == given.id]
    assert consent.scope == (("gd-amr", LICENCE), (SECOND_ISSUER, LICENCE))
    assert {c.copy_of for c in sharing.fetch(consent=given.code).copies} == {
        sharing.licence.id, other.id}


# -- 2. audit replay judges every use by what the log had in force at its time ---------------


def _serve_anything(monkeypatch: pytest.MonkeyPatch, consent_id: str | None = None,
                    by_statute: bool = False) -> None:
    """The insider runs the service with its key and a fetch that decides nothing: every
    request is granted, on ``consent_id`` or by statute, whatever the log says."""
    def decide(unit: Any, p: Any, gate: Any = None) -> Any:
        return _fetch._Decision(None, {t: None for t in p["types"]}, consent_id, by_statute)

    monkeypatch.setattr(_fetch, "_decide", decide)


def _use_findings(registry: ecert.Registry) -> list[tuple[str, str]]:
    return [(f.kind, f.detail) for f in registry.audit().findings]


@pytest.mark.parametrize(("fetch", "statute", "kind", "detail"), [
    ({"requester": "ZJ/zj-psb-traffic"}, True, "use_unauthorized", "no entitlement"),
    ({"purpose": "其他事由"}, True, "use_unauthorized", "no entitlement"),
    ({}, True, "use_unauthorized", "no entitlement for cn.business-licence was without"),
    ({"types": ("cn.food-business-licence",)}, True, "use_unauthorized", "no entitlement"),
], ids=["requester", "purpose", "by-statute", "type"])
def test_a_use_no_entitlement_covered_is_an_audit_finding(
        sharing: Sharing, registry: ecert.Registry, monkeypatch: pytest.MonkeyPatch,
        fetch: dict[str, Any], statute: bool, kind: str, detail: str) -> None:
    _serve_anything(monkeypatch, by_statute=statute)
    assert sharing.fetch(**fetch).granted
    monkeypatch.undo()
    assert [(k, d) for k, d in _use_findings(registry) if k == kind and detail in d]


@pytest.mark.parametrize(("fetch", "detail"), [
    ({"requester": "ZJ/zj-psb-traffic"}, "another holder, requester or purpose"),
    ({"purpose": "其他事由"}, "another holder, requester or purpose"),
    ({"holder": OTHER_HOLDER}, "another holder, requester or purpose"),
    ({"types": ("cn.food-business-licence",)}, "types its consent does not name"),
], ids=["requester", "purpose", "holder", "type"])
def test_a_use_outside_its_consent_is_found_by_the_replay_alone(
        sharing: Sharing, registry: ecert.Registry, monkeypatch: pytest.MonkeyPatch,
        fetch: dict[str, Any], detail: str) -> None:
    """The use entry (version 2) repeats its consent's salted commitments, so a replay
    without the commitment key — a monitor of the public log — sees the departure too."""
    registry.share_allow("ZJ", [LICENCE, "cn.food-business-licence"], [PURPOSE, "其他事由"])
    given = sharing.consent()
    _serve_anything(monkeypatch, consent_id=given.id)
    assert sharing.fetch(**fetch).granted
    monkeypatch.undo()
    from ecert._replay import Replay

    replay = Replay()
    with registry.engine.begin() as conn:
        replay.apply_leaves((int(s), bytes(leaf)) for s, leaf in conn.execute(
            text("SELECT seq, leaf FROM log_entries ORDER BY seq")))
    assert [f for f in replay.findings if f.kind == "invalid_transition" and detail in f.detail]
    assert ("use_unauthorized", "granted for another holder, requester, purpose or type "
            "than its consent's") in _use_findings(registry)


def test_a_consent_used_twice_or_after_expiry_is_an_audit_finding(
        sharing: Sharing, registry: ecert.Registry, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spent = sharing.consent()
    assert sharing.fetch(consent=spent.code).granted
    _serve_anything(monkeypatch, consent_id=spent.id)
    assert sharing.fetch().granted
    late = sharing.consent(ttl=60)
    clock.advance(seconds=60)
    _serve_anything(monkeypatch, consent_id=late.id)
    assert sharing.fetch().granted
    monkeypatch.undo()
    found = [f for f in registry.audit().findings if f.kind == "invalid_transition"]
    assert len(found) == 2 and all("not open" in f.detail for f in found)


def test_a_spend_hidden_from_the_logs_index_is_an_audit_finding(
        sharing: Sharing, registry: ecert.Registry) -> None:
    """The limit of the use-time check: an insider who drops the append-only trigger and
    clears the entry's ``ref`` (and the row's ``used_at``) gets the consent used again —
    and the audit reports the edited lookup column and the second use of the consent."""
    given = sharing.consent()
    assert sharing.fetch(consent=given.code).granted
    dialect = registry.engine.dialect.name
    with registry.engine.begin() as conn:
        if dialect == "postgresql":
            conn.execute(text("ALTER TABLE log_entries DISABLE TRIGGER "
                              "log_entries_append_only"))
        else:
            conn.execute(text("DROP TRIGGER log_entries_no_update"))
        conn.execute(text("UPDATE log_entries SET ref = NULL"))
        if dialect == "postgresql":
            conn.execute(text("ALTER TABLE log_entries ENABLE TRIGGER "
                              "log_entries_append_only"))
        conn.execute(update(consents).values(used_at=None))
    assert sharing.fetch(consent=given.code).granted
    found = kinds(registry.audit())
    assert {"entry_modified", "invalid_transition"} <= found


# -- the version 2 use entry, read from anyone's log ------------------------------------------

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@given(copies=_JSON, terms=_JSON, outcome=st.sampled_from(["granted", "refused"]),
       consent=st.sampled_from([None, "by statute", "c:abc"]), version=_JSON)
def test_a_use_entry_of_any_shape_is_applied_or_reported_never_crashes(
        copies: Any, terms: Any, outcome: str, consent: str | None, version: Any) -> None:
    """Whatever a (public) log's use entry says in its version 2 members, the replay
    either applies it or reports it as malformed: it never raises."""
    from ecert._formats.log import Entry
    from ecert._replay import ConsentState, Replay

    replay = Replay()
    replay.consents["c:abc"] = ConsentState("h", "r", ("t",), "p", 10**10, "clerk")
    details = {"holder": "c:h", "requester": "c:r", "certificates": ["c:x"],
               "consent": consent, "outcome": outcome,
               "problem": None if outcome == "granted" else "not_entitled", "types": ["t"],
               "request": "c:q", "response": None, "record": "c:w", "version": version,
               "copies": copies, "terms": terms}
    entry = Entry(100, "share.fetch", "c:use", "op", details)
    replay._effect(7, entry, None)  # type: ignore[arg-type]  # no operator needed here
    for finding in replay.findings:
        assert finding.kind in ("entry_malformed", "invalid_transition")
    well_formed = (version == 2 and isinstance(copies, list)
                   and all(isinstance(c, str) and c for c in copies)
                   and (not copies or (outcome == "granted" and len(copies) == 1)))
    if not well_formed:
        assert replay.findings and "c:use" not in replay.uses


def test_consent_list_shows_the_agencies_a_consent_releases(
        sharing: Sharing, registry: ecert.Registry, cli_as_admin: Any) -> None:
    given = sharing.consent()
    listed = cli_as_admin(registry, "consent", "list", "--holder-id", HOLDER)
    (line,) = [x for x in listed.stdout.splitlines() if given.id in x]
    assert line.endswith("  gd-amr")
    (item,) = [c for c in json.loads(cli_as_admin(registry, "--json", "consent", "list",
                                                  "--holder-id", HOLDER).stdout)
               if c["id"] == given.id]
    assert item["scope"] == [["gd-amr", LICENCE]]


def test_migration_0011_marks_the_spends_made_before_it(
        sharing: Sharing, registry: ecert.Registry) -> None:
    """A registry upgraded to 0011 knows by the log which consents were spent before."""
    from alembic import command

    from ecert._storage.database import WRITE, _alembic_config

    given = sharing.consent()
    assert sharing.fetch(consent=given.code).granted
    other = sharing.consent()  # granted before 0011: no scope
    config = _alembic_config()
    for target in ("0010", "head"):
        with registry.engine.execution_options(**WRITE).begin() as conn:
            config.attributes["connection"] = conn
            (command.downgrade if target == "0010" else command.upgrade)(config, target)
    with registry.engine.begin() as conn:
        refs = [r for (r,) in conn.execute(text(
            "SELECT ref FROM log_entries WHERE ref IS NOT NULL"))]
    assert refs == [given.id]
    run(registry, update(consents).values(used_at=None))
    assert sharing.fetch(consent=given.code).problem == "consent_invalid"
    # A consent of version 2 whose row lost its scope in the downgrade is not believed;
    # the audit says why (the row differs from the log).
    assert sharing.fetch(consent=other.code).problem == "consent_invalid"
    found = kinds(registry.audit())
    assert "record_modified" in found and "trigger_missing" not in found  # put back


# -- the hourly limits, by the log ------------------------------------------------------------


def _into_a_window(clock: FakeClock, seconds: int) -> None:
    """Move the clock to ``seconds`` into the next hourly window of the limits."""
    from ecert._clock import now_seconds
    from ecert.registry._limits import WINDOW

    now = now_seconds(clock)
    clock.advance(seconds=WINDOW - now % WINDOW + seconds)


def test_requests_granted_past_a_lowered_hourly_count_are_an_audit_finding(
        sharing: Sharing, registry: ecert.Registry, clock: FakeClock) -> None:
    """The counts the limits are enforced with are bookkeeping outside the log: an insider
    who lowers them lets a requester past its limit, and the log's granted uses show it."""
    registry.set_share_limits(fetches_per_hour=3)
    _into_a_window(clock, 600)

    def fetch(case: str) -> ecert.registry.FetchResult:
        return sharing.fetch("GD/gd-hrss", purpose="社会保险登记", case=case)

    assert all(fetch(f"C-{i}").granted for i in range(3))
    assert fetch("C-3").problem == "too_many_requests"
    assert "over_limit" not in kinds(registry.audit())  # at the limit: nothing to find
    run(registry, text("UPDATE request_counts SET count = 0"))
    assert fetch("C-4").granted  # the lowered count let a fourth through this hour
    found = [f for f in registry.audit().findings if f.kind == "over_limit"]
    assert [f.subject for f in found] == ["GD/gd-hrss fetch"]
    assert "at least 4 fetch requests granted" in found[0].detail
    # A limit raised within the hour is the limit of that hour: no false alarm.
    registry.set_share_limits(fetches_per_hour=10)
    assert "over_limit" not in kinds(registry.audit())


def test_a_request_counted_in_one_hour_and_logged_in_the_next_is_no_false_alarm(
        sharing: Sharing, registry: ecert.Registry, clock: FakeClock) -> None:
    """A request is counted a moment before its unit of work takes the time its use
    records: across a window's edge the two differ, and the audit must allow for it."""
    registry.set_share_limits(fetches_per_hour=2)
    _into_a_window(clock, 3599)  # the window's last second
    service = sharing.service
    execute = service._ctx.execute

    def late(operation: Any, params: Any) -> Any:  # a second passes after the count
        clock.advance(seconds=1)
        return execute(operation, params)

    service._ctx.execute = late  # type: ignore[method-assign]
    try:
        assert sharing.fetch("GD/gd-hrss", purpose="社会保险登记", case="A").granted
    finally:
        service._ctx.execute = execute  # type: ignore[method-assign]
    for case in "BC":  # the new window's two
        assert sharing.fetch("GD/gd-hrss", purpose="社会保险登记", case=case).granted
    assert sharing.fetch("GD/gd-hrss", purpose="社会保险登记", case="D").problem == (
        "too_many_requests")
    assert "over_limit" not in kinds(registry.audit())
