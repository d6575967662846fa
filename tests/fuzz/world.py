"""A small, deterministic published world for the end-to-end harnesses.

Two regions (GD recognizes ZJ's business licences), one business licence each, a QR text
of the GD licence, every bundle published and held in memory. Keys are derived from fixed
seeds and every clock is frozen, so an input saved by one fuzz session (a mutated token
carries its own signature) replays against the same keys in any later session or test.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

import ecert
from ecert import _samples
from ecert._formats.bundle import TRUST_LIST_PATH
from ecert._formats.jose import ED25519, ES256, PrivateKey
from ecert._formats.trustlist import TrustList
from ecert._sources import DocumentSource, MemorySource, RoutedSource
from ecert.errors import KeyStoreError
from ecert.keys import LocalSigner
from ecert.qr import wrap
from ecert.trust import TrustAnchor, load_trust_list
from ecert.verify import Verifier

#: When every registry acts; verifiers look one minute later.
ISSUED_AT = datetime(2026, 1, 1, tzinfo=UTC)
VERIFIED_AT = ISSUED_AT + timedelta(minutes=1)
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


class SeededKeys:
    """An in-memory :class:`ecert.keys.KeyProvider` whose n-th key follows from a seed.

    Only for tests: the point is that the same world has the same keys in every process.
    """

    def __init__(self, seed: str) -> None:
        self._seed = seed.encode()
        self._keys: dict[str, PrivateKey] = {}
        self._count = 0

    def _material(self, label: bytes) -> bytes:
        return hashlib.sha256(b"ecert fuzz world\x00" + self._seed + b"\x00" + label).digest()

    def create(self, alg: str = ES256) -> LocalSigner:
        self._count += 1
        material = self._material(b"key %d" % self._count)
        key: PrivateKey
        if alg == ES256:
            key = ec.derive_private_key(
                int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1())
        elif alg == ED25519:
            key = ed25519.Ed25519PrivateKey.from_private_bytes(material)
        else:
            raise KeyStoreError(f"unsupported algorithm {alg!r}")
        signer = LocalSigner(key)
        self._keys[signer.kid] = key
        return signer

    def signer(self, kid: str) -> LocalSigner:
        try:
            return LocalSigner(self._keys[kid])
        except KeyError as e:
            raise KeyStoreError(f"no key {kid!r}") from e

    def destroy(self, kid: str) -> None:
        self._keys.pop(kid, None)

    def secret(self, name: str) -> bytes:
        return self._material(b"secret " + name.encode())


class _Nowhere:
    """The network: refused, so a fuzzed URI can never leave the process."""

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        raise FileNotFoundError(uri)


@dataclass(frozen=True)
class World:
    """Everything the end-to-end harnesses need; documents keyed by bundle path."""

    anchors: Mapping[str, TrustAnchor]
    base_urls: Mapping[str, str]
    documents: Mapping[str, Mapping[str, bytes]]
    #: The genuine certificate tokens: GD's, and ZJ's (valid in GD by recognition).
    tokens: Mapping[str, str]
    #: The QR text of GD's licence and the QR token inside it.
    qr_text: str
    qr_token: str

    def source(self, replace: Mapping[tuple[str, str], bytes] | None = None) -> DocumentSource:
        """The published bundles, with ``replace[(region, path)]`` swapped in."""
        routes: list[tuple[str, DocumentSource]] = []
        for region, docs in self.documents.items():
            docs = dict(docs)
            for (where, path), data in (replace or {}).items():
                if where == region:
                    docs[path] = data
            routes.append((self.base_urls[region], MemorySource(self.base_urls[region], docs)))
        return RoutedSource(routes, _Nowhere())

    def verifier(self, replace: Mapping[tuple[str, str], bytes] | None = None) -> Verifier:
        """A fresh GD verifier, so no state is carried from one fuzz input to the next.

        The home trust list is verified once (``trust_list_verify`` fuzzes that step):
        building a verifier per input is then cheap enough for the fuzzer.
        """
        return Verifier(self._home_trust_list, self.source(replace),
                        clock=lambda: VERIFIED_AT, anchor=self.anchors["GD"])

    @cached_property
    def _home_trust_list(self) -> TrustList:
        return load_trust_list(self.documents["GD"][TRUST_LIST_PATH].decode("ascii"),
                               self.anchors["GD"], now=int(VERIFIED_AT.timestamp()), grace=0)


@cache
def world() -> World:
    """Build the world once per process (about 0.2 s)."""
    with tempfile.TemporaryDirectory(prefix="ecert-fuzz-") as tmp:
        return _build(Path(tmp))


def _build(tmp: Path) -> World:
    registries: dict[str, ecert.Registry] = {}
    try:
        for code in ("GD", "ZJ"):
            sample = _samples.region(code)
            registry = ecert.Registry.init(
                tmp / f"home-{code}", region=code, name=sample["name"],
                base_url=sample["base_url"], clock=lambda: ISSUED_AT,
                admin=ecert.OperatorCredential(
                    "fuzz", signer=SeededKeys(f"{code} operator").create(ED25519)),
                key_provider=SeededKeys(code))
            _samples.populate(registry)
            registries[code] = registry
        gd, zj = registries["GD"], registries["ZJ"]
        gd.recognize(zj.anchor(), {"cn.business-licence": "cn.business-licence"})
        claims = _samples.claims("business-licence-gd")
        certs = {
            code: registries[code].issue(
                "cn.business-licence", agency, holder_id=claims["uscc"],
                holder_name=claims["name"], claims=claims)
            for code, agency in (("GD", "gd-amr"), ("ZJ", "zj-amr"))
        }
        qr_token = gd.qr_token(certs["GD"].id)
        documents: dict[str, dict[str, bytes]] = {}
        for code, registry in registries.items():
            out = tmp / f"bundle-{code}"
            registry.publish(out)
            documents[code] = {str(p.relative_to(out)): p.read_bytes()
                               for p in sorted(out.rglob("*")) if p.is_file()}
        return World(
            anchors={code: r.anchor() for code, r in registries.items()},
            base_urls={code: r.region.base_url for code, r in registries.items()},
            documents=documents,
            tokens={code: cert.token for code, cert in certs.items()},
            qr_text=wrap(qr_token),
            qr_token=qr_token,
        )
    finally:
        for registry in registries.values():
            registry.close()
