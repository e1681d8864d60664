"""Per-conversation locks across instances on one PostgreSQL database
(``adapters.storage.postgres.locks``): one holder at a time per conversation whichever
instance it is in, others untouched, a dead lock connection lets go, a database away raises
``StoreError``."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bot.errors import StoreError
from tests.adapters.storage.conftest import Pair
from tests.support.postgres import Cluster


async def test_one_holder_per_conversation_across_instances(two: Pair) -> None:
    locks = [store.conversation_locks() for store in two]
    inside: dict[str, int] = {}
    most: dict[str, int] = {}
    order: list[tuple[str, int]] = []

    async def hold(n: int, key: str) -> None:
        async with locks[n % 2].hold(key):
            inside[key] = inside.get(key, 0) + 1
            most[key] = max(most.get(key, 0), inside[key])
            order.append((key, n))
            await asyncio.sleep(0.01)
            inside[key] -= 1

    await asyncio.gather(*(hold(n, f"c{n % 3}") for n in range(30)))
    assert most == {"c0": 1, "c1": 1, "c2": 1}
    assert len(order) == 30


async def test_other_conversations_are_not_held_up(two: Pair) -> None:
    a, b = (store.conversation_locks() for store in two)
    async with a.hold("busy"):
        async with asyncio.timeout(2):
            async with b.hold("other"):
                pass
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                async with b.hold("busy"):
                    pass
    async with asyncio.timeout(2):  # let go: the other instance gets it now
        async with b.hold("busy"):
            pass


async def test_a_lock_whose_connection_died_lets_go(two: Pair, postgres_url: str) -> None:
    a, b = (store.conversation_locks() for store in two)
    async with a.hold("c1"):
        killer: asyncpg.Connection = await asyncpg.connect(postgres_url)
        try:
            await killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'handoff-locks' AND pid <> pg_backend_pid()"
            )
        finally:
            await killer.close()
        async with asyncio.timeout(5):
            async with b.hold("c1"):
                pass
    async with asyncio.timeout(5):  # and the dead connection was not handed on
        async with a.hold("c1"):
            pass


async def test_a_database_away_raises_store_error(postgres: Cluster, two: Pair) -> None:
    locks = two[0].conversation_locks()
    await asyncio.to_thread(postgres.stop)
    try:
        with pytest.raises(StoreError, match="could not lock conversation c1"):
            async with locks.hold("c1"):
                pass
    finally:
        await asyncio.to_thread(postgres.start)
