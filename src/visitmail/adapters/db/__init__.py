"""SQLAlchemy 2 (async) storage on SQLite (embedded) and PostgreSQL (scale-out)."""
