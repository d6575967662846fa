"""The insider's tools: raw SQL on a registry's database, and dropping the log's triggers."""

from __future__ import annotations

from sqlalchemy import text

import ecert


def sql(registry: ecert.Registry, statement: str, **params: object) -> None:
    """Run one SQL statement in a transaction of its own, behind the registry's back."""
    with registry.engine.begin() as conn:
        conn.execute(text(statement), params)


def drop_triggers(registry: ecert.Registry) -> None:
    """What an owner of the database can always do."""
    if registry.engine.dialect.name == "postgresql":
        for table in ("log_entries", "checkpoints"):
            for suffix in ("append_only", "no_truncate"):
                sql(registry, f"DROP TRIGGER {table}_{suffix} ON {table}")
    else:
        for name in ("log_entries_no_update", "log_entries_no_delete",
                     "checkpoints_no_update", "checkpoints_no_delete"):
            sql(registry, f"DROP TRIGGER {name}")
