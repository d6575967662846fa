"""Attacks on :meth:`ecert.Verifier.verify`, one named test each.

Every forged token starts from a real GD business licence published to a bundle. Tokens
that must fail *after* the signature check are signed with the agency's real key (taken
from the registry's key store): the refusal must then come from the rule under test, not
from a broken signature. Each result is asserted exactly: ``valid``, ``status``, ``errors``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ecert
from ecert import _samples
from ecert._formats import jose
from ecert._formats.certificate import CERTIFICATE_TYP
from ecert._formats.statuslist import StatusList, make_status_list_token
from ecert.identifiers import CertificateId, is_valid_uscc
from ecert.keys import LocalSigner, generate_private_key
from ecert.models import KeyRole
from ecert.verify import ErrorCode as E
from ecert.verify import VerificationResult, VerificationStatus, Verifier
from tests.support import FakeClock, Published

S = VerificationStatus
P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
STATUS_URI = "https://ecert.gd.example/status/1.jwt"
LIST_SIZE = 131_072
DAY = 86_400


def b64(data: bytes) -> str:
    return jose.b64url_encode(data)


def encode_json(value: Any) -> str:
    return b64(json.dumps(value, ensure_ascii=False).encode())


def sign_raw(header: str | dict[str, Any], payload: str | dict[str, Any], signer: Any) -> str:
    """A compact JWS over exactly the given JSON texts (or objects), signed by ``signer``."""
    h = b64(header.encode()) if isinstance(header, str) else encode_json(header)
    p = b64(payload.encode()) if isinstance(payload, str) else encode_json(payload)
    signing_input = f"{h}.{p}"
    return f"{signing_input}.{b64(signer.sign(signing_input.encode()))}"


def decode_part(token: str, index: int) -> dict[str, Any]:
    value = json.loads(jose.b64url_decode(token.split(".")[index]))
    assert isinstance(value, dict)
    return value


@dataclass
class Env:
    registry: ecert.Registry
    cert: ecert.Certificate
    bundle: Path
    clock: FakeClock
    agency: LocalSigner

    @property
    def header(self) -> dict[str, Any]:
        return decode_part(self.cert.token, 0)

    @property
    def payload(self) -> dict[str, Any]:
        return copy.deepcopy(decode_part(self.cert.token, 1))

    def verifier(self, **kwargs: Any) -> Verifier:
        return Verifier.from_bundle(self.bundle, clock=self.clock, **kwargs)

    def verify(self, token: str | bytes) -> VerificationResult:
        return self.verifier().verify(token)

    def signed(self, payload: dict[str, Any], signer: Any = None) -> str:
        """A certificate token over ``payload`` signed the way the registry signs."""
        return jose.sign_compact(payload, signer or self.agency, CERTIFICATE_TYP)

    def key(self, role: KeyRole) -> LocalSigner:
        infos = self.registry.keys()
        (info,) = [k for k in infos if k.role is role]
        return self.registry.keystore.signer(info.kid)

    @property
    def status_file(self) -> Path:
        return self.bundle / "status" / "1.jwt"

    def write_status_list(self, signer: Any, *, statuses: dict[int, int] | None = None,
                          uri: str = STATUS_URI, issued_at: int | None = None,
                          expires_at: int | None = None, ttl: int | None = 3600) -> None:
        now = int(self.clock().timestamp())
        status_list = StatusList(LIST_SIZE, 2)
        for index, value in (statuses or {}).items():
            status_list[index] = value
        token = make_status_list_token(
            uri, status_list, signer, issued_at=now if issued_at is None else issued_at,
            expires_at=now + DAY if expires_at is None else expires_at, ttl=ttl)
        self.status_file.write_text(token, "ascii")


@pytest.fixture
def env(shared_published: Published, clock: FakeClock) -> Env:
    """The golden registry and bundle, shared: the test only reads them (checked)."""
    registry, cert, bundle = shared_published
    return Env(registry, cert, bundle, clock, registry.keystore.signer(cert.kid))


@pytest.fixture
def files_env(published_copy: Published, clock: FakeClock) -> Env:
    """The golden registry (read only) with a copy of the bundle the test changes."""
    registry, cert, bundle = published_copy
    return Env(registry, cert, bundle, clock, registry.keystore.signer(cert.kid))


@pytest.fixture
def own_env(published: Published, clock: FakeClock) -> Env:
    """A registry of the test's own, for the tests that issue and publish."""
    registry, cert, bundle = published
    return Env(registry, cert, bundle, clock, registry.keystore.signer(cert.kid))


def refused(result: VerificationResult, status: VerificationStatus, code: E) -> None:
    """A refusal by one check: not valid, that status, exactly that error, no certificate."""
    assert result.valid is False
    assert not result
    assert result.status is status
    assert result.errors == (code,)
    assert result.certificate is None and result.issuer is None
    assert not any(m.startswith("internal error") for m in result.messages), result.messages


def lifecycle(result: VerificationResult, status: VerificationStatus, *codes: E) -> None:
    """A well-formed, trusted certificate that is nevertheless not valid now."""
    assert result.valid is False
    assert not result
    assert result.status is status
    assert result.errors == codes
    assert result.certificate is not None and result.issuer is not None


def fresh_uscc(body: str) -> str:
    (uscc,) = [body + c for c in "0123456789ABCDEFGHJKLMNPQRTUWXY" if is_valid_uscc(body + c)]
    return uscc


# -- the baseline: forging machinery produces valid tokens --------------------------------------


def test_baseline_original_token_is_valid(env: Env) -> None:
    result = env.verify(env.cert.token)
    assert result.valid is True
    assert result.status is S.VALID and result.errors == ()


def test_baseline_resigned_payload_is_valid(env: Env) -> None:
    # Without this, refusals of re-signed tokens below could come from the forging itself.
    assert env.verify(env.signed(env.payload)).valid is True
    assert env.verify(sign_raw(env.header, env.payload, env.agency)).valid is True


# -- alg -------------------------------------------------------------------------------------------


def test_alg_none_without_signature(env: Env) -> None:
    header = {**env.header, "alg": "none"}
    token = f"{encode_json(header)}.{env.cert.token.split('.')[1]}."
    refused(env.verify(token), S.INVALID, E.MALFORMED)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_with_signature(env: Env, alg: str) -> None:
    token = sign_raw({**env.header, "alg": alg}, env.payload, env.agency)
    refused(env.verify(token), S.INVALID, E.UNSUPPORTED_ALG)


def test_alg_missing(env: Env) -> None:
    header = {k: v for k, v in env.header.items() if k != "alg"}
    refused(env.verify(sign_raw(header, env.payload, env.agency)), S.INVALID, E.UNSUPPORTED_ALG)


def _public_key_encodings(env: Env) -> dict[str, bytes]:
    _, key = jose.key_from_jwk(env.agency.public_jwk)
    return {
        "pem": key.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.SubjectPublicKeyInfo),
        "der": key.public_bytes(serialization.Encoding.DER,
                                serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk": json.dumps(env.agency.public_jwk).encode(),
        "jwk_sorted": jose.canonical_json(env.agency.public_jwk),
        "point": key.public_bytes(serialization.Encoding.X962,
                                  serialization.PublicFormat.UncompressedPoint),
    }


@pytest.mark.parametrize("encoding", ["pem", "der", "jwk", "jwk_sorted", "point"])
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_agency_public_key(env: Env, encoding: str, alg: str) -> None:
    secret = _public_key_encodings(env)[encoding]
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{encode_json({**env.header, 'alg': alg})}.{encode_json(env.payload)}"
    mac = hmac.new(secret, signing_input.encode(), digest).digest()
    refused(env.verify(f"{signing_input}.{b64(mac)}"), S.INVALID, E.UNSUPPORTED_ALG)


@pytest.mark.parametrize("alg", ["EdDSA", "ES384", "ES256K", "RS256", "PS256", "es256", "ES256 "])
def test_other_algorithms_refused(env: Env, alg: str) -> None:
    token = sign_raw({**env.header, "alg": alg}, env.payload, env.agency)
    refused(env.verify(token), S.INVALID, E.UNSUPPORTED_ALG)


def test_es256_token_with_header_alg_ed25519(env: Env) -> None:
    token = sign_raw({**env.header, "alg": "Ed25519"}, env.payload, env.agency)
    refused(env.verify(token), S.INVALID, E.ALG_KEY_MISMATCH)


def _ed25519_licence(env: Env) -> tuple[ecert.Certificate, LocalSigner]:
    registry = env.registry
    registry.add_agency("gd-ed", name="Ed25519 agency", uscc=fresh_uscc("11440000MB2E09990"),
                        types=["cn.business-licence"], alg="Ed25519")
    claims = _samples.claims("business-licence-gd")
    cert = registry.issue("cn.business-licence", "gd-ed", holder_id=claims["uscc"],
                          holder_name=claims["name"], claims=claims)
    registry.publish(env.bundle)
    return cert, registry.keystore.signer(cert.kid)


def test_ed25519_token_with_header_alg_es256(own_env: Env) -> None:
    env = own_env  # issues and publishes: a registry of its own
    cert, signer = _ed25519_licence(env)
    assert signer.alg == "Ed25519"
    assert env.verify(cert.token).valid is True
    header = decode_part(cert.token, 0)
    payload = decode_part(cert.token, 1)
    assert header["alg"] == "Ed25519"
    token = sign_raw({**header, "alg": "ES256"}, payload, signer)
    refused(env.verify(token), S.INVALID, E.ALG_KEY_MISMATCH)
    # Ed25519 signature bytes under an ES256 header: same refusal, before any signature use.
    _, p, sig = cert.token.split(".")
    refused(env.verify(f"{encode_json({**header, 'alg': 'ES256'})}.{p}.{sig}"), S.INVALID,
            E.ALG_KEY_MISMATCH)


def test_es256_signature_under_ed25519_agency_kid(own_env: Env) -> None:
    env = own_env  # issues and publishes: a registry of its own
    cert, _ = _ed25519_licence(env)
    header = {**decode_part(cert.token, 0), "alg": "ES256"}
    refused(env.verify(sign_raw(header, decode_part(cert.token, 1), env.agency)), S.INVALID,
            E.ALG_KEY_MISMATCH)


# -- keys named by the token ----------------------------------------------------------------------


def _attacker() -> LocalSigner:
    return LocalSigner(generate_private_key("ES256"))


def _key_header(name: str, attacker: LocalSigner) -> Any:
    return {
        "jwk": attacker.public_jwk,
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": [b64(b"attacker certificate DER")],
        "x5t": b64(hashlib.sha1(b"attacker").digest()),
        "x5t#S256": b64(hashlib.sha256(b"attacker").digest()),
    }[name]


@pytest.mark.parametrize("name", ["jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256"])
@pytest.mark.parametrize("kid_of", ["attacker", "agency"])
def test_embedded_key_headers_refused(env: Env, name: str, kid_of: str) -> None:
    attacker = _attacker()
    kid = attacker.kid if kid_of == "attacker" else env.agency.kid
    header = {**env.header, "kid": kid, name: _key_header(name, attacker)}
    token = sign_raw(header, env.payload, attacker)
    # The attacker's signature is valid for the key it names: that must not matter.
    parsed = jose.parse_compact(token, max_bytes=100_000)
    _, attacker_key = jose.key_from_jwk(attacker.public_jwk)
    assert jose.verify_signature("ES256", attacker_key, parsed.signing_input, parsed.signature)
    refused(env.verify(token), S.INVALID, E.EMBEDDED_KEY)


def test_embedded_key_header_refused_even_with_agency_signature(env: Env) -> None:
    header = {**env.header, "jwk": env.agency.public_jwk}
    refused(env.verify(sign_raw(header, env.payload, env.agency)), S.INVALID, E.EMBEDDED_KEY)


def test_attacker_key_with_own_kid(env: Env) -> None:
    attacker = _attacker()
    token = sign_raw({**env.header, "kid": attacker.kid}, env.payload, attacker)
    refused(env.verify(token), S.UNTRUSTED, E.UNKNOWN_KID)


def test_key_of_another_agency(env: Env) -> None:
    (hrss,) = env.registry.keys("gd-hrss")
    signer = env.registry.keystore.signer(hrss.kid)
    refused(env.verify(env.signed(env.payload, signer)), S.UNTRUSTED, E.ISSUER_MISMATCH)
    payload = {**env.payload, "iss": "https://ecert.gd.example/agencies/gd-hrss"}
    refused(env.verify(env.signed(payload, signer)), S.UNTRUSTED, E.TYPE_NOT_AUTHORIZED)


def test_attacker_key_with_agency_kid(env: Env) -> None:
    refused(env.verify(sign_raw(env.header, env.payload, _attacker())), S.INVALID,
            E.BAD_SIGNATURE)


# -- other header policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["exp"], "exp": 1},
        {"crit": ["b64"], "b64": False},
        {"crit": ["urn:example:unknown"], "urn:example:unknown": True},
        {"crit": []},
    ],
)
def test_unknown_crit(env: Env, extra: dict[str, Any]) -> None:
    token = sign_raw({**env.header, **extra}, env.payload, env.agency)
    refused(env.verify(token), S.INVALID, E.UNSUPPORTED_CRIT)


@pytest.mark.parametrize("typ", ["JWT", "statuslist+jwt", "ecert-trustlist+jwt", "vc+sd-jwt",
                                 "", 1, None])
def test_wrong_typ(env: Env, typ: Any) -> None:
    token = sign_raw({**env.header, "typ": typ}, env.payload, env.agency)
    refused(env.verify(token), S.INVALID, E.WRONG_TYP)


def test_missing_typ(env: Env) -> None:
    header = {k: v for k, v in env.header.items() if k != "typ"}
    refused(env.verify(sign_raw(header, env.payload, env.agency)), S.INVALID, E.WRONG_TYP)


def test_status_list_token_presented_as_certificate(env: Env) -> None:
    refused(env.verify(env.status_file.read_text()), S.INVALID, E.WRONG_TYP)


def test_trust_list_token_presented_as_certificate(env: Env) -> None:
    refused(env.verify((env.bundle / "trustlist.jwt").read_text()), S.INVALID, E.WRONG_TYP)


@pytest.mark.parametrize("kid", ["unknown", "../keys/root", "https://ecert.gd.example/jwks.json",
                                 "x" * 128])
def test_unknown_kid(env: Env, kid: str) -> None:
    token = sign_raw({**env.header, "kid": kid}, env.payload, env.agency)
    refused(env.verify(token), S.UNTRUSTED, E.UNKNOWN_KID)


@pytest.mark.parametrize("kid", [None, "", 7, ["k"], "x" * 129])
def test_missing_or_malformed_kid(env: Env, kid: Any) -> None:
    header = {**env.header, "kid": kid}
    if kid is None:
        del header["kid"]
    refused(env.verify(sign_raw(header, env.payload, env.agency)), S.INVALID, E.MALFORMED)


@pytest.mark.parametrize("role", [KeyRole.STATUS, KeyRole.ROOT])
def test_kid_of_status_or_root_key_is_untrusted(env: Env, role: KeyRole) -> None:
    # A real key of the region, correctly signing: but root and status keys are not
    # agency keys, and may not sign certificates.
    signer = env.key(role)
    if role is KeyRole.ROOT:
        assert signer.kid == env.registry.anchor().kid
    refused(env.verify(env.signed(env.payload, signer)), S.UNTRUSTED, E.UNKNOWN_KID)


# -- tampering -----------------------------------------------------------------------------------


def _tampered(env: Env, **changes: Any) -> str:
    header, _, signature = env.cert.token.split(".")
    payload = env.payload
    for path, value in changes.items():
        target = payload
        *steps, last = path.split("__")
        for step in steps:
            target = target[step]
        target[last] = value
    return f"{header}.{b64(jose.canonical_json(payload))}.{signature}"


@pytest.mark.parametrize(
    "changes",
    [
        {"holder_name": "Mallory Ltd"},
        {"claims__registered_capital": "人民币1亿元"},
        {"status__status_list__idx": 0},
        {"exp": 4_102_444_800},
        {"nbf": 0},
        {"vct": "cn.food-business-licence"},
    ],
    ids=["holder_name", "claim", "status_idx", "exp", "nbf", "vct"],
)
def test_tampered_payload(env: Env, changes: dict[str, Any]) -> None:
    refused(env.verify(_tampered(env, **changes)), S.INVALID, E.BAD_SIGNATURE)


def test_payload_reencoded_differently(env: Env) -> None:
    # Same claims, other JSON spelling: the signature covers the bytes, not the meaning.
    header, _, signature = env.cert.token.split(".")
    token = f"{header}.{b64(json.dumps(env.payload, indent=1).encode())}.{signature}"
    refused(env.verify(token), S.INVALID, E.BAD_SIGNATURE)


def test_tampered_header(env: Env) -> None:
    _, payload, signature = env.cert.token.split(".")
    header = {**env.header, "cty": "JWT"}
    refused(env.verify(f"{encode_json(header)}.{payload}.{signature}"), S.INVALID,
            E.BAD_SIGNATURE)


def _with_signature(env: Env, signature: bytes) -> str:
    header, payload, _ = env.cert.token.split(".")
    return f"{header}.{payload}.{b64(signature)}"


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 0), (P256_ORDER, P256_ORDER), (0, 1), (1, 0), (P256_ORDER, 1), (1, P256_ORDER),
     (2**256 - 1, 2**256 - 1)],
    ids=["zero", "order", "r0", "s0", "r_order", "s_order", "max"],
)
def test_degenerate_ecdsa_signature(env: Env, r: int, s: int) -> None:
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    refused(env.verify(_with_signature(env, signature)), S.INVALID, E.BAD_SIGNATURE)


def test_signature_with_r_and_s_swapped(env: Env) -> None:
    sig = jose.b64url_decode(env.cert.token.split(".")[2])
    refused(env.verify(_with_signature(env, sig[32:] + sig[:32])), S.INVALID, E.BAD_SIGNATURE)


@pytest.mark.parametrize("keep", [0, 1, 32, 48, 63])
def test_truncated_signature(env: Env, keep: int) -> None:
    sig = jose.b64url_decode(env.cert.token.split(".")[2])
    token = _with_signature(env, sig[:keep])
    code = E.MALFORMED if keep == 0 else E.BAD_SIGNATURE  # an empty part is not a JWS
    refused(env.verify(token), S.INVALID, code)


def test_extended_signature(env: Env) -> None:
    sig = jose.b64url_decode(env.cert.token.split(".")[2])
    refused(env.verify(_with_signature(env, sig + b"\x00")), S.INVALID, E.BAD_SIGNATURE)
    refused(env.verify(_with_signature(env, bytes(1) + sig)), S.INVALID, E.BAD_SIGNATURE)


def test_der_encoded_signature(env: Env) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    sig = jose.b64url_decode(env.cert.token.split(".")[2])
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    refused(env.verify(_with_signature(env, der)), S.INVALID, E.BAD_SIGNATURE)


def test_signature_of_another_token_spliced_in(own_env: Env) -> None:
    env = own_env  # issues and publishes: a registry of its own
    other = env.registry.issue(
        "cn.business-licence", "gd-amr", holder_id="91440300MA5F3K2L8G",
        holder_name="Other Ltd",
        claims={**_samples.claims("business-licence-gd"), "name": "Other Ltd"})
    env.registry.publish(env.bundle)
    assert env.verify(other.token).valid is True
    header, payload, _ = env.cert.token.split(".")
    spliced = f"{header}.{payload}.{other.token.split('.')[2]}"
    refused(env.verify(spliced), S.INVALID, E.BAD_SIGNATURE)
    # And the other way round: the other token's payload under our signature.
    h2, p2, _ = other.token.split(".")
    refused(env.verify(f"{h2}.{p2}.{env.cert.token.split('.')[2]}"), S.INVALID, E.BAD_SIGNATURE)


# -- size, structure and encoding -----------------------------------------------------------------


def test_oversized_token(env: Env) -> None:
    limit = ecert.VerificationLimits().max_token_bytes
    refused(env.verify("A" * (limit + 1)), S.INVALID, E.TOO_LARGE)
    refused(env.verify(b"A" * (limit + 1)), S.INVALID, E.TOO_LARGE)
    junk = env.cert.token + "." + "A" * limit
    refused(env.verify(junk), S.INVALID, E.TOO_LARGE)


def test_oversized_token_even_if_validly_signed(env: Env) -> None:
    limit = ecert.VerificationLimits().max_token_bytes
    payload = env.payload
    payload["claims"]["business_scope"] = "经营" * (limit // 8)
    token = env.signed(payload)
    assert len(token) > limit
    refused(env.verify(token), S.INVALID, E.TOO_LARGE)
    refused(env.verify(token.encode()), S.INVALID, E.TOO_LARGE)


def test_token_size_limit_is_exact(env: Env) -> None:
    token = env.cert.token
    exact = ecert.VerificationLimits(max_token_bytes=len(token))
    assert env.verifier(limits=exact).verify(token).valid is True
    assert env.verifier(limits=exact).verify(token.encode()).valid is True
    small = ecert.VerificationLimits(max_token_bytes=len(token) - 1)
    refused(env.verifier(limits=small).verify(token), S.INVALID, E.TOO_LARGE)
    refused(env.verifier(limits=small).verify(token.encode()), S.INVALID, E.TOO_LARGE)


def test_deeply_nested_json_in_header(env: Env) -> None:
    depth = 20_000
    header = json.dumps(env.header)[:-1] + ',"x":' + "[" * depth + "]" * depth + "}"
    token = sign_raw(header, env.payload, env.agency)
    assert len(token) < ecert.VerificationLimits().max_token_bytes
    refused(env.verify(token), S.INVALID, E.MALFORMED)


@pytest.mark.parametrize("text", ["[" * 40_000, '{"a":' * 8_000, "[" * 20_000 + "]" * 20_000])
def test_deeply_nested_json_in_payload(env: Env, text: str) -> None:
    token = sign_raw(env.header, text, env.agency)
    assert len(token) < ecert.VerificationLimits().max_token_bytes
    refused(env.verify(token), S.INVALID, E.MALFORMED)


def test_deeply_nested_claims_inside_valid_payload(env: Env) -> None:
    payload = json.dumps(env.payload)[:-1] + ',"deep":' + "[" * 20_000 + "]" * 20_000 + "}"
    refused(env.verify(sign_raw(env.header, payload, env.agency)), S.INVALID, E.MALFORMED)


def test_duplicate_members_in_header(env: Env) -> None:
    h = env.header
    header = (f'{{"alg":"{h["alg"]}","kid":"{h["kid"]}","typ":"JWT",'
              f'"typ":"{CERTIFICATE_TYP}"}}')
    refused(env.verify(sign_raw(header, env.payload, env.agency)), S.INVALID, E.MALFORMED)
    header = f'{{"alg":"none","alg":"ES256","kid":"{h["kid"]}","typ":"{CERTIFICATE_TYP}"}}'
    refused(env.verify(sign_raw(header, env.payload, env.agency)), S.INVALID, E.MALFORMED)


@pytest.mark.parametrize("member", ["holder_name", "iss", "jti", "exp"])
def test_duplicate_members_in_payload_even_if_signed(env: Env, member: str) -> None:
    payload = jose.canonical_json(env.payload).decode()
    value = {"holder_name": '"Mallory Ltd"', "iss": '"https://attacker.example"',
             "jti": '"x"', "exp": "1"}[member]
    duplicated = payload[:-1] + f',"{member}":{value}}}'
    refused(env.verify(sign_raw(env.header, duplicated, env.agency)), S.INVALID, E.MALFORMED)


def test_duplicate_members_nested_in_payload(env: Env) -> None:
    payload = jose.canonical_json(env.payload).decode()
    duplicated = payload.replace('"idx":', '"idx":0,"idx":', 1)
    assert duplicated != payload
    refused(env.verify(sign_raw(env.header, duplicated, env.agency)), S.INVALID, E.MALFORMED)


@pytest.mark.parametrize(
    "insert", ["é", "\x00", "\u2024", "\uff0e", "\u200b", " ", "\t", "=", "+", "/"],
    ids=["e_acute", "nul", "one_dot_leader", "fullwidth_dot", "zero_width_space", "space",
         "tab", "pad", "plus", "slash"],
)
def test_foreign_characters_inside_token(env: Env, insert: str) -> None:
    token = env.cert.token
    middle = token.index(".") + 5
    refused(env.verify(token[:middle] + insert + token[middle:]), S.INVALID, E.MALFORMED)


def test_nul_and_non_ascii_bytes(env: Env) -> None:
    raw = env.cert.token.encode()
    for mutated in (raw + b"\x00", b"\x00" + raw, raw[:20] + b"\xff" + raw[20:],
                    raw[:20] + "é".encode() + raw[20:], raw + b"\xe2\x80\x8b"):
        refused(env.verify(mutated), S.INVALID, E.MALFORMED)


def test_bytes_input(env: Env) -> None:
    verifier = env.verifier()
    for token in (env.cert.token.encode(), bytearray(env.cert.token.encode()),
                  env.cert.token.encode() + b"\n"):
        result = verifier.verify(token)
        assert result.valid is True, result
        assert result.certificate is not None and result.certificate.id == env.cert.id


@pytest.mark.parametrize("value", [None, 42, ["a", "b", "c"], {"token": "x"}, memoryview(b"x")])
def test_non_text_input_is_malformed(env: Env, value: Any) -> None:
    result = env.verify(value)
    assert result.valid is False
    assert result.status is S.INVALID
    assert result.errors == (E.MALFORMED,)


@pytest.mark.parametrize(
    "token", ["", ".", "..", "...", "a.b.c", "a.b", "e30.e30.", "e30..AA", ".e30.AA"]
)
def test_structurally_broken_tokens(env: Env, token: str) -> None:
    refused(env.verify(token), S.INVALID, E.MALFORMED)


@pytest.mark.parametrize("part", [0, 1])
@pytest.mark.parametrize("value", [[], "text", 1, None, True])
def test_header_or_payload_not_an_object(env: Env, part: int, value: Any) -> None:
    header: Any = value if part == 0 else env.header
    payload: Any = value if part == 1 else env.payload
    refused(env.verify(sign_raw(json.dumps(header) if part == 0 else header,
                                json.dumps(payload) if part == 1 else payload, env.agency)),
            S.INVALID, E.MALFORMED)


# -- claims bound to the issuer -------------------------------------------------------------------


def test_jti_with_wrong_check_character(env: Env) -> None:
    payload = env.payload
    check = payload["jti"][-1]
    payload["jti"] = payload["jti"][:-1] + ("A" if check != "A" else "B")
    refused(env.verify(env.signed(payload)), S.INVALID, E.BAD_CERTIFICATE_ID)


def _jti_variants(cert_id: str) -> dict[str, str]:
    cid = CertificateId.parse(cert_id)
    return {
        "lower_case": cert_id.lower(),
        "padded": f" {cert_id}",
        "other_issuer": str(CertificateId(cid.type_code, "11440000MB2D05678G", cid.serial)),
        "other_type": str(CertificateId("11100000MB0143028R002", cid.issuer_code, cid.serial)),
        "no_check": cert_id[:-2],
        "garbage": "not an id",
        "empty": "",
    }


@pytest.mark.parametrize("variant", ["lower_case", "padded", "other_issuer", "other_type",
                                     "no_check", "garbage", "empty"])
def test_jti_not_a_well_formed_id_of_this_agency_and_type(env: Env, variant: str) -> None:
    payload = env.payload
    payload["jti"] = _jti_variants(env.cert.id)[variant]
    refused(env.verify(env.signed(payload)), S.INVALID, E.BAD_CERTIFICATE_ID)


@pytest.mark.parametrize(
    "iss",
    ["https://ecert.gd.example/agencies/gd-hrss", "https://ecert.zj.example/agencies/gd-amr",
     "https://ecert.gd.example/agencies/gd-amr/", "https://ECERT.gd.example/agencies/gd-amr",
     "gd-amr", ""],
)
def test_iss_of_another_agency(env: Env, iss: str) -> None:
    payload = {**env.payload, "iss": iss}
    refused(env.verify(env.signed(payload)), S.UNTRUSTED, E.ISSUER_MISMATCH)


@pytest.mark.parametrize(
    "vct", ["cn.professional-qualification", "cn.driving-licence", "zj.spjyxkz", "nonexistent",
            "CN.BUSINESS-LICENCE", ""],
)
def test_vct_the_agency_is_not_authorized_for(env: Env, vct: str) -> None:
    payload = {**env.payload, "vct": vct}
    refused(env.verify(env.signed(payload)), S.UNTRUSTED, E.TYPE_NOT_AUTHORIZED)


@pytest.mark.parametrize("region", ["ZJ", "SH", "gd", "GD ", ""])
def test_region_mismatch(env: Env, region: str) -> None:
    payload = {**env.payload, "region": region}
    refused(env.verify(env.signed(payload)), S.UNTRUSTED, E.REGION_MISMATCH)


@pytest.mark.parametrize(
    ("changes"),
    [{"iat": "1767225600"}, {"iat": True}, {"nbf": None}, {"exp": "never"}, {"claims": []},
     {"status": {"status_list": {"idx": -1, "uri": STATUS_URI}}},
     {"status": {"status_list": {"idx": True, "uri": STATUS_URI}}}, {"status": None},
     {"sub": 1}, {"vct_version": "1"}],
)
def test_claims_of_wrong_shape(env: Env, changes: dict[str, Any]) -> None:
    payload = {**env.payload, **changes}
    refused(env.verify(env.signed(payload)), S.INVALID, E.BAD_CLAIMS)


# -- status ---------------------------------------------------------------------------------------


def _with_status(env: Env, uri: str = STATUS_URI, idx: int | None = None) -> str:
    payload = env.payload
    payload["status"] = {"status_list": {"idx": env.cert.status_index if idx is None else idx,
                                         "uri": uri}}
    return env.signed(payload)


@pytest.mark.parametrize(
    "uri",
    [
        "https://attacker.example/status/1.jwt",
        "https://ecert.gd.example.attacker.example/status/1.jwt",
        "http://ecert.gd.example/status/1.jwt",
        "https://ecert.gd.example/status/../../../etc/passwd",
        "https://ecert.gd.example/status/./1.jwt",
        "https://ecert.gd.example//status/1.jwt",
        "https://ecert.gd.example/status/1.jwt?x=1",
        "https://ecert.gd.example/status\\1.jwt",
        "file:///etc/passwd",
        "/etc/passwd",
        "",
        "https://ecert.gd.example/status/2.jwt",
        "https://ecert.gd.example/status/",
    ],
)
def test_status_uri_outside_the_bundle(env: Env, uri: str) -> None:
    refused(env.verify(_with_status(env, uri=uri)), S.INVALID, E.STATUS_LIST_UNAVAILABLE)


@pytest.mark.parametrize("path", ["trustlist.jwt", "anchor.json", ".well-known/jwks.json"])
def test_status_uri_naming_another_bundle_document(env: Env, path: str) -> None:
    token = _with_status(env, uri=f"https://ecert.gd.example/{path}")
    refused(env.verify(token), S.INVALID, E.STATUS_LIST_INVALID)


@pytest.mark.parametrize("idx", [LIST_SIZE, LIST_SIZE + 1, 2**63, 10**30])
def test_status_index_out_of_range(env: Env, idx: int) -> None:
    refused(env.verify(_with_status(env, idx=idx)), S.INVALID, E.STATUS_INDEX_OUT_OF_RANGE)


def test_missing_status_list_file(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    verifier = env.verifier()
    env.status_file.unlink()
    refused(verifier.verify(env.cert.token), S.INVALID, E.STATUS_LIST_UNAVAILABLE)


def test_status_list_path_is_a_directory(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    env.status_file.unlink()
    env.status_file.mkdir()
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_UNAVAILABLE)


def test_tampered_status_list_file(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    header, _, signature = env.status_file.read_text().strip().split(".")
    content = decode_part(env.status_file.read_text(), 1)
    content["status_list"] = StatusList(LIST_SIZE, 2).encode()
    content["exp"] += 365 * DAY
    env.status_file.write_text(f"{header}.{encode_json(content)}.{signature}")
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_INVALID)


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"\xff\xfe", b"a.b.c", b"x" * 1000],
    ids=["empty", "garbage", "binary", "dots", "long"],
)
def test_garbage_status_list_file(files_env: Env, content: bytes) -> None:
    env = files_env  # changes bundle files: a copy of its own
    env.status_file.write_bytes(content)
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_INVALID)


def test_truncated_status_list_file(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    data = env.status_file.read_bytes()
    env.status_file.write_bytes(data[: len(data) // 2])
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_INVALID)


def test_status_list_larger_than_the_limit(env: Env) -> None:
    size = len(env.status_file.read_bytes())
    limits = ecert.VerificationLimits(max_status_list_bytes=size - 1)
    refused(env.verifier(limits=limits).verify(env.cert.token), S.INVALID,
            E.STATUS_LIST_UNAVAILABLE)
    assert env.verifier(limits=ecert.VerificationLimits(max_status_list_bytes=size)).verify(
        env.cert.token).valid is True


def test_status_list_signed_by_the_agency_key(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    # A revocation-hiding list signed by a real key of the region, but not a status key.
    env.write_status_list(env.agency)
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_INVALID)


def test_status_list_signed_by_the_root_key(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    env.write_status_list(env.key(KeyRole.ROOT))
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_INVALID)


def test_status_list_signed_by_attacker_under_status_kid(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    status_kid = env.key(KeyRole.STATUS).kid
    attacker = _attacker()
    content = decode_part(env.status_file.read_text(), 1)
    header = {"alg": "ES256", "kid": status_kid, "typ": "statuslist+jwt"}
    env.status_file.write_text(sign_raw(header, content, attacker))
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_INVALID)


def test_status_list_with_embedded_key(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    attacker = _attacker()
    content = decode_part(env.status_file.read_text(), 1)
    header = {"alg": "ES256", "kid": attacker.kid, "typ": "statuslist+jwt",
              "jwk": attacker.public_jwk}
    env.status_file.write_text(sign_raw(header, content, attacker))
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_INVALID)


def test_status_list_with_wrong_typ(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    status = env.key(KeyRole.STATUS)
    content = decode_part(env.status_file.read_text(), 1)
    header = {"alg": "ES256", "kid": status.kid, "typ": "JWT"}
    env.status_file.write_text(sign_raw(header, content, status))
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_INVALID)


def test_status_list_for_another_uri(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    # Genuinely signed by the status key, but it is the list of another URI.
    env.write_status_list(env.key(KeyRole.STATUS), uri="https://ecert.gd.example/status/2.jwt")
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_INVALID)


def test_status_list_issued_in_the_future(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    now = int(env.clock().timestamp())
    env.write_status_list(env.key(KeyRole.STATUS), issued_at=now + 3600,
                          expires_at=now + 2 * DAY)
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_INVALID)


def test_status_list_with_unknown_status_value(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    env.write_status_list(env.key(KeyRole.STATUS), statuses={env.cert.status_index: 3})
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_UNKNOWN_VALUE)


def test_status_list_genuinely_resigned_is_honoured(files_env: Env) -> None:
    env = files_env  # changes bundle files: a copy of its own
    # Control for the tests above: a list written by the status key is read as such.
    env.write_status_list(env.key(KeyRole.STATUS), statuses={env.cert.status_index: 1})
    lifecycle(env.verify(env.cert.token), S.REVOKED, E.REVOKED)


def test_expired_status_list(env: Env) -> None:
    leeway = ecert.VerificationLimits().leeway_seconds
    env.clock.advance(seconds=DAY + leeway - 1)  # the list was published for one day
    assert env.verify(env.cert.token).valid is True
    env.clock.advance(seconds=1)
    refused(env.verify(env.cert.token), S.INVALID, E.STATUS_LIST_EXPIRED)


def test_expired_status_list_even_for_a_verifier_that_cached_it(env: Env) -> None:
    verifier = env.verifier()
    assert verifier.verify(env.cert.token).valid is True
    env.clock.advance(seconds=DAY + 3600)
    refused(verifier.verify(env.cert.token), S.INVALID, E.STATUS_LIST_EXPIRED)


# -- time -----------------------------------------------------------------------------------------


def test_expired_trust_list(env: Env) -> None:
    verifier = env.verifier()
    grace = ecert.VerificationLimits().trust_list_grace_seconds
    env.clock.advance(days=7, seconds=grace)  # next_update + grace: still usable
    assert verifier.trust_list.next_update + grace == int(env.clock().timestamp())
    refused(verifier.verify(env.cert.token), S.INVALID, E.STATUS_LIST_EXPIRED)
    env.clock.advance(seconds=1)
    refused(verifier.verify(env.cert.token), S.UNTRUSTED, E.TRUST_LIST_EXPIRED)
    with pytest.raises(ecert.TrustListError) as info:
        env.verifier()
    assert info.value.code == "trust_list_expired"


def test_expired_certificate(own_env: Env) -> None:
    env = own_env  # issues and publishes: a registry of its own
    cert = issue_short_lived(env, valid_until=env.clock.now + timedelta(hours=1))
    env.clock.advance(hours=2)
    result = env.verify(cert.token)
    lifecycle(result, S.EXPIRED, E.EXPIRED)
    assert result.certificate is not None and result.certificate.id == cert.id


def test_not_yet_valid_certificate(own_env: Env) -> None:
    env = own_env  # issues and publishes: a registry of its own
    cert = issue_short_lived(env, valid_from=env.clock.now + timedelta(days=1))
    result = env.verify(cert.token)
    lifecycle(result, S.NOT_YET_VALID, E.NOT_YET_VALID)


def test_issued_in_the_future(env: Env) -> None:
    now = int(env.clock().timestamp())
    leeway = ecert.VerificationLimits().leeway_seconds
    payload = {**env.payload, "iat": now + leeway, "nbf": now + leeway}
    assert env.verify(env.signed(payload)).valid is True
    payload = {**env.payload, "iat": now + leeway + 1, "nbf": now + leeway + 1}
    refused(env.verify(env.signed(payload)), S.INVALID, E.ISSUED_IN_FUTURE)
    payload = {**env.payload, "iat": now + 365 * DAY}
    refused(env.verify(env.signed(payload)), S.INVALID, E.ISSUED_IN_FUTURE)


@pytest.mark.parametrize(
    "changes",
    [{"exp": 2**40}, {"exp": 10**20}, {"nbf": -(10**12)}, {"exp": 2**63}],
    ids=["exp_year_36812", "exp_1e20", "nbf_far_past", "exp_2_63"],
)
def test_times_outside_the_calendar_even_if_signed(env: Env, changes: dict[str, int]) -> None:
    # Stable codes for hostile claims, not the catch-all "internal error".
    refused(env.verify(env.signed({**env.payload, **changes})), S.INVALID, E.BAD_CLAIMS)


def test_issued_before_the_key_existed(env: Env) -> None:
    now = int(env.clock().timestamp())
    leeway = ecert.VerificationLimits().leeway_seconds
    payload = {**env.payload, "iat": now - leeway - 1, "nbf": now - leeway - 1}
    refused(env.verify(env.signed(payload)), S.UNTRUSTED, E.KEY_NOT_VALID_AT_IAT)


def issue_short_lived(env: Env, **kwargs: Any) -> ecert.Certificate:
    claims = _samples.claims("business-licence-gd")
    cert = env.registry.issue("cn.business-licence", "gd-amr", holder_id=claims["uscc"],
                              holder_name=claims["name"], claims=claims, **kwargs)
    env.registry.publish(env.bundle)
    return cert


# -- never raises, never accepts a changed token --------------------------------------------------


_hypothesis = settings(max_examples=300,
                       suppress_health_check=[HealthCheck.function_scoped_fixture])


@_hypothesis
@given(text=st.text())
def test_random_text_is_refused_without_raising(env: Env, text: str) -> None:
    result = env.verify(text)
    assert result.valid is False and result.errors
    assert result.status in (S.INVALID, S.UNTRUSTED)
    assert not any(m.startswith("internal error") for m in result.messages), result.messages


@_hypothesis
@given(data=st.binary())
def test_random_bytes_are_refused_without_raising(env: Env, data: bytes) -> None:
    result = env.verify(data)
    assert result.valid is False and result.errors
    assert not any(m.startswith("internal error") for m in result.messages), result.messages


_JWS_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


@settings(max_examples=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_character_mutations_are_never_valid(env: Env, data: st.DataObject) -> None:
    token = env.cert.token
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    char = data.draw(st.sampled_from(_JWS_CHARS) | st.characters(), label="char")
    mutated = token[:position] + char + token[position + 1 :]
    result = env.verify(mutated)
    if mutated == token:
        assert result.valid is True
        return
    assert result.valid is False and result.errors, (position, char)
    assert not any(m.startswith("internal error") for m in result.messages), result.messages


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutations_of_a_valid_token_are_never_valid(env: Env, data: st.DataObject) -> None:
    token = env.cert.token
    start = data.draw(st.integers(0, len(token)), label="start")
    end = data.draw(st.integers(start, min(len(token), start + 8)), label="end")
    insert = data.draw(st.text(_JWS_CHARS, max_size=8), label="insert")
    mutated = token[:start] + insert + token[end:]
    result = env.verify(mutated)
    assert result.valid is (mutated == token), (start, end, insert)
    assert not any(m.startswith("internal error") for m in result.messages), result.messages
