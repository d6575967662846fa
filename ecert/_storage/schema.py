"""Registry tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

Times are integer seconds since the epoch (UTC), identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The one region this registry belongs to (a single row, id = 1).
region = Table(
    "region",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("base_url", String(500), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # IANA time zone: how dates typed by clerks are read and times shown (0004).
    Column("tz", String(64), nullable=False, server_default="Asia/Shanghai"),
)

cert_types = Table(
    "cert_types",
    metadata,
    Column("code", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("national_type_code", String(21), nullable=False),
    Column("schema", JSON, nullable=False),
    Column("validity_days", Integer, nullable=True),
    Column("qr_claims", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # {"holder_id_scheme": …, "holder_claims": {…}}; NULL for types declaring neither.
    Column("input_rules", JSON, nullable=True),
    # Catalog fields ecert does not interpret (holder_id_scheme, …), kept for export.
    Column("extra", JSON, nullable=True),
)

# Every version of every type (the latest is also in cert_types): a certificate keeps the
# version it was issued under, and what it was issued under can always be looked up.
cert_type_versions = Table(
    "cert_type_versions",
    metadata,
    Column("code", String(100), ForeignKey("cert_types.code"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("national_type_code", String(21), nullable=False),
    Column("schema", JSON, nullable=False),
    Column("validity_days", Integer, nullable=True),
    Column("qr_claims", JSON, nullable=False),
    Column("extra", JSON, nullable=True),
    Column("input_rules", JSON, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

agencies = Table(
    "agencies",
    metadata,
    Column("code", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("uscc", String(18), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

agency_types = Table(
    "agency_types",
    metadata,
    Column("agency_code", String(100), ForeignKey("agencies.code"), primary_key=True),
    Column("type_code", String(100), ForeignKey("cert_types.code"), primary_key=True),
)

# When an agency may issue a type, for types it may issue only for a time (a type of
# agency_types without rows here may be issued without limit in time). [valid_from,
# valid_until), either end open (NULL).
agency_type_windows = Table(
    "agency_type_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_code", String(100), ForeignKey("agencies.code"), nullable=False),
    Column("type_code", String(100), ForeignKey("cert_types.code"), nullable=False),
    Column("valid_from", BigInteger, nullable=True),
    Column("valid_until", BigInteger, nullable=True),
    Index("ix_agency_type_windows_agency", "agency_code", "type_code"),
)

keys = Table(
    "keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("agency_code", String(100), ForeignKey("agencies.code"), nullable=True),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("retired_at", BigInteger, nullable=True),
    Column("compromised_since", BigInteger, nullable=True),
    Index("ix_keys_role_agency", "role", "agency_code"),
)

# Named monotonic counters: certificate serials per agency, trust list sequence.
counters = Table(
    "counters",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

status_lists = Table(
    "status_lists",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", Integer, nullable=False),
    Column("bits", Integer, nullable=False),
    # Key of the pseudo-random permutation that spreads indices over the list.
    Column("permutation_key", LargeBinary(32), nullable=False),
    Column("allocated", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

certificates = Table(
    "certificates",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("serial", String(32), nullable=False),
    Column("agency_code", String(100), ForeignKey("agencies.code"), nullable=False),
    Column("type_code", String(100), ForeignKey("cert_types.code"), nullable=False),
    Column("type_version", Integer, nullable=False),
    Column("holder", String(64), nullable=False),
    Column("holder_name", String(200), nullable=False),
    Column("claims", JSON, nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=True),
    Column("status", String(16), nullable=False),
    Column("revocation_reason", String(40), nullable=True),
    Column("status_list_id", Integer, ForeignKey("status_lists.id"), nullable=False),
    Column("status_index", Integer, nullable=False),
    Column("kid", String(64), ForeignKey("keys.kid"), nullable=False),
    Column("supersedes", String(128), nullable=True),
    Column("token", Text, nullable=False),
    # Kept when a lawful erasure removes the token and personal data (``redacted_at``).
    Column("token_hash", String(64), nullable=True),
    Column("redacted_at", BigInteger, nullable=True),
    # A revocation scheduled by a renewal with ``--at-start`` (see _lifecycle.effective).
    Column("revoke_at", BigInteger, nullable=True),
    Column("status_note", Text, nullable=True),  # reason of the latest suspend/reinstate
    UniqueConstraint("status_list_id", "status_index", name="uq_certificates_status_slot"),
    UniqueConstraint("agency_code", "serial", name="uq_certificates_agency_serial"),
    # A holder's and a type's certificates a page at a time, in issue order (0013).
    Index("ix_certificates_holder", "holder", "issued_at", "id"),
    Index("ix_certificates_type_issued", "type_code", "issued_at", "id"),
    Index("ix_certificates_serial", "serial"),
    Index("ix_certificates_type_status", "type_code", "status"),
    Index("ix_certificates_holder_name", "holder_name",
          postgresql_ops={"holder_name": "varchar_pattern_ops"}),
    Index("ix_certificates_issued", "issued_at", "id"),
    # Only the scheduled revocations (0015): every other row's NULL is no entry.
    Index("ix_certificates_revoke_at", "revoke_at", sqlite_where=text("revoke_at IS NOT NULL"),
          postgresql_where=text("revoke_at IS NOT NULL")),
)

# Append-only record of every state change: what, who, when. Triggers refuse UPDATE/DELETE.
events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("operator", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_events_subject", "subject"),
)

# Recognition agreements with other regions; withdrawn ones stay for the record.
agreements = Table(
    "agreements",
    metadata,
    Column("region", String(16), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("root_jwk", JSON, nullable=False),
    Column("trust_list_url", String(500), nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=True),
    Column("types", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("withdrawn_at", BigInteger, nullable=True),
)

# Statements by which each root key handed over to the next, oldest first.
root_rotations = Table(
    "root_rotations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("old_kid", String(64), ForeignKey("keys.kid"), nullable=False),
    Column("new_kid", String(64), ForeignKey("keys.kid"), nullable=False),
    Column("statement", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# -- accountability (migration 0003) -----------------------------------------------------

# Named accounts that act on the registry; each signs its units of work with its own key.
operators = Table(
    "operators",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("kid", String(64), nullable=False, unique=True),
    Column("public_jwk", JSON, nullable=False),
    Column("grants", JSON, nullable=False),
    Column("active", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Four-eyes policies: how many operators must agree on an action (type "" = every type).
policies = Table(
    "policies",
    metadata,
    Column("action", String(40), primary_key=True),
    Column("type_code", String(100), primary_key=True),
    Column("approvals", Integer, nullable=False),
)

# Changes waiting for approval, and how they were decided.
requests = Table(
    "requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action", String(40), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("params", JSON, nullable=False),
    Column("agency_code", String(100), nullable=True),
    Column("type_code", String(100), nullable=True),
    Column("requested_by", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("approvals_needed", Integer, nullable=False),
    Column("approved_by", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(64), nullable=True),
    Column("reason", Text, nullable=True),
)

# The log: one row per leaf of the Merkle tree. Append-only (triggers), and checked by
# replay: the leaf bytes are what the tree hashes; the other columns are for lookups.
log_entries = Table(
    "log_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf", LargeBinary, nullable=False),
    Column("action", String(40), nullable=False),
    Column("subject", String(200), nullable=False),  # as published (commitment or code)
    Column("plain_subject", String(200), nullable=False),  # in clear, for the registry
    Column("operator", String(64), nullable=False),
    Column("unit", BigInteger, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("note", Text, nullable=True),  # an entry's free-text reason, in clear
    # What else the entry is about, in clear, for the registry's use-time lookups: the
    # consent a granted use spent (0011). Append-only like the rest of the row, and
    # checked against the signed leaf by ``audit verify``.
    Column("ref", String(64), nullable=True),
    Index("ix_log_entries_plain_subject", "plain_subject"),
    Index("ix_log_entries_action", "action"),
    Index("ix_log_entries_ref", "ref"),
    # A unit's entries (the trust-relevant units a publication replays; 0014).
    Index("ix_log_entries_unit", "unit"),
)

# Tiles of the integrated tree (C2SP tlog-tiles): the newest version of each tile.
log_tiles = Table(
    "log_tiles",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("width", Integer, nullable=False),
    Column("hashes", LargeBinary, nullable=False),
)

# Every checkpoint the log key signed (signed note text), oldest first.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Publications: the trust list sequence is taken here durably before any file is written.
publications = Table(
    "publications",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("started_at", BigInteger, nullable=False),
    Column("log_size", BigInteger, nullable=False),
    Column("log_root", LargeBinary(32), nullable=False),
    Column("trust_list_hash", String(64), nullable=True),
    Column("directory", Text, nullable=False),
    Column("status", String(16), nullable=False),
)

# Cosignatures: ones this region made as a witness of others, and ones others made on ours.
cosignatures = Table(
    "cosignatures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(200), nullable=False),  # the witnessed log
    Column("witness", String(16), nullable=False),  # the witnessing region
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_cosignatures_origin_witness", "origin", "witness"),
)

# Leases: who runs ``ecert publish --watch`` (one row per lease name, made by the migration).
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=True),  # a random id per running instance
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("directory", Text, nullable=True),
    Column("acquired_at", BigInteger, nullable=True),
    Column("renewed_at", BigInteger, nullable=True),
    Column("expires_at", BigInteger, nullable=False),
)

# Entitlements (用证清单): who may fetch which types, for which purposes, which claims (0009).
entitlements = Table(
    "entitlements",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("requester", String(120), nullable=False),  # REGION or REGION/agency-code
    Column("types", JSON, nullable=False),
    Column("purposes", JSON, nullable=False),
    Column("claims", JSON, nullable=True),  # NULL: every claim of the type
    Column("without_consent", Integer, nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=True),
)

# Consent codes (用证码): only their keyed hash is kept (0009).
consents = Table(
    "consents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("holder", String(64), nullable=False),  # the holder's pseudonym
    Column("requester", String(120), nullable=False),
    Column("types", JSON, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("channel", String(16), nullable=False),  # "clerk" or "holder"
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    # The [agency, type] pairs whose certificates it releases (0011; NULL: granted before
    # consents were scoped, releasing its types of any agency).
    Column("scope", JSON, nullable=True),
    Index("ix_consents_holder", "holder"),
)

# Failed consent codes per scope (a requester, a holder) and fixed window (0009).
consent_failures = Table(
    "consent_failures",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("window", BigInteger, primary_key=True),
    Column("count", Integer, nullable=False),
)

# Use records: every fetch through the sharing service, granted or refused (0009).
uses = Table(
    "uses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("holder", String(64), nullable=False),  # the holder's pseudonym
    Column("requester", String(120), nullable=False),
    Column("staff_id", String(100), nullable=False),
    Column("staff_role", String(100), nullable=False),
    Column("service_item", String(100), nullable=False),
    Column("case_no", String(100), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("types", JSON, nullable=False),
    Column("certificates", JSON, nullable=False),
    Column("consent", String(32), nullable=True),  # NULL: by statute (or refused before)
    Column("by_statute", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),  # "granted" or "refused"
    Column("problem", String(64), nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("response_hash", String(64), nullable=True),
    Column("log_seq", BigInteger, nullable=True),
    # "fetch" (share.fetch) or "check" (share.check, 核验) (0010).
    Column("kind", String(16), nullable=False, server_default="fetch"),
    # The hashes of the copies a granted fetch answered (0011; NULL before copies were
    # bound to their use entries).
    Column("copies", JSON, nullable=True),
    Index("ix_uses_holder", "holder", "id"),
)

# Nonces of signed requests, shared by every worker: a replay fails the primary key (0009).
nonces = Table(
    "nonces",
    metadata,
    Column("requester", String(120), primary_key=True),
    Column("nonce", String(200), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_nonces_expires", "expires_at"),
)

# Requests per scope (a requester's fetches or checks, a check's subject) and fixed window:
# the sharing service's rate limits, shared by every worker and host (0010).
request_counts = Table(
    "request_counts",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("window", BigInteger, primary_key=True),
    Column("count", Integer, nullable=False),
    Index("ix_request_counts_window", "window"),
)

# The registry's settings by name (0010): the sharing limits (``share.limits``).
settings = Table(
    "settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
)

# Idempotency keys of batch issuance (0013): a keyed hash of a row (or of the value of a
# column the caller named), written in the transaction that issues its certificate. The
# issue entry of that certificate carries the same key, so the audit compares the two.
issue_keys = Table(
    "issue_keys",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("certificate_id", String(128), nullable=False),
    Column("run", String(32), nullable=False),  # the batch run that issued or last met it
    Column("line", BigInteger, nullable=False),  # its line in that run's file
)
