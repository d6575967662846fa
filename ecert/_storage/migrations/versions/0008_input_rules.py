"""Input rules of a certificate type: its holder id scheme and the claims naming the holder.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

One nullable JSON column on the type and on each of its versions, ``{"holder_id_scheme": …, "holder_claims": {…}}``: types added
before keep NULL and issue as they did (any holder id, no binding).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


_TABLES = ("cert_types", "cert_type_versions")  # every version keeps its own rules


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("input_rules", sa.JSON, nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("input_rules")
