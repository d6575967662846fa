"""The GD registry's side of the sample sharing set-up (tests/data/sharing.json), no HTTP:
shared by the registry's sharing tests and the check's and holder channel's (the whole
set-up over loopback is :mod:`tests.support.sharing_world`)."""

from __future__ import annotations

import pytest

import ecert
from ecert.registry import CheckOutcome, ConsentCode, FetchResult
from tests.support.clock import FakeClock
from tests.support.issuing import issue_business_licence
from tests.support.registries import as_operator
from tests.support.sharing_world import sample

HOLDER = "91440300MA5F3K2L8G"
LICENCE = "cn.business-licence"


def allow_sample(registry: ecert.Registry, requester: str) -> ecert.Entitlement:
    """The sample set-up's entitlement for ``requester`` (without consent: pending)."""
    entry = next(e for e in sample()["entitlements"] if e["requester"] == requester)
    return registry.share_allow(entry["requester"], entry["types"], entry["purposes"],
                                entry["claims"], entry["without_consent"])


class Sharing:
    """The GD side of the sample set-up: entitlements in force (the one without consent
    approved by a second trust admin), a licence issued, a clerk and the service."""

    def __init__(self, registry: ecert.Registry, clock: FakeClock) -> None:
        self.registry, self.clock = registry, clock
        registry.add_operator("trust-b", roles=["trust-admin"], passphrase="trust b pass")
        registry.add_operator("svc", roles=["service"], passphrase="service passphrase")
        registry.add_operator("clerk-amr", roles=["clerk"], agencies=["gd-amr"],
                              passphrase="clerk amr passphrase")
        self.licence = issue_business_licence(registry)
        allow_sample(registry, "ZJ/zj-amr")
        with pytest.raises(ecert.PendingApproval) as pending:
            allow_sample(registry, "GD/gd-hrss")
        with as_operator(registry, "trust-b", "trust b pass", clock) as other:
            other.approve(pending.value.request.id)
        self.service = as_operator(registry, "svc", "service passphrase", clock)
        self.clerk = as_operator(registry, "clerk-amr", "clerk amr passphrase", clock)

    def close(self) -> None:
        self.service.close()
        self.clerk.close()

    def consent(self, to: str = "ZJ/zj-amr", purpose: str = "跨省迁移登记",
                types: tuple[str, ...] = (LICENCE,), ttl: int = 3600,
                holder: str = HOLDER) -> ConsentCode:
        return self.clerk.consent_grant(holder, to, list(types), purpose, ttl)

    def fetch(self, requester: str = "ZJ/zj-amr", *, holder: str = HOLDER,
              types: tuple[str, ...] = (LICENCE,), purpose: str = "跨省迁移登记",
              consent: str | None = None, case: str = "ZJ2026120100001"
              ) -> FetchResult:
        return self.service.share_fetch(
            requester, holder, list(types), purpose=purpose, case=case,
            service_item="330000-SX-0001", staff_id="zj-0042", staff_role="窗口受理",
            request_hash="req-" + case, consent=consent)

    def check(self, values: dict[str, str], requester: str = "ZJ/zj-amr", *,
              type_code: str = LICENCE, purpose: str = "跨省迁移登记",
              consent: str | None = None, case: str = "ZJ2026120100002") -> CheckOutcome:
        return self.service.share_check(
            requester, type_code, values, purpose=purpose, case=case,
            service_item="330000-SX-0002", staff_id="zj-0043", staff_role="核验",
            request_hash="chk-" + case, consent=consent)


#: A second agency that issues business licences (the sample has one, gd-amr).
SECOND_ISSUER = "gd-amr-sz"


def licence_of_second_issuer(registry: ecert.Registry, holder: str = HOLDER
                             ) -> ecert.Certificate:
    """A business licence of ``holder`` from :data:`SECOND_ISSUER` (added on first use):
    the same type as gd-amr's, of another agency, which a gd-amr clerk may not release."""
    from ecert import _samples
    from tests.support.issuing import uscc

    if SECOND_ISSUER not in {a.code for a in registry.agencies()}:
        registry.add_agency(SECOND_ISSUER, name="深圳市市场监督管理局",
                            uscc=uscc(4403001, prefix="11440300MB"), types=[LICENCE])
    claims = {**_samples.claims("business-licence-gd"), "uscc": holder}
    return registry.issue(LICENCE, SECOND_ISSUER, holder_id=holder,
                          holder_name=claims["name"], claims=claims)
