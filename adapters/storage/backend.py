"""Which store the service runs on: SQLite (the default: one machine, one process) or
PostgreSQL (several instances sharing one database).

``DATABASE_URL`` in the environment (``postgresql://user:password@host:5432/database``, a
secret, so never in the YAML) chooses PostgreSQL, as does ``storage.backend: postgres``,
which then needs it. The URL is never shown whole: logs and errors name the database without
its password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from adapters.storage.contract import Store
from adapters.storage.postgres import PostgresStore
from adapters.storage.postgres.connection import redacted
from adapters.storage.settings import StorageSettings
from adapters.storage.sqlite import SqliteStore
from bot.errors import StoreError

URL_VARIABLE = "DATABASE_URL"


@dataclass(frozen=True)
class Backend:
    """A store to open: ``kind``, and where."""

    kind: Literal["sqlite", "postgres"]
    sqlite_path: str = ""
    url: str = field(default="", repr=False)  # a secret: not in repr, logs or errors

    def __str__(self) -> str:
        if self.kind == "postgres":
            return f"PostgreSQL {redacted(self.url)}"
        return f"SQLite {self.sqlite_path}"


def choose(settings: StorageSettings, env: Mapping[str, str]) -> Backend:
    """The store the settings and the environment ask for; ``StoreError`` (one line) when
    PostgreSQL is asked for without a usable URL."""
    url = env.get(URL_VARIABLE, "").strip()
    if not url and settings.backend == "postgres":
        raise StoreError(
            f"storage.backend is postgres, but {URL_VARIABLE} is not set in the environment"
            " (postgresql://user:password@host:5432/database)"
        )
    if not url:
        return Backend("sqlite", sqlite_path=settings.sqlite_path)
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme not in ("postgresql", "postgres"):
        raise StoreError(
            f"{URL_VARIABLE} must be a postgresql:// URL (postgresql://user:password@host:5432/"
            "database)"
        )
    return Backend("postgres", url=url)


async def open_store(backend: Backend) -> Store:
    """Open the chosen store (PostgreSQL: connected, its tables created or migrated)."""
    if backend.kind == "postgres":
        return await PostgresStore.open(backend.url)
    return SqliteStore(backend.sqlite_path)
