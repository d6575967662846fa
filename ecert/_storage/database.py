"""Engines and migrations: embedded SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError

from ecert._extras import needs
from ecert.errors import ExtraMissing, StorageError

_MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration's revision. Opening a registry compares the database's with this
#: instead of loading every migration script (about 15 ms per open, paid by every CLI
#: command); tests/test_migration.py checks it against the scripts' own head.
HEAD_REVISION = "0015"
#: Execution option that makes SQLite take its write lock when the transaction begins.
WRITE = {"ecert_write": True}


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an embedded registry database file."""
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys, a busy timeout and BEGIN IMMEDIATE."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60})
            _configure_sqlite(engine)
        else:
            with needs("postgres"):  # psycopg, when the URL names it, is that extra's
                engine = create_engine(url)
            _ping_when_idle(engine)
    except ExtraMissing:
        raise
    except (SQLAlchemyError, ImportError, ValueError) as e:
        raise StorageError(f"cannot use database {_redact(url)}: {e}") from e
    return engine


#: A pooled connection idle for longer than this is tested before it is handed out.
IDLE_PING_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection before use only if it sat idle for a while.

    SQLAlchemy's ``pool_pre_ping`` tests every checkout: a round trip per transaction,
    which on the sharing service's hot path (a few statements per request) was a tenth
    of them. A connection in steady use proves itself by being used; one that sat idle
    (a restarted server, a dropped network, an idle timeout) is tested as pre-ping would
    and, if dead, replaced (the pool retries the checkout on ``DisconnectionError``). A
    connection that dies while busy fails its statement, and SQLAlchemy then discards
    the pool's connections older than that failure.
    """
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["ecert_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("ecert_idle_since")
        if since is None or time.monotonic() - since <= IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as e:  # whatever the driver raises for a dead connection
            raise DisconnectionError(f"a pooled connection failed its test: {e}") from e


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # 64 MiB of page cache (the default is 2 MiB), taken only as pages are read: a
        # batch inserts into indexes whose keys fall at random (holder, name, slot), and
        # with 2 MiB every such insert at a million certificates re-read its pages.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A write transaction takes the lock up front: no deadlock-prone lock upgrade later.
        if connection.get_execution_options().get("ecert_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration."""
    config = _alembic_config()
    try:
        with engine.execution_options(**WRITE).begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as e:
        raise StorageError(f"cannot migrate the registry database: {e}") from e


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is at the newest migration (:data:`HEAD_REVISION`)."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current == HEAD_REVISION


def scripts_head() -> str | None:
    """The head revision of the migration scripts themselves (loads every script)."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url
