"""PostgreSQL: one schema per registry, dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

from tests.support.constants import PG_URL


def pg_schema_url() -> Iterator[str]:
    """Yield a URL of ``PG_URL`` bound to a fresh schema; the schema is dropped on resume.

    Use as a generator: ``url = next(gen)`` ... ``next(gen, None)`` to drop it.
    """
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


def check_reachable() -> str | None:
    """``None`` if ``PG_URL`` answers, else why not."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
    except Exception as e:  # pragma: no cover - environment failure
        return str(e)
    return None
