"""The one place the test suite creates and opens registries.

Every test gets its registries from :func:`create_registry` / :func:`open_registry` (or the
fixtures built on them in ``conftest.py``), so a change of the registry's constructor is
made here once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ecert
from ecert import _samples
from ecert._formats.statuslist import MIN_LIST_SIZE
from ecert.keys import KeyProvider
from ecert.registry import Clock, Passphrase
from tests.support.constants import OPERATOR, PASSPHRASE


def create_registry(
    home: Path,
    *,
    region: str = "GD",
    database_url: str | None,
    clock: Clock | None,
    passphrase: Passphrase | None = PASSPHRASE,
    operator: str | None = OPERATOR,
    name: str | None = None,
    base_url: str | None = None,
    kdf_rounds: int | None = None,
    status_list_size: int = MIN_LIST_SIZE,
    key_provider: KeyProvider | None = None,
    populate: bool = False,
) -> ecert.Registry:
    """``Registry.init`` for a sample region (name and base URL from ``regions.json``
    unless given); ``populate`` adds the region's sample types and agencies."""
    sample = _samples.region(region)
    registry = ecert.Registry.init(
        home, region=region, name=sample["name"] if name is None else name,
        base_url=sample["base_url"] if base_url is None else base_url,
        passphrase=passphrase, database_url=database_url, clock=clock, operator=operator,
        kdf_rounds=kdf_rounds, status_list_size=status_list_size, key_provider=key_provider,
    )
    if populate:
        try:
            _samples.populate(registry)
        except BaseException:
            registry.close()
            raise
    return registry


def open_registry(
    home: Path,
    *,
    database_url: str | None,
    clock: Clock | None,
    passphrase: Passphrase | None = PASSPHRASE,
    operator: str | None = OPERATOR,
    kdf_rounds: int | None = None,
    status_list_size: int = MIN_LIST_SIZE,
    key_provider: KeyProvider | None = None,
) -> ecert.Registry:
    """``Registry.open`` of an existing registry."""
    return ecert.Registry.open(
        home, passphrase=passphrase, database_url=database_url, clock=clock,
        operator=operator, kdf_rounds=kdf_rounds, status_list_size=status_list_size,
        key_provider=key_provider,
    )


def database_url_of(registry: ecert.Registry) -> str | None:
    """The database URL to re-open ``registry`` with (None: the SQLite file in its home)."""
    url = registry._engine.url
    if url.get_backend_name() == "sqlite":
        return None
    return url.render_as_string(hide_password=False)


#: The ``make_registry`` fixture: ``make_registry("GD", populate=True, clock=..., operator=...)``.
RegistryFactory = Callable[..., ecert.Registry]
