"""Renewal and reissue (issue 9, "Upkeep"): the successor from the stored claims, the
predecessor superseded in the same unit — at once or at the successor's start, which the
first publication after that instant shows with nobody acting; suspension reasons;
keyset pages and name search. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ecert
from ecert._formats.jose import parse_compact
from ecert._formats.statuslist import INVALID, VALID, read_status_list_payload
from ecert._merge_patch import merge_patch
from ecert._pagination import decode_cursor, encode_cursor
from ecert._replay import FindingKind
from ecert.registry._rules import list_id_of
from ecert_cli._render import claim_lines
from tests.support import issue_business_licence
from tests.support.clock import FakeClock
from tests.support.issuing import uscc
from tests.support.registries import as_operator

BL = "cn.business-licence"
CLERK_PASS = "clerk passphrase"

# -- RFC 7396 ------------------------------------------------------------------------------

#: RFC 7396 appendix A: (original, patch, result).
APPENDIX_A: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), APPENDIX_A)
def test_merge_patch_appendix_a(original: Any, patch: Any, result: Any) -> None:
    before = json.dumps(original)
    assert merge_patch(original, patch) == result
    assert json.dumps(original) == before  # the target is never changed


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=12)


@given(json_values, json_values)
def test_merge_patch_is_idempotent(target: Any, patch: Any) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


@given(st.lists(st.integers(-(1 << 63), (1 << 63) - 1) | st.text(max_size=20), max_size=4))
def test_cursor_round_trip(key: list[Any]) -> None:
    shape = [type(v) for v in key]
    assert decode_cursor(encode_cursor(key), shape) == tuple(key)


@pytest.mark.parametrize("value", [1 << 63, -(1 << 63) - 1, 10 ** 30])
def test_a_cursor_beyond_64_bits_is_an_input_error(value: int) -> None:
    """A database integer is 64 bits: a larger one would overflow in the query (a 500 on
    the holder channel's listing) instead of being the bad input it is."""
    with pytest.raises(ecert.InputError) as caught:
        decode_cursor(encode_cursor([value]), (int,))
    assert caught.value.code == "invalid_cursor"


@given(st.text(max_size=200))
def test_cursor_decoder_refuses_anything_else_with_an_input_error(text: str) -> None:
    try:
        decode_cursor(text, (int, str))
    except ecert.InputError as e:
        assert e.code == "invalid_cursor"


# -- helpers ---------------------------------------------------------------------------------


def published_status(registry: ecert.Registry, out: Path, cert: ecert.Certificate) -> int:
    """What the status list just published in ``out`` says of ``cert``."""
    registry.publish(out)
    path = out / "status" / f"{list_id_of(cert.status_list_uri)}.jwt"
    payload = parse_compact(path.read_text("ascii").strip(), max_bytes=1 << 24).payload
    return read_status_list_payload(payload).status_list[cert.status_index]


def token_payload(cert: ecert.Certificate) -> dict[str, Any]:
    return dict(parse_compact(cert.token, max_bytes=1 << 20).payload)


def intact(registry: ecert.Registry, bundle: Path | None = None) -> None:
    report = registry.audit(bundle=bundle)
    assert report.intact, report.findings


# -- renew and reissue -----------------------------------------------------------------------


def test_renew_supersedes_at_once_in_one_unit(registry: ecert.Registry, clock: FakeClock,
                                              tmp_path: Path) -> None:
    old = issue_business_licence(registry)
    clock.advance(days=30)
    new, replaced = registry.renew(old.id, valid_until=clock() + timedelta(days=400))
    assert replaced.id == old.id
    assert replaced.status is ecert.CertificateStatus.REVOKED
    assert replaced.revocation_reason is ecert.RevocationReason.SUPERSEDED
    assert new.status is ecert.CertificateStatus.VALID and new.supersedes == old.id
    assert token_payload(new)["supersedes"] == old.id
    assert (new.type_code, new.agency_code, new.holder, new.holder_name) == (
        old.type_code, old.agency_code, old.holder, old.holder_name)
    assert dict(new.claims) == dict(old.claims)
    assert new.valid_from == clock()
    events = registry.events_page(limit=100).items
    issue, supersede = events[-2], events[-1]
    assert (issue.action, supersede.action) == ("certificate.issue", "certificate.supersede")
    assert (issue.subject, supersede.subject) == (new.id, old.id)
    assert supersede.details["reason"] == "superseded" and "at" not in supersede.details
    assert issue.details["replaces"] == registry.commitment_opening(old.id)[0]
    assert published_status(registry, tmp_path / "www", old) == INVALID
    intact(registry, tmp_path / "www")
    with pytest.raises(ecert.InvalidTransition):
        registry.renew(old.id)  # a revoked certificate has no second successor


def test_renew_without_valid_until_takes_the_types_validity(registry: ecert.Registry) -> None:
    old = issue_business_licence(registry)
    new, _ = registry.renew(old.id)
    days = registry.get_type(BL).validity_days
    if days is None:
        assert new.valid_until is None
    else:
        assert new.valid_until == new.valid_from + timedelta(days=days)


def test_reissue_patches_the_claims_and_keeps_the_end(registry: ecert.Registry,
                                                       clock: FakeClock) -> None:
    old = issue_business_licence(registry, valid_until=clock() + timedelta(days=100))
    new, replaced = registry.reissue(old.id, claims_patch={"address": "广州市天河区1号",
                                                           "business_term_until": None})
    assert new.claims["address"] == "广州市天河区1号"
    assert "business_term_until" not in new.claims
    assert new.claims["uscc"] == old.claims["uscc"]
    assert new.valid_until == old.valid_until
    assert replaced.status is ecert.CertificateStatus.REVOKED
    intact(registry)


def test_a_patch_the_schema_refuses_changes_nothing(registry: ecert.Registry) -> None:
    old = issue_business_licence(registry)
    size = len(registry.events_page(limit=1000).items)
    with pytest.raises(ecert.ClaimsInvalid):
        registry.reissue(old.id, claims_patch={"uscc": None})
    with pytest.raises(ecert.ClaimsInvalid):
        registry.reissue(old.id, claims_patch={"unknown_field": 1})
    assert registry.get(old.id).status is ecert.CertificateStatus.VALID
    assert len(registry.events_page(limit=1000).items) == size
    assert registry.count() == 1


def test_suspended_certificates_are_not_renewed(registry: ecert.Registry) -> None:
    old = issue_business_licence(registry)
    registry.suspend(old.id, reason="under investigation")
    with pytest.raises(ecert.InvalidTransition, match="suspended"):
        registry.renew(old.id)


def test_at_start_revocation_appears_in_the_first_list_published_after_it(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    old = issue_business_licence(registry)
    start = clock() + timedelta(days=10)
    new, replaced = registry.renew(old.id, valid_from=start, at_start=True,
                                   valid_until=start + timedelta(days=365))
    assert replaced.status is ecert.CertificateStatus.VALID
    assert replaced.revoke_at == start and new.valid_from == start
    supersede = registry.events_page(limit=100).items[-1]
    assert supersede.details["at"] == int(start.timestamp())
    www = tmp_path / "www"
    assert published_status(registry, www, old) == VALID
    intact(registry, www)
    # A second supersession of the same certificate is refused while one is scheduled.
    with pytest.raises(ecert.InvalidTransition, match="superseded already"):
        registry.renew(old.id)

    clock.advance(days=10, seconds=-1)
    assert published_status(registry, www, old) == VALID
    assert registry.get(old.id).status is ecert.CertificateStatus.VALID
    clock.advance(seconds=1)  # the successor's start: nobody runs anything but publish
    assert published_status(registry, www, old) == INVALID
    assert published_status(registry, www, new) == VALID
    now_old = registry.get(old.id)
    assert now_old.status is ecert.CertificateStatus.REVOKED
    assert now_old.revocation_reason is ecert.RevocationReason.SUPERSEDED
    assert [c.id for c in registry.find(status="revoked")] == [old.id]
    assert [c.id for c in registry.find(status="valid")] == [new.id]
    # audit verify replays the schedule and judges each published list at its iat.
    intact(registry, www)
    with pytest.raises(ecert.InvalidTransition, match="revoked"):
        registry.suspend(old.id)
    registry.redact(old.id)  # lawful erasure works on the effective status
    intact(registry, www)


def test_scheduled_predecessor_can_still_be_revoked_or_suspended(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    old = issue_business_licence(registry)
    registry.renew(old.id, valid_from=clock() + timedelta(days=5), at_start=True)
    registry.suspend(old.id, reason="complaint received")
    clock.advance(days=6)
    # Suspended, then the scheduled revocation fell due: revoked wins.
    assert registry.get(old.id).status is ecert.CertificateStatus.REVOKED
    assert published_status(registry, tmp_path / "a", old) == INVALID
    intact(registry, tmp_path / "a")

    other = issue_business_licence(registry, holder_id=uscc(4242, "91110108MA"))
    registry.renew(other.id, valid_from=clock() + timedelta(days=5), at_start=True)
    revoked = registry.revoke(other.id, "key-compromise")  # at once, overtaking the schedule
    assert revoked.revocation_reason is ecert.RevocationReason.KEY_COMPROMISE
    assert revoked.revoke_at is None
    clock.advance(days=6)
    assert registry.get(other.id).revocation_reason is ecert.RevocationReason.KEY_COMPROMISE
    intact(registry, None)


def test_a_clerk_renews_without_an_officer(registry: ecert.Registry, clock: FakeClock,
                                           tmp_path: Path) -> None:
    registry.add_operator("clerk-amr", roles=["clerk"], agencies=["gd-amr"], types=[BL],
                          passphrase=CLERK_PASS)
    old = issue_business_licence(registry)
    with as_operator(registry, "clerk-amr", CLERK_PASS, clock) as clerk:
        with pytest.raises(ecert.PermissionDenied):
            clerk.revoke(old.id, "superseded")  # revoking alone stays an officer's
        new, _replaced = clerk.renew(old.id, at_start=True,
                                    valid_from=clock() + timedelta(days=1))
        assert new.supersedes == old.id
    clock.advance(days=2)
    assert published_status(registry, tmp_path / "www", old) == INVALID
    intact(registry, tmp_path / "www")


def test_replay_refuses_a_supersession_without_its_successor(registry: ecert.Registry) -> None:
    """The permission to supersede comes only from issuing the successor in the unit."""
    from ecert._authority import Action, Resource
    from ecert.registry import _lifecycle
    from ecert.registry._core import Operation, Target

    old = issue_business_licence(registry)

    def apply(unit: Any, p: Any) -> None:
        _lifecycle.supersede(unit, unit.repo.get_certificate(p["id"], for_update=True), None)

    lone = Operation(Action.CERT_ISSUE, lambda _r, p: Target(
        Resource(old.agency_code, old.type_code), p["id"]), apply)
    registry._ctx.execute(lone, {"id": old.id})
    kinds = {f.kind for f in registry.audit().findings}
    assert FindingKind.NO_AUTHORITY in kinds


# -- reasons, pages, names -------------------------------------------------------------------


def test_suspend_and_reinstate_keep_their_reason(registry: ecert.Registry) -> None:
    cert = issue_business_licence(registry)
    suspended = registry.suspend(cert.id, reason="营业执照被 举报\n核查中")
    assert suspended.status_note == "营业执照被 举报 核查中"
    reinstated = registry.reinstate(cert.id, reason="核查无误")
    assert reinstated.status_note == "核查无误"
    history = registry.history(cert.id)
    notes = [(e.action, e.note) for e in history.entries]
    assert notes[-2:] == [("certificate.suspend", "营业执照被 举报 核查中"),
                          ("certificate.reinstate", "核查无误")]
    # The public leaf carries a keyed hash, never the text.
    leaf = history.entries[-1].leaf.decode("utf-8")
    assert "核查无误" not in leaf and history.entries[-1].details["note"].startswith("c:")
    with pytest.raises(ecert.InputError):
        registry.suspend(cert.id, reason="x\u202eevil")
    with pytest.raises(ecert.InputError):
        registry.suspend(cert.id, reason="x" * 501)
    intact(registry)


def test_find_pages_by_keyset_and_by_name_prefix(registry: ecert.Registry,
                                                 clock: FakeClock) -> None:
    names = ["张三餐饮", "张三科技", "李四商贸", "Zhang_%Trading"]
    ids = []
    for i, name in enumerate(names):
        clock.advance(seconds=1)
        ids.append(issue_business_licence(registry, holder_name=name,
                                          holder_id=uscc(9000 + i)).id)
    first = registry.find_page(limit=3)
    assert [c.id for c in first.items] == ids[:3] and first.more and first.next
    second = registry.find_page(limit=3, after=first.next)
    assert [c.id for c in second.items] == ids[3:] and not second.more
    assert second.next is None
    assert [c.id for c in registry.find_page(name="张三").items] == ids[:2]
    assert [c.id for c in registry.find_page(name="张三科").items] == [ids[1]]
    assert registry.find_page(name="三").items == ()  # a prefix, not a substring
    # LIKE wildcards in the text are literal; case is as typed.
    assert [c.id for c in registry.find_page(name="Zhang_%").items] == [ids[3]]
    assert registry.find_page(name="zhang").items == ()
    assert registry.find_page(name="Zhang%").items == ()
    with pytest.raises(ecert.InputError):
        registry.find_page(after="garbage")
    with pytest.raises(ecert.InputError):
        registry.find_page(name="  ")


def test_claims_print_nested_and_escaped() -> None:
    lines = claim_lines({"name": "甲", "scopes": ["a", {"k": "v", "n": [1, 2]}],
                         "addr": {"city": "广州", "lines": []}, "none": None,
                         "evil": "x\nissuer: fake"}, indent=1)
    assert lines == [
        "  name: 甲",
        "  scopes:",
        "    - a",
        "    - k: v",
        "      n:",
        "        - 1",
        "        - 2",
        "  addr:",
        "    city: 广州",
        "    lines: []",
        "  none: -",
        "  evil: x\\nissuer: fake",
    ]


def test_a_four_eyes_policy_on_issue_holds_renewals(registry: ecert.Registry,
                                                     clock: FakeClock, tmp_path: Path) -> None:
    old = issue_business_licence(registry)
    registry.set_policy("certificate.issue", approvals=2, type_code=BL)
    registry.add_operator("clerk-2", roles=["clerk"], passphrase=CLERK_PASS)
    with pytest.raises(ecert.PendingApproval) as pending:
        registry.renew(old.id, at_start=True, valid_from=clock() + timedelta(days=3))
    request = pending.value.request
    assert request.action == "certificate.issue"
    assert registry.get(old.id).revoke_at is None and registry.count() == 1
    with as_operator(registry, "clerk-2", CLERK_PASS, clock) as second:
        second.approve(request.id)
    assert registry.count() == 2
    assert registry.get(old.id).revoke_at is not None
    clock.advance(days=4)
    assert published_status(registry, tmp_path / "www", old) == INVALID
    intact(registry, tmp_path / "www")
