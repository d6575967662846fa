"""Accountable registry: operators, four-eyes requests, the Merkle log and its checkpoints.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Existing events stay in ``events``; the first authenticated ``ecert operator bootstrap``
turns them into the first (legacy) log entries, since their commitments need the
registry's secret, which a migration does not have.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger()
APPEND_ONLY = ("log_entries", "checkpoints", "events")


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("grants", sa.JSON, nullable=False),
        sa.Column("active", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_operators"),
        sa.UniqueConstraint("kid", name="uq_operators_kid"),
    )
    op.create_table(
        "policies",
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("type_code", sa.String(100), nullable=False),
        sa.Column("approvals", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("action", "type_code", name="pk_policies"),
    )
    op.create_table(
        "requests",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("agency_code", sa.String(100), nullable=True),
        sa.Column("type_code", sa.String(100), nullable=True),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("approvals_needed", sa.Integer, nullable=False),
        sa.Column("approved_by", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_requests"),
    )
    op.create_table(
        "log_entries",
        sa.Column("seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("plain_subject", sa.String(200), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("unit", sa.BigInteger, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_log_entries"),
    )
    op.create_index("ix_log_entries_plain_subject", "log_entries", ["plain_subject"])
    op.create_index("ix_log_entries_action", "log_entries", ["action"])
    op.create_table(
        "log_tiles",
        sa.Column("level", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("hashes", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_log_tiles"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("size", name="pk_checkpoints"),
    )
    op.create_table(
        "publications",
        sa.Column("sequence", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("log_size", sa.BigInteger, nullable=False),
        sa.Column("log_root", sa.LargeBinary(32), nullable=False),
        sa.Column("trust_list_hash", sa.String(64), nullable=True),
        sa.Column("directory", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_publications"),
    )
    op.create_table(
        "cosignatures",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("witness", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cosignatures"),
    )
    op.create_index("ix_cosignatures_origin_witness", "cosignatures", ["origin", "witness"])
    with op.batch_alter_table("certificates") as batch:
        batch.add_column(sa.Column("token_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("redacted_at", sa.BigInteger, nullable=True))
    counters = sa.table("counters", sa.column("name", sa.String), sa.column("value", BIGINT))
    op.bulk_insert(counters, [{"name": "log_size", "value": 0},
                              {"name": "log_unit", "value": 0},
                              {"name": "refused_unauthenticated", "value": 0}])
    _append_only()


def _append_only() -> None:
    """The database refuses UPDATE and DELETE on the log (and TRUNCATE on PostgreSQL).

    This stops mistakes and casual edits, not an owner who drops the triggers: the log's
    Merkle tree, signed checkpoints and witnesses are what detect that (``audit verify``).
    """
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION ecert_append_only() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'ecert % is append-only', TG_TABLE_NAME; END $$"
        )
        for table in APPEND_ONLY:
            if table != "events":
                op.execute(
                    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION ecert_append_only()"
                )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ecert_append_only()"
            )
    else:
        for table in APPEND_ONLY:
            if table == "events":
                continue
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ecert {table} is append-only'); END"
                )


def downgrade() -> None:
    for table in ("cosignatures", "publications", "checkpoints", "log_tiles", "log_entries",
                  "requests", "policies", "operators"):
        op.drop_table(table)
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("redacted_at")
        batch.drop_column("token_hash")
