"""Signing keys: the :class:`Signer` interface and the encrypted file key store.

Every signature ecert makes goes through a :class:`Signer`, so an HSM or KMS can take
the place of :class:`LocalSigner` without touching issuance or publication. The file
key store keeps each private key in an encrypted PKCS#12 file (PBES2: PBKDF2-HMAC-SHA256,
AES-256-CBC) in a 0700 directory, file mode 0600; keys are never written in clear.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.hazmat.primitives.serialization.pkcs12 import PBES

from ecert._formats.jose import ED25519, ES256, PrivateKey, alg_of_key, public_jwk, raw_signature
from ecert.errors import KeyStoreError

__all__ = ["FileKeyStore", "KeyProvider", "LocalSigner", "Signer", "generate_private_key"]

#: PBKDF2 iterations protecting key files (OWASP 2023 figure for PBKDF2-HMAC-SHA256).
DEFAULT_KDF_ROUNDS = 600_000


@runtime_checkable
class Signer(Protocol):
    """Something that signs JWS signing input with one key.

    ``sign`` returns the JWS signature bytes: R||S (64 bytes) for ES256, the raw
    64-byte signature for Ed25519.
    """

    @property
    def alg(self) -> str:
        """JWS algorithm name, ``ES256`` or ``Ed25519``."""
        ...

    @property
    def kid(self) -> str:
        """RFC 7638 thumbprint of the public key."""
        ...

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK with ``kid``, ``alg`` and ``use``."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``."""
        ...


@runtime_checkable
class KeyProvider(Protocol):
    """Where a registry's private keys live: :class:`FileKeyStore`, or an HSM/KMS adapter.

    Keys are addressed by ``kid``. A provider never hands out private key material;
    ``secret`` returns the one symmetric secret a registry needs (for holder pseudonyms).
    """

    def create(self, alg: str = ES256) -> Signer:
        """Generate and keep a new key; return its signer."""
        ...

    def signer(self, kid: str) -> Signer:
        """The signer of an existing key."""
        ...

    def destroy(self, kid: str) -> None:
        """Delete a private key for good (retired or compromised keys never sign again)."""
        ...

    def secret(self, name: str) -> bytes:
        """32 bytes of secret material, created on first use."""
        ...


class LocalSigner:
    """A :class:`Signer` over a private key held in memory."""

    __slots__ = ("_alg", "_jwk", "_key")

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self._alg = alg_of_key(key)
        self._jwk = public_jwk(key)

    @property
    def alg(self) -> str:
        return self._alg

    @property
    def kid(self) -> str:
        return self._jwk["kid"]

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public JWK, with ``kid``, ``alg`` and ``use``."""
        return dict(self._jwk)

    def sign(self, message: bytes) -> bytes:
        return raw_signature(self._alg, self._key, message)


def generate_private_key(alg: str = ES256) -> PrivateKey:
    """A fresh private key for ``alg`` (``ES256`` or ``Ed25519``)."""
    if alg == ES256:
        return ec.generate_private_key(ec.SECP256R1())
    if alg == ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyStoreError(f"unsupported algorithm {alg!r}; use ES256 or Ed25519")


class FileKeyStore:
    """Encrypted private keys in a directory, one ``<name>.p12`` per key."""

    def __init__(
        self, directory: Path, passphrase: bytes | str, *, kdf_rounds: int | None = None
    ) -> None:
        if not passphrase:
            raise KeyStoreError(
                "a passphrase is required to protect private keys (set ECERT_PASSPHRASE)"
            )
        self.directory = Path(directory)
        self._passphrase = passphrase.encode() if isinstance(passphrase, str) else passphrase
        self._kdf_rounds = kdf_rounds or DEFAULT_KDF_ROUNDS
        self._cache: dict[str, PrivateKey] = {}

    def _path(self, name: str) -> Path:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise KeyStoreError(f"invalid key name {name!r}")
        return self.directory / f"{name}.p12"

    def create(self, alg: str = ES256) -> LocalSigner:
        """Generate, encrypt and store a new key under its ``kid``; return its signer."""
        key = generate_private_key(alg)
        signer = LocalSigner(key)
        self.store(signer.kid, key)
        return signer

    def destroy(self, kid: str) -> None:
        """Delete the key file of ``kid`` (missing files are fine: already destroyed)."""
        self._cache.pop(kid, None)
        try:
            self._path(kid).unlink(missing_ok=True)
        except OSError as e:
            raise KeyStoreError(f"cannot delete key {kid}: {e.strerror}") from e

    def store(self, name: str, key: PrivateKey) -> None:
        """Encrypt and write ``key``; refuses to overwrite an existing key file."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        encryption = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(self._kdf_rounds)
            .key_cert_algorithm(PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(self._passphrase)
        )
        blob = pkcs12.serialize_key_and_certificates(name.encode(), key, None, None, encryption)
        path = self._path(name)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            # link() publishes the complete file atomically and never replaces one.
            os.link(temporary, path)
        except FileExistsError as e:
            raise KeyStoreError(f"key file {path} exists already", code="key_exists") from e
        except OSError as e:
            raise KeyStoreError(f"cannot write key file {path}: {e.strerror}") from e
        finally:
            temporary.unlink(missing_ok=True)
        self._cache[name] = key

    def reencrypt(self, name: str, passphrase: bytes | str) -> None:
        """Encrypt the key ``name`` under a new passphrase, replacing its file atomically."""
        key = self.load(name)
        replacement = FileKeyStore(self.directory, passphrase, kdf_rounds=self._kdf_rounds)
        staged = f"{name}.{secrets.token_hex(8)}.new"
        replacement.store(staged, key)
        try:
            os.replace(self._path(staged), self._path(name))
        except OSError as e:
            raise KeyStoreError(f"cannot replace key file of {name}: {e.strerror}") from e
        self._passphrase = replacement._passphrase

    def exists(self, name: str) -> bool:
        """Whether a key file ``name`` exists."""
        return self._path(name).exists()

    def load(self, name: str) -> PrivateKey:
        """Decrypt the key stored under ``name``."""
        if name in self._cache:
            return self._cache[name]
        path = self._path(name)
        try:
            blob = path.read_bytes()
        except FileNotFoundError as e:
            raise KeyStoreError(f"no private key {name!r} in {self.directory}") from e
        except OSError as e:
            raise KeyStoreError(f"cannot read key file {path}: {e.strerror}") from e
        try:
            key, _cert, _extra = pkcs12.load_key_and_certificates(blob, self._passphrase)
        except (ValueError, TypeError) as e:
            raise KeyStoreError(
                f"cannot decrypt key {name!r}: wrong passphrase or damaged key file"
            ) from e
        if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise KeyStoreError(f"key {name!r} is of an unsupported type")
        self._cache[name] = key
        return key

    def signer(self, name: str) -> LocalSigner:
        """A signer for the key stored under ``name``."""
        return LocalSigner(self.load(name))

    def secret(self, name: str) -> bytes:
        """32 bytes of secret material kept as an encrypted Ed25519 key under ``name``.

        Reusing the key-file format keeps one encrypted-at-rest mechanism for every secret.
        """
        if not self._path(name).exists():
            try:
                self.store(name, ed25519.Ed25519PrivateKey.generate())
            except KeyStoreError as e:
                if e.code != "key_exists":  # another process created it first: use theirs
                    raise
        key = self.load(name)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeyStoreError(f"secret {name!r} has the wrong key type")
        return key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
