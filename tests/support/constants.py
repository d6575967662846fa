"""Constants shared by the test suite."""

from __future__ import annotations

import os
from datetime import UTC, datetime

#: The PostgreSQL server to run the registry tests against ("" for embedded SQLite).
PG_URL = os.environ.get("ECERT_TEST_DATABASE_URL", "")
PASSPHRASE = "correct horse battery staple"
#: The operator registries act as unless a test says otherwise: each registry's first admin.
OPERATOR = "clerk-test"
#: That operator's key passphrase.
OPERATOR_PASSPHRASE = "operator passphrase for tests"
#: 2026-01-01T00:00:00Z, the start of every test clock.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: PBKDF2 iterations for key files in tests (the real format, fewer rounds).
FAST_KDF_ROUNDS = 1_000
