"""Worlds of several registries served over HTTP, built once per module, copied per test.

Building the three sample regions (homes, databases, keys, agreements, certificates,
published bundles) costs seconds; most tests then change a little of it. On SQLite a
module builds the world once into a template directory, closed, under a
:class:`~tests.support.http.ServerHost`; each test gets a copy of every home and of the
served directory, reopens the registries and is served from its copy on the same port, so
the base URLs the registries signed still point at it. On PostgreSQL (a registry's
database is a schema of its own) or when the port could not be kept, the test builds its
world afresh, as before.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def copy_template(template: Path, destination: Path) -> None:
    """Copy every directory of ``template`` (homes and the served ``www``) into
    ``destination``, which the test owns."""
    destination.mkdir(parents=True, exist_ok=True)
    for child in sorted(template.iterdir()):
        shutil.copytree(child, destination / child.name, symlinks=True, dirs_exist_ok=True)
