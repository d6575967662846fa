"""End-to-end lifecycle through the library: issue, publish, verify, suspend, revoke."""

from pathlib import Path

import ecert
from tests.support import FakeClock, issue_business_licence


def test_lifecycle(registry: ecert.Registry, tmp_path: Path, clock: FakeClock) -> None:
    cert = issue_business_licence(registry)
    bundle = tmp_path / "bundle"
    registry.publish(bundle)
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token)
    assert result.valid, result
    assert result.issuer is not None and result.issuer.agency_code == "gd-amr"
    assert result.certificate is not None and result.certificate.id == cert.id

    registry.suspend(cert.id)
    registry.publish(bundle)
    assert ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token).status == "suspended"

    registry.reinstate(cert.id)
    registry.publish(bundle)
    assert ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token).valid

    registry.revoke(cert.id, ecert.RevocationReason.PRIVILEGE_WITHDRAWN)
    registry.publish(bundle)
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token)
    assert result.status == ecert.VerificationStatus.REVOKED
    assert result.errors == (ecert.ErrorCode.REVOKED,)
    actions = [e.action for e in registry.events(cert.id)]
    assert actions == ["certificate.issue", "certificate.suspend", "certificate.reinstate",
                       "certificate.revoke"]
