"""Storage: the registry's tables, migrations and repository (SQLite or PostgreSQL)."""
