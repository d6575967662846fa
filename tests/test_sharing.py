"""The registry side of sharing: sharing and requester keys, entitlements (用证清单),
consent codes (用证码) — each logged, published, replayed by audit and the monitor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import ecert
from ecert._formats import bundle as _bundle
from ecert._formats.jose import key_from_jwk, verify_signature
from ecert.monitor import Monitor
from ecert.trust import load_trust_list
from tests.support import FAST_KDF_ROUNDS, FakeClock, LocalServer, create_registry
from tests.support.registries import as_operator

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
