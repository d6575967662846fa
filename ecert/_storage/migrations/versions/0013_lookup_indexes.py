"""One-number lookup and listing by type, index-bound at national scale.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

``ecert list --holder-id`` asks for a holder's certificates in ``(issued_at, id)``
order, a page at a time; ``ecert list --type`` the same for a type. With an index on
``holder`` alone (on ``type_code, status`` for a type) the database reads every match
and sorts it, or walks the issue-order index filtering: at 10 million certificates, a
type's first page read and sorted millions of rows. Both indexes now end in the order
asked for, so a page is a range scan of as many index entries as it shows.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_certificates_holder", table_name="certificates")
    op.create_index("ix_certificates_holder", "certificates", ["holder", "issued_at", "id"])
    op.create_index("ix_certificates_type_issued", "certificates",
                    ["type_code", "issued_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_certificates_type_issued", table_name="certificates")
    op.drop_index("ix_certificates_holder", table_name="certificates")
    op.create_index("ix_certificates_holder", "certificates", ["holder"])
