"""Sharing: entitlements (用证清单), consent codes (用证码), use records and request nonces.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Five new tables; nothing existing changes. A registry made before this revision has no
sharing key: ``ecert key rotate-sharing`` gives it one (new registries get it at init).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entitlements",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(120), nullable=False),
        sa.Column("types", sa.JSON, nullable=False),
        sa.Column("purposes", sa.JSON, nullable=False),
        sa.Column("claims", sa.JSON, nullable=True),
        sa.Column("without_consent", sa.Integer, nullable=False),
        sa.Column("valid_from", sa.BigInteger, nullable=False),
        sa.Column("valid_until", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_entitlements"),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(120), nullable=False),
        sa.Column("types", sa.JSON, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger, nullable=True),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_consents"),
        sa.UniqueConstraint("code_hash", name="uq_consents_code_hash"),
    )
    op.create_index("ix_consents_holder", "consents", ["holder"])
    op.create_table(
        "consent_failures",
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("window", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("scope", "window", name="pk_consent_failures"),
    )
    op.create_table(
        "uses",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(120), nullable=False),
        sa.Column("staff_id", sa.String(100), nullable=False),
        sa.Column("staff_role", sa.String(100), nullable=False),
        sa.Column("service_item", sa.String(100), nullable=False),
        sa.Column("case_no", sa.String(100), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("types", sa.JSON, nullable=False),
        sa.Column("certificates", sa.JSON, nullable=False),
        sa.Column("consent", sa.String(32), nullable=True),
        sa.Column("by_statute", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("problem", sa.String(64), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response_hash", sa.String(64), nullable=True),
        sa.Column("log_seq", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_uses"),
    )
    op.create_index("ix_uses_holder", "uses", ["holder", "id"])
    op.create_table(
        "nonces",
        sa.Column("requester", sa.String(120), nullable=False),
        sa.Column("nonce", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("requester", "nonce", name="pk_nonces"),
    )
    op.create_index("ix_nonces_expires", "nonces", ["expires_at"])


def downgrade() -> None:
    for table in ("nonces", "uses", "consent_failures", "consents", "entitlements"):
        op.drop_table(table)
