"""Interoperability: a standard JOSE library (PyJWT) verifies what ecert publishes, using
only the public files of a bundle, and ecert verifies what PyJWT signs."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

import ecert
from ecert import _samples
from tests.support import FakeClock, Published, issue_business_licence

#: Time claims are checked by ecert against its injected clock; PyJWT would use the wall
#: clock, so the tests leave those three to ecert and check every other claim.
NO_WALL_CLOCK: dict[str, Any] = {"verify_aud": False, "verify_exp": False,
                                 "verify_nbf": False, "verify_iat": False}


def jwks(bundle: Path) -> dict[str, dict[str, Any]]:
    document = json.loads((bundle / ".well-known" / "jwks.json").read_text("utf-8"))
    return {key["kid"]: key for key in document["keys"]}


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_jwks_document_is_public_and_complete(published_copy: Published) -> None:
    registry, cert, bundle = published_copy
    keys = jwks(bundle)
    infos = registry.keys()
    assert set(keys) == {k.kid for k in infos}
    assert cert.kid in keys and registry.anchor().kid in keys
    for kid, key in keys.items():
        assert not {"d", "p", "q", "k"} & set(key), "private material in the JWKS"
        assert key["use"] == "sig"
        # PyJWT reads every key; for EC keys the alg name is the standard one.
        parsed = jwt.PyJWK(key, algorithm="EdDSA" if key["kty"] == "OKP" else None)
        assert parsed.key_id == kid


def test_pyjwt_verifies_es256_certificate(published_copy: Published) -> None:
    _, cert, bundle = published_copy
    header = jwt.get_unverified_header(cert.token)
    assert header == {"alg": "ES256", "kid": cert.kid, "typ": "ecert+jwt"}
    key = jwt.PyJWK(jwks(bundle)[header["kid"]])
    assert key.algorithm_name == "ES256"
    claims = jwt.decode(cert.token, key, algorithms=["ES256"],
                        issuer="https://ecert.gd.example/agencies/gd-amr",
                        options={**NO_WALL_CLOCK, "require": ["iss", "sub", "iat", "nbf",
                                                              "exp", "jti"]})
    assert claims["jti"] == cert.id
    assert claims["sub"] == cert.holder
    assert claims["vct"] == "cn.business-licence"
    assert claims["region"] == "GD"
    assert claims["holder_name"] == cert.holder_name
    assert claims["claims"] == dict(cert.claims)
    assert claims["iat"] == claims["nbf"] == int(cert.issued_at.timestamp())
    assert cert.valid_until is not None and claims["exp"] == int(cert.valid_until.timestamp())
    assert claims["status"] == {"status_list": {"idx": cert.status_index,
                                                "uri": cert.status_list_uri}}


def test_pyjwt_refuses_tampered_certificate(published_copy: Published) -> None:
    _, cert, bundle = published_copy
    key = jwt.PyJWK(jwks(bundle)[cert.kid])
    header, payload, signature = cert.token.split(".")
    content = json.loads(b64decode(payload))
    content["holder_name"] = "Mallory Ltd"
    forged_payload = base64.urlsafe_b64encode(json.dumps(content).encode()).rstrip(b"=")
    forged = f"{header}.{forged_payload.decode()}.{signature}"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key, algorithms=["ES256"], options=NO_WALL_CLOCK)
    other_key = next(k for kid, k in jwks(bundle).items() if kid != cert.kid
                     and k["kty"] == "EC")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(cert.token, jwt.PyJWK(other_key), algorithms=["ES256"], options=NO_WALL_CLOCK)


@pytest.fixture
def ed25519_licence(registry: ecert.Registry, tmp_path: Path) -> tuple[ecert.Certificate, Path]:
    registry.add_type(
        "test.ed-licence", name="Ed25519 test licence", national_type_code="11100000MB0143028R009",
        schema={"type": "object", "properties": {"name": {"type": "string"}},
                "required": ["name"]},
        validity_days=30,
    )
    registry.add_agency("test-ed", name="Ed25519 test agency", uscc="91440300MA5F3K2L8G",
                        types=["test.ed-licence"], alg="Ed25519")
    cert = registry.issue("test.ed-licence", "test-ed", holder_id="91440300MA5F3K2L8G",
                          holder_name="Ed holder", claims={"name": "Ed holder"})
    bundle = tmp_path / "ed-bundle"
    registry.publish(bundle)
    return cert, bundle


def test_pyjwt_verifies_ed25519_certificate(ed25519_licence: tuple[ecert.Certificate, Path],
                                            clock: FakeClock) -> None:
    cert, bundle = ed25519_licence
    header = jwt.get_unverified_header(cert.token)
    assert header == {"alg": "Ed25519", "kid": cert.kid, "typ": "ecert+jwt"}
    jwk = jwks(bundle)[cert.kid]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "Ed25519")
    # RFC 9864 names the algorithm "Ed25519"; PyJWT knows it as EdDSA, so register it.
    jws = jwt.PyJWS()
    jws.register_algorithm("Ed25519", OKPAlgorithm())
    key = jwt.PyJWK(jwk, algorithm="EdDSA")
    payload = json.loads(jws.decode(cert.token, key.key, algorithms=["Ed25519"]))
    assert payload["jti"] == cert.id
    assert payload["vct"] == "test.ed-licence"
    assert payload["iss"] == "https://ecert.gd.example/agencies/test-ed"
    assert payload["claims"] == {"name": "Ed holder"}
    with pytest.raises(jwt.InvalidAlgorithmError):
        jws.decode(cert.token, key.key, algorithms=["EdDSA"])
    # ecert agrees.
    assert ecert.Verifier.from_bundle(bundle, clock=clock).verify(cert.token).valid is True


def test_cryptography_verifies_ed25519_certificate_from_jwk(
    ed25519_licence: tuple[ecert.Certificate, Path],
) -> None:
    cert, bundle = ed25519_licence
    jwk = jwks(bundle)[cert.kid]
    public = ed25519.Ed25519PublicKey.from_public_bytes(b64decode(jwk["x"]))
    signing_input, _, signature = cert.token.rpartition(".")
    public.verify(b64decode(signature), signing_input.encode("ascii"))  # raises if bad


def test_pyjwt_verifies_status_list_token(published: Published) -> None:
    registry, cert, bundle = published
    registry.revoke(cert.id, "unspecified")
    suspended = issue_business_licence(registry)
    registry.suspend(suspended.id)
    valid = issue_business_licence(registry)
    registry.publish(bundle)

    token = (bundle / "status" / "1.jwt").read_text().strip()
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "statuslist+jwt"
    assert header["alg"] == "ES256"
    status_key = jwks(bundle)[header["kid"]]
    infos = registry.keys()
    (status_info,) = [k for k in infos if k.role is ecert.KeyRole.STATUS]
    assert header["kid"] == status_info.kid
    claims = jwt.decode(token, jwt.PyJWK(status_key), algorithms=["ES256"],
                        options={**NO_WALL_CLOCK, "require": ["sub", "iat", "exp"]})
    assert claims["sub"] == cert.status_list_uri == "https://ecert.gd.example/status/1.jwt"
    assert claims["ttl"] == 3600 and claims["exp"] == claims["iat"] + 86_400
    # Decode the list as the IETF draft describes it, without ecert.
    assert claims["status_list"]["bits"] == 2
    raw = zlib.decompress(b64decode(claims["status_list"]["lst"]))
    assert len(raw) * 4 == 131_072

    def status(index: int) -> int:
        return (raw[index * 2 // 8] >> (index * 2 % 8)) & 0b11

    assert status(cert.status_index) == 1
    assert status(suspended.status_index) == 2
    assert status(valid.status_index) == 0
    # Every index the log never allocated reads invalid (1): only the three issued differ.
    allocated = {cert.status_index, suspended.status_index, valid.status_index}
    assert all(status(i) == 1 for i in range(131_072) if i not in allocated)


def test_pyjwt_verifies_trust_list_with_the_anchor_key(published_copy: Published) -> None:
    _, cert, bundle = published_copy
    anchor = json.loads((bundle / "anchor.json").read_text("utf-8"))
    token = (bundle / "trustlist.jwt").read_text().strip()
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": anchor["root_key"]["kid"],
                      "typ": "ecert-trustlist+jwt"}
    claims = jwt.decode(token, jwt.PyJWK(anchor["root_key"]), algorithms=["ES256"],
                        issuer="https://ecert.gd.example", options=NO_WALL_CLOCK)
    assert claims["region"]["code"] == "GD"
    agencies = {a["code"]: a for a in claims["agencies"]}
    assert cert.kid in {k["jwk"]["kid"] for k in agencies["gd-amr"]["keys"]}
    assert "cn.business-licence" in agencies["gd-amr"]["types"]


def test_ecert_verifies_token_signed_by_pyjwt(published_copy: Published, clock: FakeClock) -> None:
    registry, cert, bundle = published_copy
    private_key = registry.keystore.load(cert.kid)
    claims = jwt.decode(cert.token, options={"verify_signature": False})
    token = jwt.encode(claims, private_key, algorithm="ES256",
                       headers={"kid": cert.kid, "typ": "ecert+jwt"})
    assert token != cert.token
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": cert.kid,
                                                "typ": "ecert+jwt"}
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(token)
    assert result.valid is True, result
    assert result.certificate is not None and result.certificate.id == cert.id


def test_pyjwt_none_token_refused_by_ecert(published_copy: Published, clock: FakeClock) -> None:
    _, cert, bundle = published_copy
    claims = jwt.decode(cert.token, options={"verify_signature": False})
    token = jwt.encode(claims, None, algorithm="none",
                       headers={"kid": cert.kid, "typ": "ecert+jwt"})
    result = ecert.Verifier.from_bundle(bundle, clock=clock).verify(token)
    assert result.valid is False and result.status is ecert.VerificationStatus.INVALID


def test_sample_claims_are_what_was_signed(published_copy: Published) -> None:
    _, cert, _ = published_copy
    claims = jwt.decode(cert.token, options={"verify_signature": False})
    assert claims["claims"] == _samples.claims("business-licence-gd")
