"""A test OpenID Connect identity provider: keys made in the test, ID tokens on demand,
its JWKS written where a loopback server (``http_server``) serves it, or handed over."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.support.clock import FakeClock

ISSUER = "https://idp.test.example/realms/citizens"
AUDIENCE = "ecert-sharing-gd"
#: The claim the test IdP puts the holder's id in (a national id, not the opaque ``sub``).
HOLDER_CLAIM = "national_id"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class TestIdp:
    """An IdP with one signing key per algorithm it was asked for; ``rotate`` adds one."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, clock: FakeClock, *, algorithms: tuple[str, ...] = ("ES256",)) -> None:
        self.clock = clock
        self.keys: dict[str, tuple[str, PrivateKey]] = {}
        for alg in algorithms:
            self.add_key(alg)

    def add_key(self, alg: str = "ES256") -> str:
        """A new signing key; its kid."""
        key: PrivateKey
        if alg == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = secrets.token_urlsafe(8)
        self.keys[kid] = (alg, key)
        return kid

    def jwks(self) -> dict[str, Any]:
        """The public keys, as the IdP's ``jwks_uri`` serves them."""
        out = []
        for kid, (alg, key) in self.keys.items():
            jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(
                key.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": alg})
        return {"keys": out}

    def publish(self, root: Path) -> str:
        """Write the JWKS under ``root`` (served by a LocalServer); its path there."""
        (root / "idp").mkdir(parents=True, exist_ok=True)
        (root / "idp" / "jwks.json").write_text(json.dumps(self.jwks()), encoding="utf-8")
        return "idp/jwks.json"

    def token(self, holder_id: str | None, *, kid: str | None = None,
              lifetime: int = 300, **claims: Any) -> str:
        """An ID token for ``holder_id``, issued now; ``claims`` override or add members
        (``None`` removes one)."""
        kid = kid or next(iter(self.keys))
        alg, key = self.keys[kid]
        now = int(self.clock().timestamp())
        payload: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "opaque-subject",
                                   "iat": now, "exp": now + lifetime,
                                   HOLDER_CLAIM: holder_id}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})
