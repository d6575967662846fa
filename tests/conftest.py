"""Shared fixtures and hooks; the machinery they are built on lives in ``tests/support``.

The registry runs on real databases only: SQLite in a temporary home by default, and
PostgreSQL when ``ECERT_TEST_DATABASE_URL`` is set (each test then gets a schema of its
own, dropped afterwards). If that URL is set but the server cannot be reached, the run
stops with an error instead of silently skipping.

Registries come from :mod:`tests.support.registries` only, through ``make_registry``,
``registry`` and the golden-bundle fixtures below.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine

import ecert
import ecert.registry as registry_module
from ecert import keys as ecert_keys
from tests.support import (
    FAST_KDF_ROUNDS,
    OPERATOR,
    OPERATOR_PASSPHRASE,
    PASSPHRASE,
    PG_URL,
    FakeClock,
    Golden,
    LocalServer,
    Published,
    RegistryFactory,
    build_golden,
    copy_tree,
    create_registry,
    database_url_of,
    digest_tree,
    issue_business_licence,
    open_registry,
    pg_schema_url,
    serve,
)
from tests.support.browser import CHROMIUM_PACKAGE, SKIP_PREFIX, require_browser
from tests.support.cli import Cli
from tests.support.http import ServerHost
from tests.support.pg import check_reachable
from tests.support.sharing_registry import Sharing

settings.register_profile(
    "ecert", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("ecert")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run on every core by default (``-n auto --dist worksteal``) when pytest-xdist is there.

    Not in ``addopts``: there ``-n`` would break ``-p no:xdist``. ``-n0`` (or ``-n N``, or
    ``-p no:xdist``) is obeyed; ``--pdb``/``--trace`` and ``--collect-only`` stay serial.
    Works whether it runs before or after xdist's own hook: it sets the workers itself."""
    option = config.option
    if (not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput")
            or "PYTEST_XDIST_WORKER" in os.environ
            or getattr(option, "numprocesses", 0) is not None
            or option.usepdb or option.trace or option.collectonly):
        return
    workers = config.hook.pytest_xdist_auto_num_workers(config=config)
    if workers <= 1:
        return
    option.numprocesses = workers
    if option.dist == "no":
        # worksteal: a few long tests (three-region worlds, a subprocess) do not leave one
        # worker busy after the other ran out of work.
        option.dist = "worksteal"
    option.tx = ["popen"] * workers


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Skipped browser tests are said loudly, with the package to install (tests/test_page*)."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = {str(r.longrepr[2]) for r in skipped
               if isinstance(getattr(r, "longrepr", None), tuple)
               and SKIP_PREFIX in str(r.longrepr[2])}
    if reasons:
        terminalreporter.write_sep("!", "the verifier page's browser tests did NOT run", red=True,
                                   bold=True)
        for reason in sorted(reasons):
            terminalreporter.write_line(reason.removeprefix("Skipped: "), red=True, bold=True)
        terminalreporter.write_line(f"install it: apt-get install -y {CHROMIUM_PACKAGE} "
                                    "(CI sets ECERT_REQUIRE_BROWSER=1: then this fails)",
                                    red=True, bold=True)


def pytest_report_header(config: pytest.Config) -> str:
    return f"ecert registry database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite'}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if PG_URL:
        error = check_reachable()
        if error is not None:  # pragma: no cover - environment failure
            pytest.exit(f"ECERT_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {error}",
                        returncode=3)


def pytest_collection_finish(session: pytest.Session) -> None:
    # Tests call gc.collect() to blame a leaked connection on the test that leaked it; each
    # call walks every tracked object. Objects alive before the first test (modules, test
    # items) are moved out of the collector's way; what tests create is collected as before.
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CLI's default home (``platformdirs.user_data_dir``, where ``ecert verify`` keeps its
    cache) in this session's temporary directory: parallel workers, other runs and the
    user's own ``ecert`` data never share it."""
    root = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            mp.setenv(name, str(root / name.lower()))
        yield


@pytest.fixture(autouse=True)
def _fast_key_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key files keep their real format; only PBKDF2 iterations are lowered for speed."""
    monkeypatch.setattr(ecert_keys, "DEFAULT_KDF_ROUNDS", FAST_KDF_ROUNDS)


@pytest.fixture(autouse=True)
def _english_in_the_registry_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite reads English messages whatever the machine's locale (tests of Chinese
    set ECERT_LANG=zh themselves), and times in the registry's zone unless ECERT_TZ."""
    monkeypatch.setenv("ECERT_LANG", "en")
    monkeypatch.delenv("ECERT_TZ", raising=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str | None]:
    """``None`` (embedded SQLite in the home) or a PostgreSQL URL bound to a fresh schema."""
    if not PG_URL:
        yield None
        return
    yield from pg_schema_url()


@pytest.fixture
def make_registry(tmp_path: Path, clock: FakeClock) -> Iterator[RegistryFactory]:
    """Create registries for sample regions: ``make_registry("GD")``, populated by default,
    on the test clock as ``clerk-test`` unless told otherwise; closed after the test."""
    created: list[ecert.Registry] = []
    schemas: list[Iterator[str]] = []
    default_clock = clock

    def factory(code: str = "GD", *, populate: bool = True, clock: FakeClock | None = None,
                operator: str = OPERATOR) -> ecert.Registry:
        url: str | None = None
        if PG_URL:
            gen = pg_schema_url()
            url = next(gen)
            schemas.append(gen)
        registry = create_registry(
            tmp_path / f"home-{code}-{len(created)}", region=code, database_url=url,
            clock=default_clock if clock is None else clock, operator=operator,
            populate=populate,
        )
        created.append(registry)
        return registry

    yield factory
    for registry in created:
        registry.close()
    for gen in schemas:
        next(gen, None)


@pytest.fixture
def registry(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
             ) -> Iterator[ecert.Registry]:
    """The GD sample registry with its types and agencies, on the test clock: on SQLite a
    copy of the golden one before it issued anything, on PostgreSQL built afresh."""
    if PG_URL:
        make_registry: RegistryFactory = request.getfixturevalue("make_registry")
        yield make_registry("GD")
        return
    golden: Golden = request.getfixturevalue("golden")
    assert golden.populated is not None
    home = copy_tree(golden.populated, tmp_path / "home-golden")
    with open_registry(home, database_url=None, clock=clock) as registry:
        yield registry


# -- the golden bundle ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Golden]:
    """The GD sample registry with one business licence, built and published once per session
    (on PostgreSQL in a schema of its own). Tests use the fixtures below, never this directly
    to write."""
    root = tmp_path_factory.mktemp("golden")
    if not PG_URL:
        yield build_golden(root, None)
        return
    schema = pg_schema_url()
    try:
        yield build_golden(root, next(schema))
    finally:
        next(schema, None)


@pytest.fixture(scope="session")
def golden_registry(golden: Golden, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[ecert.Registry]:
    """The golden registry opened once, for tests that only read it (keys, anchor, events).

    Its clock stays at ``EPOCH``: tests that advance their ``clock`` must not expect the
    shared registry to follow (the verifier they build does)."""
    home = golden.home
    if golden.database_url is None:  # the database is in the home: leave the original closed
        home = copy_tree(golden.home, tmp_path_factory.mktemp("golden-shared") / "home")
    registry = open_registry(home, database_url=golden.database_url, clock=FakeClock())
    yield registry
    registry.close()


def _untouched(golden: Golden, registry: ecert.Registry) -> tuple[str, int]:
    return digest_tree(golden.bundle), len(registry.events())


@pytest.fixture
def shared_published(golden: Golden, golden_registry: ecert.Registry) -> Iterator[Published]:
    """The golden registry, licence and bundle, shared by every test that uses them: the test
    must change neither the registry nor the bundle (checked afterwards)."""
    before = _untouched(golden, golden_registry)
    yield golden_registry, golden.cert, golden.bundle
    assert _untouched(golden, golden_registry) == before, (
        "a test changed the shared golden registry or bundle: use published_copy or published")


@pytest.fixture
def shared_qr(golden: Golden) -> tuple[str, str]:
    """The golden licence's QR tokens (short, full), signed when the golden was built."""
    return golden.qr_tokens


@pytest.fixture
def published_copy(shared_published: Published, tmp_path: Path) -> Published:
    """The shared golden registry and licence (read only) with a copy of the bundle in
    ``tmp_path / 'bundle'`` that the test may change."""
    registry, cert, bundle = shared_published
    return registry, cert, copy_tree(bundle, tmp_path / "bundle")


@pytest.fixture
def published(golden: Golden, tmp_path: Path, clock: FakeClock,
              make_registry: RegistryFactory) -> Iterator[Published]:
    """A GD registry of the test's own with one business licence, published to
    ``tmp_path / 'bundle'``, on the test clock: on SQLite a copy of the golden home and
    bundle, on PostgreSQL built afresh in a schema of its own."""
    if golden.database_url is not None:
        registry = make_registry("GD")
        cert = issue_business_licence(registry)
        bundle = tmp_path / "bundle"
        registry.publish(bundle)
        yield registry, cert, bundle
        return
    home = copy_tree(golden.home, tmp_path / "home-golden-published")
    with open_registry(home, database_url=None, clock=clock) as registry:
        yield registry, golden.cert, copy_tree(golden.bundle, tmp_path / "bundle")


# -- other fixtures ------------------------------------------------------------------------------


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[LocalServer]:
    """A real HTTP server on 127.0.0.1 serving ``tmp_path / 'www'``; stopped afterwards."""
    yield from serve(tmp_path / "www")


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


@pytest.fixture
def cli_as_admin(clock: FakeClock) -> Callable[..., Result]:
    """Run ``ecert ARGS…`` against an existing registry, as its first admin."""

    def run(registry: ecert.Registry, *args: str) -> Result:
        return Cli(registry.home, database_url_of(registry), env={
            "ECERT_PASSPHRASE": PASSPHRASE, "ECERT_OPERATOR": OPERATOR,
            "ECERT_OPERATOR_PASSPHRASE": OPERATOR_PASSPHRASE,
            "ECERT_HOME": None, "ECERT_DATABASE_URL": None}, clock=clock)(*args)

    return run


@pytest.fixture(scope="module")
def server_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHost]:
    """One port per test module for the worlds it builds once and copies per test: their
    base URLs name it (tests/support/worlds.py)."""
    host = ServerHost(tmp_path_factory.mktemp("host") / "www")
    yield host
    host.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless Chromium (Debian's package, through Playwright), one per worker; skipped —
    loudly, naming the package — where there is none (tests/support/browser.py)."""
    executable = require_browser()
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def sharing(registry: ecert.Registry, clock: FakeClock) -> Iterator[Sharing]:
    """The GD side of the sample sharing set-up (tests/support/sharing_registry.py)."""
    world = Sharing(registry, clock)
    try:
        yield world
    finally:
        world.close()
