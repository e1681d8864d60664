"""The PostgreSQL store, split by job: ``connection`` (the pool, errors, recovery, health),
``schema`` (tables, versioned migrations), ``encoding`` (rows <-> domain objects),
``retention``, and ``store`` composing them."""

from adapters.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
