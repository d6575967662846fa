"""Purpose-bound copies (加注件) for verifier tests, before the registry makes them.

The registry side (sharing keys in the key store, the fetch operation) is built
elsewhere; these helpers put a sharing key into a published bundle's trust list by
re-signing it with the region's root key, and sign copies of a published certificate
with that key, exactly as a sharing service would.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ecert
from ecert._formats import jose
from ecert._formats import qr as qr_format
from ecert._formats.certificate import CertificateClaims
from ecert._formats.copy import DEFAULT_COPY_TTL, CopyClaims, OriginalRef
from ecert._formats.statuslist import StatusList, make_status_list_token
from ecert._formats.trustlist import TrustedKey, TrustList
from ecert.keys import LocalSigner, generate_private_key
from ecert.models import KeyRole
from ecert.trust import MAX_TRUST_LIST_BYTES
from ecert.verify import VerificationResult, Verifier
from tests.support.clock import FakeClock

#: The sample requester and purpose (tests/data/sharing.json).
AUDIENCE = "ZJ/zj-amr"
PURPOSE = "跨省迁移登记"
CASE = "ZJ2026120100001"
DAY = 86_400
#: The forms a copy is presented in: its token, or the QR text of its card.
FORMS = ("token", "qr")


def read_trust_list(bundle: Path) -> TrustList:
    """The trust list a bundle publishes (its signature is not checked here)."""
    text = (bundle / "trustlist.jwt").read_text("ascii")
    return TrustList.from_payload(jose.parse_compact(text, max_bytes=MAX_TRUST_LIST_BYTES)
                                  .payload)


def add_sharing_key(registry: ecert.Registry, bundle: Path, *, valid_from: int,
                    **entry: Any) -> LocalSigner:
    """A new sharing key, published in ``bundle``'s trust list (re-signed by the root of
    ``registry``, same sequence); ``entry`` sets other members of its key entry."""
    signer = LocalSigner(generate_private_key())
    trust_list = read_trust_list(bundle)
    key = TrustedKey(signer.public_jwk, valid_from, **entry)
    changed = dataclasses.replace(trust_list, sharing_keys=(*trust_list.sharing_keys, key))
    root = registry.keystore.signer(registry.anchor().kid)
    (bundle / "trustlist.jwt").write_text(changed.sign(root), "ascii")
    return signer


def copy_of(cert: ecert.Certificate, *, iat: int, ttl: int = DEFAULT_COPY_TTL,
            audience: str = AUDIENCE, purpose: str = PURPOSE, case: str = CASE,
            claims: tuple[str, ...] = ("name", "uscc"), **changes: Any) -> CopyClaims:
    """The copy a sharing service of the certificate's region would make of ``cert``."""
    original = CertificateClaims.from_payload(jose.parse_compact(
        cert.token, max_bytes=65_536).payload)
    base_url = original.iss.split("/agencies/", 1)[0]
    made = CopyClaims(
        iss=base_url, jti=f"copy-{iat}", iat=iat, exp=iat + ttl, region=original.region,
        aud=audience, purpose=purpose, case=case, copy_of=original.jti,
        original=OriginalRef(original.iss, original.vct, original.vct_version, original.iat,
                             original.nbf, original.exp),
        claims={name: original.claims[name] for name in claims},
        status_list_uri=original.status_list_uri, status_index=original.status_index)
    return made._replace(**changes)


def write_status(registry: ecert.Registry, bundle: Path, cert: ecert.Certificate, value: int,
                 *, now: int) -> None:
    """Publish the certificate's status list with ``value`` at its index (1 revoked,
    2 suspended), signed by the region's status key."""
    infos = registry.keys()
    (info,) = [k for k in infos if k.role is KeyRole.STATUS]
    status_list = StatusList(131_072, 2)
    status_list[cert.status_index] = value
    token = make_status_list_token(cert.status_list_uri, status_list,
                                   registry.keystore.signer(info.kid), issued_at=now,
                                   expires_at=now + 86_400, ttl=3600)
    (bundle / "status" / cert.status_list_uri.rsplit("/", 1)[1]).write_text(token, "ascii")


@dataclass
class CopyEnv:
    """A published licence, a sharing key in its bundle's trust list, and the form
    (``token`` or ``qr``) in which :meth:`verify` presents copies."""

    registry: ecert.Registry
    cert: ecert.Certificate
    bundle: Path
    clock: FakeClock
    sharing: LocalSigner
    form: str = "token"

    @property
    def now(self) -> int:
        return int(self.clock().timestamp())

    def copy(self, **changes: Any) -> CopyClaims:
        return copy_of(self.cert, iat=self.now, **changes)

    def token(self, **changes: Any) -> str:
        return self.copy(**changes).sign(self.sharing)

    def verifier(self) -> Verifier:
        return Verifier.from_bundle(self.bundle, clock=self.clock)

    def presented(self, token: str) -> str:
        """``token`` in this environment's form: as it is, or its QR text (``EC1:``)."""
        return qr_format.wrap(token) if self.form == "qr" else token

    def verify(self, token: str, **kwargs: Any) -> VerificationResult:
        return self.verifier().verify(self.presented(token), **kwargs)

    @property
    def agency(self) -> ecert.Signer:
        return self.registry.keystore.signer(self.cert.kid)


def copy_env(published: tuple[ecert.Registry, ecert.Certificate, Path], clock: FakeClock,
             form: str = "token") -> CopyEnv:
    """A :class:`CopyEnv` over a published bundle the test may change."""
    registry, cert, bundle = published
    now = int(clock().timestamp())
    sharing = add_sharing_key(registry, bundle, valid_from=now - 30 * DAY)
    return CopyEnv(registry, cert, bundle, clock, sharing, form)
