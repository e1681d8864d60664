"""Per-conversation locks that hold across every instance on the database (``bot.locks.Locks``),
so that one conversation's events are handled one at a time wherever they arrive: a visitor's
message on the leader, a specialist's reply or card click on another instance.

A holder takes this process's own lock for the key first (its callers queue in memory, at no
cost to the database), then a session advisory lock on a connection of a small pool of its own,
held for the block and given back after. The pool is not the store's: a block holding a lock
does its work through the store's pool, which lock waiters can then never exhaust.

If the lock's connection dies during the block, the server lets the lock go: the block goes on
(the store's compare-and-set still catches a conflicting write), and the connection is closed
rather than returned. A lock that cannot be taken (the database away) raises ``StoreError``,
as any write would.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from adapters.storage.postgres.connection import FAULTS
from adapters.storage.postgres.schema import LOCK_CONVERSATION
from bot.errors import StoreError
from bot.locks import KeyedLocks

APPLICATION_NAME = "handoff-locks"  # shown in pg_stat_activity
POOL_MAX = 8  # connections holding or waiting for a lock at once (more wait for one)
TIMEOUT = 15.0  # seconds to wait for a lock (another instance's block) or a connection


class SharedLocks:
    """``bot.locks.Locks`` across the processes sharing a PostgreSQL database."""

    def __init__(self, pool: Callable[[], Awaitable[asyncpg.Pool]]) -> None:
        self._pool = pool
        self._local = KeyedLocks()

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self._local.hold(key):
            try:
                pool = await self._pool()
                connection = await pool.acquire(timeout=TIMEOUT)
            except FAULTS as exc:
                raise StoreError(f"could not lock conversation {key}: {_why(exc)}") from exc
            kept = False
            try:
                try:
                    await connection.execute(
                        "SELECT pg_advisory_lock($1, hashtext($2))",
                        LOCK_CONVERSATION,
                        key,
                        timeout=TIMEOUT,
                    )
                except FAULTS as exc:
                    raise StoreError(f"could not lock conversation {key}: {_why(exc)}") from exc
                try:
                    yield
                finally:
                    # Cancelled meanwhile: the connection is closed below, which lets go too.
                    with contextlib.suppress(*FAULTS):
                        await connection.execute(
                            "SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_CONVERSATION, key
                        )
                        kept = True
            finally:
                # (A connection that died was given back by the pool itself.)
                with contextlib.suppress(asyncpg.InterfaceError):
                    if not kept:  # the lock may still be held on it: never hand it on
                        connection.terminate()
                    await pool.release(connection)


def _why(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
