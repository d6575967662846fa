"""A status list's entries read from an index alone.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

A full publication builds each status list from the status and index of every
certificate on it. With an index on ``(status_list_id, status)`` the database found the
rows by index and then read each certificate row (a kilobyte or more with its token)
for its ``status_index``: at 10 million certificates, the whole table. The index now
ends in ``status_index``, so a list's valid and suspended entries are an index-only
range scan, in index order.

Every publication replays the units that shape the trust list (found through the action
index); their entries were then read by ``unit``, which had no index: a scan of the
whole log, seconds at 10 million certificates. ``ix_log_entries_unit`` makes it a
lookup.
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_certificates_status_list", table_name="certificates")
    op.create_index("ix_certificates_status_list", "certificates",
                    ["status_list_id", "status", "status_index"])
    op.create_index("ix_log_entries_unit", "log_entries", ["unit"])


def downgrade() -> None:
    op.drop_index("ix_log_entries_unit", table_name="log_entries")
    op.drop_index("ix_certificates_status_list", table_name="certificates")
    op.create_index("ix_certificates_status_list", "certificates",
                    ["status_list_id", "status"])
