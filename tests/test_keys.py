"""Key lifecycle: pluggable key providers (HSM stand-in), rotation and compromise."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

import ecert
from ecert import _samples
from ecert.keys import KeyProvider, LocalSigner, generate_private_key
from tests.support import PG_URL, FakeClock, create_registry, issue_business_licence
from tests.support.constants import OPERATOR, OPERATOR_PASSPHRASE, PASSPHRASE


class MemoryKeyProvider:
    """Keys that never touch the disk, as an HSM adapter would hold them."""

    def __init__(self) -> None:
        self.keys: dict[str, LocalSigner] = {}
        self.destroyed: list[str] = []
        self.signatures = 0

    def create(self, alg: str = "ES256") -> LocalSigner:
        signer = LocalSigner(generate_private_key(alg))
        self.keys[signer.kid] = signer
        return signer

    def signer(self, kid: str) -> ecert.Signer:
        provider = self
        inner = self.keys[kid]

        class Counting:
            alg = inner.alg
            kid = inner.kid
            public_jwk = inner.public_jwk

            def sign(self, message: bytes) -> bytes:
                provider.signatures += 1
                return inner.sign(message)

        return Counting()

    def destroy(self, kid: str) -> None:
        self.destroyed.append(kid)
        del self.keys[kid]

    def secret(self, name: str) -> bytes:
        return b"\x07" * 32


def test_registry_signs_through_a_key_provider(tmp_path: Path, clock: FakeClock,
                                               database_url: str | None) -> None:
    provider = MemoryKeyProvider()
    assert isinstance(provider, KeyProvider)
    with create_registry(tmp_path / "home", region="GD", database_url=database_url,
                         clock=clock, passphrase=None, key_provider=provider) as registry:
        _samples.populate(registry)
        cert = issue_business_licence(registry)
        registry.publish(tmp_path / "bundle")
        # root + status + log + witness + sharing + two agencies, no file keys, and every
        # signature went through it
        assert len(provider.keys) == 7
        assert not (tmp_path / "home" / "keys").exists()
        assert provider.signatures >= 3  # certificate, status list, trust list
        result = ecert.Verifier.from_bundle(tmp_path / "bundle", clock=clock).verify(cert.token)
        assert result.valid, result
        old = cert.kid
        registry.rotate_agency_key("gd-amr")
        assert provider.destroyed == [old]


def test_compromised_key_invalidates_signatures_from_then_on(
    registry: ecert.Registry, tmp_path: Path, clock: FakeClock
) -> None:
    before = issue_business_licence(registry)
    clock.advance(hours=1)
    compromised_at = clock()
    clock.advance(hours=1)
    after = issue_business_licence(registry)
    clock.advance(minutes=1)
    key = registry.mark_key_compromised(before.kid, since=compromised_at)
    assert key.status is ecert.KeyStatus.COMPROMISED
    assert key.compromised_since == compromised_at
    new_key = [k for k in registry.keys("gd-amr") if k.status is ecert.KeyStatus.ACTIVE]
    assert len(new_key) == 1 and new_key[0].kid != before.kid
    with pytest.raises(ecert.KeyStoreError):
        registry.keystore.signer(before.kid)
    compromise = registry.events(before.kid)[-1]
    assert compromise.action == "key.compromise"
    assert compromise.details == {"since": int(compromised_at.timestamp()), "agency": "gd-amr",
                                  "affected": 1}

    registry.publish(tmp_path / "bundle")
    verifier = ecert.Verifier.from_bundle(tmp_path / "bundle", clock=clock)
    assert verifier.verify(before.token).valid
    result = verifier.verify(after.token)
    assert (result.status, result.errors) == (ecert.VerificationStatus.UNTRUSTED,
                                              (ecert.ErrorCode.KEY_COMPROMISED,))
    reissued = issue_business_licence(registry, supersedes=after.id)
    registry.publish(tmp_path / "bundle")
    assert ecert.Verifier.from_bundle(tmp_path / "bundle", clock=clock).verify(
        reissued.token).valid


def test_compromise_refusals(registry: ecert.Registry, clock: FakeClock) -> None:
    cert = issue_business_licence(registry)
    with pytest.raises(ecert.InputError):
        registry.mark_key_compromised(cert.kid, since=clock() + timedelta(days=1))
    with pytest.raises(ecert.NotFound):
        registry.mark_key_compromised(registry.anchor().kid)  # root keys are not agency keys
    registry.mark_key_compromised(cert.kid)
    with pytest.raises(ecert.InvalidTransition):
        registry.mark_key_compromised(cert.kid)


@pytest.mark.skipif(bool(PG_URL), reason="file permissions of the embedded database")
def test_embedded_database_and_home_are_private(tmp_path: Path) -> None:
    # Registry.init itself, from nothing (the suite's create_registry places a migrated
    # database first): under a permissive umask the file and the home are still private.
    home = tmp_path / "home"
    old = os.umask(0o022)
    try:
        sample = _samples.region("GD")
        registry = ecert.Registry.init(
            home, region="GD", name=sample["name"], base_url=sample["base_url"],
            passphrase=PASSPHRASE, database_url=None,
            admin=ecert.OperatorCredential(OPERATOR, passphrase=OPERATOR_PASSPHRASE))
    finally:
        os.umask(old)
    with registry:
        assert (home / "registry.db").stat().st_mode & 0o777 == 0o600
        assert home.stat().st_mode & 0o777 == 0o700
