"""Keys derived from a seed, and signatures that depend only on key and message.

The vectors must come out byte for byte the same on every run: each key is derived from
the seed and a label (HMAC-SHA256), Ed25519 signs deterministically by design, and ES256
signs with RFC 6979 deterministic nonces. These keys are public knowledge — the seed is
in the source — and must never sign anything but vectors.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ecert._formats.jose import ED25519, ES256, PrivateKey
from ecert.keys import LocalSigner

#: The order of P-256: a derived scalar must lie in 1 … n−1.
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
_DETERMINISTIC = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def derive(seed: bytes, label: str) -> bytes:
    """32 bytes for ``label`` under ``seed`` (HMAC-SHA256)."""
    return hmac.new(seed, label.encode("utf-8"), hashlib.sha256).digest()


class SeededSigner(LocalSigner):
    """A signer (:class:`ecert.keys.Signer`) over a key derived from a seed, signing
    deterministically."""

    __slots__ = ()

    def __init__(self, seed: bytes, label: str, alg: str) -> None:
        key: PrivateKey
        if alg == ES256:
            counter = 0
            while True:  # a scalar outside 1 … n−1 has odds of about 2^-32: try the next
                scalar = int.from_bytes(derive(seed, f"{label}#{counter}"), "big")
                if 0 < scalar < _P256_ORDER:
                    break
                counter += 1  # pragma: no cover - never met with the published seed
            key = ec.derive_private_key(scalar, ec.SECP256R1())
        elif alg == ED25519:
            key = ed25519.Ed25519PrivateKey.from_private_bytes(derive(seed, label))
        else:
            raise ValueError(f"unsupported algorithm {alg!r}")
        super().__init__(key)

    @property
    def private_key(self) -> PrivateKey:
        """The private key (to forge hostile tokens, e.g. an HMAC keyed with its public
        half, or a DER signature)."""
        return self._key

    def sign(self, message: bytes) -> bytes:
        """The JWS signature: R‖S for ES256 (RFC 6979 nonce), Ed25519's own otherwise."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(message, _DETERMINISTIC))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return key.sign(message)
