"""Renewals and listings: scheduled revocations, status notes, name and keyset indexes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

* ``certificates.revoke_at``: when a renewal or reissue with ``--at-start`` revokes the
  predecessor at the successor's start (the status column keeps the status last set by
  an action; the effective status is computed against the clock, so the revocation
  takes effect at the next publication after that instant with nobody acting).
* ``certificates.status_note``: the free-text reason of the latest suspend/reinstate.
* ``log_entries.note``: the free-text reason of that entry, in clear for the registry
  (the public leaf carries only its keyed hash). Added with a plain ``ADD COLUMN`` so
  SQLite keeps the table (and its append-only triggers).
* indexes for ``ecert list``: holder-name prefix search and the keyset order.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("certificates", sa.Column("revoke_at", sa.BigInteger, nullable=True))
    op.add_column("certificates", sa.Column("status_note", sa.Text, nullable=True))
    op.add_column("log_entries", sa.Column("note", sa.Text, nullable=True))
    # PostgreSQL: a pattern-ops index serves LIKE 'prefix%' whatever the collation.
    op.create_index("ix_certificates_holder_name", "certificates", ["holder_name"],
                    postgresql_ops={"holder_name": "varchar_pattern_ops"})
    op.create_index("ix_certificates_issued", "certificates", ["issued_at", "id"])
    op.create_index("ix_certificates_revoke_at", "certificates", ["revoke_at"])


def downgrade() -> None:
    op.drop_index("ix_certificates_revoke_at", "certificates")
    op.drop_index("ix_certificates_issued", "certificates")
    op.drop_index("ix_certificates_holder_name", "certificates")
    op.drop_column("log_entries", "note")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("status_note")
        batch.drop_column("revoke_at")
