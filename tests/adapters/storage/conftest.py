"""What the PostgreSQL store's tests share: two stores on one database, as two instances."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.storage.postgres import PostgresStore

Pair = tuple[PostgresStore, PostgresStore]


@pytest.fixture
async def two(postgres_url: str) -> AsyncIterator[Pair]:
    """Two stores on one database, with a pool each, as two app instances have."""
    a = await PostgresStore.open(postgres_url)
    b = await PostgresStore.open(postgres_url)
    yield a, b
    await a.close()
    await b.close()
