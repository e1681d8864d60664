"""Storage faults on demand: a SQLite connection whose commits fail as a full disk makes them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from adapters.storage.sqlite import SqliteStore

FULL = "database or disk is full"


class FaultyConnection:
    """Passes everything to the real connection, but while ``full`` every COMMIT fails (and
    SQLite keeps the transaction open, as it does for a full disk at commit)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.full = False
        self.refused = 0  # commits refused so far

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, sql: str, *args: Any) -> Any:
        if self.full and sql == "COMMIT":
            self.refused += 1
            raise sqlite3.OperationalError(FULL)
        return self._db.execute(sql, *args)


def full_disk(db: sqlite3.Connection) -> FaultyConnection:
    """A connection whose every COMMIT fails, as on a full disk."""
    conn = FaultyConnection(db)
    conn.full = True
    return conn


@contextmanager
def faulty(store: SqliteStore) -> Iterator[FaultyConnection]:
    """Put a ``FaultyConnection`` under the store for the duration."""
    real = store._db
    conn = FaultyConnection(real)
    store._db = conn  # type: ignore[assignment]
    try:
        yield conn
    finally:
        store._db = real
