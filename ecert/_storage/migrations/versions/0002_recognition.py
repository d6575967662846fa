"""Recognition agreements and root key rotations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agreements",
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("root_jwk", sa.JSON, nullable=False),
        sa.Column("trust_list_url", sa.String(500), nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False),
        sa.Column("valid_until", sa.BigInteger, nullable=True),
        sa.Column("types", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("withdrawn_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("region", name="pk_agreements"),
    )
    op.create_table(
        "root_rotations",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("old_kid", sa.String(64), nullable=False),
        sa.Column("new_kid", sa.String(64), nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_root_rotations"),
        sa.ForeignKeyConstraint(["old_kid"], ["keys.kid"],
                                name="fk_root_rotations_old_kid_keys"),
        sa.ForeignKeyConstraint(["new_kid"], ["keys.kid"],
                                name="fk_root_rotations_new_kid_keys"),
    )


def downgrade() -> None:
    op.drop_table("root_rotations")
    op.drop_table("agreements")
