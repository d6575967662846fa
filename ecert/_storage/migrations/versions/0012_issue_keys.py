"""Batch issuance: the idempotency key of every certificate a batch issued.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

One new table. A row is written in the transaction that issues its certificate, so a
key is present exactly when its certificate is; ``run`` and ``line`` tell a re-run's
skip (an earlier run) from a key repeated within one file (this run).
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issue_keys",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("certificate_id", sa.String(128), nullable=False),
        sa.Column("run", sa.String(32), nullable=False),
        sa.Column("line", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_issue_keys"),
    )


def downgrade() -> None:
    op.drop_table("issue_keys")
