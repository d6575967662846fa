"""Fewer index entries written per certificate.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

Status lists are now built from the log alone (the signed entries' list and index), never
from certificate rows, so ``ix_certificates_status_list`` serves no query: it only cost
every issued certificate one more insert into a B-tree whose keys fall at random (the
slots are a permutation). Which slot a certificate holds stays unique through
``uq_certificates_status_slot``.

``revoke_at`` is set only for a revocation scheduled by a renewal; every other row held
NULL in ``ix_certificates_revoke_at``. The index now holds the scheduled rows alone. Its
one query (``revoke_at <= now``) implies ``revoke_at IS NOT NULL``, which both databases
take as leave to use a partial index.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_SCHEDULED = sa.text("revoke_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_certificates_status_list", table_name="certificates")
    op.drop_index("ix_certificates_revoke_at", table_name="certificates")
    op.create_index("ix_certificates_revoke_at", "certificates", ["revoke_at"],
                    sqlite_where=_SCHEDULED, postgresql_where=_SCHEDULED)


def downgrade() -> None:
    op.drop_index("ix_certificates_revoke_at", table_name="certificates")
    op.create_index("ix_certificates_revoke_at", "certificates", ["revoke_at"])
    op.create_index("ix_certificates_status_list", "certificates",
                    ["status_list_id", "status", "status_index"])
