"""Sharing: request counters (rate limits shared by every worker), the registry's settings
(the sharing limits), and the kind of a use record (a fetch or a check, 核验).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Two new tables and one new column; use records made before this revision are fetches.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_counts",
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("window", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("scope", "window", name="pk_request_counts"),
    )
    op.create_index("ix_request_counts_window", "request_counts", ["window"])
    op.create_table(
        "settings",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_settings"),
    )
    # batch mode: SQLite cannot ALTER a table's columns in place.
    with op.batch_alter_table("uses") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False,
                                   server_default="fetch"))


def downgrade() -> None:
    with op.batch_alter_table("uses") as batch:
        batch.drop_column("kind")
    op.drop_table("settings")
    op.drop_table("request_counts")
