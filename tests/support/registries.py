"""The one place the test suite creates and opens registries.

Every test gets its registries from :func:`create_registry` / :func:`open_registry` (or the
fixtures built on them in ``conftest.py``), so a change of the registry's constructor is
made here once. The default operator (:data:`OPERATOR`) is each registry's first admin,
holding every role; :func:`as_operator` opens a registry as someone else, and
:func:`plant_operator` plays the insider who adds one straight into the database.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import text

import ecert
from ecert import _samples
from ecert._clock import Clock
from ecert._formats.statuslist import MIN_LIST_SIZE
from ecert._storage.database import make_engine, migrate, sqlite_url
from ecert.keys import KeyProvider
from ecert.registry import _DB_FILE
from ecert.registry._core import Passphrase, new_operator_key
from tests.support.constants import OPERATOR, OPERATOR_PASSPHRASE, PASSPHRASE


def credential(name: str | None, passphrase: str | None = OPERATOR_PASSPHRASE
               ) -> ecert.OperatorCredential | None:
    """An operator credential with a file key (None: nobody acts)."""
    return None if name is None else ecert.OperatorCredential(name, passphrase=passphrase)


def create_registry(
    home: Path,
    *,
    region: str = "GD",
    database_url: str | None,
    clock: Clock | None,
    passphrase: Passphrase | None = PASSPHRASE,
    operator: str = OPERATOR,
    operator_passphrase: str = OPERATOR_PASSPHRASE,
    name: str | None = None,
    base_url: str | None = None,
    kdf_rounds: int | None = None,
    status_list_size: int = MIN_LIST_SIZE,
    key_provider: KeyProvider | None = None,
    populate: bool = False,
) -> ecert.Registry:
    """``Registry.init`` for a sample region (name and base URL from ``regions.json``
    unless given), with ``operator`` as its first admin; ``populate`` adds the region's
    sample types and agencies."""
    sample = _samples.region(region)
    if database_url is None:
        _place_migrated_database(home)
    registry = ecert.Registry.init(
        home, region=region, name=sample["name"] if name is None else name,
        base_url=sample["base_url"] if base_url is None else base_url,
        passphrase=passphrase, database_url=database_url, clock=clock,
        admin=ecert.OperatorCredential(operator, passphrase=operator_passphrase),
        kdf_rounds=kdf_rounds, status_list_size=status_list_size, key_provider=key_provider,
    )
    if populate:
        try:
            _samples.populate(registry)
        except BaseException:
            registry.close()
            raise
    return registry


#: A newly migrated, empty SQLite registry database, made once per test process.
_migrated: list[bytes] = []


def _place_migrated_database(home: Path) -> None:
    """Put a copy of an empty database at the newest migration where ``Registry.init``
    will open ``home``'s (if it has none): init finds its schema current and runs no
    migration — their cost, about a tenth of a second, was most of creating a registry.
    ``Registry.init`` from scratch (tests of the CLI's ``ecert init``, test_migration)
    still migrates a new file."""
    database = home / _DB_FILE
    if database.exists():
        return
    if not _migrated:
        with tempfile.TemporaryDirectory() as scratch:
            engine = make_engine(sqlite_url(Path(scratch) / "registry.db"))
            try:
                migrate(engine)
            finally:
                engine.dispose()
            _migrated.append((Path(scratch) / "registry.db").read_bytes())
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(_migrated[0])


def open_registry(
    home: Path,
    *,
    database_url: str | None,
    clock: Clock | None,
    passphrase: Passphrase | None = PASSPHRASE,
    operator: str | None = OPERATOR,
    operator_passphrase: str | None = OPERATOR_PASSPHRASE,
    kdf_rounds: int | None = None,
    status_list_size: int = MIN_LIST_SIZE,
    key_provider: KeyProvider | None = None,
) -> ecert.Registry:
    """``Registry.open`` of an existing registry, acting as ``operator``."""
    return ecert.Registry.open(
        home, passphrase=passphrase, database_url=database_url, clock=clock,
        operator=credential(operator, operator_passphrase), kdf_rounds=kdf_rounds,
        status_list_size=status_list_size, key_provider=key_provider,
    )


def as_operator(registry: ecert.Registry, name: str | None, passphrase: str | None,
                clock: Clock | None, *, registry_passphrase: str | None = PASSPHRASE
                ) -> ecert.Registry:
    """The same registry (home and database), opened as another operator."""
    return open_registry(registry.home, database_url=database_url_of(registry), clock=clock,
                         passphrase=registry_passphrase, operator=name,
                         operator_passphrase=passphrase)


def plant_operator(registry: ecert.Registry, name: str, passphrase: str,
                   roles: Iterable[str]) -> None:
    """The insider's move: an operator written straight into the database, no log entry."""
    signer = new_operator_key(registry.home, name, passphrase, None)
    grants = [{"role": r, "agencies": None, "types": None} for r in roles]
    with registry.engine.begin() as conn:
        conn.execute(text("INSERT INTO operators (name, kid, public_jwk, grants, active, "
                          "created_at) VALUES (:n, :k, :j, :g, 1, 0)"),
                     {"n": name, "k": signer.kid, "j": json.dumps(signer.public_jwk),
                      "g": json.dumps(grants)})


def database_url_of(registry: ecert.Registry) -> str | None:
    """The database URL to re-open ``registry`` with (None: the SQLite file in its home)."""
    url = registry.engine.url
    if url.get_backend_name() == "sqlite":
        return None
    return url.render_as_string(hide_password=False)


#: The ``make_registry`` fixture: ``make_registry("GD", populate=True, clock=..., operator=...)``.
RegistryFactory = Callable[..., ecert.Registry]
