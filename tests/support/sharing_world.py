"""The sample sharing set-up (``tests/data/sharing.json``) over loopback HTTP, built once
per module: GD serves its sharing service on a real uvicorn (SQLite, or PostgreSQL when
``ECERT_TEST_DATABASE_URL`` is set), ZJ's agencies request with their requester keys
published in ZJ's trust list, GD recognizes ZJ (and ZJ GD, to verify copies), SH is
recognized by nobody. Every region's bundle is served by a static :class:`LocalServer`.

The clock is a :class:`FakeClock` set to the real time when the world is built, so that a
real ``ecert serve`` process (on the system clock) agrees with it; tests only move it
forward, by little.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ecert
from ecert import _samples
from ecert._formats.sharing import CaseContext, ShareRequest
from ecert._sources import HttpSource
from ecert.keys import Signer
from ecert.sharing.app import Limits
from ecert.sharing.backend import (
    RefreshingRequesterKeys,
    RefusalLimiter,
    RegistryBackend,
    registry_app,
)
from ecert.sharing.client import Answer, send
from tests.support.clock import FakeClock
from tests.support.constants import FAST_KDF_ROUNDS, PG_URL
from tests.support.http import LocalServer, serve
from tests.support.pg import pg_schema_url
from tests.support.regions import BL
from tests.support.registries import as_operator, create_registry
from tests.support.sharing_service import ServiceHost

DATA = Path(__file__).resolve().parent.parent / "data" / "sharing.json"
SERVICE_OPERATOR = "svc-gd"
SERVICE_PASSPHRASE = "service operator passphrase"
SECOND_PASSPHRASE = "second trust admin passphrase"


def sample() -> dict[str, Any]:
    """``tests/data/sharing.json``."""
    value: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return value


def sample_request(case: str) -> dict[str, Any]:
    """One of the sample's requests, by its ``case``."""
    return next(r for r in sample()["requests"] if r["case"] == case)


def context_of(entry: dict[str, Any], consent: str | None = None, **changes: str
               ) -> CaseContext:
    """The case context of a sample request (staff invented: the sample names none)."""
    values = {"purpose": entry["purpose"], "case": entry["case_no"],
              "service_item": entry["service_item"], "staff_id": "zj-0042",
              "staff_role": "受理员", **changes}
    return CaseContext(consent=consent, **values)


class Ticks:
    """A settable monotonic clock (seconds) for the service's refresh and limit windows."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SharingWorld:
    """GD (serving), ZJ and SH (requesting), their bundles and GD's service."""

    tmp: Path
    clock: FakeClock
    static: LocalServer
    registries: dict[str, ecert.Registry]
    #: GD opened as its service operator (what the service runs as).
    service_registry: ecert.Registry
    anchors: dict[str, ecert.TrustAnchor]
    licence: ecert.Certificate  #: GD's sample business licence
    holder_id: str  #: its holder's id (the USCC)
    database_urls: dict[str, str | None] = field(default_factory=dict)
    service: ServiceHost | None = None
    ticks: Ticks = field(default_factory=Ticks)
    keys: RefreshingRequesterKeys | None = None
    backend: RegistryBackend | None = None

    def __getitem__(self, region: str) -> ecert.Registry:
        return self.registries[region]

    @property
    def fetch_url(self) -> str:
        assert self.service is not None
        return self.service.url("/v1/copies")

    def signer(self, requester: str) -> Signer:
        region, agency = requester.split("/")
        return self.registries[region].requester_signer(agency)

    def fetch(self, requester: str, context: CaseContext, *, holder_id: str | None = None,
              types: tuple[str, ...] = (BL,), signer: Signer | None = None,
              url: str | None = None) -> Answer:
        """Sign a fetch as ``requester`` (with its own requester key unless ``signer``)
        and send it to GD's service."""
        request = ShareRequest(holder_id or self.holder_id, types, context)
        return send(url or self.fetch_url, request, signer or self.signer(requester),
                    requester, clock=self.clock, timeout=30)

    def consent(self, to: str, purpose: str, *, ttl: int = 3600,
                types: tuple[str, ...] = (BL,)) -> ecert.ConsentCode:
        """A consent code made by GD's clerk for the sample holder."""
        return self.registries["GD"].consent_grant(self.holder_id, to, types,
                                                   purpose, ttl)

    def publish(self, region: str) -> None:
        self.registries[region].publish(self.static.root / region.lower())


def build(tmp: Path, static: LocalServer, schemas: list[Iterator[str]]) -> SharingWorld:
    """Create the three regions, link them, issue, allow, publish (not yet serving)."""
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    registries: dict[str, ecert.Registry] = {}
    urls: dict[str, str | None] = {}
    try:
        for code in ("GD", "ZJ", "SH"):
            url: str | None = None
            if PG_URL:
                gen = pg_schema_url()
                url = next(gen)
                schemas.append(gen)
            urls[code] = url
            registries[code] = create_registry(
                tmp / f"home-{code.lower()}", region=code, database_url=url, clock=clock,
                base_url=static.url(code.lower()), kdf_rounds=FAST_KDF_ROUNDS, populate=True)
        gd, zj, sh = registries["GD"], registries["ZJ"], registries["SH"]
        anchors = {code: r.anchor() for code, r in registries.items()}
        gd.recognize(anchors["ZJ"], {BL: BL})
        zj.recognize(anchors["GD"], {BL: BL})
        for registry, agencies in ((zj, ("zj-amr", "zj-psb-traffic")), (sh, ("sh-amr",))):
            for agency in agencies:
                registry.create_requester_key(agency)
        gd.create_requester_key("gd-hrss")  # a requester of the serving region itself
        gd.add_operator("trust-b", roles=["trust-admin"], passphrase=SECOND_PASSPHRASE)
        for entry in sample()["entitlements"]:
            if entry["server_region"] != "GD":
                continue
            try:
                gd.share_allow(entry["requester"], entry["types"], entry["purposes"],
                               entry["claims"], entry["without_consent"])
            except ecert.PendingApproval as pending:  # by statute: a second operator
                with as_operator(gd, "trust-b", SECOND_PASSPHRASE, clock) as second:
                    second.approve(pending.request.id)
        gd.add_operator(SERVICE_OPERATOR, roles=["service"], passphrase=SERVICE_PASSPHRASE)
        claims = _samples.claims("business-licence-gd")
        licence = gd.issue(BL, "gd-amr", holder_id=claims["uscc"], holder_name=claims["name"],
                           claims=claims)
        for code in ("ZJ", "SH", "GD"):
            registries[code].publish(static.root / code.lower())
        service_registry = as_operator(gd, SERVICE_OPERATOR, SERVICE_PASSPHRASE, clock)
    except BaseException:
        for registry in registries.values():
            registry.close()
        raise
    return SharingWorld(tmp, clock, static, registries, service_registry, anchors, licence,
                        claims["uscc"], urls)


def start_service(world: SharingWorld) -> None:
    """GD's sharing service on a real uvicorn on 127.0.0.1 (in a thread), its trust
    lists and refusal windows on :attr:`SharingWorld.ticks`."""
    limits = Limits(deadline_seconds=10.0)
    anchor, clock = world.anchors["GD"], world.clock
    world.keys = RefreshingRequesterKeys(
        lambda: ecert.Verifier.from_anchor(anchor, clock=clock), monotonic=world.ticks)

    def make(base_url: str) -> Any:
        app, world.backend = registry_app(
            world.service_registry, base_url=base_url, limits=limits, keys=world.keys,
            limiter=RefusalLimiter(monotonic=world.ticks))
        return app

    world.service = ServiceHost(make, limits)


@contextmanager
def another_service(world: SharingWorld, **options: Any
                    ) -> Iterator[tuple[ServiceHost, RefreshingRequesterKeys]]:
    """A second GD service beside the world's, with requester keys of its own
    (``options``: of :class:`RefreshingRequesterKeys`), so it holds no other region's
    trust list yet; its downloads may take a minute (a test stalls them)."""
    anchor, clock = world.anchors["GD"], world.clock
    keys = RefreshingRequesterKeys(
        lambda: ecert.Verifier.from_anchor(anchor, clock=clock,
                                           source=HttpSource(timeout=60.0)),
        monotonic=world.ticks, **options)
    limits = Limits(deadline_seconds=10.0)
    backends: list[RegistryBackend] = []

    def make(base_url: str) -> Any:
        app, backend = registry_app(world.service_registry, base_url=base_url,
                                    limits=limits, keys=keys,
                                    limiter=RefusalLimiter(monotonic=world.ticks))
        backends.append(backend)
        return app

    host = ServiceHost(make, limits)
    try:
        yield host, keys
    finally:
        host.stop()
        keys.settle()
        for backend in backends:
            backend.close()


def close(world: SharingWorld) -> None:
    """Stop the service, close every registry."""
    if world.service is not None:
        world.service.stop()
    if world.backend is not None:
        world.backend.close()
    world.service_registry.close()
    for registry in world.registries.values():
        registry.close()


def running_world(tmp: Path) -> Iterator[SharingWorld]:
    """The world built under ``tmp`` with GD's service running, closed after (a module
    fixture's body: ``yield from running_world(tmp_path_factory.mktemp(…))``)."""
    schemas: list[Iterator[str]] = []
    for static in serve(tmp / "www"):
        value = build(tmp, static, schemas)
        try:
            start_service(value)
            yield value
        finally:
            close(value)
            for gen in schemas:
                next(gen, None)
