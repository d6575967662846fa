"""Cross-region mutual recognition, end to end over real HTTP.

Three sample regions (GD, ZJ, SH from ``ecert/_data/regions.json``) each run a registry of
their own (own home; on PostgreSQL own schema) whose base URL is
``http://127.0.0.1:<port>/<gd|zj|sh>``. A real :class:`http.server.ThreadingHTTPServer`
serves the directory they publish into, with ETags, and can be told to answer 503 for a
region ("down") or be stopped. Agreements are exactly the ``recognitions`` of
``regions.json``. Registries and verifiers share one :class:`FakeClock` (2026-01-01).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import ecert
from ecert import _samples
from ecert import keys as ecert_keys
from ecert._formats import jose
from ecert._formats.trustlist import TrustedAgency, TrustList, sign_root_rotation
from ecert.keys import LocalSigner, generate_private_key
from ecert.mirror import sync
from ecert.trust import MAX_TRUST_LIST_BYTES, TrustAnchor, verify_trust_list
from ecert.verify import ErrorCode as E
from ecert.verify import VerificationStatus as S
from tests.support import (
    EPOCH,
    FAST_KDF_ROUNDS,
    OPERATOR,
    PASSPHRASE,
    PG_URL,
    FakeClock,
    LocalServer,
    create_registry,
    credential,
    open_registry,
    pg_schema_url,
    serve,
)
from tests.support.http import ServerHost
from tests.support.regions import (
    BL,
    CLAIMS,
    DL,
    FBL,
    HOLDER,
    PQ,
    REGIONS,
    SPJY,
    mapping,
    recognitions,
)
from tests.support.worlds import copy_template

DAY = 86_400


# -- the HTTP server (tests/support/http.py) --------------------------------------------------


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect after each test, so a socket the code under test left open (a
    ResourceWarning, an error here) is blamed on the test that leaked it."""
    yield
    gc.collect()


# -- three regions -----------------------------------------------------------------------------


@dataclass
class Site:
    """One region: its registry and the served directory it publishes into."""

    code: str
    registry: ecert.Registry
    www: Path

    def publish(self, **kwargs: Any) -> ecert.PublishReport:
        return self.registry.publish(self.www, **kwargs)

    @property
    def trust_list_file(self) -> Path:
        return self.www / "trustlist.jwt"

    def served_trust_list(self) -> TrustList:
        payload = jose.parse_compact(self.trust_list_file.read_text("ascii"),
                                     max_bytes=MAX_TRUST_LIST_BYTES).payload
        return TrustList.from_payload(payload)

    def root_signer(self) -> ecert.Signer:
        return self.registry.keystore.signer(self.registry.anchor().kid)

    def issue(self, type_code: str, **kwargs: Any) -> ecert.Certificate:
        sample = _samples.region(self.code)
        agency = next(a["code"] for a in sample["agencies"] if type_code in a["types"])
        claims = _samples.claims(CLAIMS[type_code])
        id_field, name_field = HOLDER[CLAIMS[type_code]]
        return self.registry.issue(type_code, agency, holder_id=claims[id_field],
                                   holder_name=claims[name_field], claims=claims, **kwargs)


@dataclass
class World:
    server: LocalServer
    clock: FakeClock
    tmp: Path
    sites: dict[str, Site]
    #: The anchors as first handed out (before any root rotation).
    anchors: dict[str, TrustAnchor]
    certs: dict[tuple[str, str], ecert.Certificate] = field(default_factory=dict)

    def __getitem__(self, code: str) -> Site:
        return self.sites[code]

    def token(self, region: str, type_code: str) -> str:
        return self.certs[region, type_code].token

    def verifier(self, home: str = "GD", **kwargs: Any) -> ecert.Verifier:
        kwargs.setdefault("clock", self.clock)
        return ecert.Verifier.from_anchor(self.anchors[home], **kwargs)

    def publish_all(self) -> None:
        for site in self.sites.values():
            site.publish()


def add_catalog_type(registry: ecert.Registry, code: str) -> None:
    entry = next(e for e in _samples.catalog() if e["code"] == code)
    registry.add_type(code, name=entry["name"], national_type_code=entry["national_type_code"],
                      schema=entry["schema"], validity_days=entry["validity_days"],
                      qr_claims=entry["qr_claims"])


def build_world(server: LocalServer, tmp: Path, clock: FakeClock,
                schemas: list[Iterator[str]], sites: dict[str, Site]) -> World:
    """Create, populate, link and publish the three regions (``sites`` filled as it goes,
    so the caller can close what was created even if this fails half-way)."""
    for code in REGIONS:
        url: str | None = None
        if PG_URL:
            gen = pg_schema_url()
            url = next(gen)
            schemas.append(gen)
        registry = create_registry(
            tmp / f"home-{code.lower()}", region=code, base_url=server.url(code.lower()),
            database_url=url, clock=clock, operator=f"clerk-{code.lower()}",
            kdf_rounds=FAST_KDF_ROUNDS)
        sites[code] = Site(code, registry, server.root / code.lower())
        _samples.populate(registry)
        # The local types our agreements map onto (GD reads ZJ driving licences).
        have = {t.code for t in registry.types()}
        for entry in recognitions():
            if entry["verifier_region"] == code:
                for ours in entry["types"].values():
                    if ours not in have:
                        add_catalog_type(registry, ours)
                        have.add(ours)
    anchors = {code: site.registry.anchor() for code, site in sites.items()}
    for entry in recognitions():
        sites[entry["verifier_region"]].registry.recognize(
            anchors[entry["recognizes"]], entry["types"])
    world = World(server, clock, tmp, sites, anchors)
    for code in REGIONS:
        for agency in _samples.region(code)["agencies"]:
            for type_code in agency["types"]:
                world.certs[code, type_code] = sites[code].issue(type_code)
    world.publish_all()
    return world


def _worlds(server: LocalServer, tmp: Path, clock: FakeClock) -> Iterator[World]:
    schemas: list[Iterator[str]] = []
    sites: dict[str, Site] = {}
    try:
        yield build_world(server, tmp, clock, schemas, sites)
    finally:
        for site in sites.values():
            site.registry.close()
        for gen in schemas:
            next(gen, None)


@pytest.fixture(scope="module")
def template(server_host: ServerHost, tmp_path_factory: pytest.TempPathFactory
             ) -> World | None:
    """SQLite: the ``world`` of every test, built once and closed; tests get copies.
    PostgreSQL: ``None`` (each test builds its own)."""
    if PG_URL:
        return None
    root = tmp_path_factory.mktemp("template")
    server = server_host.serve(root / "www")
    assert server is not None  # the host's first server has not been stopped
    sites: dict[str, Site] = {}
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ecert_keys, "DEFAULT_KDF_ROUNDS", FAST_KDF_ROUNDS)
            return build_world(server, root, FakeClock(), [], sites)
    finally:
        for site in sites.values():
            site.registry.close()


def _copied(template: World, server: LocalServer, tmp: Path, clock: FakeClock
            ) -> Iterator[World]:
    """The template's registries reopened from copies of their homes in ``tmp``."""
    copy_template(template.tmp, tmp)
    sites: dict[str, Site] = {}
    try:
        for code, site in template.sites.items():
            registry = open_registry(tmp / site.registry.home.name, database_url=None,
                                     clock=clock, operator=f"clerk-{code.lower()}",
                                     kdf_rounds=FAST_KDF_ROUNDS)
            sites[code] = Site(code, registry, server.root / code.lower())
        yield World(server, clock, tmp, sites, dict(template.anchors), dict(template.certs))
    finally:
        for site in sites.values():
            site.registry.close()


@pytest.fixture
def world(request: pytest.FixtureRequest, server_host: ServerHost, template: World | None,
          tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    """GD, ZJ and SH with their sample types, agencies, agreements and certificates,
    everything published and served. Each test gets its own: a copy of the template
    (SQLite), else built afresh."""
    server = server_host.serve(tmp_path / "www")
    if server is not None and template is not None:
        yield from _copied(template, server, tmp_path, clock)
        return
    if server is None:  # the port was lost after a test stopped the server
        server = request.getfixturevalue("http_server")
    yield from _worlds(server, tmp_path, clock)


@pytest.fixture(scope="module")
def _shared(server_host: ServerHost, template: World | None,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("shared")
    server = server_host.serve(tmp / "www")
    if server is not None and template is not None:
        yield from _copied(template, server, tmp, FakeClock())
    elif server is not None:
        yield from _worlds(server, tmp, FakeClock())
    else:  # the port was lost after a test stopped the server
        for own in serve(tmp / "www"):
            yield from _worlds(own, tmp, FakeClock())


@pytest.fixture
def shared(request: pytest.FixtureRequest, server_host: ServerHost, _shared: World
           ) -> Iterator[World]:
    """The same three regions, made once for the tests that only read (never change
    registries, served files or the clock): on SQLite a copy of the template."""
    if _shared.server.port != server_host.port:  # built on a server of its own
        yield _shared
        return
    server = server_host.serve(_shared.tmp / "www")
    if server is None:  # the port was lost after a test stopped the server
        yield from _worlds(request.getfixturevalue("http_server"),
                           request.getfixturevalue("tmp_path"), FakeClock())
        return
    _shared.server = server
    yield _shared


# -- helpers -----------------------------------------------------------------------------------


def at(clock: FakeClock, seconds: int) -> None:
    clock.now = datetime.fromtimestamp(seconds, UTC)


def assert_refused(result: ecert.VerificationResult, code: E,
                   status: S = S.UNTRUSTED) -> None:
    assert result.status is status, (result.status, result.errors, result.messages)
    assert result.errors == (code,), (result.errors, result.messages)
    assert not result.valid
    assert not result


def assert_valid(result: ecert.VerificationResult) -> None:
    assert result.status is S.VALID, (result.status, result.errors, result.messages)
    assert result.errors == ()
    assert result.valid


def forged_list(base: TrustList, signer: Any, **changes: Any) -> str:
    """``base`` with ``changes`` (sequence bumped by default), signed by ``signer``."""
    changes.setdefault("sequence", base.sequence + 1)
    return dataclasses.replace(base, **changes).sign(signer)


class Impostor:
    """Signs with one key while naming another key's kid in the header."""

    def __init__(self, key: LocalSigner, kid: str) -> None:
        self._key = key
        self.kid = kid
        self.alg = key.alg

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def stranger() -> LocalSigner:
    return LocalSigner(generate_private_key())


@contextmanager
def serving(path: Path, data: bytes | str) -> Iterator[None]:
    """Serve ``data`` in place of the file at ``path``; the original again afterwards
    (tests on the shared world leave it as they found it, even when they fail)."""
    original = path.read_bytes()
    path.write_bytes(data.encode("ascii") if isinstance(data, str) else data)
    try:
        yield
    finally:
        path.write_bytes(original)


@contextmanager
def down(server: LocalServer, prefix: str) -> Iterator[None]:
    """The server answers 503 under ``prefix`` for the duration."""
    server.down.add(prefix)
    try:
        yield
    finally:
        server.down.discard(prefix)


@contextmanager
def removed(directory: Path) -> Iterator[None]:
    """``directory`` is gone (404) for the duration."""
    away = directory.with_name(directory.name + "-away")
    directory.rename(away)
    try:
        yield
    finally:
        away.rename(directory)


# -- setup is what regions.json says -----------------------------------------------------------


def test_agreements_are_exactly_those_of_regions_json(shared: World) -> None:
    for code in REGIONS:
        expected = {e["recognizes"]: e["types"] for e in recognitions()
                    if e["verifier_region"] == code}
        stored = {a.region: dict(a.types) for a in shared[code].registry.agreements()}
        published = {a.region: dict(a.types) for a in shared[code].served_trust_list().agreements}
        assert stored == expected
        assert published == expected
        for agreement in shared[code].served_trust_list().agreements:
            assert agreement.root_jwk == shared.anchors[agreement.region].root_jwk
            assert agreement.trust_list_url == shared.server.url(
                f"{agreement.region.lower()}/trustlist.jwt")
            assert agreement.valid_from == int(EPOCH.timestamp())
            assert agreement.valid_until is None


def test_regions_json_has_the_three_expectations_covered_here() -> None:
    expectations = _samples.regions()["_expectations"]
    assert len(expectations) == 3
    assert expectations[0].startswith("GD accepts ZJ driving licences")
    assert expectations[1].startswith("GD does NOT accept SH")
    assert expectations[2].startswith("ZJ accepts GD business licences")


# -- the expectations of regions.json ----------------------------------------------------------


def test_gd_accepts_zj_driving_and_business_licences(shared: World) -> None:
    verifier = shared.verifier("GD")
    for type_code in (DL, BL):
        result = verifier.verify(shared.token("ZJ", type_code))
        assert_valid(result)
        assert result.local_type == type_code
        assert result.issuing_region == "ZJ"
        assert result.agreement is not None
        assert result.agreement.region == "ZJ"
        assert dict(result.agreement.types) == mapping("GD", "ZJ")
        assert result.certificate is not None
        assert result.certificate.type_code == type_code
        assert result.certificate.region == "ZJ"
        assert result.issuer is not None
        assert result.issuer.agency_code == ("zj-psb-traffic" if type_code == DL else "zj-amr")
        summary = result.to_json()
        assert summary["local_type"] == type_code
        assert summary["agreement"] == {"region": "ZJ", "types": mapping("GD", "ZJ")}
        assert summary["issuer"]["region"] == "ZJ"


def test_gd_reads_zj_spjyxkz_as_food_business_licence(shared: World) -> None:
    result = shared.verifier("GD").verify(shared.token("ZJ", SPJY))
    assert_valid(result)
    assert result.local_type == FBL
    assert result.certificate is not None
    assert result.certificate.type_code == SPJY  # what ZJ issued
    assert result.agreement is not None
    assert result.agreement.region == "ZJ"
    assert result.agreement.types[SPJY] == FBL
    assert result.issuing_region == "ZJ"


def test_gd_refuses_sh_although_zj_recognizes_sh(shared: World) -> None:
    """Recognition is one hop: ZJ's agreement with SH means nothing to GD."""
    zj_result = shared.verifier("ZJ").verify(shared.token("SH", FBL))
    assert_valid(zj_result)
    assert zj_result.local_type == SPJY
    assert zj_result.agreement is not None and zj_result.agreement.region == "SH"

    shared.server.log.clear()
    gd = shared.verifier("GD")
    gd.verify(shared.token("ZJ", DL))  # GD has loaded ZJ's list, which names SH
    for type_code in (FBL, BL):
        result = gd.verify(shared.token("SH", type_code))
        assert_refused(result, E.REGION_NOT_RECOGNIZED)
        assert result.certificate is None
        assert result.local_type is None
        assert result.agreement is None
        assert "SH" in result.messages[0]
    assert not any(path.startswith("/sh/") for path, _ in shared.server.log)


def test_zj_accepts_gd_business_licences_but_not_qualifications(shared: World) -> None:
    verifier = shared.verifier("ZJ")
    result = verifier.verify(shared.token("GD", BL))
    assert_valid(result)
    assert result.local_type == BL
    assert result.agreement is not None and result.agreement.region == "GD"
    assert result.issuing_region == "GD"
    refused = verifier.verify(shared.token("GD", PQ))
    assert_refused(refused, E.TYPE_NOT_RECOGNIZED)
    assert PQ in refused.messages[0]
    assert_refused(verifier.verify(shared.token("GD", FBL)), E.TYPE_NOT_RECOGNIZED)


def test_full_recognition_matrix(shared: World) -> None:
    """Every certificate of every region, checked by a verifier of every region."""
    verifiers = {code: shared.verifier(code) for code in REGIONS}
    for (issuer, type_code), cert in shared.certs.items():
        for home, verifier in verifiers.items():
            result = verifier.verify(cert.token)
            where = (home, issuer, type_code)
            if home == issuer:
                assert_valid(result)
                assert (result.local_type, result.agreement) == (type_code, None), where
                assert result.issuing_region == home
                continue
            agreed = mapping(home, issuer)
            if agreed is None:
                assert_refused(result, E.REGION_NOT_RECOGNIZED)
            elif type_code not in agreed:
                assert_refused(result, E.TYPE_NOT_RECOGNIZED)
            else:
                assert_valid(result)
                assert result.local_type == agreed[type_code], where
                assert result.agreement is not None and result.agreement.region == issuer
                assert result.issuing_region == issuer


# -- suggest_mapping and recognize -------------------------------------------------------------


def test_suggest_mapping_by_national_type_code(shared: World) -> None:
    gd = shared.verifier("GD")
    zj_list = gd.foreign_trust_list("ZJ")
    suggestion = shared["GD"].registry.suggest_mapping(zj_list)
    assert suggestion[SPJY] == FBL
    assert suggestion == {BL: BL, DL: DL, SPJY: FBL}
    assert suggestion == mapping("GD", "ZJ")
    sh_list = shared.verifier("ZJ").foreign_trust_list("SH")
    assert shared["ZJ"].registry.suggest_mapping(sh_list) == {BL: BL, FBL: SPJY}


def test_suggest_mapping_skips_ambiguous_national_codes(world: World) -> None:
    zj_list = world.verifier("GD").foreign_trust_list("ZJ")
    registry = world["GD"].registry
    entry = next(e for e in _samples.catalog() if e["code"] == FBL)
    registry.add_type("gd.food-business-licence-2", name="食品经营许可证(新)",
                      national_type_code=entry["national_type_code"], schema=entry["schema"])
    assert registry.suggest_mapping(zj_list) == {BL: BL, DL: DL}


def test_recognize_refuses_unknown_local_types(shared: World) -> None:
    registry = shared["GD"].registry
    before = registry.agreements()
    with pytest.raises(ecert.NotFound, match="no-such-type") as caught:
        registry.recognize(shared.anchors["SH"], {FBL: "no-such-type"})
    assert caught.value.code == "not_found"
    with pytest.raises(ecert.NotFound, match=SPJY):
        registry.recognize(shared.anchors["SH"], {FBL: FBL, BL: SPJY})
    assert registry.agreements() == before


def test_recognize_refuses_itself_and_empty_mappings(shared: World) -> None:
    registry = shared["GD"].registry
    before = registry.agreements()
    with pytest.raises(ecert.InputError, match="itself") as caught:
        registry.recognize(shared.anchors["GD"], {BL: BL})
    assert caught.value.code == "invalid_agreement"
    with pytest.raises(ecert.InputError) as caught:
        registry.recognize(shared.anchors["SH"], {})
    assert caught.value.code == "invalid_agreement"
    for bad in ({"": BL}, {BL: ""}):
        with pytest.raises(ecert.InputError) as caught:
            registry.recognize(shared.anchors["SH"], bad)
        assert caught.value.code == "invalid_agreement"
    assert registry.agreements() == before


def test_recognize_checks_their_types_against_their_trust_list(world: World) -> None:
    """Every mapped source type must be in their verified trust list, every target type in
    our catalog, and a pair's national type codes must agree unless forced."""
    gd = world["GD"].registry
    zj_list = world.verifier("GD").foreign_trust_list("ZJ")
    sh_list = world.verifier("ZJ").foreign_trust_list("SH")
    before = gd.agreements()
    with pytest.raises(ecert.NotFound, match=r"ZJ's trust list has no type zj\.nonesuch") as caught:
        gd.recognize(world.anchors["ZJ"], {DL: DL, "zj.nonesuch": BL}, theirs=zj_list)
    assert caught.value.code == "unknown_type"
    assert f"it lists {BL}, {DL}, {SPJY}" in caught.value.message
    with pytest.raises(ecert.NotFound, match=r"our catalog has no type gd\.nonesuch"):
        gd.recognize(world.anchors["ZJ"], {DL: "gd.nonesuch"}, theirs=zj_list)
    with pytest.raises(ecert.InputError, match="SH's, not ZJ's"):
        gd.recognize(world.anchors["ZJ"], {DL: DL}, theirs=sh_list)
    # Their driving licence is not our business licence: both national codes are named.
    codes = {t.code: t.national_type_code for t in zj_list.types}
    with pytest.raises(ecert.InputError) as caught:
        gd.recognize(world.anchors["ZJ"], {DL: BL, SPJY: FBL}, theirs=zj_list)
    assert caught.value.code == "national_code_mismatch"
    assert (f"ZJ's {DL} is {codes[DL]}, our {BL} is {codes[BL]}" in caught.value.message)
    assert SPJY not in caught.value.message  # same national code: the same licence
    assert "--force" in caught.value.message
    assert gd.agreements() == before
    # Forced: recognized, and the log says so (and who did it).
    agreement = gd.recognize(world.anchors["ZJ"], {DL: BL, SPJY: FBL}, theirs=zj_list,
                             force=True)
    assert dict(agreement.types) == {DL: BL, SPJY: FBL}
    entry = gd.events("ZJ")[-1]
    assert entry.action == "agreement.update"
    assert entry.details["national_codes_differ"] == [
        {"theirs": DL, "their_national_code": codes[DL], "ours": BL,
         "our_national_code": codes[BL]}]
    # Matching codes need no force and leave no such note; audit replays both entries.
    gd.recognize(world.anchors["ZJ"], mapping("GD", "ZJ") or {}, theirs=zj_list)
    assert "national_codes_differ" not in gd.events("ZJ")[-1].details
    assert gd.audit().intact


def test_recognize_replaces_the_agreement(world: World) -> None:
    registry = world["GD"].registry
    registry.recognize(world.anchors["ZJ"], {DL: DL})
    assert [dict(a.types) for a in registry.agreements()] == [{DL: DL}]
    world["GD"].publish()
    verifier = world.verifier("GD")
    assert_valid(verifier.verify(world.token("ZJ", DL)))
    assert_refused(verifier.verify(world.token("ZJ", BL)), E.TYPE_NOT_RECOGNIZED)
    assert [e.action for e in registry.events("ZJ")] == ["agreement.add", "agreement.update"]


# -- rollback ----------------------------------------------------------------------------------


def test_home_rollback_refused(world: World) -> None:
    gd = world["GD"]
    old = gd.trust_list_file.read_bytes()
    assert gd.publish().sequence == 2
    cache = world.tmp / "verifier-cache"
    verifier = world.verifier("GD", cache_dir=cache)
    assert verifier.trust_list.sequence == 2
    gd.trust_list_file.write_bytes(old)  # an attacker (or a stale mirror) serves sequence 1
    with pytest.raises(ecert.TrustListError) as caught:
        world.verifier("GD", cache_dir=cache)
    assert caught.value.code == "trust_list_rollback"
    # Without memory of sequence 2 the old list is (still) acceptable.
    assert world.verifier("GD").trust_list.sequence == 1
    # A bundle verifier told the sequence it saw refuses it too.
    anchor = world.anchors["GD"]
    with pytest.raises(ecert.TrustListError) as caught:
        ecert.Verifier.from_bundle(gd.www, anchor=anchor, min_sequence=2, clock=world.clock)
    assert caught.value.code == "trust_list_rollback"
    verifier = ecert.Verifier.from_bundle(gd.www, anchor=anchor, min_sequence=1,
                                          clock=world.clock)
    assert verifier.trust_list.sequence == 1
    # A bundle verifier still reaches recognized regions over HTTP.
    assert_valid(verifier.verify(world.token("ZJ", DL)))


def test_foreign_rollback_refused_with_cache_dir(world: World) -> None:
    zj = world["ZJ"]
    old = zj.trust_list_file.read_bytes()
    assert zj.publish().sequence == 2
    cache = world.tmp / "verifier-cache"
    assert_valid(world.verifier("GD", cache_dir=cache).verify(world.token("ZJ", DL)))
    state = json.loads((cache / "trust-state.json").read_text("utf-8"))
    assert state["regions"]["ZJ"]["sequence"] == 2
    assert state["regions"]["GD"]["sequence"] == 1

    zj.trust_list_file.write_bytes(old)
    result = world.verifier("GD", cache_dir=cache).verify(world.token("ZJ", DL))
    assert_refused(result, E.FOREIGN_TRUST_LIST_INVALID)
    assert "rollback" in result.messages[0]
    # GD's own certificates are unaffected.
    assert_valid(world.verifier("GD", cache_dir=cache).verify(world.token("GD", BL)))
    # A verifier that never saw sequence 2 accepts sequence 1.
    assert_valid(world.verifier("GD").verify(world.token("ZJ", DL)))


# -- freeze ------------------------------------------------------------------------------------


def test_home_trust_list_frozen_after_next_update_plus_grace(world: World) -> None:
    listed = world["GD"].served_trust_list()
    grace = ecert.VerificationLimits().trust_list_grace_seconds
    verifier = world.verifier("GD")
    at(world.clock, listed.next_update + grace)
    assert world.verifier("GD").trust_list.sequence == 1  # the last second of grace
    world.clock.advance(seconds=1)
    with pytest.raises(ecert.TrustListError) as caught:
        world.verifier("GD")
    assert caught.value.code == "trust_list_expired"
    result = verifier.verify(world.token("GD", BL))
    assert_refused(result, E.TRUST_LIST_EXPIRED)
    assert_refused(verifier.verify(world.token("ZJ", DL)), E.TRUST_LIST_EXPIRED)


def test_foreign_trust_list_frozen_after_next_update_plus_grace(world: World) -> None:
    # ZJ's list is due after one day; its status lists stay fresh for ten.
    world["ZJ"].publish(trust_list_validity=timedelta(days=1),
                        status_list_validity=timedelta(days=10))
    grace = ecert.VerificationLimits().trust_list_grace_seconds
    next_update = world["ZJ"].served_trust_list().next_update
    at(world.clock, next_update + grace)
    assert_valid(world.verifier("GD").verify(world.token("ZJ", DL)))  # late, within grace
    world.clock.advance(seconds=1)
    result = world.verifier("GD").verify(world.token("ZJ", DL))
    assert_refused(result, E.FOREIGN_TRUST_LIST_INVALID)
    assert "next update" in result.messages[0]
    with pytest.raises(ecert.TrustListError) as caught:
        world.verifier("GD").foreign_trust_list("ZJ")
    assert caught.value.code == "foreign_trust_list_invalid"
    world["ZJ"].publish()
    assert_valid(world.verifier("GD").verify(world.token("ZJ", DL)))


# -- long-running verifiers: refresh past next update, without losing what they saw -------------


def test_long_running_verifier_refreshes_home_then_foreign_freeze_applies(
    world: World,
) -> None:
    verifier = world.verifier("GD")
    assert_valid(verifier.verify(world.token("ZJ", DL)))
    at(world.clock, int(EPOCH.timestamp()) + 9 * DAY)
    # Nobody republished: the refresh finds the same stale list, frozen as a whole.
    assert_refused(verifier.verify(world.token("GD", BL)), E.TRUST_LIST_EXPIRED)
    world.clock.advance(hours=1)  # past the refresh retry interval
    world["GD"].publish()  # GD is current again; ZJ is not
    assert_refused(verifier.verify(world.token("ZJ", DL)), E.FOREIGN_TRUST_LIST_INVALID)
    assert_refused(world.verifier("GD").verify(world.token("ZJ", DL)),
                   E.FOREIGN_TRUST_LIST_INVALID)
    assert_valid(verifier.verify(world.token("GD", BL)))
    assert verifier.trust_list.sequence == 2


def test_long_running_verifier_learns_a_withdrawal_at_next_update(world: World) -> None:
    verifier = world.verifier("GD")
    assert_valid(verifier.verify(world.token("ZJ", DL)))
    world.clock.advance(hours=1)
    world["GD"].registry.withdraw("ZJ")
    world["GD"].publish()
    # Until its list is due, the verifier keeps what it verified.
    assert_valid(verifier.verify(world.token("ZJ", DL)))
    at(world.clock, verifier.trust_list.next_update + 1)
    world["ZJ"].publish()  # fresh ZJ status lists: only the withdrawal can refuse
    assert_refused(verifier.verify(world.token("ZJ", DL)), E.REGION_NOT_RECOGNIZED)
    assert verifier.trust_list.sequence == 2


def test_long_running_verifier_refuses_a_rollback_on_refresh(world: World) -> None:
    gd = world["GD"]
    old = gd.trust_list_file.read_bytes()
    world.clock.advance(hours=1)
    gd.publish()
    verifier = world.verifier("GD")
    assert verifier.trust_list.sequence == 2
    gd.trust_list_file.write_bytes(old)
    next_update = verifier.trust_list.next_update
    at(world.clock, next_update + 1)
    world["ZJ"].publish()
    assert_valid(verifier.verify(world.token("ZJ", DL)))  # in grace, on sequence 2
    assert verifier.trust_list.sequence == 2
    at(world.clock, next_update + ecert.VerificationLimits().trust_list_grace_seconds + 1)
    assert_refused(verifier.verify(world.token("GD", BL)), E.TRUST_LIST_EXPIRED)
    assert verifier.trust_list.sequence == 2


def test_long_running_verifier_refuses_a_foreign_rollback_after_refreshing_home(
    world: World,
) -> None:
    """A verifier without cache_dir that saw ZJ's sequence 2 must not take sequence 1
    later, not even after it refreshed its own (home) trust list."""
    gd, zj = world["GD"], world["ZJ"]
    gd.publish(trust_list_validity=timedelta(hours=1))
    old_zj = zj.trust_list_file.read_bytes()
    assert zj.publish().sequence == 2
    verifier = world.verifier("GD")
    assert_valid(verifier.verify(world.token("ZJ", DL)))
    assert verifier.foreign_trust_list("ZJ").sequence == 2
    zj.trust_list_file.write_bytes(old_zj)  # sequence 1 is served from now on
    world.clock.advance(hours=1, seconds=1)
    gd.publish()  # the verifier refreshes its home list at the next verification
    result = verifier.verify(world.token("ZJ", DL))
    assert verifier.trust_list.sequence == 3
    assert_refused(result, E.FOREIGN_TRUST_LIST_INVALID)
    assert "rollback" in result.messages[0]


def test_rollback_refused_after_a_refresh_that_followed_a_root_rotation(
    world: World,
) -> None:
    """The trust state stays keyed by the root the verifier pinned, also when a
    long-running verifier refreshes a list after following a rotation."""
    gd = world["GD"]
    pre_rotation = gd.trust_list_file.read_bytes()  # sequence 1, signed by the old root
    new_key = gd.registry.rotate_root()
    gd.publish(trust_list_validity=timedelta(hours=1))
    post_rotation = gd.trust_list_file.read_bytes()  # sequence 2, signed by the new root
    cache = world.tmp / "verifier-cache"
    verifier = world.verifier("GD", cache_dir=cache)
    assert verifier.anchor.kid == new_key.kid
    world.clock.advance(hours=1, seconds=1)
    gd.publish()
    assert_valid(verifier.verify(world.token("GD", BL)))  # refreshed: sequence 3
    assert verifier.trust_list.sequence == 3
    # A new run pinned to the same (old) anchor, with the same cache_dir:
    with serving(gd.trust_list_file, post_rotation), \
            pytest.raises(ecert.TrustListError) as caught:
        world.verifier("GD", cache_dir=cache)
    assert caught.value.code == "trust_list_rollback"
    # The old root is no longer the remembered root: its lists are not accepted.
    with serving(gd.trust_list_file, pre_rotation), \
            pytest.raises(ecert.TrustListError) as caught:
        world.verifier("GD", cache_dir=cache)
    assert caught.value.code == "trust_list_bad_signature"
    state = json.loads((cache / "trust-state.json").read_text("utf-8"))["regions"]["GD"]
    assert state == {"pinned_kid": world.anchors["GD"].kid, "sequence": 3,
                     "root_key": dict(new_key.public_jwk)}


def test_home_root_rotation_followed_and_remembered(world: World) -> None:
    gd = world["GD"]
    old_anchor = world.anchors["GD"]
    new_key = gd.registry.rotate_root()
    assert new_key.kid != old_anchor.kid
    assert gd.registry.anchor().kid == new_key.kid
    gd.publish()
    cache = world.tmp / "verifier-cache"
    verifier = world.verifier("GD", cache_dir=cache)  # pinned to the OLD root
    assert verifier.anchor.kid == new_key.kid
    assert verifier.anchor.root_jwk == dict(new_key.public_jwk)
    assert_valid(verifier.verify(world.token("GD", BL)))
    assert_valid(verifier.verify(world.token("ZJ", DL)))
    state = json.loads((cache / "trust-state.json").read_text("utf-8"))["regions"]["GD"]
    assert state["pinned_kid"] == old_anchor.kid
    assert state["root_key"]["kid"] == new_key.kid

    # The new root publishes a list without the hand-over statement: only a verifier that
    # remembered the rotation still accepts it.
    bare = forged_list(gd.served_trust_list(), gd.registry.keystore.signer(new_key.kid),
                       root_rotations=())
    gd.trust_list_file.write_text(bare, "ascii")
    remembered = world.verifier("GD", cache_dir=cache)
    assert remembered.anchor.kid == new_key.kid
    assert_valid(remembered.verify(world.token("GD", BL)))
    with pytest.raises(ecert.TrustListError) as caught:
        world.verifier("GD")
    assert caught.value.code == "trust_list_bad_signature"
    fresh = ecert.Verifier.from_anchor(gd.registry.anchor(), clock=world.clock)
    assert_valid(fresh.verify(world.token("GD", BL)))


def test_two_root_rotations_followed_from_the_first_anchor(world: World) -> None:
    gd = world["GD"]
    gd.registry.rotate_root()
    world.clock.advance(hours=1)
    latest = gd.registry.rotate_root()
    gd.publish()
    assert len(gd.served_trust_list().root_rotations) == 2
    verifier = world.verifier("GD")
    assert verifier.anchor.kid == latest.kid
    assert_valid(verifier.verify(world.token("GD", PQ)))


def test_sync_writes_the_rotated_anchor(world: World) -> None:
    gd = world["GD"]
    new_key = gd.registry.rotate_root()
    gd.publish()
    report = sync(world.anchors["GD"], world.tmp / "mirror", clock=world.clock)
    written = TrustAnchor.load(world.tmp / "mirror" / "anchor.json")
    assert report.regions == ("GD", "ZJ")
    assert written.kid == new_key.kid
    offline = ecert.Verifier.from_anchor(written, offline=world.tmp / "mirror",
                                         clock=world.clock)
    assert_valid(offline.verify(world.token("GD", BL)))


def _forged_rotations(world: World, forgery: str) -> str:
    """A GD trust list signed by a stranger, with a forged hand-over statement."""
    gd = world["GD"]
    attacker = stranger()
    now = int(world.clock().timestamp())
    old_kid = world.anchors["GD"].kid
    if forgery == "self-signed":
        statement = sign_root_rotation("GD", attacker.public_jwk, now, attacker)
    elif forgery == "claims-old-kid":
        statement = sign_root_rotation("GD", attacker.public_jwk, now,
                                       Impostor(attacker, old_kid))
    elif forgery == "other-region":
        # Really signed by GD's root, but handing over ZJ's root.
        statement = sign_root_rotation("ZJ", attacker.public_jwk, now, gd.root_signer())
    else:  # "no-statement"
        statement = None
    rotations = () if statement is None else (statement,)
    return forged_list(gd.served_trust_list(), attacker, root_rotations=rotations)


def test_forged_root_rotation_refused(shared: World, tmp_path: Path) -> None:
    cache = tmp_path / "verifier-cache"
    for forgery in ("self-signed", "claims-old-kid", "other-region", "no-statement"):
        forged = _forged_rotations(shared, forgery)
        with serving(shared["GD"].trust_list_file, forged), \
                pytest.raises(ecert.TrustListError) as caught:
            shared.verifier("GD", cache_dir=cache)
        assert caught.value.code == "trust_list_bad_signature", forgery
        assert not (cache / "trust-state.json").exists(), forgery
    assert shared.verifier("GD", cache_dir=cache).anchor == shared.anchors["GD"]


def test_forged_foreign_root_rotation_refused(shared: World) -> None:
    zj = shared["ZJ"]
    attacker = stranger()
    statement = sign_root_rotation(
        "ZJ", attacker.public_jwk, int(shared.clock().timestamp()),
        Impostor(attacker, shared.anchors["ZJ"].kid))
    forged = forged_list(zj.served_trust_list(), attacker, root_rotations=(statement,))
    with serving(zj.trust_list_file, forged):
        result = shared.verifier("GD").verify(shared.token("ZJ", DL))
    assert_refused(result, E.FOREIGN_TRUST_LIST_INVALID)
    assert "root" in result.messages[0]


def test_foreign_root_rotation_followed(world: World) -> None:
    zj = world["ZJ"]
    new_key = zj.registry.rotate_root()
    zj.publish()
    # GD's agreement still pins ZJ's old root.
    agreement = world["GD"].served_trust_list().agreement_with("ZJ")
    assert agreement is not None and agreement.root_jwk["kid"] == world.anchors["ZJ"].kid
    cache = world.tmp / "verifier-cache"
    verifier = world.verifier("GD", cache_dir=cache)
    assert_valid(verifier.verify(world.token("ZJ", DL)))
    spjy = verifier.verify(world.token("ZJ", SPJY))
    assert_valid(spjy)
    assert spjy.local_type == FBL
    assert verifier.foreign_trust_list("ZJ").sequence == 2
    state = json.loads((cache / "trust-state.json").read_text("utf-8"))["regions"]["ZJ"]
    assert state["pinned_kid"] == world.anchors["ZJ"].kid
    assert state["root_key"]["kid"] == new_key.kid
    # ZJ certificates issued after the rotation are fine too.
    later = zj.issue(DL)
    zj.publish()
    assert_valid(world.verifier("GD", cache_dir=cache).verify(later.token))


# -- compromised foreign agency key ------------------------------------------------------------


def test_compromised_foreign_agency_key(world: World) -> None:
    zj = world["ZJ"]
    before = world.certs["ZJ", DL]
    world.clock.advance(hours=1)
    since = world.clock()
    at_t = zj.issue(DL)
    world.clock.advance(hours=1)
    after = zj.issue(DL)
    assert before.kid == at_t.kid == after.kid
    zj.publish()
    verifier = world.verifier("GD")
    for cert in (before, at_t, after):
        assert_valid(verifier.verify(cert.token))

    zj.registry.mark_key_compromised(before.kid, since=since)
    replacement = zj.issue(DL)
    assert replacement.kid != before.kid
    zj.publish()
    verifier = world.verifier("GD")
    assert_valid(verifier.verify(before.token))
    assert_refused(verifier.verify(at_t.token), E.KEY_COMPROMISED)
    assert_refused(verifier.verify(after.token), E.KEY_COMPROMISED)
    assert_valid(verifier.verify(replacement.token))
    # Other ZJ agencies are untouched.
    assert_valid(verifier.verify(world.token("ZJ", BL)))


# -- withdrawn and time-limited agreements -----------------------------------------------------


def test_withdrawn_agreement(world: World) -> None:
    gd = world["GD"]
    old_verifier = world.verifier("GD")
    assert_valid(old_verifier.verify(world.token("ZJ", DL)))
    gd.registry.withdraw("zj")
    assert gd.registry.agreements() == []
    gd.publish()
    assert gd.served_trust_list().agreements == ()
    verifier = world.verifier("GD")
    for type_code in (DL, BL, SPJY):
        assert_refused(verifier.verify(world.token("ZJ", type_code)), E.REGION_NOT_RECOGNIZED)
    assert_valid(verifier.verify(world.token("GD", BL)))
    with pytest.raises(ecert.NotFound):
        gd.registry.withdraw("ZJ")
    # ZJ still recognizes GD: withdrawal is one-sided.
    assert_valid(world.verifier("ZJ").verify(world.token("GD", BL)))


def test_agreement_valid_until_in_the_past(world: World) -> None:
    gd = world["GD"]
    until = EPOCH + timedelta(days=2)
    agreement = gd.registry.recognize(world.anchors["ZJ"], mapping("GD", "ZJ") or {},
                                      valid_until=until)
    assert agreement.valid_until == int(until.timestamp())
    gd.publish()
    verifier = world.verifier("GD")
    assert_valid(verifier.verify(world.token("ZJ", DL)))
    at(world.clock, int(until.timestamp()) - 1)
    world["ZJ"].publish()  # fresh status lists
    assert_valid(world.verifier("GD").verify(world.token("ZJ", DL)))
    at(world.clock, int(until.timestamp()))
    assert_refused(world.verifier("GD").verify(world.token("ZJ", DL)),
                   E.AGREEMENT_NOT_IN_FORCE)
    assert_refused(verifier.verify(world.token("ZJ", BL)), E.AGREEMENT_NOT_IN_FORCE)
    # The next trust list leaves the lapsed agreement out.
    gd.publish()
    assert_refused(world.verifier("GD").verify(world.token("ZJ", DL)),
                   E.REGION_NOT_RECOGNIZED)


def test_agreement_not_yet_in_force(world: World) -> None:
    gd = world["GD"]
    start = EPOCH + timedelta(days=1)
    gd.registry.recognize(world.anchors["ZJ"], {DL: DL}, valid_from=start)
    gd.publish()
    assert_refused(world.verifier("GD").verify(world.token("ZJ", DL)),
                   E.AGREEMENT_NOT_IN_FORCE)
    at(world.clock, int(start.timestamp()))
    world["ZJ"].publish()
    assert_valid(world.verifier("GD").verify(world.token("ZJ", DL)))


# -- foreign status lists ----------------------------------------------------------------------


def test_foreign_revocation_suspension_and_stale_status_lists(world: World) -> None:
    zj = world["ZJ"]
    zj.registry.revoke(world.certs["ZJ", DL].id, "key-compromise")
    zj.registry.suspend(world.certs["ZJ", BL].id)
    zj.publish()
    verifier = world.verifier("GD")
    revoked = verifier.verify(world.token("ZJ", DL))
    assert_refused(revoked, E.REVOKED, S.REVOKED)
    assert revoked.local_type == DL
    assert revoked.agreement is not None and revoked.agreement.region == "ZJ"
    assert_refused(verifier.verify(world.token("ZJ", BL)), E.SUSPENDED, S.SUSPENDED)
    assert_valid(verifier.verify(world.token("ZJ", SPJY)))

    world.clock.advance(hours=2)  # past the status lists' one-hour ttl
    zj.registry.reinstate(world.certs["ZJ", BL].id)
    zj.publish()
    assert_valid(verifier.verify(world.token("ZJ", BL)))
    assert_refused(verifier.verify(world.token("ZJ", DL)), E.REVOKED, S.REVOKED)

    world.clock.advance(days=2)  # ZJ's status lists (one day) are stale; its list is not
    world["GD"].publish()
    result = world.verifier("GD").verify(world.token("ZJ", SPJY))
    assert_refused(result, E.STATUS_LIST_EXPIRED, S.INVALID)


# -- unreachable foreign region ----------------------------------------------------------------


def test_unreachable_foreign_region_without_cache(shared: World) -> None:
    with removed(shared["ZJ"].www):
        verifier = shared.verifier("GD")
        result = verifier.verify(shared.token("ZJ", DL))
        assert_valid(verifier.verify(shared.token("GD", BL)))
        with down(shared.server, "/zj/"):
            unavailable = shared.verifier("GD").verify(shared.token("ZJ", DL))
    assert_refused(result, E.FOREIGN_TRUST_LIST_INVALID)
    message = result.messages[0]
    assert "trust list of ZJ" in message
    assert shared.server.url("zj/trustlist.jwt") in message
    assert "404" in message
    assert "\n" not in message
    assert_refused(unavailable, E.FOREIGN_TRUST_LIST_INVALID)
    assert "503" in unavailable.messages[0]


def test_foreign_region_down_uses_http_cache(world: World) -> None:
    cache = world.tmp / "verifier-cache"
    assert_valid(world.verifier("GD", cache_dir=cache).verify(world.token("ZJ", DL)))

    world.server.log.clear()
    world.server.down.add("/zj/")
    assert_valid(world.verifier("GD", cache_dir=cache).verify(world.token("ZJ", DL)))
    assert ("/gd/trustlist.jwt", 304) in world.server.log  # ETag revalidation
    assert ("/zj/trustlist.jwt", 503) in world.server.log
    no_cache = world.verifier("GD").verify(world.token("ZJ", DL))
    assert_refused(no_cache, E.FOREIGN_TRUST_LIST_INVALID)
    assert "503" in no_cache.messages[0]

    world.server.stop()
    offline = world.verifier("GD", cache_dir=cache)
    assert_valid(offline.verify(world.token("ZJ", DL)))
    with pytest.raises(ecert.TrustListError) as caught:
        world.verifier("GD")
    assert caught.value.code == "trust_list_unavailable"


def test_stale_http_cache_fails_closed(world: World) -> None:
    cache = world.tmp / "verifier-cache"
    assert_valid(world.verifier("GD", cache_dir=cache).verify(world.token("ZJ", DL)))
    world.server.stop()
    world.clock.advance(days=2)  # cached status lists are past their expiry
    result = world.verifier("GD", cache_dir=cache).verify(world.token("ZJ", DL))
    assert_refused(result, E.STATUS_LIST_EXPIRED, S.INVALID)
    world.clock.advance(days=7)  # and the cached home list is frozen
    with pytest.raises(ecert.TrustListError) as caught:
        world.verifier("GD", cache_dir=cache)
    assert caught.value.code == "trust_list_expired"


def test_offline_mirror_after_server_stopped(world: World) -> None:
    revoked = world["ZJ"].issue(DL)
    world["ZJ"].registry.revoke(revoked.id, "superseded")
    world["ZJ"].publish()
    mirror = world.tmp / "mirror"
    report = sync(world.anchors["GD"], mirror, clock=world.clock)
    assert report.regions == ("GD", "ZJ")
    assert report.problems == ()
    assert report.documents == 4  # two trust lists, two status lists
    world.server.stop()
    verifier = ecert.Verifier.from_anchor(world.anchors["GD"], offline=mirror, clock=world.clock)
    for type_code, local in ((DL, DL), (BL, BL), (SPJY, FBL)):
        result = verifier.verify(world.token("ZJ", type_code))
        assert_valid(result)
        assert result.local_type == local
    assert_valid(verifier.verify(world.token("GD", PQ)))
    assert_refused(verifier.verify(world.token("SH", FBL)), E.REGION_NOT_RECOGNIZED)
    assert_refused(verifier.verify(revoked.token), E.REVOKED, S.REVOKED)
    from_file = ecert.Verifier.from_anchor(mirror / "anchor.json", offline=mirror,
                                           clock=world.clock)
    assert_valid(from_file.verify(world.token("ZJ", DL)))
    with pytest.raises(ecert.TrustListError) as caught:
        world.verifier("GD")
    assert caught.value.code == "trust_list_unavailable"


def test_sync_reports_an_unreachable_foreign_region(shared: World, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    with down(shared.server, "/zj/"):
        report = sync(shared.anchors["GD"], mirror, clock=shared.clock)
    assert report.regions == ("GD",)
    assert len(report.problems) == 1
    assert report.problems[0].startswith("ZJ: ")
    verifier = ecert.Verifier.from_anchor(shared.anchors["GD"], offline=mirror,
                                          clock=shared.clock)
    assert_valid(verifier.verify(shared.token("GD", BL)))
    assert_refused(verifier.verify(shared.token("ZJ", DL)), E.FOREIGN_TRUST_LIST_INVALID)
    # Syncing again into a complete mirror while ZJ serves garbage keeps ZJ's good copy.
    complete = tmp_path / "complete"
    assert sync(shared.anchors["GD"], complete, clock=shared.clock).regions == ("GD", "ZJ")
    with serving(shared["ZJ"].trust_list_file, "garbage"):
        again = sync(shared.anchors["GD"], complete, clock=shared.clock)
    assert again.regions == ("GD",)
    assert again.problems[0].startswith("ZJ: ")
    offline = ecert.Verifier.from_anchor(shared.anchors["GD"], offline=complete,
                                         clock=shared.clock)
    assert_valid(offline.verify(shared.token("ZJ", DL)))


def test_sync_refuses_an_unreachable_home_region(world: World) -> None:
    world.server.down.add("/gd/")
    with pytest.raises(ecert.TrustListError) as caught:
        sync(world.anchors["GD"], world.tmp / "mirror", clock=world.clock)
    assert caught.value.code == "trust_list_unavailable"
    assert not (world.tmp / "mirror" / "anchor.json").exists()


# -- hostile trust lists -----------------------------------------------------------------------


def _hostile(world: World, site: Site, kind: str) -> bytes:
    """A hostile replacement for ``site``'s trust list."""
    listed = site.served_trust_list()
    if kind == "stranger-signed":
        return forged_list(listed, stranger()).encode()
    if kind == "impostor-kid":  # names the real root kid, signed by another key
        return forged_list(listed, Impostor(stranger(), site.registry.anchor().kid)).encode()
    if kind == "other-region-list":  # a real, valid list of another region
        other = "SH" if site.code != "SH" else "GD"
        return (site.www.parent / other.lower() / "trustlist.jwt").read_bytes()
    if kind == "oversized":
        return b"e" * (MAX_TRUST_LIST_BYTES + 1)
    if kind == "not-a-jws":
        return b"<html><body>404 Not Found</body></html>"
    if kind == "json":
        return json.dumps(listed.to_payload()).encode()
    if kind == "empty":
        return b""
    if kind == "bad-payload":
        header = jose.b64url_encode(json.dumps(
            {"alg": "ES256", "kid": site.registry.anchor().kid,
             "typ": "ecert-trustlist+jwt"}).encode())
        return f"{header}.{jose.b64url_encode(b'not json')}.AAAA".encode()
    if kind == "truncated":
        token = site.trust_list_file.read_bytes()
        return token[: len(token) - 10]
    if kind == "wrong-region":  # signed by the real root, claims to be another region
        other = "GD" if site.code != "GD" else "ZJ"
        return forged_list(listed, site.root_signer(), region=other).encode()
    raise AssertionError(kind)


#: Hostile replacements for a trust list, and the code a verifier refuses each with when it
#: is the home list (as a foreign list, each is foreign_trust_list_invalid).
HOSTILE = {
    "stranger-signed": "trust_list_bad_signature",
    "impostor-kid": "trust_list_bad_signature",
    "other-region-list": "trust_list_bad_signature",
    "oversized": "trust_list_unavailable",
    "not-a-jws": "trust_list_malformed",
    "json": "trust_list_malformed",
    "empty": "trust_list_malformed",
    "bad-payload": "trust_list_malformed",
    "truncated": "trust_list_bad_signature",
    "wrong-region": "trust_list_wrong_region",
}


def test_hostile_foreign_trust_lists(shared: World) -> None:
    zj = shared["ZJ"]
    for kind in HOSTILE:
        with serving(zj.trust_list_file, _hostile(shared, zj, kind)):
            verifier = shared.verifier("GD")
            results = [verifier.verify(shared.token("ZJ", t)) for t in (DL, SPJY)]
            with pytest.raises(ecert.TrustListError) as caught:
                verifier.foreign_trust_list("ZJ")
            home = verifier.verify(shared.token("GD", BL))
        for result in results:
            assert result.errors == (E.FOREIGN_TRUST_LIST_INVALID,), (kind, result.messages)
            assert result.status is S.UNTRUSTED, kind
            assert result.messages[0].startswith("trust list of ZJ cannot be used: "), kind
            assert "\n" not in result.messages[0], kind
        assert caught.value.code == "foreign_trust_list_invalid", kind
        assert_valid(home)
    assert_valid(shared.verifier("GD").verify(shared.token("ZJ", DL)))


def test_hostile_home_trust_lists(shared: World) -> None:
    gd = shared["GD"]
    for kind, code in HOSTILE.items():
        with serving(gd.trust_list_file, _hostile(shared, gd, kind)), \
                pytest.raises(ecert.TrustListError) as caught:
            shared.verifier("GD")
        assert caught.value.code == code, (kind, caught.value.message)
    # Exactly at the size limit: read, then refused as malformed (not as too large).
    with serving(gd.trust_list_file, b"e" * MAX_TRUST_LIST_BYTES), \
            pytest.raises(ecert.TrustListError) as caught:
        shared.verifier("GD")
    assert caught.value.code == "trust_list_malformed"
    assert shared.verifier("GD").trust_list.sequence == 1


def test_zj_list_claiming_gd_refused(shared: World) -> None:
    zj = shared["ZJ"]
    token = forged_list(zj.served_trust_list(), zj.root_signer(), region="GD")
    with pytest.raises(ecert.TrustListError) as caught:
        verify_trust_list(token, shared.anchors["ZJ"], now=int(shared.clock().timestamp()),
                          grace=0)
    assert caught.value.code == "trust_list_wrong_region"
    with serving(zj.trust_list_file, token):
        with pytest.raises(ecert.TrustListError) as caught:
            shared.verifier("ZJ")
        result = shared.verifier("GD").verify(shared.token("ZJ", DL))
    assert caught.value.code == "trust_list_wrong_region"
    assert_refused(result, E.FOREIGN_TRUST_LIST_INVALID)
    assert "region GD" in result.messages[0]


def test_agreement_pinning_another_root_refused(world: World) -> None:
    """GD's agreement names ZJ's URL but pins SH's root: ZJ's real list does not match."""
    gd = world["GD"]
    relabelled = TrustAnchor("ZJ", "浙江省", dict(world.anchors["SH"].root_jwk),
                             world.anchors["ZJ"].trust_list_url)
    gd.registry.recognize(relabelled, mapping("GD", "ZJ") or {})
    gd.publish()
    result = world.verifier("GD").verify(world.token("ZJ", DL))
    assert_refused(result, E.FOREIGN_TRUST_LIST_INVALID)
    assert "pinned root" in result.messages[0]
    # The other way round: ZJ's label and pin, SH's URL.
    gd.registry.recognize(TrustAnchor("ZJ", "浙江省", dict(world.anchors["ZJ"].root_jwk),
                                      world.anchors["SH"].trust_list_url),
                          mapping("GD", "ZJ") or {})
    gd.publish()
    verifier = world.verifier("GD")
    assert_refused(verifier.verify(world.token("ZJ", DL)), E.FOREIGN_TRUST_LIST_INVALID)
    assert_refused(verifier.verify(world.token("SH", FBL)), E.REGION_NOT_RECOGNIZED)
    # SH's real anchor relabelled ZJ: SH's list says SH, so it is not ZJ's list.
    sh = world.anchors["SH"]
    gd.registry.recognize(TrustAnchor("ZJ", sh.name, dict(sh.root_jwk), sh.trust_list_url),
                          {FBL: FBL})
    gd.publish()
    verifier = world.verifier("GD")
    result = verifier.verify(world.token("ZJ", DL))
    assert_refused(result, E.FOREIGN_TRUST_LIST_INVALID)
    assert "region SH" in result.messages[0]
    assert_refused(verifier.verify(world.token("SH", FBL)), E.REGION_NOT_RECOGNIZED)


def test_foreign_list_cannot_make_sh_trusted(shared: World) -> None:
    """ZJ (really signed) lists SH's agency and keys and maps SH types onto GD's codes:
    GD still accepts nothing of SH's."""
    zj, sh = shared["ZJ"], shared["SH"]
    listed = zj.served_trust_list()
    sh_list = sh.served_trust_list()
    sh_agencies = tuple(
        TrustedAgency(a.code, a.name, a.uscc, a.uri, a.types, a.keys) for a in sh_list.agencies)
    agreement = listed.agreement_with("SH")
    assert agreement is not None
    generous = dataclasses.replace(agreement, types={FBL: FBL, BL: BL})
    token = forged_list(listed, zj.root_signer(),
                        agencies=listed.agencies + sh_agencies,
                        agreements=(generous,))
    with serving(zj.trust_list_file, token):
        verifier = shared.verifier("GD")
        zj_result = verifier.verify(shared.token("ZJ", DL))  # ZJ's list itself is fine
        foreign = verifier.foreign_trust_list("ZJ")
        sh_results = [verifier.verify(shared.token("SH", t)) for t in (FBL, BL)]
    assert_valid(zj_result)
    assert foreign.agreement_with("SH") == generous
    for result in sh_results:
        assert_refused(result, E.REGION_NOT_RECOGNIZED)


def test_sh_token_claiming_zj_is_refused(shared: World) -> None:
    """An SH-signed token relabelled as ZJ's: ZJ's list does not know SH's key."""
    sh_token = shared.token("SH", FBL)
    header, payload, signature = sh_token.split(".")
    claims = json.loads(jose.b64url_decode(payload))
    claims["region"] = "ZJ"
    forged = ".".join((header, jose.b64url_encode(json.dumps(claims).encode()), signature))
    result = shared.verifier("GD").verify(forged)
    assert_refused(result, E.UNKNOWN_KID)


def test_unreachable_region_is_not_fetched_again_for_every_token(world: World) -> None:
    verifier = world.verifier("GD")
    token = world.token("ZJ", DL)
    world.server.down.add("/zj/")
    # Only this verifier's requests count (publication fetched ZJ's list before, to
    # collect cosignatures).
    start = len(world.server.log)
    assert_refused(verifier.verify(token), E.FOREIGN_TRUST_LIST_INVALID)
    attempts = [entry for entry in world.server.log[start:] if entry[0].startswith("/zj/")]
    assert attempts == [("/zj/trustlist.jwt", 503)]
    # A burst of tokens naming the region within the retry interval: no new request.
    for _ in range(5):
        again = verifier.verify(token)
        assert_refused(again, E.FOREIGN_TRUST_LIST_INVALID)
        assert "503" in again.messages[0]
    assert [e for e in world.server.log[start:] if e[0].startswith("/zj/")] == attempts
    # After the interval the region is tried again, and it is back.
    world.server.down.discard("/zj/")
    world.clock.advance(seconds=31)
    assert_valid(verifier.verify(token))


# -- network and state hardening, end to end ---------------------------------------------------


def _served_path(world: World, uri: str) -> Path:
    """The file the test server serves for ``uri``."""
    return world.server.root / urllib.parse.urlsplit(uri).path.lstrip("/")


def test_a_bad_answer_does_not_replace_the_good_cached_copy(world: World) -> None:
    """One bad 200 answer must not poison the cache that serves when the network fails."""
    cache = world.tmp / "verifier-cache"
    zj_token = world.token("ZJ", DL)
    assert_valid(world.verifier("GD", cache_dir=cache).verify(zj_token))
    status_file = _served_path(world, world.certs["ZJ", DL].status_list_uri)
    for bad in (world["ZJ"].trust_list_file, status_file):
        with serving(bad, b"garbage, answered with 200 OK"):
            refused = world.verifier("GD", cache_dir=cache).verify(zj_token)
        assert not refused.valid
        with down(world.server, "/zj/"):  # now the cached copies are all there is
            assert_valid(world.verifier("GD", cache_dir=cache).verify(zj_token))


def _signed_without_checks(trust_list: TrustList, signer: Any) -> str:
    """Sign a list as a careless (non-ecert) implementation might, URLs unchecked."""
    return jose.sign_compact(trust_list.to_payload(), signer, "ecert-trustlist+jwt")


BAD_HOSTS = ("..", "a" * 64 + ".example")


@pytest.mark.parametrize("host", BAD_HOSTS, ids=["dotdot", "label-64"])
def test_a_bad_agreement_url_fails_only_that_region(shared: World, tmp_path: Path,
                                                    host: str) -> None:
    gd = shared["GD"]
    listed = gd.served_trust_list()
    zj = listed.agreement_with("ZJ")
    assert zj is not None
    bad = dataclasses.replace(zj, trust_list_url=f"http://{host}/zj/trustlist.jwt")
    token = _signed_without_checks(
        dataclasses.replace(listed, sequence=listed.sequence + 1, agreements=(bad,)),
        gd.root_signer())
    with serving(gd.trust_list_file, token):
        verifier = shared.verifier("GD")
        assert_valid(verifier.verify(shared.token("GD", BL)))
        result = verifier.verify(shared.token("ZJ", DL))
        report = sync(shared.anchors["GD"], tmp_path / "mirror", clock=shared.clock)
    assert_refused(result, E.FOREIGN_TRUST_LIST_INVALID)
    assert "invalid host" in result.messages[0]
    assert report.regions == ("GD",)
    assert len(report.problems) == 1 and report.problems[0].startswith("ZJ: ")
    assert (tmp_path / "mirror" / "anchor.json").is_file()
    assert sorted(p.name for p in (tmp_path / "mirror").iterdir()) == [
        f"127.0.0.1_{shared.server.port}", "anchor.json"]


@pytest.mark.parametrize("host", BAD_HOSTS, ids=["dotdot", "label-64"])
def test_a_bad_foreign_base_url_fails_only_that_region(shared: World, tmp_path: Path,
                                                       host: str) -> None:
    zj = shared["ZJ"]
    listed = zj.served_trust_list()
    token = _signed_without_checks(
        dataclasses.replace(listed, sequence=listed.sequence + 1, base_url=f"https://{host}"),
        zj.root_signer())
    with serving(zj.trust_list_file, token):
        verifier = shared.verifier("GD")
        result = verifier.verify(shared.token("ZJ", DL))
        report = sync(shared.anchors["GD"], tmp_path / "mirror", clock=shared.clock)
        assert_valid(verifier.verify(shared.token("GD", BL)))
    assert_refused(result, E.FOREIGN_TRUST_LIST_INVALID)
    assert "malformed" in result.messages[0]
    assert report.regions == ("GD",)
    assert report.problems[0].startswith("ZJ: ")
    with pytest.raises(ecert.FormatError) as caught:
        dataclasses.replace(listed, base_url=f"https://{host}").sign(zj.root_signer())
    assert caught.value.code == "invalid_url"


def test_registries_refuse_urls_ecert_would_not_fetch(shared: World, tmp_path: Path) -> None:
    for host in BAD_HOSTS:
        with pytest.raises(ecert.InputError) as caught:
            ecert.Registry.init(tmp_path / "home", region="GD", name="广东省",
                                base_url=f"https://{host}", passphrase=PASSPHRASE,
                                admin=credential(OPERATOR))
        assert caught.value.code == "invalid_url"
        assert not (tmp_path / "home").exists()
        registry = shared["GD"].registry
        before = registry.agreements()
        zj = shared.anchors["ZJ"]
        with pytest.raises(ecert.InputError) as caught:
            registry.recognize(TrustAnchor("ZJ", zj.name, dict(zj.root_jwk),
                                           f"http://{host}/zj/trustlist.jwt"), {DL: DL})
        assert caught.value.code == "invalid_url"
        assert registry.agreements() == before


def test_the_trust_state_fails_closed_and_belongs_to_one_anchor(world: World) -> None:
    cache = world.tmp / "verifier-cache"
    assert_valid(world.verifier("GD", cache_dir=cache).verify(world.token("ZJ", DL)))
    state = cache / "trust-state.json"
    assert state.stat().st_mode & 0o777 == 0o600
    doc = json.loads(state.read_text("utf-8"))
    assert doc["anchor"] == {"region": "GD", "root_kid": world.anchors["GD"].kid}
    # Another anchor with the same cache: refused, not silently mixed.
    with pytest.raises(ecert.TrustListError) as caught:
        world.verifier("ZJ", cache_dir=cache)
    assert caught.value.code == "trust_state_wrong_anchor"
    # Corrupt: refused, with the way out in the message.
    good = state.read_bytes()
    state.write_bytes(good[: len(good) // 2])
    with pytest.raises(ecert.TrustListError) as caught:
        world.verifier("GD", cache_dir=cache)
    assert caught.value.code == "trust_state_corrupt"
    assert "reset-state" in caught.value.message
    # A long-running verifier whose state goes bad refuses the regions it must load.
    state.write_bytes(good)
    running = world.verifier("GD", cache_dir=cache)
    state.write_bytes(b"{")
    assert_refused(running.verify(world.token("ZJ", DL)), E.FOREIGN_TRUST_LIST_INVALID)
    assert_valid(running.verify(world.token("GD", BL)))
    # Deleted: a first run (documented: back the file up).
    state.unlink()
    assert_valid(world.verifier("GD", cache_dir=cache).verify(world.token("ZJ", DL)))


def test_the_new_anchor_after_a_rotation_keeps_the_trust_state(world: World) -> None:
    gd = world["GD"]
    cache = world.tmp / "verifier-cache"
    new_key = gd.registry.rotate_root()
    gd.publish()
    assert world.verifier("GD", cache_dir=cache).anchor.kid == new_key.kid
    new_anchor = gd.registry.anchor()
    verifier = ecert.Verifier.from_anchor(new_anchor, cache_dir=cache, clock=world.clock)
    assert_valid(verifier.verify(world.token("GD", BL)))
    assert verifier.trust_list.sequence == 2
