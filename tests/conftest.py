"""Shared fixtures.

The registry runs on real databases only: SQLite in a temporary home by default, and
PostgreSQL when ``ECERT_TEST_DATABASE_URL`` is set (each test then gets a schema of its
own, dropped afterwards). If that URL is set but the server cannot be reached, the run
stops with an error instead of silently skipping.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine

import ecert
import ecert.registry as registry_module
from ecert import _samples
from ecert import keys as ecert_keys

PG_URL = os.environ.get("ECERT_TEST_DATABASE_URL", "")
PASSPHRASE = "correct horse battery staple"
#: 2026-01-01T00:00:00Z, the start of every test clock.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

settings.register_profile(
    "ecert", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("ecert")


def pytest_report_header(config: pytest.Config) -> str:
    return f"ecert registry database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite'}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if PG_URL:
        import sqlalchemy

        try:
            engine = sqlalchemy.create_engine(PG_URL)
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("select 1"))
            engine.dispose()
        except Exception as e:  # pragma: no cover - environment failure
            pytest.exit(f"ECERT_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}",
                        returncode=3)


@pytest.fixture(autouse=True)
def _fast_key_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files keep their real format; only PBKDF2 iterations are lowered for speed."""
    monkeypatch.setattr(ecert_keys, "DEFAULT_KDF_ROUNDS", 1_000)


class FakeClock:
    """A settable UTC clock: ``clock()`` returns now, ``clock.advance(...)`` moves it."""

    def __init__(self, now: datetime = EPOCH) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str | None]:
    """``None`` (embedded SQLite in the home) or a PostgreSQL URL bound to a fresh schema."""
    if not PG_URL:
        yield None
        return
    yield from _pg_schema_url()


def _pg_schema_url() -> Iterator[str]:
    import sqlalchemy

    schema = f"t_{secrets.token_hex(6)}"
    engine = sqlalchemy.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


RegistryFactory = Callable[..., ecert.Registry]


@pytest.fixture
def make_registry(
    tmp_path: Path, clock: FakeClock, request: pytest.FixtureRequest
) -> Iterator[RegistryFactory]:
    """Create registries for sample regions: ``make_registry("GD")``, populated by default."""
    created: list[ecert.Registry] = []
    schemas: list[Iterator[str]] = []

    def factory(code: str = "GD", *, populate: bool = True, **kwargs: Any) -> ecert.Registry:
        sample = _samples.region(code)
        url: str | None = None
        if PG_URL:
            gen = _pg_schema_url()
            url = next(gen)
            schemas.append(gen)
        registry = ecert.Registry.init(
            tmp_path / f"home-{code}-{len(created)}", region=code, name=sample["name"],
            base_url=sample["base_url"], passphrase=PASSPHRASE, database_url=url,
            clock=kwargs.pop("clock", clock), operator=kwargs.pop("operator", "clerk-test"),
            **kwargs,
        )
        created.append(registry)
        if populate:
            _samples.populate(registry)
        return registry

    yield factory
    for registry in created:
        registry.close()
    for gen in schemas:
        next(gen, None)


@pytest.fixture
def registry(make_registry: RegistryFactory) -> ecert.Registry:
    """The GD sample registry with its types and agencies."""
    return make_registry("GD")


def issue_business_licence(registry: ecert.Registry, **overrides: Any) -> ecert.Certificate:
    """Issue the reference GD business licence."""
    claims = _samples.claims("business-licence-gd")
    args: dict[str, Any] = {
        "holder_id": claims["uscc"], "holder_name": claims["name"], "claims": claims,
    }
    args.update(overrides)
    return registry.issue("cn.business-licence", "gd-amr", **args)


@pytest.fixture
def published(registry: ecert.Registry, tmp_path: Path, clock: FakeClock
              ) -> tuple[ecert.Registry, ecert.Certificate, Path]:
    """A GD registry with one business licence, published to ``tmp_path / 'bundle'``."""
    cert = issue_business_licence(registry)
    bundle = tmp_path / "bundle"
    registry.publish(bundle)
    return registry, cert, bundle


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Engine]]:
    """Every engine the registry creates; all are disposed when the test ends."""
    created: list[Engine] = []
    real = registry_module.make_engine

    def spy(url: str) -> Engine:
        engine = real(url)
        created.append(engine)
        return engine

    monkeypatch.setattr(registry_module, "make_engine", spy)
    yield created
    for engine in created:
        engine.dispose()
