"""The registry side of sharing: sharing and requester keys, entitlements (用证清单),
consent codes (用证码) — each logged, published, replayed by audit and the monitor."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import text

import ecert
from ecert._formats import bundle as _bundle
from ecert._formats.jose import key_from_jwk, verify_signature
from ecert.monitor import Monitor
from ecert.trust import load_trust_list
from tests.support import FAST_KDF_ROUNDS, FakeClock, LocalServer, create_registry
from tests.support.registries import as_operator

CliRun = Callable[..., Result]

DATA = Path(__file__).parent / "data" / "sharing.json"
ADMIN_PASSPHRASE = "operator passphrase for tests"


def sample() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return value


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


def allow_sample(registry: ecert.Registry, requester: str) -> ecert.Entitlement:
    """The sample set-up's entitlement for ``requester`` (without consent: pending)."""
    entry = next(e for e in sample()["entitlements"] if e["requester"] == requester)
    return registry.share_allow(entry["requester"], entry["types"], entry["purposes"],
                                entry["claims"], entry["without_consent"])


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
