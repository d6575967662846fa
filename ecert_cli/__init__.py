"""The ``ecert`` command line: a thin layer that parses, calls the library once, and prints."""

# Each module registers its commands on ``cli``.
from ecert_cli import (  # noqa: F401
    _audit,
    _catalog,
    _certificates,
    _demo,
    _doctor,
    _operators,
    _qr,
    _registry,
    _trust,
    _verify,
)
from ecert_cli._app import cli, main

__all__ = ["cli", "main"]
