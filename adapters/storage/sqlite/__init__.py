"""The SQLite store, split by job: ``connection`` (group commit, flush, rollback hooks, the
lock), ``checkpoints`` (the log's checkpoint thread), ``schema`` (tables, versioned
migrations), ``encoding`` (rows <-> domain objects), ``cache`` (what is kept in memory, and
the switch), ``retention``, and ``store`` composing them."""

from adapters.storage.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
