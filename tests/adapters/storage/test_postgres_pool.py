"""The store's pool of connections (``adapters.storage.postgres.pool``): bounded, first come
first served, a connection that cannot be trusted is never handed on, a failed connect frees
its place, and closing waits for the connections in use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from adapters.storage.postgres.pool import Pool


@pytest.fixture
async def pool(postgres_url: str) -> AsyncIterator[Pool]:
    async def connect() -> asyncpg.Connection:
        connection: asyncpg.Connection = await asyncpg.connect(postgres_url)
        return connection

    made = Pool(connect, max_size=2)
    yield made
    await made.close(5)


async def test_at_most_max_size_and_waiters_are_served_in_order(pool: Pool) -> None:
    first, second = await pool.acquire(5), await pool.acquire(5)
    assert first is not second
    served: list[int] = []

    async def wait(n: int) -> None:
        connection = await pool.acquire(5)
        served.append(n)
        pool.release(connection)

    waiting = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0.1)
    assert served == []  # both taken: they wait
    pool.release(first)
    await asyncio.gather(*waiting)
    assert served == [0, 1, 2]
    pool.release(second)
    again = await pool.acquire(5)
    assert again in (first, second)  # kept and handed on, not opened afresh
    pool.release(again)


async def test_a_waiter_that_times_out_keeps_no_place(pool: Pool) -> None:
    taken = [await pool.acquire(5), await pool.acquire(5)]
    with pytest.raises(TimeoutError):
        await pool.acquire(0.1)
    for connection in taken:
        pool.release(connection)
    got = [await pool.acquire(1), await pool.acquire(1)]  # both places are there
    for connection in got:
        pool.release(connection)


async def test_a_connection_given_back_in_a_transaction_or_closed_is_not_handed_on(
    pool: Pool,
) -> None:
    connection = await pool.acquire(5)
    await connection.execute("BEGIN")
    pool.release(connection)
    assert connection.is_closed()
    other = await pool.acquire(5)
    other.terminate()
    pool.release(other)
    fresh = await pool.acquire(5)
    assert fresh is not other and not fresh.is_closed()
    assert await fresh.fetchval("SELECT 1") == 1
    pool.release(fresh)


async def test_expire_closes_idle_connections_now_and_taken_ones_when_given_back(
    pool: Pool,
) -> None:
    idle, taken = await pool.acquire(5), await pool.acquire(5)
    pool.release(idle)
    pool.expire()
    assert idle.is_closed()
    assert not taken.is_closed()
    pool.release(taken)
    assert taken.is_closed()
    fresh = await pool.acquire(5)
    assert fresh not in (idle, taken)
    pool.release(fresh)


async def test_a_failed_connect_frees_its_place(postgres_url: str) -> None:
    attempts = 0

    async def connect() -> asyncpg.Connection:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("connection refused")
        connection: asyncpg.Connection = await asyncpg.connect(postgres_url)
        return connection

    pool = Pool(connect, max_size=1)
    try:
        with pytest.raises(OSError):
            await pool.acquire(5)
        connection = await pool.acquire(5)
        pool.release(connection)
    finally:
        await pool.close(5)


async def test_close_waits_for_connections_in_use_and_refuses_new_callers(pool: Pool) -> None:
    taken = await pool.acquire(5)
    closing = asyncio.create_task(pool.close(5))
    await asyncio.sleep(0.1)
    assert not closing.done() and not taken.is_closed()
    with pytest.raises(asyncpg.InterfaceError):
        await pool.acquire(5)
    pool.release(taken)
    await asyncio.wait_for(closing, 5)
    assert taken.is_closed()
