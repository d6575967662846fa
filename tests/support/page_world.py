"""Two regions published for the verifier page's browser tests, built once per module.

GD (the home region) recognizes ZJ for one type (``zj.spjyxkz`` as
``cn.food-business-licence``); each publishes to its own :class:`BundleHost` on 127.0.0.1
(two origins, so the page reads ZJ's documents across origins, as a phone would). GD holds
a certificate in every state, one signed with an Ed25519 key, QR codes in both forms and
as images; the page's clock is :data:`PAGE_NOW`, three hours after the publications.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import ecert
from ecert import _samples
from ecert import qr as ecert_qr
from ecert.copy_card import copy_qr_text
from tests.support.browser import BundleHost
from tests.support.clock import FakeClock
from tests.support.constants import EPOCH, FAST_KDF_ROUNDS, PG_URL
from tests.support.issuing import issue_business_licence, uscc
from tests.support.pg import pg_schema_url
from tests.support.registries import create_registry
from tests.support.sharing_registry import Sharing

#: The page's clock in these tests: 3 hours after every publication (lists still fresh).
PAGE_NOW = int((EPOCH + timedelta(hours=3)).timestamp())


@dataclass
class PageWorld:
    gd: BundleHost
    zj: BundleHost
    anchors: dict[str, ecert.TrustAnchor]
    #: Inputs by name: tokens, QR texts, links.
    texts: dict[str, str] = field(default_factory=dict)
    #: QR images by name.
    images: dict[str, Path] = field(default_factory=dict)
    certificates: dict[str, ecert.Certificate] = field(default_factory=dict)
    #: GD's trust list of its first publication (its log tree smaller than the served one).
    earlier_trust_list: bytes = b""
    #: Log leaf indices: each certificate's issue entry, the copy's use record entry.
    leaves: dict[str, int] = field(default_factory=dict)

    def page_url(self, query: str = "") -> str:
        """The home page with the test clock (``?clock=``, honoured on loopback only)."""
        return f"{self.gd.base_url}/verify/?clock={PAGE_NOW}{query}"

    @property
    def gd_bundle(self) -> Path:
        return self.gd.root


def _tampered_kid(token: str) -> str:
    """The token with another kid in its header (its signature no longer matters)."""
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(header + "=="))
    data["kid"] = "A" * 43
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return ".".join((base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), payload, signature))


def build_page_world(tmp: Path) -> Iterator[PageWorld]:
    """Build and serve the world; stop its hosts (and drop PostgreSQL schemas) afterwards."""
    hosts = {code: BundleHost(tmp / f"www-{code.lower()}") for code in ("GD", "ZJ")}
    for host in hosts.values():
        host.root.mkdir(parents=True, exist_ok=True)
    clock = FakeClock()
    schemas: list[Iterator[str]] = []
    registries: dict[str, ecert.Registry] = {}
    try:
        for code, host in hosts.items():
            url = None
            if PG_URL:
                gen = pg_schema_url()
                url = next(gen)
                schemas.append(gen)
            registries[code] = create_registry(tmp / f"home-{code}", region=code,
                                               base_url=host.base_url, database_url=url,
                                               clock=clock, populate=True,
                                               kdf_rounds=FAST_KDF_ROUNDS)
        gd, zj = registries["GD"], registries["ZJ"]
        anchors = {code: r.anchor() for code, r in registries.items()}
        gd.recognize(anchors["ZJ"], {"zj.spjyxkz": "cn.food-business-licence"})
        world = PageWorld(hosts["GD"], hosts["ZJ"], anchors)
        certs = world.certificates

        def licence(name: str, number: int, **options: object) -> ecert.Certificate:
            holder = uscc(number)
            cert = issue_business_licence(gd, holder_id=holder,
                                          holder_name=f"页面测试{number}号有限公司", **options)
            certs[name] = cert
            world.texts[name] = cert.token
            return cert

        licence("valid", 1)
        gd.revoke(licence("revoked", 2).id, "privilege-withdrawn")
        gd.suspend(licence("suspended", 3).id)
        licence("expired", 4, valid_until=EPOCH + timedelta(hours=2))
        licence("not_yet_valid", 5, valid_from=EPOCH + timedelta(days=30))
        world.texts["unknown_kid"] = _tampered_kid(certs["valid"].token)
        # An agency signing with Ed25519: the page checks it with WebCrypto's Ed25519.
        gd.rotate_agency_key("gd-hrss", alg="Ed25519")
        claims = _samples.claims("professional-qualification-gd")
        certs["ed25519"] = gd.issue("cn.professional-qualification", "gd-hrss",
                                    holder_id=claims["id_number"], holder_name=claims["name"],
                                    claims=claims)
        world.texts["ed25519"] = certs["ed25519"].token
        food = _samples.claims("food-business-licence-sh")
        certs["foreign"] = zj.issue("zj.spjyxkz", "zj-amr", holder_id=food["uscc"],
                                    holder_name=food["operator_name"], claims=food)
        world.texts["foreign"] = certs["foreign"].token
        bl = _samples.claims("business-licence-gd")
        certs["foreign_unmapped"] = zj.issue("cn.business-licence", "zj-amr",
                                             holder_id=bl["uscc"], holder_name=bl["name"],
                                             claims=bl)
        world.texts["foreign_unmapped"] = certs["foreign_unmapped"].token
        # A purpose-bound copy of a GD licence for ZJ/zj-amr (the sample sharing set-up).
        sharing = Sharing(gd, clock)
        try:
            fetched = sharing.fetch(consent=sharing.consent().code)
            world.texts["copy"] = fetched.copies[0].token
            world.texts["copy_qr"] = copy_qr_text(world.texts["copy"])  # a copy card's code
            assert fetched.log_index is not None
            world.leaves["copy"] = fetched.log_index
        finally:
            sharing.close()
        valid = certs["valid"]
        world.texts["qr_short"] = ecert_qr.qr_text(gd.qr_token(valid.id))
        world.texts["qr_full"] = ecert_qr.qr_text(gd.qr_token(valid.id, full=True))
        world.texts["link"] = ecert_qr.link_text(hosts["GD"].base_url, world.texts["qr_short"])
        world.images["qr_short"] = tmp / "qr-short.png"
        ecert_qr.write_qr(ecert_qr.make_qr(world.texts["qr_short"]), world.images["qr_short"],
                          scale=4)
        world.images["link"] = tmp / "qr-link.png"
        ecert_qr.write_qr(ecert_qr.make_link_qr(hosts["GD"].base_url, world.texts["qr_short"]),
                          world.images["link"], scale=4)
        for code, registry in registries.items():
            registry.publish(hosts[code].root, collect=False)
        # GD once more: its log grew by the first publication's entry, so the first trust
        # list names a smaller tree than the checkpoint now served (a consistency proof).
        world.earlier_trust_list = (hosts["GD"].root / "trustlist.jwt").read_bytes()
        gd.publish(hosts["GD"].root, collect=False)
        for name in ("valid", "revoked"):
            world.leaves[name] = next(e.seq for e in gd.history(certs[name].id).entries
                                      if e.action == "certificate.issue")
        for registry in registries.values():
            registry.close()
        registries.clear()
        yield world
    finally:
        for registry in registries.values():
            registry.close()
        for host in hosts.values():
            host.stop()
        for gen in schemas:
            next(gen, None)
