"""Initial registry schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "region",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("base_url", sa.String(500), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_region"),
    )
    op.create_table(
        "cert_types",
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("national_type_code", sa.String(21), nullable=False),
        sa.Column("schema", sa.JSON, nullable=False),
        sa.Column("validity_days", sa.Integer, nullable=True),
        sa.Column("qr_claims", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_cert_types"),
    )
    op.create_table(
        "agencies",
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_agencies"),
        sa.UniqueConstraint("uscc", name="uq_agencies_uscc"),
    )
    op.create_table(
        "agency_types",
        sa.Column("agency_code", sa.String(100), nullable=False),
        sa.Column("type_code", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("agency_code", "type_code", name="pk_agency_types"),
        sa.ForeignKeyConstraint(["agency_code"], ["agencies.code"],
                                name="fk_agency_types_agency_code_agencies"),
        sa.ForeignKeyConstraint(["type_code"], ["cert_types.code"],
                                name="fk_agency_types_type_code_cert_types"),
    )
    op.create_table(
        "keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("agency_code", sa.String(100), nullable=True),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("retired_at", sa.BigInteger, nullable=True),
        sa.Column("compromised_since", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_keys"),
        sa.ForeignKeyConstraint(["agency_code"], ["agencies.code"],
                                name="fk_keys_agency_code_agencies"),
    )
    op.create_index("ix_keys_role_agency", "keys", ["role", "agency_code"])
    op.create_table(
        "counters",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_counters"),
    )
    op.create_table(
        "status_lists",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("bits", sa.Integer, nullable=False),
        sa.Column("permutation_key", sa.LargeBinary(32), nullable=False),
        sa.Column("allocated", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_status_lists"),
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("serial", sa.String(32), nullable=False),
        sa.Column("agency_code", sa.String(100), nullable=False),
        sa.Column("type_code", sa.String(100), nullable=False),
        sa.Column("type_version", sa.Integer, nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("holder_name", sa.String(200), nullable=False),
        sa.Column("claims", sa.JSON, nullable=False),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False),
        sa.Column("valid_until", sa.BigInteger, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revocation_reason", sa.String(40), nullable=True),
        sa.Column("status_list_id", sa.Integer, nullable=False),
        sa.Column("status_index", sa.Integer, nullable=False),
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("supersedes", sa.String(128), nullable=True),
        sa.Column("token", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_certificates"),
        sa.ForeignKeyConstraint(["agency_code"], ["agencies.code"],
                                name="fk_certificates_agency_code_agencies"),
        sa.ForeignKeyConstraint(["type_code"], ["cert_types.code"],
                                name="fk_certificates_type_code_cert_types"),
        sa.ForeignKeyConstraint(["status_list_id"], ["status_lists.id"],
                                name="fk_certificates_status_list_id_status_lists"),
        sa.ForeignKeyConstraint(["kid"], ["keys.kid"], name="fk_certificates_kid_keys"),
        sa.UniqueConstraint("status_list_id", "status_index", name="uq_certificates_status_slot"),
        sa.UniqueConstraint("agency_code", "serial", name="uq_certificates_agency_serial"),
    )
    op.create_index("ix_certificates_holder", "certificates", ["holder"])
    op.create_index("ix_certificates_serial", "certificates", ["serial"])
    op.create_index("ix_certificates_type_status", "certificates", ["type_code", "status"])
    op.create_index("ix_certificates_status_list", "certificates", ["status_list_id", "status"])
    op.create_table(
        "events",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_subject", "events", ["subject"])
    _append_only_events()


def _append_only_events() -> None:
    """The event table is a record: the database itself refuses UPDATE and DELETE."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ecert_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'ecert events are append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION ecert_events_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_no_{verb.lower()} BEFORE {verb} ON events "
                "BEGIN SELECT RAISE(ABORT, 'ecert events are append-only'); END"
            )


def downgrade() -> None:
    for table in ("events", "certificates", "status_lists", "counters", "keys",
                  "agency_types", "agencies", "cert_types", "region"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ecert_events_append_only()")
