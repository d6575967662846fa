"""The registry's time zone (how clerks' dates are read and times are shown).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table's columns in place; existing registries
    # were all set up in China, hence the default.
    with op.batch_alter_table("region") as batch:
        batch.add_column(sa.Column("tz", sa.String(64), nullable=False,
                                   server_default="Asia/Shanghai"))


def downgrade() -> None:
    with op.batch_alter_table("region") as batch:
        batch.drop_column("tz")
