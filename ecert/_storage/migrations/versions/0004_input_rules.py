"""Input rules of a certificate type: its holder id scheme and the claims naming the holder.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

One nullable JSON column, ``{"holder_id_scheme": …, "holder_claims": {…}}``: types added
before keep NULL and issue as they did (any holder id, no binding).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cert_types") as batch:
        batch.add_column(sa.Column("input_rules", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cert_types") as batch:
        batch.drop_column("input_rules")
