"""The publication lease: one ``ecert publish --watch`` at a time per registry.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

One row per lease name (today only ``publish``), inserted here so taking the lease is
always one conditional UPDATE (no insert race between two hosts). A holder renews it
every cycle; a crashed holder's lease expires at ``expires_at`` and another takes it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("directory", sa.Text, nullable=True),
        sa.Column("acquired_at", sa.BigInteger, nullable=True),
        sa.Column("renewed_at", sa.BigInteger, nullable=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )
    leases = sa.table("leases", sa.column("name", sa.String), sa.column("expires_at",
                                                                         sa.BigInteger))
    op.bulk_insert(leases, [{"name": "publish", "expires_at": 0}])


def downgrade() -> None:
    op.drop_table("leases")
