"""Catalog upkeep: every version of a type, uninterpreted catalog fields, and per-type
validity windows of agencies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Existing types become version rows of their current version; existing agency types stay
unlimited in time (no window rows).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cert_types") as batch:
        batch.add_column(sa.Column("extra", sa.JSON, nullable=True))
    op.create_table(
        "cert_type_versions",
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("national_type_code", sa.String(21), nullable=False),
        sa.Column("schema", sa.JSON, nullable=False),
        sa.Column("validity_days", sa.Integer, nullable=True),
        sa.Column("qr_claims", sa.JSON, nullable=False),
        sa.Column("extra", sa.JSON, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("code", "version", name="pk_cert_type_versions"),
        sa.ForeignKeyConstraint(["code"], ["cert_types.code"],
                                name="fk_cert_type_versions_code_cert_types"),
    )
    op.execute(
        "INSERT INTO cert_type_versions (code, version, name, national_type_code, schema, "
        "validity_days, qr_claims, extra, created_at) SELECT code, version, name, "
        "national_type_code, schema, validity_days, qr_claims, extra, created_at "
        "FROM cert_types")
    op.create_table(
        "agency_type_windows",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("agency_code", sa.String(100), nullable=False),
        sa.Column("type_code", sa.String(100), nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=True),
        sa.Column("valid_until", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_agency_type_windows"),
        sa.ForeignKeyConstraint(["agency_code"], ["agencies.code"],
                                name="fk_agency_type_windows_agency_code_agencies"),
        sa.ForeignKeyConstraint(["type_code"], ["cert_types.code"],
                                name="fk_agency_type_windows_type_code_cert_types"),
    )
    op.create_index("ix_agency_type_windows_agency", "agency_type_windows",
                    ["agency_code", "type_code"])


def downgrade() -> None:
    op.drop_index("ix_agency_type_windows_agency", table_name="agency_type_windows")
    op.drop_table("agency_type_windows")
    op.drop_table("cert_type_versions")
    with op.batch_alter_table("cert_types") as batch:
        batch.drop_column("extra")
