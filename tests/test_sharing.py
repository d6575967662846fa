"""The registry side of sharing: sharing and requester keys, entitlements (用证清单),
consent codes (用证码) — each logged, published, replayed by audit and the monitor."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

import ecert
from ecert._formats import bundle as _bundle
from ecert._formats.copy import COPY_TYP, CopyClaims
from ecert._formats.jose import key_from_jwk, parse_compact, verify_signature
from ecert.monitor import Monitor
from ecert.registry import UseRecord, _fetch, _sharing
from ecert.trust import load_trust_list
from tests.support import (
    FAST_KDF_ROUNDS,
    FakeClock,
    LocalServer,
    create_registry,
    issue_business_licence,
)
from tests.support.issuing import uscc
from tests.support.registries import as_operator
from tests.support.sharing_registry import HOLDER, LICENCE, Sharing, allow_sample, sample

CliRun = Callable[..., Result]

ADMIN_PASSPHRASE = "operator passphrase for tests"


def kinds(report: ecert.AuditReport) -> set[str]:
    return {f.kind for f in report.findings}


def trust_list(registry: ecert.Registry, www: Path, clock: FakeClock) -> ecert.TrustList:
    registry.publish(www)
    token = (www / _bundle.TRUST_LIST_PATH).read_text(encoding="ascii")
    return load_trust_list(token, registry.anchor(), now=int(clock().timestamp()), grace=0)


@pytest.fixture
def served(http_server: LocalServer, tmp_path: Path, clock: FakeClock,
           database_url: str | None) -> Iterator[ecert.Registry]:
    """The GD sample registry, its bundle served over loopback (for the monitor)."""
    registry = create_registry(tmp_path / "home", region="GD", database_url=database_url,
                               clock=clock, base_url=http_server.url("gd"),
                               kdf_rounds=FAST_KDF_ROUNDS, populate=True)
    try:
        yield registry
    finally:
        registry.close()


# -- keys ------------------------------------------------------------------------------------


def test_a_new_registry_has_one_sharing_key_and_rotates_it(registry: ecert.Registry,
                                                           clock: FakeClock) -> None:
    (first,) = [k for k in registry.keys(agency_code=None) if k.role is ecert.KeyRole.SHARING]
    assert first.agency_code is None and first.status is ecert.KeyStatus.ACTIVE
    clock.advance(days=1)
    second = registry.rotate_sharing_key()
    sharing = {k.kid: k for k in registry.keys(agency_code=None) if k.role is ecert.KeyRole.SHARING}
    assert set(sharing) == {first.kid, second.kid}
    assert sharing[first.kid].status is ecert.KeyStatus.RETIRED
    (rotation,) = [e for e in registry.events("sharing") if e.action == "key.rotate"]
    assert dict(rotation.details) == {"retired": first.kid, "role": "sharing"}
    assert registry.audit().intact


def test_requester_keys_are_created_rotated_retired_and_sign(registry: ecert.Registry,
                                                             clock: FakeClock) -> None:
    key = registry.create_requester_key("gd-hrss")
    assert key.role is ecert.KeyRole.REQUESTER and key.agency_code == "gd-hrss"
    with pytest.raises(ecert.AlreadyExists):
        registry.create_requester_key("gd-hrss")
    signer = registry.requester_signer("gd-hrss")
    assert signer.kid == key.kid
    alg, public = key_from_jwk(key.public_jwk)
    assert verify_signature(alg, public, b"request", signer.sign(b"request"))
    # Separate from the agency's signing key, which keeps signing certificates.
    (agency_key,) = [k for k in registry.keys("gd-hrss") if k.role is ecert.KeyRole.AGENCY]
    assert agency_key.kid != key.kid and agency_key.status is ecert.KeyStatus.ACTIVE
    clock.advance(days=1)
    rotated = registry.rotate_requester_key("gd-hrss")
    assert registry.requester_signer("gd-hrss").kid == rotated.kid != key.kid
    registry.retire_requester_key("gd-hrss")
    with pytest.raises(ecert.NotFound) as missing:
        registry.requester_signer("gd-hrss")
    assert missing.value.code == "no_requester_key"
    with pytest.raises(ecert.InvalidTransition):
        registry.retire_requester_key("gd-hrss")
    assert [k.status for k in registry.keys("gd-hrss") if k.role is ecert.KeyRole.AGENCY] == [
        ecert.KeyStatus.ACTIVE]
    assert registry.audit().intact


def test_only_a_key_admin_makes_requester_keys(registry: ecert.Registry,
                                               clock: FakeClock) -> None:
    registry.add_operator("clerk-a", roles=["clerk"], passphrase="clerk passphrase")
    with as_operator(registry, "clerk-a", "clerk passphrase", clock) as clerk, \
            pytest.raises(ecert.PermissionDenied):
        clerk.create_requester_key("gd-hrss")
    assert not [k for k in registry.keys("gd-hrss") if k.role is ecert.KeyRole.REQUESTER]
    assert registry.events()[-1].action == "access.refused"


def test_keys_are_published_apart_and_the_monitor_follows(
        served: ecert.Registry, http_server: LocalServer, clock: FakeClock,
        tmp_path: Path) -> None:
    registry = served
    requester = registry.create_requester_key("gd-hrss")
    listed = trust_list(registry, http_server.root / "gd", clock)
    (sharing,) = listed.sharing_keys
    assert sharing.jwk["kid"] == next(
        k.kid for k in registry.keys(agency_code=None) if k.role is ecert.KeyRole.SHARING)
    agencies = {a.code: a for a in listed.agencies}
    assert [k.jwk["kid"] for k in agencies["gd-hrss"].requester_keys] == [requester.kid]
    assert requester.kid not in {k.jwk["kid"] for k in agencies["gd-hrss"].keys}
    assert agencies["gd-amr"].requester_keys == ()
    monitor = Monitor.from_anchor(registry.anchor(), state_dir=tmp_path / "state", clock=clock)
    assert not monitor.run().findings
    clock.advance(hours=1)
    registry.rotate_requester_key("gd-hrss")
    registry.rotate_sharing_key()
    registry.publish(http_server.root / "gd")
    assert not monitor.run().findings


def test_a_planted_requester_key_is_found_and_left_out(registry: ecert.Registry,
                                                       clock: FakeClock, tmp_path: Path) -> None:
    real = registry.create_requester_key("gd-amr")
    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE keys SET agency_code = 'gd-hrss' WHERE kid = :k"),
                     {"k": real.kid})
    assert "key_modified" in kinds(registry.audit())
    report = registry.publish(tmp_path / "www")
    assert not report.ok


# -- entitlements (用证清单) ---------------------------------------------------------------------


@pytest.fixture
def second_trust_admin(registry: ecert.Registry, clock: FakeClock) -> Iterator[ecert.Registry]:
    registry.add_operator("trust-b", roles=["trust-admin"], passphrase="trust b passphrase")
    with as_operator(registry, "trust-b", "trust b passphrase", clock) as other:
        yield other


def test_an_entitlement_is_logged_listed_and_revoked(registry: ecert.Registry,
                                                     clock: FakeClock) -> None:
    value = allow_sample(registry, "ZJ/zj-amr")
    assert (value.requester, value.types, value.without_consent) == (
        "ZJ/zj-amr", ("cn.business-licence",), False)
    assert value.claims == ("name", "uscc", "legal_representative", "established_on", "address")
    assert value.valid_from == int(clock().timestamp()) and value.valid_until is None
    (entry,) = registry.events(value.id)
    assert entry.action == "share.allow" and entry.details["entitlement"] == value.to_json()
    assert registry.share_list().items == (value,)
    clock.advance(hours=1)
    ended = registry.share_revoke(value.id)
    assert ended.valid_until == int(clock().timestamp())
    assert registry.share_list().items == ()
    assert registry.share_list(ended=True).items == (ended,)
    with pytest.raises(ecert.InvalidTransition):
        registry.share_revoke(value.id)
    assert registry.audit().intact


def test_an_entitlement_may_end_by_itself(registry: ecert.Registry, clock: FakeClock) -> None:
    end = clock() + timedelta(days=2)
    value = registry.share_allow("ZJ/zj-amr", "cn.business-licence", "跨省迁移登记",
                                 valid_until=end)
    assert (value.types, value.purposes) == (("cn.business-licence",), ("跨省迁移登记",))
    assert value.valid_until == int(end.timestamp())
    clock.advance(days=2)
    assert registry.share_list().items == ()
    with pytest.raises(ecert.InvalidTransition):
        registry.share_revoke(value.id)
    with pytest.raises(ecert.InputError):
        registry.share_allow("ZJ", ["cn.business-licence"], ["p"], valid_until=clock())
    assert registry.audit().intact


def test_share_list_pages(registry: ecert.Registry) -> None:
    made = sorted((registry.share_allow("ZJ", ["cn.business-licence"], [f"事由{i}"])
                   for i in range(3)), key=lambda e: e.id)
    first = registry.share_list(limit=2)
    assert first.items == tuple(made[:2]) and first.more and first.next is not None
    rest = registry.share_list(limit=2, after=first.next)
    assert rest.items == (made[2],) and not rest.more


@pytest.mark.parametrize(("args", "code"), [
    (("ZJ/ZJ-AMR", ["cn.business-licence"], ["p"]), "invalid_requester"),
    (("zj", ["cn.business-licence"], ["p"]), "invalid_requester"),
    (("ZJ/zj-amr", ["cn.no-such-type"], ["p"]), "not_found"),
    (("ZJ/zj-amr", ["cn.business-licence"], [" "]), "invalid_entitlement"),
    (("ZJ/zj-amr", ["cn.business-licence"], []), "invalid_entitlement"),
    (("ZJ/zj-amr", ["cn.business-licence"], ["p"], ["no_such_claim"]), "invalid_entitlement"),
])
def test_bad_entitlements_are_refused(registry: ecert.Registry, args: tuple[Any, ...],
                                      code: str) -> None:
    with pytest.raises(ecert.InputError) as refused:
        registry.share_allow(*args)
    assert refused.value.code == code
    assert registry.share_list(ended=True).items == ()


def test_without_consent_always_needs_a_second_operator(
        registry: ecert.Registry, second_trust_admin: ecert.Registry) -> None:
    registry.set_policy("share.allow", approvals=1)  # no policy lowers it
    with pytest.raises(ecert.PendingApproval) as pending:
        allow_sample(registry, "GD/gd-hrss")
    assert registry.share_list().items == ()
    request = pending.value.request
    assert (request.action, request.approvals_needed) == ("share.allow", 2)
    with pytest.raises(ecert.PermissionDenied):
        registry.approve(request.id)  # not one's own
    second_trust_admin.approve(request.id)
    (value,) = registry.share_list().items
    assert value.without_consent and value.requester == "GD/gd-hrss"
    assert value.id == request.subject
    assert registry.audit().intact


def test_an_entitlement_without_consent_made_alone_is_an_audit_finding(
        registry: ecert.Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry changed to skip the four-eyes rule is caught by the replay, which keeps it."""
    from ecert.registry import _core

    monkeypatch.setattr(_core, "minimum_approvals", lambda _action, _params: 1)
    value = allow_sample(registry, "GD/gd-hrss")
    monkeypatch.undo()
    report = registry.audit()
    assert "missing_approval" in kinds(report)
    assert any(f.subject == value.id for f in report.findings)


def test_only_a_trust_admin_allows(registry: ecert.Registry, clock: FakeClock) -> None:
    registry.add_operator("clerk-a", roles=["clerk"], passphrase="clerk passphrase")
    with as_operator(registry, "clerk-a", "clerk passphrase", clock) as clerk:
        with pytest.raises(ecert.PermissionDenied):
            allow_sample(clerk, "ZJ/zj-amr")
        value = allow_sample(registry, "ZJ/zj-amr")
        with pytest.raises(ecert.PermissionDenied):
            clerk.share_revoke(value.id)
    assert registry.audit().intact


@pytest.mark.parametrize(("sql", "kind"), [
    ("INSERT INTO entitlements (id, requester, types, purposes, claims, without_consent, "
     "valid_from) VALUES ('e-planted', 'SH', '[\"cn.business-licence\"]', '[\"any\"]', NULL, "
     "1, 0)", "entitlement_unlogged"),
    ("UPDATE entitlements SET claims = NULL", "record_modified"),
    ("UPDATE entitlements SET without_consent = 1", "record_modified"),
    ("UPDATE entitlements SET purposes = '[\"跨省迁移登记\", \"市场营销\"]'", "record_modified"),
    ("UPDATE entitlements SET valid_until = NULL", "record_modified"),
    ("DELETE FROM entitlements", "record_modified"),
])
def test_entitlements_tampered_with_are_found_and_published_as_logged(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path, sql: str,
        kind: str) -> None:
    value = allow_sample(registry, "ZJ/zj-amr")
    if "valid_until" in sql:
        clock.advance(hours=1)
        value = registry.share_revoke(value.id)
        value = registry.share_allow("ZJ", ["cn.business-licence"], ["x"])  # one in force
        sql = sql + f" WHERE id != '{value.id}'"
    with registry.engine.begin() as conn:
        conn.execute(text(sql))
    assert kind in kinds(registry.audit())
    report = registry.publish(tmp_path / "www")
    assert report.ok is sql.startswith("DELETE")  # a row the log does not account for
    token = (tmp_path / "www" / _bundle.TRUST_LIST_PATH).read_text(encoding="ascii")
    published = load_trust_list(token, registry.anchor(), now=int(clock().timestamp()), grace=0)
    assert published.entitlements == (value,)  # as the log has it, whatever the row says


def test_entitlements_are_published_and_the_monitor_follows(
        served: ecert.Registry, http_server: LocalServer, clock: FakeClock,
        tmp_path: Path) -> None:
    registry = served
    value = allow_sample(registry, "ZJ/zj-amr")
    listed = trust_list(registry, http_server.root / "gd", clock)
    assert listed.entitlements == (value,)
    assert listed.entitlements[0].covers("ZJ/zj-amr", "cn.business-licence", "跨省迁移登记",
                                         listed.issued_at)
    monitor = Monitor.from_anchor(registry.anchor(), state_dir=tmp_path / "state", clock=clock)
    assert not monitor.run().findings
    clock.advance(hours=1)
    registry.share_revoke(value.id)
    later = registry.share_allow("ZJ", ["cn.business-licence"], ["跨省迁移登记"])
    assert trust_list(registry, http_server.root / "gd", clock).entitlements == (later,)
    assert not monitor.run().findings  # from its saved state


def test_share_cli(registry: ecert.Registry, cli_as_admin: CliRun) -> None:
    made = cli_as_admin(registry, "--json", "share", "allow", "ZJ/zj-amr", "--types",
                        "cn.business-licence", "--purposes", "跨省迁移登记,食品经营许可核发",
                        "--claims", "name,uscc")
    assert made.exit_code == 0, made.output
    value = json.loads(made.stdout)
    assert value["claims"] == ["name", "uscc"] and value["without_consent"] is False
    listed = json.loads(cli_as_admin(registry, "--json", "share", "list").stdout)
    assert listed == {"items": [value], "more": False, "next": None}
    human = cli_as_admin(registry, "share", "list")
    assert value["id"] in human.stdout and "跨省迁移登记" in human.stdout
    pending = cli_as_admin(registry, "--json", "share", "allow", "GD/gd-hrss", "--types",
                           "cn.business-licence", "--purposes", "社会保险登记",
                           "--without-consent")
    assert pending.exit_code == 0 and json.loads(pending.stdout)["pending"] is True
    ended = cli_as_admin(registry, "--json", "share", "revoke", value["id"])
    assert ended.exit_code == 0 and "valid_until" in json.loads(ended.stdout)
    unknown = cli_as_admin(registry, "--json", "share", "revoke", "e-none")
    assert unknown.exit_code == 2
    bad = cli_as_admin(registry, "share", "allow", "zj", "--types", "cn.business-licence",
                       "--purposes", "p")
    assert bad.exit_code == 2


# -- consent codes (用证码) ----------------------------------------------------------------------

CODE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}")


@pytest.fixture
def desk(registry: ecert.Registry, clock: FakeClock) -> Iterator[ecert.Registry]:
    """A clerk of gd-amr (which issues business licences), at the service window."""
    registry.add_operator("clerk-amr", roles=["clerk"], agencies=["gd-amr"],
                          passphrase="clerk amr passphrase")
    with as_operator(registry, "clerk-amr", "clerk amr passphrase", clock) as clerk:
        yield clerk


def test_consent_codes_are_typeable_with_80_random_bits() -> None:
    assert _sharing.CODE_CHARS * 5 == 80 and len(set(_sharing.ALPHABET)) == 32
    codes = {_sharing.new_code() for _ in range(200)}
    assert len(codes) == 200 and all(CODE.fullmatch(c) for c in codes)
    code = next(iter(codes))
    assert _sharing.normalize_code(code.lower().replace("-", " ")) == code
    assert _sharing.normalize_code("O1IL-0000-0000-0000") == "0111-0000-0000-0000"
    for bad in ("", "ABCD-EFGH", "UUUU-0000-0000-0000", "ABCD-EFGH-JKMN-PQRS-T", 7):
        assert _sharing.normalize_code(bad) is None  # type: ignore[arg-type]


@given(st.text(max_size=40))
def test_normalize_code_gives_a_canonical_code_or_nothing(text: str) -> None:
    """Whatever is typed: None, or a code of the alphabet in groups that reads as itself."""
    code = _sharing.normalize_code(text)
    if code is not None:
        assert CODE.fullmatch(code) and _sharing.normalize_code(code) == code


@given(st.lists(st.sampled_from(_sharing.ALPHABET), min_size=16, max_size=16),
       st.sampled_from(["", " ", "-"]), st.booleans())
def test_normalize_code_reads_a_code_however_it_is_typed(chars: list[str], gap: str,
                                                         lower: bool) -> None:
    text = "".join(chars)
    typed = gap.join(text[i:i + 4] for i in range(0, 16, 4))
    expected = "-".join(text[i:i + 4] for i in range(0, 16, 4))
    assert _sharing.normalize_code(typed.lower() if lower else typed) == expected


def test_a_clerk_grants_a_consent_kept_only_as_a_keyed_hash(
        registry: ecert.Registry, desk: ecert.Registry, clock: FakeClock) -> None:
    made = desk.consent_grant(HOLDER.lower(), "ZJ/zj-amr", [LICENCE], "跨省迁移登记",
                              timedelta(hours=1))
    assert CODE.fullmatch(made.code)
    assert made.expires_at == int(clock().timestamp()) + 3600
    with registry.engine.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM consents"))]
        leaves = b"".join(bytes(r[0]) for r in conn.execute(text("SELECT leaf FROM log_entries")))
    (row,) = rows
    assert made.code not in json.dumps(rows, default=str) and len(row["code_hash"]) == 64
    assert row["holder"] == registry.holder_pseudonym(HOLDER)  # normalised as typed
    # The public entry shows neither the holder, nor the requester, nor the purpose.
    for secret in (HOLDER, registry.holder_pseudonym(HOLDER), "zj-amr", made.id):
        assert secret.encode() not in leaves
    assert "跨省迁移登记".encode() not in leaves
    (entry,) = [e for e in registry.events() if e.action == "consent.grant"]
    assert entry.operator == "clerk-amr" and entry.details["channel"] == "clerk"
    assert entry.details["scope"] == [["gd-amr", LICENCE]]
    (listed,) = registry.consents(HOLDER)
    assert (listed.id, listed.requester, listed.types, listed.used_at) == (
        made.id, "ZJ/zj-amr", (LICENCE,), None)
    assert registry.audit().intact


def test_a_clerk_outside_the_types_agencies_is_refused(registry: ecert.Registry,
                                                       clock: FakeClock) -> None:
    registry.add_operator("clerk-hrss", roles=["clerk"], agencies=["gd-hrss"],
                          passphrase="clerk hrss passphrase")
    with as_operator(registry, "clerk-hrss", "clerk hrss passphrase", clock) as clerk:
        with pytest.raises(ecert.PermissionDenied):
            clerk.consent_grant(HOLDER, "ZJ/zj-amr", [LICENCE], "跨省迁移登记")
        with pytest.raises(ecert.PermissionDenied):  # not the service
            clerk.consent_grant_by_holder(HOLDER, "ZJ/zj-amr", [LICENCE], "跨省迁移登记")
    assert registry.consents(HOLDER) == []
    assert registry.events()[-1].action == "access.refused"
    assert registry.audit().intact


def test_the_holders_channel_grants_through_the_service(registry: ecert.Registry,
                                                        clock: FakeClock) -> None:
    registry.add_operator("svc", roles=["service"], passphrase="service passphrase")
    with as_operator(registry, "svc", "service passphrase", clock) as service:
        made = service.consent_grant_by_holder(HOLDER, "ZJ/zj-amr", LICENCE, "跨省迁移登记",
                                               600)
        service.consent_revoke(made.id, holder_id=HOLDER)
        with pytest.raises(ecert.NotFound):  # another holder cannot revoke it
            service.consent_revoke(made.id, holder_id="91440300MA5F3K2L9X")
    (consent,) = registry.consents(HOLDER)
    assert consent.channel == "holder" and consent.revoked_at is not None
    assert registry.audit().intact


def test_consents_are_revoked_once_and_checked(desk: ecert.Registry,
                                               registry: ecert.Registry) -> None:
    made = desk.consent_grant(HOLDER, "ZJ/zj-amr", [LICENCE], "跨省迁移登记")
    desk.consent_revoke(made.id)
    with pytest.raises(ecert.InvalidTransition) as again:
        desk.consent_revoke(made.id)
    assert again.value.code == "consent_not_open"
    with pytest.raises(ecert.NotFound):
        desk.consent_revoke("c-nothing")
    for args, code in [
        (("ZJ", [LICENCE], "p", 600), "invalid_requester"),
        (("ZJ/zj-amr", [LICENCE], "p", 59), "invalid_ttl"),
        (("ZJ/zj-amr", [LICENCE], "p", 31 * 86400), "invalid_ttl"),
        (("ZJ/zj-amr", [LICENCE], " ", 600), "invalid_entitlement"),
        (("ZJ/zj-amr", ["cn.none"], "p", 600), "not_found"),
    ]:
        with pytest.raises(ecert.InputError) as refused:
            desk.consent_grant(HOLDER, *args)
        assert refused.value.code == code, args
    assert registry.audit().intact


@pytest.mark.parametrize(("sql", "kind"), [
    ("INSERT INTO consents (id, code_hash, holder, requester, types, purpose, channel, "
     "created_at, expires_at) VALUES ('c-planted', 'x', 'h', 'ZJ/zj-amr', "
     "'[\"cn.business-licence\"]', 'p', 'clerk', 0, 99999999999)", "consent_unlogged"),
    ("UPDATE consents SET expires_at = expires_at + 86400", "record_modified"),
    ("UPDATE consents SET requester = 'SH/sh-amr'", "record_modified"),
    ("UPDATE consents SET types = '[\"cn.business-licence\", \"cn.food-business-licence\"]'",
     "record_modified"),
    ("UPDATE consents SET revoked_at = 1", "record_modified"),
    ("DELETE FROM consents", "record_modified"),
])
def test_consents_tampered_with_are_found(desk: ecert.Registry, registry: ecert.Registry,
                                          sql: str, kind: str) -> None:
    desk.consent_grant(HOLDER, "ZJ/zj-amr", [LICENCE], "跨省迁移登记")
    with registry.engine.begin() as conn:
        conn.execute(text(sql))
    assert kind in kinds(registry.audit())


def test_consent_cli(desk: ecert.Registry, registry: ecert.Registry,
                     cli_as_admin: CliRun) -> None:
    made = cli_as_admin(registry, "--json", "consent", "grant", "--holder-id", HOLDER,
                        "--to", "ZJ/zj-amr", "--types", LICENCE, "--purpose", "跨省迁移登记",
                        "--ttl", "1h")
    assert made.exit_code == 0, made.output
    value = json.loads(made.stdout)
    assert CODE.fullmatch(value["code"])
    human = cli_as_admin(registry, "consent", "grant", "--holder-id", HOLDER, "--to",
                         "ZJ/zj-amr", "--types", LICENCE, "--purpose", "跨省迁移登记")
    assert human.exit_code == 0 and CODE.fullmatch(human.stdout.splitlines()[0])
    listed = json.loads(cli_as_admin(registry, "--json", "consent", "list", "--holder-id",
                                     HOLDER).stdout)
    assert value["id"] in {c["id"] for c in listed}
    assert cli_as_admin(registry, "consent", "revoke", value["id"]).exit_code == 0
    again = cli_as_admin(registry, "--json", "consent", "revoke", value["id"])
    assert again.exit_code == 2 and "consent_not_open" in again.stdout


# -- the fetch and its use records -------------------------------------------------------------


def copy_claims(registry: ecert.Registry, token: str) -> CopyClaims:
    parsed = parse_compact(token, max_bytes=1 << 16)
    assert parsed.header["typ"] == COPY_TYP
    (key,) = [k for k in registry.keys(agency_code=None)
              if k.role is ecert.KeyRole.SHARING and k.kid == parsed.header["kid"]]
    alg, public = key_from_jwk(key.public_jwk)
    assert verify_signature(alg, public, parsed.signing_input, parsed.signature)
    return CopyClaims.from_payload(parsed.payload)


def test_the_sample_requests(sharing: Sharing, registry: ecert.Registry,
                             clock: FakeClock) -> None:
    """Every case of tests/data/sharing.json the registry decides (region recognition and
    replays are the HTTP layer's: an unrecognized region is not entitled here either)."""
    expected_problem = {"no consent": "consent_required",
                        "purpose outside entitlement": "purpose_not_permitted",
                        "consent for another requester": "not_entitled",
                        "unrecognized region": "not_entitled"}
    for case in sample()["requests"]:
        if "replay_of" in case:
            continue
        code = None
        if case["consent"] is not None:
            c = case["consent"]
            code = sharing.consent(c["to"] if c["to"] != "SH/sh-amr" else "ZJ/zj-amr",
                                   c["purpose"], tuple(c["types"]), c["ttl_seconds"]).code
        result = sharing.service.share_fetch(
            case["requester"], case["holder_id"], [case["type"]], purpose=case["purpose"],
            case=case["case_no"], service_item=case["service_item"], staff_id="s-1",
            staff_role="受理", request_hash=f"h-{case['case_no']}", consent=code)
        if case["expect"] == "granted":
            assert result.granted and result.problem is None, case["case"]
            (copy,) = result.copies
            claims = copy_claims(registry, copy.token)
            assert set(claims.claims) == set(case["expect_claims"])
            assert (claims.aud, claims.purpose, claims.case, claims.copy_of) == (
                case["requester"], case["purpose"], case["case_no"], sharing.licence.id)
            assert claims.exp - claims.iat == 24 * 3600
            assert (claims.status_list_uri, claims.status_index) == (
                sharing.licence.status_list_uri, sharing.licence.status_index)
            assert claims.original.iss == registry.region.agency_uri("gd-amr")
            statute = case.get("record_marks") == "without_consent"
            assert (result.consent == "by statute") is statute
        else:
            assert (result.outcome, result.problem, result.copies) == (
                "refused", expected_problem[case["case"]], ()), case["case"]
    uses = registry.uses(HOLDER).items
    assert len(uses) == 6 and [u.id for u in uses] == sorted((u.id for u in uses),
                                                             reverse=True)
    assert registry.audit().intact


def test_consent_is_single_use_and_bound(sharing: Sharing, clock: FakeClock,
                                         registry: ecert.Registry) -> None:
    registry.share_allow("ZJ", [LICENCE, "cn.food-business-licence"],
                         ["跨省迁移登记", "其他事由"])
    code = sharing.consent().code
    assert sharing.fetch(consent=code.lower()).granted  # as typed
    assert sharing.fetch(consent=code).problem == "consent_invalid"  # used
    for args, kwargs in [
        ((), {"requester": "ZJ/zj-psb-traffic"}),  # for another requester
        ((), {"purpose": "其他事由"}),  # another purpose
        ((), {"types": ("cn.food-business-licence",)}),  # another type
        ((), {"holder": "91440300MA5F3K2L9X"}),  # another holder
    ]:
        fresh = sharing.consent().code
        assert sharing.fetch(*args, consent=fresh, **kwargs).problem == "consent_invalid"
        assert sharing.fetch(consent=fresh).granted  # the wrong use did not spend it
        clock.advance(hours=1)  # a new window for the holder's failures
    expired = sharing.consent(ttl=60).code
    clock.advance(seconds=60)
    assert sharing.fetch(consent=expired).problem == "consent_invalid"
    revoked = sharing.consent()
    sharing.clerk.consent_revoke(revoked.id)
    assert sharing.fetch(consent=revoked.code).problem == "consent_invalid"
    assert sharing.fetch(consent="not a code").problem == "consent_invalid"
    assert registry.audit().intact


def test_rows_edited_in_the_database_release_nothing_even_before_an_audit(
        sharing: Sharing, registry: ecert.Registry) -> None:
    """An insider with the database: a forged by-statute entitlement, a real one widened
    to another purpose, a consent re-bound to another requester. Each is refused at the
    fetch itself (the log is the authority, the rows only its index), not only found by
    an audit that may come after the rows were put back."""
    from sqlalchemy import insert, update

    from ecert._storage.schema import consents, entitlements

    def sql(statement: Any) -> None:
        with registry.engine.begin() as conn:
            conn.execute(statement)

    # A forged entitlement without consent for an agency that has none.
    sql(insert(entitlements).values(
        id="forged", requester="ZJ/zj-psb-traffic", types=[LICENCE], purposes=["跨省迁移登记"],
        claims=None, without_consent=1, valid_from=0, valid_until=None))
    assert sharing.fetch("ZJ/zj-psb-traffic").problem == "not_entitled"
    # A real entitlement widened to a purpose it never had.
    real = next(e for e in registry.share_list().items if e.requester == "ZJ/zj-amr")
    sql(update(entitlements).where(entitlements.c.id == real.id).values(
        purposes=[*real.purposes, "其他事由"]))
    code = sharing.consent(purpose="其他事由").code
    # The edited row is not believed at all (so not even its logged purposes count).
    assert sharing.fetch(purpose="其他事由", consent=code).problem == "not_entitled"
    sql(update(entitlements).where(entitlements.c.id == real.id).values(
        purposes=list(real.purposes)))
    # A consent the holder gave ZJ/zj-amr, re-bound in the database to another requester.
    registry.share_allow("ZJ/zj-psb-traffic", [LICENCE], ["跨省迁移登记"])
    given = sharing.consent()
    sql(update(consents).where(consents.c.id == given.id).values(
        requester="ZJ/zj-psb-traffic"))
    assert sharing.fetch("ZJ/zj-psb-traffic", consent=given.code).problem == "consent_invalid"
    sql(update(consents).where(consents.c.id == given.id).values(requester="ZJ/zj-amr"))
    assert sharing.fetch(consent=given.code).granted  # as logged: it works, once
    # A revoked entitlement put back in the database as it was before its revocation
    # (content this process already found as logged) stays revoked.
    statute = next(e for e in registry.share_list().items if e.without_consent)
    assert sharing.fetch(statute.requester, purpose=statute.purposes[0]).granted
    registry.share_revoke(statute.id)
    sql(update(entitlements).where(entitlements.c.id == statute.id).values(valid_until=None))
    assert sharing.fetch(statute.requester, purpose=statute.purposes[0]).problem == \
        "not_entitled"


def test_wrong_codes_are_bounded_per_requester_and_holder(sharing: Sharing, clock: FakeClock,
                                                          registry: ecert.Registry) -> None:
    registry.share_allow("ZJ/zj-psb-traffic", [LICENCE], ["跨省迁移登记"])
    good = sharing.consent(ttl=3 * 3600).code
    for _ in range(_sharing.MAX_FAILURES_PER_PAIR):
        assert sharing.fetch(consent=_sharing.new_code()).problem == "consent_invalid"
    # Past the limit the right code is not even looked at: no oracle for guessing.
    assert sharing.fetch(consent=good).problem == "too_many_requests"
    assert sharing.fetch().problem == "consent_required"  # the order before it stands
    # Counted per requester and holder, never per holder alone: one requester's wrong
    # codes do not deny the holder's consent to another requester, ...
    given = sharing.consent("ZJ/zj-psb-traffic").code
    assert sharing.fetch("ZJ/zj-psb-traffic", consent=given).granted
    # ... nor this requester's consents from other holders.
    elsewhere = uscc(999)
    assert sharing.fetch(holder=elsewhere, consent=sharing.consent(holder=elsewhere).code
                         ).granted
    clock.advance(seconds=_sharing.FAILURE_WINDOW)
    assert sharing.fetch(consent=good).granted
    # Per requester, across holders.
    for i in range(_sharing.MAX_FAILURES_PER_REQUESTER):
        holder = uscc(1000 + i)
        assert sharing.fetch(holder=holder, consent=_sharing.new_code()).problem == (
            "consent_invalid")
    fresh = sharing.consent().code
    assert sharing.fetch(consent=fresh).problem == "too_many_requests"
    # That requester's own budget: another's consent from the same holders still works.
    assert sharing.fetch("ZJ/zj-psb-traffic",
                         consent=sharing.consent("ZJ/zj-psb-traffic").code).granted
    assert registry.audit().intact


def test_only_valid_certificates_are_copied_and_none_is_no_error(
        sharing: Sharing, registry: ecert.Registry, clock: FakeClock) -> None:
    nobody = sharing.fetch("GD/gd-hrss", holder="91440300MA5F3K2L9X", purpose="社会保险登记")
    assert nobody.granted and nobody.copies == ()
    second = issue_business_licence(registry)
    registry.revoke(sharing.licence.id, "unspecified")
    result = sharing.fetch("GD/gd-hrss", purpose="社会保险登记")
    assert [c.copy_of for c in result.copies] == [second.id]
    (latest, *_) = registry.uses(HOLDER).items
    assert latest.certificates == (second.id,) and latest.consent == "by statute"
    assert registry.audit().intact


def test_only_the_service_fetches(sharing: Sharing, registry: ecert.Registry) -> None:
    with pytest.raises(ecert.PermissionDenied):
        sharing.clerk.share_fetch("ZJ/zj-amr", HOLDER, [LICENCE], purpose="跨省迁移登记",
                             case="c", service_item="s", staff_id="i", staff_role="r",
                             request_hash="h")
    assert registry.events()[-1].action == "access.refused"
    with pytest.raises(ecert.InputError):
        sharing.service.share_fetch("ZJ", HOLDER, [LICENCE], purpose="p", case="c",
                                    service_item="s", staff_id="i", staff_role="r",
                                    request_hash="h")


def test_use_records_are_complete_private_in_the_log_and_paged(
        sharing: Sharing, registry: ecert.Registry) -> None:
    code = sharing.consent()
    granted = sharing.fetch(consent=code.code, case="CASE-1")
    refused = sharing.fetch(purpose="市场营销", case="CASE-2")
    page = registry.uses(HOLDER.lower(), limit=1)
    assert page.more and page.items[0].id == refused.use_id
    (first,) = registry.uses(HOLDER, limit=1, after=page.next).items
    assert first == UseRecord(
        granted.use_id, first.at, "ZJ/zj-amr", "zj-0042", "窗口受理", "330000-SX-0001",
        "CASE-1", "跨省迁移登记", (LICENCE,), (sharing.licence.id,), code.id, "granted", None,
        "req-CASE-1", granted.response_hash)
    assert granted.response_hash == _fetch.response_hash([granted.copies[0].token], None)
    assert page.items[0].problem == "purpose_not_permitted"
    entries = [e for e in registry.events() if e.action == "share.fetch"]
    assert [e.details["outcome"] for e in entries] == ["granted", "refused"]
    with registry.engine.begin() as conn:
        leaves = b"".join(bytes(r[0]) for r in conn.execute(
            text("SELECT leaf FROM log_entries WHERE action = 'share.fetch'")))
    for secret in (HOLDER, registry.holder_pseudonym(HOLDER), "zj-amr", sharing.licence.id,
                   code.id, "CASE-1", "req-CASE-1", "zj-0042"):
        assert secret.encode() not in leaves

    # Nothing public links the two fetches of one holder by one requester to each other,
    # to the consent's holder, or to the certificate's own issue entry: every commitment
    # of a holder, requester or certificate is that record's alone.
    consents = [e for e in registry.events() if e.action == "consent.grant"]
    from ecert._formats.log import commitment

    issue_subject = commitment(registry._ctx.commitment_key, sharing.licence.id)
    grant_holders = {e.details["holder"] for e in consents}
    for name in ("holder", "requester"):
        assert len({e.details[name] for e in entries}) == len(entries), name
    assert not {e.details["holder"] for e in entries} & grant_holders
    assert entries[0].details["certificates"] and issue_subject not in entries[0].details[
        "certificates"]
    second = sharing.consent()
    again = [e for e in registry.events() if e.action == "consent.grant"]
    assert len({e.details["holder"] for e in again}) == 2 and second.id != code.id


@pytest.mark.parametrize(("sql", "kind"), [
    ("INSERT INTO uses (at, holder, requester, staff_id, staff_role, service_item, case_no, "
     "purpose, types, certificates, by_statute, outcome, request_hash) VALUES (0, 'h', "
     "'ZJ/zj-amr', 's', 'r', 'i', 'c', 'p', '[]', '[]', 0, 'granted', 'x')", "use_unlogged"),
    ("UPDATE uses SET staff_id = 'someone-else'", "record_modified"),
    ("UPDATE uses SET case_no = 'OTHER'", "record_modified"),
    ("UPDATE uses SET outcome = 'refused', problem = 'not_entitled'", "record_modified"),
    ("DELETE FROM uses", "record_modified"),
    ("UPDATE consents SET used_at = NULL", "record_modified"),
])
def test_use_records_tampered_with_are_found(sharing: Sharing, registry: ecert.Registry,
                                             sql: str, kind: str) -> None:
    assert sharing.fetch(consent=sharing.consent().code).granted
    with registry.engine.begin() as conn:
        conn.execute(text(sql))
    assert kind in kinds(registry.audit())


def test_nonces_are_remembered_once(registry: ecert.Registry, clock: FakeClock) -> None:
    now = int(clock().timestamp())
    assert registry.remember_nonce("ZJ/zj-amr", "n-1", now + 300)
    assert not registry.remember_nonce("ZJ/zj-amr", "n-1", now + 300)  # a replay
    assert registry.remember_nonce("SH/sh-amr", "n-1", now + 300)  # another requester's
    clock.advance(seconds=301)
    assert registry.remember_nonce("ZJ/zj-amr", "n-1", now + 900)  # expired: usable again
    assert registry.forget_nonces() == 1
    with pytest.raises(ecert.InputError):
        registry.remember_nonce("ZJ/zj-amr", "", now)


def test_uses_cli(sharing: Sharing, registry: ecert.Registry, cli_as_admin: CliRun) -> None:
    sharing.fetch(consent=sharing.consent().code)
    listed = cli_as_admin(registry, "--json", "uses", "--holder-id", HOLDER)
    assert listed.exit_code == 0, listed.output
    value = json.loads(listed.stdout)
    assert set(value) == {"items", "more", "next"} and value["items"][0]["outcome"] == "granted"
    human = cli_as_admin(registry, "uses", "--holder-id", HOLDER)
    assert "ZJ/zj-amr" in human.stdout and "跨省迁移登记" in human.stdout


def test_the_monitor_follows_consents_and_fetches_across_runs(
        served: ecert.Registry, http_server: LocalServer, clock: FakeClock,
        tmp_path: Path) -> None:
    world = Sharing(served, clock)
    try:
        www = http_server.root / "gd"
        consent = world.consent(ttl=7200)
        checked = world.consent(ttl=7200)
        served.publish(www)
        monitor = Monitor.from_anchor(served.anchor(), state_dir=tmp_path / "state",
                                      clock=clock)
        assert not monitor.run().findings
        clock.advance(minutes=5)
        assert world.fetch(consent=consent.code).granted  # spends a consent logged before
        assert world.fetch(purpose="市场营销").problem == "purpose_not_permitted"
        assert world.check({"holder_id": HOLDER}, consent=checked.code).match  # a check too
        served.publish(www)
        assert not monitor.run().findings  # from its saved state
    finally:
        world.close()


def test_a_nonce_is_taken_once_by_concurrent_workers(registry: ecert.Registry,
                                                     clock: FakeClock) -> None:
    """Stateless workers share the database: of simultaneous requests with one nonce,
    exactly one gets through."""
    expires = int(clock().timestamp()) + 300
    barrier = threading.Barrier(6)

    def worker(_: int) -> bool:
        barrier.wait()
        return registry.remember_nonce("ZJ/zj-amr", "same-nonce", expires)

    with ThreadPoolExecutor(6) as pool:
        taken = list(pool.map(worker, range(6)))
    assert taken.count(True) == 1


def test_a_consent_is_spent_once_by_concurrent_fetches(sharing: Sharing,
                                                       registry: ecert.Registry) -> None:
    code = sharing.consent().code
    barrier = threading.Barrier(4)

    def worker(i: int) -> str | None:
        barrier.wait()
        return sharing.fetch(consent=code, case=f"CASE-{i}").problem

    with ThreadPoolExecutor(4) as pool:
        problems = list(pool.map(worker, range(4)))
    assert sorted(problems, key=str) == [None, "consent_invalid", "consent_invalid",
                                         "consent_invalid"]
    assert registry.audit().intact


def test_concurrent_wrong_codes_are_each_counted(sharing: Sharing) -> None:
    barrier = threading.Barrier(4)

    def worker(i: int) -> str | None:
        barrier.wait()
        return sharing.fetch(consent=_sharing.new_code(), case=f"CASE-{i}").problem

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(worker, range(4))) == {"consent_invalid"}
    with sharing.registry.engine.begin() as conn:
        counts = sorted(r[0] for r in conn.execute(text("SELECT count FROM consent_failures")))
    assert counts == [4, 4]  # the holder's and the requester's


def test_an_agency_that_only_consumes_has_a_requester_key(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    registry.add_agency("gd-consumer", name="只用证的机构", uscc=uscc(77), types=[])
    key = registry.create_requester_key("gd-consumer")
    listed = trust_list(registry, tmp_path / "www", clock)
    (agency,) = [a for a in listed.agencies if a.code == "gd-consumer"]
    assert agency.types == () and [k.jwk["kid"] for k in agency.requester_keys] == [key.kid]
    assert registry.audit().intact


@pytest.mark.parametrize("kind", ["fetch", "check"])
def test_refusals_of_the_service_are_recorded_too(sharing: Sharing, registry: ecert.Registry,
                                                  kind: str) -> None:
    """What the HTTP layer refuses before asking (bad signature, unrecognized region,
    replay, …) is a use record and a log entry like any other request, of the kind of
    the endpoint it called: a refused check is a ``share.check``, not a fetch."""
    for problem in ("not_authenticated", "region_not_recognized", "replay",
                    "too_many_requests", "bad_request"):
        result = sharing.service.share_refused(
            problem, kind=kind, requester="SH/sh-amr", holder_id=HOLDER, types=[LICENCE],
            purpose="跨省迁移登记", case="SH-1", service_item="310000-SX-0001",
            staff_id="sh-9", staff_role="受理", request_hash="h-sh")
        assert (result.outcome, result.problem) == ("refused", problem)
        assert result.response_hash and result.use_id
    junk = sharing.service.share_refused("bad_request", kind=kind, requester="x\x00" * 200,
                                         holder_id=None, types="\n", purpose=None, case=None,
                                         service_item=None, staff_id=None, staff_role=None,
                                         request_hash=None)
    assert junk.problem == "bad_request"
    with pytest.raises(ecert.InputError):
        sharing.service.share_refused("granted", kind=kind, requester=None, holder_id=None)
    with pytest.raises(ecert.InputError):
        sharing.service.share_refused("replay", kind="copy", requester=None, holder_id=None)
    records = registry.uses(HOLDER).items
    assert [u.problem for u in records] == ["bad_request", "too_many_requests", "replay",
                                            "region_not_recognized", "not_authenticated"]
    assert {u.kind for u in records} == {kind}
    assert {e.action for u in records for e in registry.events(f"use:{u.id}")} == {
        f"share.{kind}"}
    assert records[0].requester == "SH/sh-amr" and records[0].case == "SH-1"
    assert registry.audit().intact
