"""Per-conversation locks across instances on one PostgreSQL database
(``adapters.storage.postgres.locks``): one holder at a time per conversation whichever
instance it is in, others untouched, a dead lock connection lets go, a database away raises
``StoreError``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from adapters.storage.postgres import locks
from bot.errors import StoreError
from bot.model import Conversation, Handoff, HandoffState, Visitor
from tests.adapters.storage.conftest import Pair
from tests.support.postgres import Cluster

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


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


async def _lock_statements(url: str) -> int:
    """Advisory lock calls the server has seen from the locks' pool so far (its sessions'
    own counters: each holder's connection is one backend)."""
    admin: asyncpg.Connection = await asyncpg.connect(url)
    try:
        value = await admin.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND a.application_name = 'handoff-locks'"
        )
    finally:
        await admin.close()
    return int(value)


async def test_a_lock_is_kept_briefly_for_its_next_block_and_then_let_go(
    two: Pair, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy conversation's next block takes the kept lock (the same session: no round trip
    to let go and take again); once nobody wants it for ``LINGER`` seconds it is let go, and
    another instance waits for it no longer than that."""
    executed: list[str] = []
    for method in ("execute", "fetchrow"):  # the lock is taken by a fetch (it reads too)
        real = getattr(asyncpg.connection.Connection, method)

        async def counted(
            self: asyncpg.Connection, query: str, *args: object, _real: Any = real, **kw: object
        ) -> Any:
            executed.append(query)
            return await _real(self, query, *args, **kw)

        monkeypatch.setattr(asyncpg.connection.Connection, method, counted)
    a, b = (store.conversation_locks() for store in two)
    for _ in range(5):  # one conversation's events, back to back
        async with a.hold("busy"):
            assert await _lock_statements(postgres_url) == 1
    assert executed.count(locks.LOCK) == 1
    assert executed.count(locks.UNLOCK) == 0
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(2), b.hold("busy"):
        waited = asyncio.get_running_loop().time() - started
    assert waited < locks.LINGER + 0.5
    assert executed.count(locks.UNLOCK) == 1  # A let it go for B
    await asyncio.sleep(locks.LINGER * 3)
    assert await _lock_statements(postgres_url) == 0  # and B's own let go too


async def test_no_lock_is_kept_while_the_pool_is_short(
    two: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With few connections to spare, a lock is let go at its block's end: conversations that
    wait for a connection are not held up by a busy one keeping its lock for block after
    block."""
    monkeypatch.setattr(locks, "POOL_MAX", 3)
    a = two[0].conversation_locks()
    entries: list[str] = []

    async def busy(key: str) -> None:
        for _ in range(10):
            async with a.hold(key):
                entries.append(key)
                await asyncio.sleep(0.005)

    keys = [f"c{n}" for n in range(6)]
    async with asyncio.timeout(10):
        await asyncio.gather(*(busy(key) for key in keys))
    firsts = [entries.index(key) for key in keys]
    thirds = [[i for i, k in enumerate(entries) if k == key][2] for key in keys]
    assert max(firsts) < min(thirds), entries


async def test_a_lock_whose_connection_dies_while_waiting_raises_store_error(
    two: Pair, postgres_url: str
) -> None:
    """The server ends the session of a waiter (a restart, say): the waiter gets ``StoreError``,
    which callers know how to answer (503, a retry), never a driver error of its own."""
    a, b = (store.conversation_locks() for store in two)

    async def enter() -> None:
        async with b.hold("c1"):
            pass

    async with a.hold("c1"):
        waiting = asyncio.create_task(enter())
        killer: asyncpg.Connection = await asyncpg.connect(postgres_url)
        try:
            for _ in range(100):
                ended = await killer.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'handoff-locks' AND wait_event_type = 'Lock'"
                )
                if ended:
                    break
                await asyncio.sleep(0.02)
        finally:
            await killer.close()
        with pytest.raises(StoreError, match="could not lock conversation c1"):
            await asyncio.wait_for(waiting, 5)
    async with asyncio.timeout(5), b.hold("c1"):  # and B locks again afterwards
        pass


async def test_the_lock_reads_the_conversation_as_its_last_holder_left_it(two: Pair) -> None:
    """Taking a conversation's lock reads its conversation and open handoff in the same round
    trip, after the lock is granted: what the previous holder (another instance) committed in
    its block is there; the block's reads are answered from it until the block writes."""
    a, b = two
    conversation = await a.save_conversation(conversation=Conversation("c1", Visitor(id="v"), T0))
    queued = await a.save_handoff(
        handoff=Handoff("h1", "c1", "support", HandoffState.QUEUED, T0, "asked")
    )
    a_in = asyncio.Event()
    joined: list[Handoff] = []

    async def first() -> None:
        async with a.conversation_locks().hold("c1"):
            a_in.set()
            await asyncio.sleep(0.2)  # B waits for the lock meanwhile
            joined.append(await a.save_handoff(handoff=replace(queued, state=HandoffState.JOINED)))

    async def second() -> tuple[Any, Any]:
        await a_in.wait()
        async with b.conversation_locks().hold("c1"):
            seen = await b.conversation_and_open_handoff(conversation_id="c1")
            by_id = await b.get_handoff(handoff_id="h1")
            return seen, by_id

    _, (seen, by_id) = await asyncio.gather(first(), second())
    assert seen == (conversation, joined[0])  # not the queued one B would have read earlier
    assert by_id == joined[0]
    # Once the block writes, reads go to the database again.
    async with b.conversation_locks().hold("c1"):
        ended = await b.save_handoff(handoff=replace(joined[0], state=HandoffState.ENDED))
        assert await b.get_handoff(handoff_id="h1") == ended
        assert await b.conversation_and_open_handoff(conversation_id="c1") == (conversation, None)
