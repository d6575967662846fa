"""The golden bundle: the GD sample registry with one business licence, published once.

Building a registry (schema migrations, keys, sample types and agencies, a status list of
131,072 entries) dominates many tests that only verify what it published. The golden
bundle is built once per session; tests get copies:

* the bundle files, copied per test (or shared, checked untouched afterwards);
* on SQLite, the whole home directory (database and keys), copied and opened, for tests
  that change the registry. On PostgreSQL the database is a schema of its own, so such
  tests build a fresh registry instead.

On SQLite the home is also kept as it was before the licence was issued (``populated``):
a copy of it is the ``registry`` fixture, the sample registry with types and agencies.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import ecert
from ecert import keys as ecert_keys
from tests.support.clock import FakeClock
from tests.support.constants import FAST_KDF_ROUNDS
from tests.support.issuing import issue_business_licence
from tests.support.registries import create_registry, open_registry


@dataclass(frozen=True)
class Golden:
    """Where the golden registry and bundle live; never written after :func:`build_golden`."""

    #: The registry's home (keys; on SQLite also the database). Closed: copy, then open.
    home: Path
    #: What the registry published: trust list, JWKS, status list.
    bundle: Path
    #: ``None`` (SQLite in ``home``) or the URL of its PostgreSQL schema.
    database_url: str | None
    #: The business licence it issued and published.
    cert: ecert.Certificate
    #: SQLite only: the home with its sample types and agencies, before the licence.
    populated: Path | None
    #: The licence's QR tokens (short form, full form), signed once at build: signing one
    #: is logged, so tests of the shared registry must not sign their own.
    qr_tokens: tuple[str, str] = ("", "")


def build_golden(root: Path, database_url: str | None) -> Golden:
    """Create the GD sample registry in ``root``, issue the reference business licence at
    the start of the test clock, publish it to ``root / 'bundle'`` and close the registry."""
    home, bundle = root / "home", root / "bundle"
    populated: Path | None = None
    clock = FakeClock()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ecert_keys, "DEFAULT_KDF_ROUNDS", FAST_KDF_ROUNDS)
        registry = create_registry(home, region="GD", database_url=database_url,
                                   clock=clock, populate=True)
        try:
            if database_url is None:  # snapshot the closed SQLite home, then go on
                registry.close()
                populated = copy_tree(home, root / "populated")
                registry = open_registry(home, database_url=None, clock=clock)
            cert = issue_business_licence(registry)
            qr_tokens = (registry.qr_token(cert.id), registry.qr_token(cert.id, full=True))
            registry.publish(bundle)
        finally:
            registry.close()
    return Golden(home, bundle, database_url, cert, populated, qr_tokens)


def copy_tree(source: Path, destination: Path) -> Path:
    """Copy a directory with its file modes (the home is private: 0700/0600)."""
    shutil.copytree(source, destination, symlinks=True)
    return destination


def digest_tree(root: Path) -> str:
    """A digest of every file name and content under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
