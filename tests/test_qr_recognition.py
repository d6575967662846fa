"""QR codes across regions: a recognized region's QR verifies through the agreement.

Three sample regions (GD, ZJ, SH of ``ecert/_data/regions.json``) publish into one
directory served over real HTTP on 127.0.0.1; each verifier holds only its home anchor
and fetches the other regions' trust lists from the URLs its agreements name. The world
is built once for the module: the tests only read (no registry, file or clock changes).

Regression for the review finding "a QR code from a recognized region is always refused
(unknown_kid)": the verifier looked for the region under ``region``, which a QR payload
calls ``r``.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import ecert
from ecert import _samples
from ecert import qr as ecert_qr
from ecert.verify import ErrorCode as E
from ecert.verify import VerificationStatus as S
from tests.support import PG_URL, FakeClock, create_registry, pg_schema_url

REGIONS = ("GD", "ZJ", "SH")
BL, FBL, DL, PQ, SPJY = ("cn.business-licence", "cn.food-business-licence",
                         "cn.driving-licence", "cn.professional-qualification", "zj.spjyxkz")
#: Sample claims per type, and the claims naming the holder (id, name).
CLAIMS = {BL: "business-licence-gd", DL: "driving-licence-zj", FBL: "food-business-licence-sh",
          SPJY: "food-business-licence-sh", PQ: "professional-qualification-gd"}
HOLDER = {"business-licence-gd": ("uscc", "name"),
          "driving-licence-zj": ("licence_number", "name"),
          "food-business-licence-sh": ("uscc", "operator_name"),
          "professional-qualification-gd": ("id_number", "name")}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class World:
    """The three regions: registries, anchors, one certificate per (region, type)."""

    registries: dict[str, ecert.Registry]
    anchors: dict[str, ecert.TrustAnchor]
    certs: dict[tuple[str, str], ecert.Certificate]
    clock: FakeClock

    def verifier(self, home: str) -> ecert.Verifier:
        return ecert.Verifier.from_anchor(self.anchors[home], clock=self.clock)

    def qr(self, region: str, type_code: str, *, full: bool = False) -> str:
        cert = self.certs[region, type_code]
        return ecert_qr.qr_text(self.registries[region], cert.id, full=full)


def _add_catalog_type(registry: ecert.Registry, code: str) -> None:
    entry = next(e for e in _samples.catalog() if e["code"] == code)
    registry.add_type(code, name=entry["name"], national_type_code=entry["national_type_code"],
                      schema=entry["schema"], validity_days=entry["validity_days"],
                      qr_claims=entry["qr_claims"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("qr-regions")
    www = tmp / "www"
    www.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(www)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    port = server.server_address[1]
    clock = FakeClock()
    registries: dict[str, ecert.Registry] = {}
    schemas: list[Iterator[str]] = []
    try:
        recognitions = _samples.regions()["recognitions"]
        for code in REGIONS:
            url: str | None = None
            if PG_URL:
                gen = pg_schema_url()
                url = next(gen)
                schemas.append(gen)
            registry = create_registry(
                tmp / f"home-{code}", region=code,
                base_url=f"http://127.0.0.1:{port}/{code.lower()}", database_url=url,
                clock=clock, kdf_rounds=1_000)
            registries[code] = registry
            _samples.populate(registry)
            have = {t.code for t in registry.types()}
            for entry in recognitions:  # the local types our agreements map onto
                if entry["verifier_region"] == code:
                    for ours in set(entry["types"].values()) - have:
                        _add_catalog_type(registry, ours)
                        have.add(ours)
        anchors = {code: r.anchor() for code, r in registries.items()}
        for entry in recognitions:
            registries[entry["verifier_region"]].recognize(anchors[entry["recognizes"]],
                                                           entry["types"])
        certs: dict[tuple[str, str], ecert.Certificate] = {}
        for code in REGIONS:
            for agency in _samples.region(code)["agencies"]:
                for type_code in agency["types"]:
                    claims = _samples.claims(CLAIMS[type_code])
                    id_field, name_field = HOLDER[CLAIMS[type_code]]
                    certs[code, type_code] = registries[code].issue(
                        type_code, agency["code"], holder_id=claims[id_field],
                        holder_name=claims[name_field], claims=claims)
        for code, registry in registries.items():
            registry.publish(www / code.lower())
        yield World(registries, anchors, certs, clock)
    finally:
        for registry in registries.values():
            registry.close()
        for gen in schemas:
            next(gen, None)
        server.shutdown()
        server.server_close()
        thread.join(5)


#: (verifier, issuer, issuer's type, the type it counts as for the verifier): every
#: mapping of regions.json.
ACCEPTED = [
    ("GD", "ZJ", DL, DL),
    ("GD", "ZJ", BL, BL),
    ("GD", "ZJ", SPJY, FBL),
    ("ZJ", "GD", BL, BL),
    ("ZJ", "SH", FBL, SPJY),
]


def _assert_accepted(result: ecert.VerificationResult, world: World, issuer: str,
                     theirs: str, ours: str) -> None:
    assert result.status is S.VALID, (result.status, result.errors, result.messages)
    assert result.valid and result.qr
    assert result.local_type == ours
    assert result.agreement is not None and result.agreement.region == issuer
    assert result.issuer is not None and result.issuer.region == issuer
    cert = world.certs[issuer, theirs]
    assert result.certificate is not None
    assert result.certificate.id == cert.id
    assert result.certificate.type_code == theirs
    assert result.qr_matches(cert.token)


@pytest.mark.parametrize(("home", "issuer", "theirs", "ours"), ACCEPTED)
@pytest.mark.parametrize("full", [False, True], ids=["short", "full"])
def test_foreign_qr_verifies_through_the_agreement(world: World, home: str, issuer: str,
                                                   theirs: str, ours: str, full: bool) -> None:
    result = world.verifier(home).verify(world.qr(issuer, theirs, full=full))
    _assert_accepted(result, world, issuer, theirs, ours)
    assert result.digest_bound is not full


@pytest.mark.parametrize(("home", "issuer", "theirs", "ours"), ACCEPTED)
def test_foreign_qr_verifies_from_an_image(world: World, home: str, issuer: str, theirs: str,
                                           ours: str) -> None:
    image = ecert_qr.to_image(ecert_qr.make_qr(world.qr(issuer, theirs)), scale=4)
    result = world.verifier(home).verify(ecert_qr.decode_qr_image(image))
    _assert_accepted(result, world, issuer, theirs, ours)


@pytest.mark.parametrize("region", REGIONS)
def test_home_qr_still_verifies(world: World, region: str) -> None:
    verifier = world.verifier(region)
    for (issuer, _type), cert in world.certs.items():
        if issuer != region:
            continue
        result = verifier.verify(ecert_qr.qr_text(world.registries[region], cert.id))
        assert result.valid, result.messages
        assert result.agreement is None and result.local_type == cert.type_code


@pytest.mark.parametrize(("home", "issuer", "theirs", "code"), [
    # Agreements are one-way and one hop: GD and SH do not recognize SH, GD or ZJ.
    ("GD", "SH", FBL, E.REGION_NOT_RECOGNIZED),
    ("SH", "GD", BL, E.REGION_NOT_RECOGNIZED),
    ("SH", "ZJ", DL, E.REGION_NOT_RECOGNIZED),
    # Recognized regions, but types the agreement does not map.
    ("ZJ", "GD", FBL, E.TYPE_NOT_RECOGNIZED),
    ("ZJ", "GD", PQ, E.TYPE_NOT_RECOGNIZED),
    ("ZJ", "SH", BL, E.TYPE_NOT_RECOGNIZED),
])
@pytest.mark.parametrize("full", [False, True], ids=["short", "full"])
def test_foreign_qr_refused_outside_the_agreement(world: World, home: str, issuer: str,
                                                  theirs: str, code: E, full: bool) -> None:
    result = world.verifier(home).verify(world.qr(issuer, theirs, full=full))
    assert result.status is S.UNTRUSTED, (result.errors, result.messages)
    assert result.errors == (code,)
    assert not result and not result.qr_matches(world.certs[issuer, theirs].token)


def test_foreign_qr_of_a_key_the_region_does_not_list_is_unknown(world: World) -> None:
    from ecert._formats import qr as qr_format

    text = world.qr("ZJ", DL)
    data = bytearray(qr_format.b45decode(text[4:]))
    data[1] ^= 0xFF  # the kid reference: no ZJ key starts so
    result = world.verifier("GD").verify("EC1:" + qr_format.b45encode(bytes(data)))
    assert result.errors == (E.UNKNOWN_KID,)
    assert "ZJ" in result.messages[0]
