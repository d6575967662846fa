"""The verifier's valid path, lifecycle verdicts, leeway, caching, key rotation, anchors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import ecert
from ecert import _samples
from ecert._formats import jose
from ecert._formats.certificate import CERTIFICATE_TYP
from ecert._formats.trustlist import TRUST_LIST_TYP
from ecert.models import KeyRole
from ecert.trust import load_trust_list
from ecert.verify import ErrorCode as E
from ecert.verify import VerificationStatus as S
from tests.support import EPOCH, FakeClock, Published, RegistryFactory, issue_business_licence

DAY = 86_400


def payload_of(token: str) -> dict[str, Any]:
    value = json.loads(jose.b64url_decode(token.split(".")[1]))
    assert isinstance(value, dict)
    return value


def at(clock: FakeClock, seconds: int) -> None:
    clock.now = datetime.fromtimestamp(seconds, UTC)


def issue(registry: ecert.Registry, bundle: Path, **kwargs: Any) -> ecert.Certificate:
    cert = issue_business_licence(registry, **kwargs)
    registry.publish(bundle)
    return cert


# -- the valid path ---------------------------------------------------------------------------


def test_valid_result(published_copy: Published, clock: FakeClock) -> None:
    _, cert, bundle = published_copy
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token)
    assert result
    assert result.valid is True
    assert result.status is S.VALID
    assert result.errors == ()
    assert result.messages == ()


def test_valid_result_issuer(published_copy: Published, clock: FakeClock) -> None:
    _, cert, bundle = published_copy
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token)
    assert result.issuer == ecert.Issuer(
        region="GD", agency_code="gd-amr", agency_name="广东省市场监督管理局",
        uscc="11440000MB2C01234R", uri="https://ecert.gd.example/agencies/gd-amr", kid=cert.kid,
    )


def test_valid_result_certificate_equals_the_issued_one(published_copy: Published,
                                                        clock: FakeClock) -> None:
    registry, cert, bundle = published_copy
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token)
    got = result.certificate
    assert got is not None
    assert got.id == cert.id == registry.get(cert.id).id
    assert got.type_code == "cn.business-licence"
    assert got.agency_code == "gd-amr"
    assert got.region == "GD"
    assert got.holder == cert.holder == registry.holder_pseudonym("91440300MA5F3K2L8G")
    assert got.holder_name == cert.holder_name == "深圳市前海星河数字科技有限公司"
    assert dict(got.claims) == dict(cert.claims) == _samples.claims("business-licence-gd")
    assert got.issued_at == cert.issued_at == EPOCH
    assert got.valid_from == cert.valid_from == EPOCH
    assert got.valid_until == cert.valid_until == EPOCH + timedelta(days=3650)
    assert got.status is ecert.CertificateStatus.VALID
    assert got.status_list_uri == cert.status_list_uri == "https://ecert.gd.example/status/1.jwt"
    assert got.status_index == cert.status_index
    assert got.kid == cert.kid
    assert got.token == cert.token
    assert got.type_version == cert.type_version == 1
    assert got.supersedes is None and got.revocation_reason is None
    assert got == cert


def test_valid_result_to_json(published_copy: Published, clock: FakeClock) -> None:
    _, cert, bundle = published_copy
    out = ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token).to_json()
    assert json.loads(json.dumps(out, ensure_ascii=False)) == out
    assert out["valid"] is True
    assert out["status"] == "valid"
    assert out["errors"] == []
    assert out["messages"] == []
    assert out["certificate"] == {
        "id": cert.id, "type": "cn.business-licence", "region": "GD", "holder": cert.holder,
        "holder_name": cert.holder_name, "claims": dict(cert.claims),
        "issued_at": "2026-01-01T00:00:00+00:00", "valid_from": "2026-01-01T00:00:00+00:00",
        "valid_until": "2035-12-30T00:00:00+00:00",
        "status_list": {"uri": cert.status_list_uri, "idx": cert.status_index},
        "supersedes": None,
    }
    assert out["issuer"] == {"region": "GD", "agency": "gd-amr", "name": "广东省市场监督管理局",
                             "uscc": "11440000MB2C01234R",
                             "uri": "https://ecert.gd.example/agencies/gd-amr", "kid": cert.kid}


def test_refusal_to_json(published_copy: Published, clock: FakeClock) -> None:
    _, _, bundle = published_copy
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify("not a token")
    assert not result
    out = result.to_json()
    assert out["valid"] is False
    assert out["status"] == "invalid"
    assert out["errors"] == ["malformed"]
    assert len(out["messages"]) == 1
    assert "certificate" not in out and "issuer" not in out


def test_surrounding_whitespace_is_tolerated(published_copy: Published, clock: FakeClock) -> None:
    _, cert, bundle = published_copy
    verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
    assert verifier.verify(f"  {cert.token}\r\n").valid is True
    assert verifier.verify(f"{cert.token}\n".encode()).valid is True


def test_ed25519_agency_certificate_verifies(registry: ecert.Registry, tmp_path: Path,
                                            clock: FakeClock) -> None:
    registry.add_agency("gd-ed", name="Ed25519 agency", uscc="91440300MA5F3K2L8G",
                        types=["cn.food-business-licence"], alg="Ed25519")
    claims = _samples.claims("food-business-licence-sh")
    cert = registry.issue("cn.food-business-licence", "gd-ed", holder_id=claims["uscc"],
                          holder_name=claims["operator_name"], claims=claims)
    registry.publish(tmp_path / "b")
    header = json.loads(jose.b64url_decode(cert.token.split(".")[0]))
    assert header == {"alg": "Ed25519", "kid": cert.kid, "typ": "ecert+jwt"}
    result = ecert.Verifier.from_bundle(tmp_path / "b", clock=clock).verify(cert.token)
    assert result.valid is True, result
    assert result.issuer is not None and result.issuer.agency_code == "gd-ed"


# -- lifecycle verdicts and raising ----------------------------------------------------------------


def test_verify_or_raise(published: Published, clock: FakeClock) -> None:
    registry, cert, bundle = published
    verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
    assert verifier.verify_or_raise(cert.token) == verifier.verify(cert.token)
    with pytest.raises(ecert.VerificationFailed) as info:
        verifier.verify_or_raise("garbage")
    assert isinstance(info.value, ecert.EcertError)
    assert info.value.code == "verification_failed"
    assert info.value.result.status is S.INVALID
    assert info.value.result.errors == (E.MALFORMED,)
    assert "malformed" in str(info.value)

    registry.revoke(cert.id, "key-compromise")
    registry.publish(bundle)
    verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
    with pytest.raises(ecert.VerificationFailed) as info:
        verifier.verify_or_raise(cert.token)
    assert info.value.result.status is S.REVOKED
    assert info.value.result.errors == (E.REVOKED,)
    assert info.value.result.certificate is not None
    assert info.value.result.certificate.status is ecert.CertificateStatus.REVOKED
    assert "revoked" in str(info.value)


def test_suspended_then_reinstated(published: Published, clock: FakeClock) -> None:
    registry, cert, bundle = published
    registry.suspend(cert.id)
    registry.publish(bundle)
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token)
    assert (result.valid, result.status, result.errors) == (False, S.SUSPENDED, (E.SUSPENDED,))
    assert result.certificate is not None
    assert result.certificate.status is ecert.CertificateStatus.SUSPENDED
    registry.reinstate(cert.id)
    registry.publish(bundle)
    assert ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token).valid is True


def test_revoked_and_expired_reports_both_gravest_first(registry: ecert.Registry,
                                                        tmp_path: Path, clock: FakeClock) -> None:
    bundle = tmp_path / "b"
    cert = issue(registry, bundle, valid_until=EPOCH + timedelta(hours=1))
    registry.revoke(cert.id, "superseded")
    registry.publish(bundle)
    clock.advance(hours=2)
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token)
    assert (result.valid, result.status, result.errors) == (False, S.REVOKED,
                                                            (E.REVOKED, E.EXPIRED))
    assert len(result.messages) == 2


def test_suspended_and_not_yet_valid(registry: ecert.Registry, tmp_path: Path,
                                     clock: FakeClock) -> None:
    bundle = tmp_path / "b"
    cert = issue(registry, bundle, valid_from=EPOCH + timedelta(days=2))
    registry.suspend(cert.id)
    registry.publish(bundle)
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token)
    assert (result.valid, result.status, result.errors) == (False, S.SUSPENDED,
                                                            (E.SUSPENDED, E.NOT_YET_VALID))


# -- leeway ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("leeway", [60, 0, 300])
def test_leeway_around_exp(registry: ecert.Registry, tmp_path: Path, clock: FakeClock,
                           leeway: int) -> None:
    bundle = tmp_path / "b"
    cert = issue(registry, bundle, valid_until=EPOCH + timedelta(hours=2))
    exp = payload_of(cert.token)["exp"]
    assert exp == int(EPOCH.timestamp()) + 7200
    verifier = ecert.Verifier.from_bundle(
        bundle, clock=clock, limits=ecert.VerificationLimits(leeway_seconds=leeway))
    at(clock, exp + leeway - 1)
    assert verifier.verify(cert.token).valid is True
    at(clock, exp + leeway)
    result = verifier.verify(cert.token)
    assert (result.valid, result.status, result.errors) == (False, S.EXPIRED, (E.EXPIRED,))


@pytest.mark.parametrize("leeway", [60, 0, 300])
def test_leeway_around_nbf(registry: ecert.Registry, tmp_path: Path, clock: FakeClock,
                           leeway: int) -> None:
    bundle = tmp_path / "b"
    cert = issue(registry, bundle, valid_from=EPOCH + timedelta(hours=2))
    nbf = payload_of(cert.token)["nbf"]
    assert nbf == int(EPOCH.timestamp()) + 7200
    verifier = ecert.Verifier.from_bundle(
        bundle, clock=clock, limits=ecert.VerificationLimits(leeway_seconds=leeway))
    at(clock, nbf - leeway - 1)
    result = verifier.verify(cert.token)
    assert (result.valid, result.status, result.errors) == (False, S.NOT_YET_VALID,
                                                            (E.NOT_YET_VALID,))
    at(clock, nbf - leeway)
    assert verifier.verify(cert.token).valid is True


def test_leeway_around_issued_at(published_copy: Published, clock: FakeClock) -> None:
    registry, cert, bundle = published_copy
    signer = registry.keystore.signer(cert.kid)
    now = int(clock().timestamp())
    strict = ecert.Verifier.from_bundle(bundle, clock=clock,
                                        limits=ecert.VerificationLimits(leeway_seconds=0))
    for iat, valid in ((now, True), (now + 1, False)):
        payload = {**payload_of(cert.token), "iat": iat, "nbf": now}
        result = strict.verify(jose.sign_compact(payload, signer, CERTIFICATE_TYP))
        assert result.valid is valid
        if not valid:
            assert (result.status, result.errors) == (S.INVALID, (E.ISSUED_IN_FUTURE,))


# -- status list caching ------------------------------------------------------------------------


def test_status_list_cached_until_ttl(published: Published, clock: FakeClock) -> None:
    registry, cert, bundle = published
    cached = ecert.Verifier.from_bundle(bundle, clock=clock)
    assert cached.verify(cert.token).valid is True

    registry.revoke(cert.id, "privilege-withdrawn")
    registry.publish(bundle, status_list_ttl=timedelta(hours=1))
    fresh = ecert.Verifier.from_bundle(bundle, clock=clock)
    assert fresh.verify(cert.token).status is S.REVOKED
    # The cached verifier keeps its answer until the ttl of the list it read (1 hour).
    assert cached.verify(cert.token).valid is True
    clock.advance(seconds=3599)
    assert cached.verify(cert.token).valid is True
    clock.advance(seconds=1)
    result = cached.verify(cert.token)
    assert (result.status, result.errors) == (S.REVOKED, (E.REVOKED,))


def test_status_list_cache_respects_a_short_ttl(registry: ecert.Registry, tmp_path: Path,
                                                clock: FakeClock) -> None:
    bundle = tmp_path / "b"
    cert = issue_business_licence(registry)
    registry.publish(bundle, status_list_ttl=timedelta(minutes=5))
    cached = ecert.Verifier.from_bundle(bundle, clock=clock)
    assert cached.verify(cert.token).valid is True
    registry.suspend(cert.id)
    registry.publish(bundle)
    clock.advance(seconds=299)
    assert cached.verify(cert.token).valid is True
    clock.advance(seconds=1)
    assert cached.verify(cert.token).status is S.SUSPENDED


def test_status_list_cache_never_outlives_the_list(registry: ecert.Registry, tmp_path: Path,
                                                   clock: FakeClock) -> None:
    bundle = tmp_path / "b"
    cert = issue_business_licence(registry)
    registry.publish(bundle, status_list_validity=timedelta(minutes=10),
                     status_list_ttl=timedelta(hours=6))
    cached = ecert.Verifier.from_bundle(bundle, clock=clock)
    assert cached.verify(cert.token).valid is True
    registry.revoke(cert.id, "unspecified")
    clock.advance(minutes=10)
    registry.publish(bundle)  # a new list, issued now
    result = cached.verify(cert.token)
    assert (result.status, result.errors) == (S.REVOKED, (E.REVOKED,))


# -- key rotation --------------------------------------------------------------------------------


def test_key_rotation(published: Published, clock: FakeClock) -> None:
    registry, old_cert, bundle = published
    old_kid = old_cert.kid
    clock.advance(hours=1)
    new_key = registry.rotate_agency_key("gd-amr")
    assert new_key.kid != old_kid
    assert new_key.role is KeyRole.AGENCY and new_key.agency_code == "gd-amr"
    registry.publish(bundle)

    verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
    result = verifier.verify(old_cert.token)
    assert result.valid is True, result
    assert result.issuer is not None and result.issuer.kid == old_kid

    new_cert = issue_business_licence(registry)
    assert new_cert.kid == new_key.kid
    assert json.loads(jose.b64url_decode(new_cert.token.split(".")[0]))["kid"] == new_key.kid
    registry.publish(bundle)
    verifier = ecert.Verifier.from_bundle(bundle, clock=clock)
    result = verifier.verify(new_cert.token)
    assert result.valid is True, result
    assert result.issuer is not None and result.issuer.kid == new_key.kid
    assert verifier.verify(old_cert.token).valid is True

    (agency,) = [a for a in verifier.trust_list.agencies if a.code == "gd-amr"]
    keys = {k.kid: k for k in agency.keys}
    rotated_at = int(clock().timestamp())
    assert keys[old_kid].status == "retired"
    assert keys[old_kid].valid_until == rotated_at
    assert keys[new_key.kid].status == "active" and keys[new_key.kid].valid_until is None
    assert keys[new_key.kid].valid_from == rotated_at


def test_retired_key_cannot_sign_after_retirement(published: Published,
                                                  clock: FakeClock) -> None:
    registry, cert, bundle = published
    old_signer = registry.keystore.signer(cert.kid)  # say the key leaked before retirement
    registry.rotate_agency_key("gd-amr")
    retired_at = int(clock().timestamp())
    registry.publish(bundle)
    with pytest.raises(ecert.KeyStoreError):  # rotation destroyed the private key
        registry.keystore.signer(cert.kid)
    verifier = ecert.Verifier.from_bundle(bundle, clock=clock)

    payload = {**payload_of(cert.token), "iat": retired_at, "nbf": retired_at}
    assert verifier.verify(jose.sign_compact(payload, old_signer, CERTIFICATE_TYP)).valid is True

    clock.advance(minutes=5)
    later = retired_at + 300
    payload = {**payload_of(cert.token), "iat": later, "nbf": later}
    result = verifier.verify(jose.sign_compact(payload, old_signer, CERTIFICATE_TYP))
    assert result.valid is False
    assert result.status is S.UNTRUSTED
    assert result.errors == (E.KEY_NOT_VALID_AT_IAT,)
    payload = {**payload_of(cert.token), "iat": retired_at + 1, "nbf": retired_at}
    result = verifier.verify(jose.sign_compact(payload, old_signer, CERTIFICATE_TYP))
    assert (result.status, result.errors) == (S.UNTRUSTED, (E.KEY_NOT_VALID_AT_IAT,))


def test_new_key_cannot_vouch_for_earlier_issuance(published: Published,
                                                   clock: FakeClock) -> None:
    registry, cert, bundle = published
    clock.advance(days=1)
    new_key = registry.rotate_agency_key("gd-amr")
    registry.publish(bundle)
    signer = registry.keystore.signer(new_key.kid)
    payload = payload_of(cert.token)  # iat a day before the new key existed
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(
        jose.sign_compact(payload, signer, CERTIFICATE_TYP))
    assert (result.valid, result.status, result.errors) == (False, S.UNTRUSTED,
                                                            (E.KEY_NOT_VALID_AT_IAT,))


# -- anchors and the trust list ------------------------------------------------------------------


def test_pinned_anchor_of_this_registry(published_copy: Published, clock: FakeClock) -> None:
    registry, cert, bundle = published_copy
    verifier = ecert.Verifier.from_bundle(bundle, anchor=registry.anchor(), clock=clock)
    assert verifier.verify(cert.token).valid is True
    loaded = ecert.TrustAnchor.load(bundle / "anchor.json")
    assert loaded == registry.anchor()


@pytest.mark.parametrize("region", ["GD", "ZJ"])
def test_pinned_anchor_of_another_registry(published_copy: Published, clock: FakeClock,
                                           make_registry: RegistryFactory, region: str) -> None:
    _, _, bundle = published_copy
    other = make_registry(region, populate=False)
    with pytest.raises(ecert.TrustListError) as info:
        ecert.Verifier.from_bundle(bundle, anchor=other.anchor(), clock=clock)
    assert info.value.code == "trust_list_bad_signature"


def _resign_trust_list(registry: ecert.Registry, bundle: Path, payload: dict[str, Any]) -> None:
    root = registry.keystore.signer(registry.anchor().kid)
    (bundle / "trustlist.jwt").write_text(jose.sign_compact(payload, root, TRUST_LIST_TYP))


def test_tampered_trust_list_refused(published_copy: Published, clock: FakeClock) -> None:
    _, _, bundle = published_copy
    header, payload, signature = (bundle / "trustlist.jwt").read_text().strip().split(".")
    content = json.loads(jose.b64url_decode(payload))
    content["agencies"][0]["types"].append("cn.professional-qualification")
    forged = jose.b64url_encode(jose.canonical_json(content))
    (bundle / "trustlist.jwt").write_text(f"{header}.{forged}.{signature}")
    with pytest.raises(ecert.TrustListError) as info:
        ecert.Verifier.from_bundle(bundle, clock=clock)
    assert info.value.code == "trust_list_bad_signature"


def test_garbage_trust_list_refused(published_copy: Published, clock: FakeClock) -> None:
    _, _, bundle = published_copy
    (bundle / "trustlist.jwt").write_text("garbage")
    with pytest.raises(ecert.TrustListError) as info:
        ecert.Verifier.from_bundle(bundle, clock=clock)
    assert info.value.code == "trust_list_malformed"


def test_missing_bundle_files(published_copy: Published, clock: FakeClock, tmp_path: Path) -> None:
    _, _, bundle = published_copy
    with pytest.raises(ecert.TrustListError) as info:
        ecert.Verifier.from_bundle(tmp_path / "nowhere", clock=clock)
    assert info.value.code == "anchor_unreadable"
    (bundle / "trustlist.jwt").unlink()
    with pytest.raises(ecert.TrustListError) as info:
        ecert.Verifier.from_bundle(bundle, clock=clock)
    assert info.value.code == "trust_list_unavailable"


def test_trust_list_for_another_region_refused(published_copy: Published, clock: FakeClock) -> None:
    registry, _, bundle = published_copy
    content = payload_of((bundle / "trustlist.jwt").read_text())
    content["region"]["code"] = "ZJ"
    _resign_trust_list(registry, bundle, content)
    with pytest.raises(ecert.TrustListError) as info:
        ecert.Verifier.from_bundle(bundle, clock=clock)
    assert info.value.code == "trust_list_wrong_region"


@pytest.mark.parametrize("status", [["active"], {"active": True}, 1, None])
def test_root_signed_trust_list_with_malformed_key_status(published_copy: Published,
                                                          clock: FakeClock, status: Any) -> None:
    # Even a document signed by the pinned root is parsed strictly: a malformed entry is
    # a TrustListError, never a stray TypeError.
    registry, _, bundle = published_copy
    content = payload_of((bundle / "trustlist.jwt").read_text())
    content["agencies"][0]["keys"][0]["status"] = status
    _resign_trust_list(registry, bundle, content)
    with pytest.raises(ecert.TrustListError) as info:
        ecert.Verifier.from_bundle(bundle, clock=clock)
    assert info.value.code == "trust_list_malformed"


def test_trust_list_rollback_refused(published: Published, clock: FakeClock) -> None:
    registry, _, bundle = published
    old = (bundle / "trustlist.jwt").read_text()
    registry.publish(bundle)
    new = (bundle / "trustlist.jwt").read_text()
    now = int(clock().timestamp())
    anchor = registry.anchor()
    assert load_trust_list(new, anchor, now=now, grace=0, seen_sequence=2).sequence == 2
    with pytest.raises(ecert.TrustListError) as info:
        load_trust_list(old, anchor, now=now, grace=0, seen_sequence=2)
    assert info.value.code == "trust_list_rollback"


def test_trust_list_freshness_at_construction(published_copy: Published, clock: FakeClock) -> None:
    _, _, bundle = published_copy
    grace = ecert.VerificationLimits().trust_list_grace_seconds
    clock.advance(days=7, seconds=grace)
    ecert.Verifier.from_bundle(bundle, clock=clock)  # at next_update + grace: accepted
    clock.advance(seconds=1)
    with pytest.raises(ecert.TrustListError) as info:
        ecert.Verifier.from_bundle(bundle, clock=clock)
    assert info.value.code == "trust_list_expired"
    short = ecert.VerificationLimits(trust_list_grace_seconds=0)
    at(clock, int(EPOCH.timestamp()) + 7 * DAY + 1)
    with pytest.raises(ecert.TrustListError):
        ecert.Verifier.from_bundle(bundle, clock=clock, limits=short)
