"""Shared test machinery: constants, the fake clock, the registry factory, issue helpers,
PostgreSQL schemas, the local HTTP server and the golden bundle.

Test modules import from here (never from ``conftest`` or from each other);
``conftest.py`` holds only fixtures and hooks built on it.
"""

from pathlib import Path

import ecert
from tests.support.clock import FakeClock
from tests.support.constants import (
    EPOCH,
    FAST_KDF_ROUNDS,
    OPERATOR,
    OPERATOR_PASSPHRASE,
    PASSPHRASE,
    PG_URL,
)
from tests.support.golden import Golden, build_golden, copy_tree, digest_tree
from tests.support.http import LocalServer, serve
from tests.support.issuing import distinct_holder, issue_business_licence, resident_id, uscc
from tests.support.pg import pg_schema_url
from tests.support.registries import (
    RegistryFactory,
    as_operator,
    create_registry,
    credential,
    database_url_of,
    open_registry,
    plant_operator,
)

#: What the ``published`` fixtures give: the registry, its licence, the bundle directory.
Published = tuple[ecert.Registry, ecert.Certificate, Path]

__all__ = [
    "EPOCH",
    "FAST_KDF_ROUNDS",
    "OPERATOR",
    "OPERATOR_PASSPHRASE",
    "PASSPHRASE",
    "PG_URL",
    "FakeClock",
    "Golden",
    "LocalServer",
    "Published",
    "RegistryFactory",
    "as_operator",
    "build_golden",
    "copy_tree",
    "create_registry",
    "credential",
    "database_url_of",
    "digest_tree",
    "distinct_holder",
    "issue_business_licence",
    "open_registry",
    "pg_schema_url",
    "plant_operator",
    "resident_id",
    "serve",
    "uscc",
]
