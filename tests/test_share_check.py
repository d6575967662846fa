"""The check (核验) and the sharing service's rate limits, on the registry side: what a
check answers and refuses, its use records and log entries, and the limits counted in the
database (shared by every worker)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import Result
from sqlalchemy import text

import ecert
from ecert.registry import _check
from ecert.sharing import CheckResult, Problem
from tests.support import FakeClock
from tests.support.registries import as_operator
from tests.support.sharing_registry import HOLDER, LICENCE, Sharing

#: The by-statute requester of the sample set-up (claims name, uscc, address).
STATUTE = "GD/gd-hrss"
STATUTE_PURPOSE = "社会保险登记"
NAME = "深圳市前海星河数字科技有限公司"

CliRun = Callable[..., Result]


def by_statute(sharing: Sharing, values: dict[str, str], **kwargs: str) -> _check.CheckOutcome:
    return sharing.check(values, STATUTE, purpose=STATUTE_PURPOSE, **kwargs)


def test_a_check_answers_whether_all_values_match(sharing: Sharing,
                                                  registry: ecert.Registry) -> None:
    licence = sharing.licence
    matching = [
        {"holder_id": HOLDER.lower(), "name": NAME},  # the holder id as typed
        {"certificate_id": licence.id},
        {"certificate_id": licence.id, "holder_id": HOLDER},
        {"holder_id": HOLDER, "uscc": HOLDER, "address": licence.claims["address"]},
    ]
    for values in matching:
        outcome = by_statute(sharing, values)
        assert (outcome.granted, outcome.match, outcome.consent) == (True, True, "by statute")
        assert outcome.answer() == CheckResult(True)
    not_matching = [
        {"holder_id": HOLDER, "name": NAME + "X"},  # one value wrong: one answer for all
        {"certificate_id": licence.id, "holder_id": "91440300MA5F3K2L9X"},  # another's
        {"certificate_id": licence.id.replace(".00000001.", ".00000099."), "name": NAME},
        {"holder_id": "91440300MA5F3K2L9X", "name": NAME},  # a holder with none
    ]
    for values in not_matching:
        outcome = by_statute(sharing, values)
        assert (outcome.granted, outcome.match, outcome.problem) == (True, False, None)
        assert outcome.answer() == CheckResult(False)
    registry.revoke(licence.id, "unspecified")
    assert not by_statute(sharing, {"certificate_id": licence.id}).match  # not valid now
    assert registry.audit().intact


def test_the_holders_name_needs_every_claim(sharing: Sharing, registry: ecert.Registry) -> None:
    values = {"certificate_id": sharing.licence.id, "holder_name": f" {NAME} "}
    assert by_statute(sharing, values).problem == "not_entitled"  # no copy carries it
    registry.share_allow("ZJ", [LICENCE], ["核验"])  # every claim, with consent
    code = sharing.consent(purpose="核验").code
    assert sharing.check(values, purpose="核验", consent=code).match


def test_a_check_is_refused_in_order(sharing: Sharing, registry: ecert.Registry) -> None:
    values = {"holder_id": HOLDER, "name": NAME}
    cases = [
        (sharing.check(values, "SH/sh-amr"), "not_entitled"),
        (sharing.check(values, type_code="cn.food-business-licence"), "not_entitled"),
        (sharing.check(values, purpose="市场营销"), "purpose_not_permitted"),
        # a claim the entitlement does not hand out is not checked either
        (by_statute(sharing, {**values, "legal_representative": "陈晓明"}), "not_entitled"),
        (sharing.check(values), "consent_required"),  # the entitlement needs consent
        (sharing.check(values, consent=sharing.consent(purpose="食品经营许可核发").code),
         "consent_invalid"),
    ]
    for outcome, problem in cases:
        assert (outcome.outcome, outcome.problem, outcome.match) == ("refused", problem, False)
        assert outcome.answer() == Problem.of(problem)
    for values in ({"name": NAME}, {}, {"holder_id": HOLDER, "bad name": "x"}):
        with pytest.raises(ecert.InputError):
            sharing.check(values)
    assert registry.audit().intact


def test_a_check_with_consent_spends_it(sharing: Sharing, registry: ecert.Registry) -> None:
    code = sharing.consent()
    outcome = sharing.check({"holder_id": HOLDER, "name": NAME}, consent=code.code)
    assert outcome.match and outcome.consent == code.id
    assert sharing.fetch(consent=code.code).problem == "consent_invalid"  # used once
    assert registry.audit().intact


def test_checks_are_use_records_and_private_log_entries(sharing: Sharing,
                                                        registry: ecert.Registry) -> None:
    outcome = by_statute(sharing, {"certificate_id": sharing.licence.id}, case="CHK-1")
    refused = sharing.check({"holder_id": HOLDER}, case="CHK-2")
    (second, first) = registry.uses(HOLDER).items
    assert (first.kind, first.id, first.outcome, first.certificates, first.consent) == (
        "check", outcome.use_id, "granted", (sharing.licence.id,), "by statute")
    assert (first.case, first.requester, first.types, first.response_hash) == (
        "CHK-1", STATUTE, (LICENCE,), _check.check_response_hash(True, None))
    assert (second.id, second.problem, second.certificates) == (
        refused.use_id, "consent_required", ())
    entries = [e for e in registry.events() if e.action == "share.check"]
    assert [(e.details["outcome"], e.details["kind"]) for e in entries] == [
        ("granted", "check"), ("refused", "check")]
    with registry.engine.begin() as conn:
        leaves = b"".join(bytes(r[0]) for r in conn.execute(
            text("SELECT leaf FROM log_entries WHERE action = 'share.check'")))
    for secret in (HOLDER, registry.holder_pseudonym(HOLDER), "gd-hrss", NAME,
                   sharing.licence.id, "CHK-1", "chk-CHK-1"):
        assert secret.encode() not in leaves
    assert registry.audit().intact
    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE uses SET kind = 'fetch'"))
    assert "record_modified" in {f.kind for f in registry.audit().findings}


def test_checks_per_subject_are_limited_per_requester(sharing: Sharing,
                                                     registry: ecert.Registry,
                                                     clock: FakeClock) -> None:
    registry.set_share_limits(checks_per_subject=3)
    for i in range(3):
        assert by_statute(sharing, {"holder_id": HOLDER, "name": f"guess {i}"}).granted
    # The fourth guess is refused, right or wrong: no oracle past the limit.
    assert by_statute(sharing, {"holder_id": HOLDER, "name": NAME}).problem == (
        "too_many_requests")
    # Counted per requester and subject: one requester cannot use up the subject's checks
    # for the others (each of whom needs the holder's single-use consent, or its own
    # entitlement by statute, to be answered at all).
    answered = sharing.check({"holder_id": HOLDER}, consent=sharing.consent().code)
    assert (answered.granted, answered.match) == (True, True)
    other = "91440300MA5F3K2L9X"
    assert by_statute(sharing, {"holder_id": other}).granted  # another subject
    # An unentitled requester does not use up its checks of the subject either.
    assert sharing.check({"holder_id": other}, "SH/sh-amr").problem == "not_entitled"
    clock.advance(hours=1)
    assert by_statute(sharing, {"holder_id": HOLDER, "name": NAME}).match
    assert registry.audit().intact


def test_a_check_of_any_subject_is_counted(sharing: Sharing, registry: ecert.Registry) -> None:
    """A subject is counted whatever its length (a submitted certificate id may be 1,000
    characters: more than a count's scope holds as text)."""
    registry.set_share_limits(checks_per_subject=1)
    long_id = "c" * _check.MAX_VALUE
    outcome = by_statute(sharing, {"certificate_id": long_id})
    assert (outcome.granted, outcome.match) == (True, False)
    assert by_statute(sharing, {"certificate_id": long_id}).problem == "too_many_requests"
    assert by_statute(sharing, {"certificate_id": long_id[:-1] + "d"}).granted


def test_requests_per_requester_are_limited(sharing: Sharing, registry: ecert.Registry,
                                            clock: FakeClock) -> None:
    assert registry.share_limits() == ecert.registry.ShareLimits()
    registry.set_share_limits(fetches_per_hour=2, checks_per_hour=1)
    assert registry.share_limits().fetches_per_hour == 2
    assert sharing.fetch(STATUTE, purpose=STATUTE_PURPOSE).granted
    assert sharing.fetch(STATUTE, purpose="市场营销").problem == "purpose_not_permitted"
    # Counted before anything is decided, refusals included; each recorded.
    limited = sharing.fetch(STATUTE, purpose=STATUTE_PURPOSE)
    assert (limited.problem, limited.copies) == ("too_many_requests", ())
    assert sharing.fetch().problem == "consent_required"  # another requester's budget
    assert by_statute(sharing, {"holder_id": HOLDER}).granted
    assert by_statute(sharing, {"holder_id": HOLDER}).problem == "too_many_requests"
    assert registry.uses(HOLDER).items[0].problem == "too_many_requests"
    assert sharing.fetch(consent="not a code").problem == "consent_invalid"  # counted
    clock.advance(hours=1)
    assert sharing.fetch(STATUTE, purpose=STATUTE_PURPOSE).granted
    assert registry.forget_nonces() == 0  # also drops the past windows' counts
    with registry.engine.begin() as conn:
        windows = conn.execute(text('SELECT DISTINCT "window" FROM request_counts')).all()
        failures = conn.execute(text("SELECT count(*) FROM consent_failures")).scalar_one()
    assert len(windows) == 1
    assert failures == 0  # the wrong codes' counts of past windows too
    assert registry.audit().intact


def test_limits_are_a_trust_admins_logged_setting(sharing: Sharing, registry: ecert.Registry,
                                                  clock: FakeClock) -> None:
    value = registry.set_share_limits(checks_per_hour=50)
    assert value == ecert.registry.ShareLimits(checks_per_hour=50)
    (entry,) = [e for e in registry.events() if e.action == "share.limits"]
    assert dict(entry.details) == value.to_json()
    for bad in ({"checks_per_hour": -1}, {"fetches_per_hour": True},
                {"checks_per_subject": 10**9}):
        with pytest.raises(ecert.InputError):
            registry.set_share_limits(**bad)  # type: ignore[arg-type]
    with pytest.raises(ecert.PermissionDenied):
        sharing.service.set_share_limits(fetches_per_hour=1)
    with as_operator(registry, "trust-b", "trust b pass", clock) as other:
        assert other.set_share_limits(fetches_per_hour=0).fetches_per_hour == 0
    assert sharing.fetch(STATUTE, purpose=STATUTE_PURPOSE).problem == "too_many_requests"
    assert registry.share_limits() == ecert.registry.ShareLimits(0, 50)
    assert registry.audit().intact


def test_limits_raised_in_the_database_change_nothing(sharing: Sharing,
                                                      registry: ecert.Registry) -> None:
    """The limits come from the newest share.limits entry of the log: a settings row an
    insider raises (to lift the bound on guessing through checks) is not believed."""
    from sqlalchemy import update

    from ecert._storage.schema import settings

    registry.set_share_limits(fetches_per_hour=0)
    with registry.engine.begin() as conn:
        conn.execute(update(settings).values(value={"fetches_per_hour": 10_000_000,
                                                    "checks_per_hour": 10_000_000}))
    assert registry.share_limits().fetches_per_hour == 0
    assert sharing.fetch(STATUTE, purpose=STATUTE_PURPOSE).problem == "too_many_requests"
    assert [f.subject for f in registry.audit().findings
            if f.kind == "record_modified"] == ["setting share.limits"]


def test_concurrent_workers_share_one_count(sharing: Sharing, registry: ecert.Registry) -> None:
    """Stateless workers share the database: of simultaneous fetches past the limit,
    exactly the limit get through."""
    registry.set_share_limits(fetches_per_hour=3)
    barrier = threading.Barrier(6)

    def worker(i: int) -> str | None:
        barrier.wait()
        return sharing.fetch(STATUTE, purpose=STATUTE_PURPOSE, case=f"CASE-{i}").problem

    with ThreadPoolExecutor(6) as pool:
        problems = list(pool.map(worker, range(6)))
    assert problems.count(None) == 3 and problems.count("too_many_requests") == 3
    assert registry.audit().intact


def test_limits_and_checks_on_the_cli(sharing: Sharing, registry: ecert.Registry,
                                      cli_as_admin: CliRun) -> None:
    shown = cli_as_admin(registry, "--json", "share", "limits")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == ecert.registry.ShareLimits().to_json()
    changed = cli_as_admin(registry, "--json", "share", "limits", "--checks-per-subject", "4")
    assert json.loads(changed.stdout)["checks_per_subject"] == 4
    assert registry.share_limits().checks_per_subject == 4
    assert cli_as_admin(registry, "share", "limits", "--fetches-per-hour", "-1").exit_code == 2
    human = cli_as_admin(registry, "share", "limits")
    assert "4 checks" in human.stdout
    by_statute(sharing, {"holder_id": HOLDER})
    listed = cli_as_admin(registry, "--json", "uses", "--holder-id", HOLDER)
    assert json.loads(listed.stdout)["items"][0]["kind"] == "check"
    assert "  check  " in cli_as_admin(registry, "uses", "--holder-id", HOLDER).stdout
