"""Optional extras: which third-party modules each needs, and one way to say one is missing.

A verifier-only install (``pip install ecert``) has what verification needs: tokens, QR
text, trust lists, status lists and bundles over files and HTTP. The rest comes with an
extra (pyproject.toml): ``registry`` (issuing: SQLAlchemy, Alembic, jsonschema, and segno
and Pillow for QR codes and cards), ``image`` (reading QR codes from photos: zxing-cpp
and Pillow), ``postgres`` (psycopg, for a registry on PostgreSQL) and ``server`` (the
sharing service: Starlette and uvicorn). Code that needs an
extra imports its modules lazily, under :func:`needs`, so that their absence is an
:class:`~ecert.errors.ExtraMissing` naming the extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ecert.errors import ExtraMissing

__all__ = ["EXTRAS", "needs"]

#: The top-level modules each extra installs (import names, not distribution names).
EXTRAS: dict[str, frozenset[str]] = {
    "registry": frozenset({"sqlalchemy", "alembic", "jsonschema", "segno", "PIL"}),
    "image": frozenset({"zxingcpp", "PIL"}),
    "postgres": frozenset({"psycopg"}),
    "server": frozenset({"starlette", "uvicorn", "anyio", "h11"}),
}


@contextlib.contextmanager
def needs(extra: str) -> Iterator[None]:
    """Turn a missing module of ``extra`` into :class:`ExtraMissing` naming ``extra``.

    Any other missing module is not ours to explain: it propagates unchanged.
    """
    try:
        yield
    except ModuleNotFoundError as e:
        top = (e.name or "").partition(".")[0]
        if top not in EXTRAS[extra]:
            raise
        raise ExtraMissing(extra, top) from e
