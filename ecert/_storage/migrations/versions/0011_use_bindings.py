"""Sharing bound to the log: the consent a use spent as a lookup column of the log, the
agencies a consent releases, and the copies a fetch answered.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

Three new nullable columns. ``log_entries.ref`` is filled in for the granted uses made
before this revision (from the ``uses`` rows, which ``audit verify`` checks against their
signed entries), so that a consent spent before the upgrade is known spent by the log
too; ``log_entries`` is append-only, so its triggers are lifted for that one statement
and put back in the same transaction. Consents granted before this revision keep
releasing their types of any agency (``scope`` NULL), as they were granted.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_BACKFILL = (
    "UPDATE log_entries SET ref = (SELECT u.consent FROM uses u "
    "WHERE log_entries.plain_subject = 'use:' || u.id AND u.outcome = 'granted' "
    "AND u.consent IS NOT NULL AND u.by_statute = 0) "
    "WHERE action IN ('share.fetch', 'share.check') AND EXISTS (SELECT 1 FROM uses u "
    "WHERE log_entries.plain_subject = 'use:' || u.id AND u.outcome = 'granted' "
    "AND u.consent IS NOT NULL AND u.by_statute = 0)"
)


def upgrade() -> None:
    # Not batch mode: SQLite adds a nullable column in place, and copying log_entries
    # into a new table would drop its append-only triggers.
    op.add_column("log_entries", sa.Column("ref", sa.String(64), nullable=True))
    op.create_index("ix_log_entries_ref", "log_entries", ["ref"])
    op.add_column("consents", sa.Column("scope", sa.JSON, nullable=True))
    op.add_column("uses", sa.Column("copies", sa.JSON, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE log_entries DISABLE TRIGGER log_entries_append_only")
        op.execute(_BACKFILL.replace("'use:' || u.id", "'use:' || u.id::text"))
        op.execute("ALTER TABLE log_entries ENABLE TRIGGER log_entries_append_only")
    else:
        op.execute("DROP TRIGGER IF EXISTS log_entries_no_update")
        op.execute(_BACKFILL)
        op.execute("CREATE TRIGGER log_entries_no_update BEFORE UPDATE ON log_entries "
                   "BEGIN SELECT RAISE(ABORT, 'ecert log_entries is append-only'); END")


def downgrade() -> None:
    with op.batch_alter_table("uses") as batch:
        batch.drop_column("copies")
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("scope")
    op.drop_index("ix_log_entries_ref", "log_entries")
    op.drop_column("log_entries", "ref")  # in place (SQLite 3.35 on): keeps the triggers
