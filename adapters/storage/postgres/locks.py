"""Per-conversation locks that hold across every instance on the database (``bot.locks.Locks``),
so that one conversation's events are handled one at a time wherever they arrive: a visitor's
message on the leader, a specialist's reply or card click on another instance.

A holder takes this process's own lock for the key first (its callers queue in memory, at no
cost to the database), then a session advisory lock on a connection of a small pool of its own,
in the same round trip as the conversation's rows, which the block's reads then find there
(``prefetch``).
The pool is not the store's: a block holding a lock does its work through the store's pool,
which lock waiters can then never exhaust.

After its block, a lock is kept for ``LINGER`` seconds while the pool has connections to spare:
a busy conversation's next event (the next message in the leader's inbox) then takes it without
a round trip, and none is spent letting it go in between. Another instance waits at most that
much longer for it. Letting go happens in the background, so a block's end never waits on it.

If the lock's connection dies, the server lets the lock go: a block under way goes on (the
store's compare-and-set still catches a conflicting write), and the connection is closed
rather than returned. A lock that cannot be taken (the database away) raises ``StoreError``,
as any write would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from adapters.storage.postgres.connection import FAULTS
from adapters.storage.postgres.prefetch import PREFETCHED, Prefetched
from adapters.storage.postgres.schema import LOCK_CONVERSATION
from bot.errors import StoreError
from bot.locks import KeyedLocks

APPLICATION_NAME = "handoff-locks"  # shown in pg_stat_activity
POOL_MAX = 16  # connections holding, keeping or waiting for a lock at once (more wait)
TIMEOUT = 15.0  # seconds to wait for a lock (another instance's block) or a connection
LINGER = 0.02  # seconds a lock stays taken after its block, for the key's next block
SPARE = 2  # a lock is kept only while at least this many of the pool's connections are free

# The lock, and the conversation's rows read once it is granted (``prefetch``).
LOCK = "SELECT conversation, handoff FROM lock_conversation($1, $2)"
UNLOCK = "SELECT pg_advisory_unlock($1, hashtext($2))"


@dataclass
class _Taken:
    """A lock taken on a connection of the pool."""

    pool: asyncpg.Pool
    connection: asyncpg.Connection
    expiry: asyncio.TimerHandle | None = None  # set while kept after its block


class SharedLocks:
    """``bot.locks.Locks`` across the processes sharing a PostgreSQL database."""

    def __init__(self, pool: Callable[[], Awaitable[asyncpg.Pool]]) -> None:
        self._pool = pool
        self._local = KeyedLocks()
        self._kept: dict[str, _Taken] = {}  # key -> its lock, kept after its block
        self._out = 0  # the pool's connections taken (in blocks, kept, or being let go)
        self._letting_go: set[asyncio.Task[None]] = set()
        self._closed = False

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self._local.hold(key):
            taken = self._kept.pop(key, None)
            if taken is not None and taken.expiry is not None:
                taken.expiry.cancel()
            read: Prefetched | None = None  # a lock kept from before read nothing now
            if taken is None or _gone(taken.connection):
                if taken is not None:
                    self._let_go(key, taken)  # its connection died: so did the lock
                taken, read = await self._take(key)
            token = PREFETCHED.set(read)
            try:
                yield
            finally:
                PREFETCHED.reset(token)
                self._after(key, taken)

    async def close(self) -> None:
        """Let go of the locks kept (and wait for those being let go)."""
        self._closed = True
        for key, taken in list(self._kept.items()):
            del self._kept[key]
            if taken.expiry is not None:
                taken.expiry.cancel()
            self._let_go(key, taken)
        if self._letting_go:
            await asyncio.gather(*self._letting_go, return_exceptions=True)

    async def _take(self, key: str) -> tuple[_Taken, Prefetched]:
        try:
            pool = await self._pool()
            connection = await pool.acquire(timeout=TIMEOUT)
        except FAULTS as exc:
            raise StoreError(f"could not lock conversation {key}: {_why(exc)}") from exc
        self._out += 1
        taken = _Taken(pool, connection)
        try:
            row = await connection.fetchrow(LOCK, LOCK_CONVERSATION, key, timeout=TIMEOUT)
        except BaseException as exc:
            _cut(connection)  # the lock may have been taken after all: never hand it on
            self._let_go(key, taken)
            if isinstance(exc, FAULTS):
                raise StoreError(f"could not lock conversation {key}: {_why(exc)}") from exc
            raise
        if row is None:
            return taken, Prefetched(key, None, None)
        return taken, Prefetched(key, row["conversation"], row["handoff"])

    def _after(self, key: str, taken: _Taken) -> None:
        """The block is over: keep the lock a little, or let it go."""
        spare = POOL_MAX - self._out
        if self._closed or spare < SPARE or _gone(taken.connection):
            self._let_go(key, taken)
            return
        loop = asyncio.get_running_loop()
        taken.expiry = loop.call_later(LINGER, self._expire, key, taken)
        self._kept[key] = taken

    def _expire(self, key: str, taken: _Taken) -> None:
        if self._kept.get(key) is taken:
            del self._kept[key]
            self._let_go(key, taken)

    def _let_go(self, key: str, taken: _Taken) -> None:
        task = asyncio.create_task(self._unlock(key, taken), name="lock-let-go")
        self._letting_go.add(task)
        task.add_done_callback(self._letting_go.discard)

    async def _unlock(self, key: str, taken: _Taken) -> None:
        connection = taken.connection
        try:
            if not _gone(connection):
                await connection.execute(UNLOCK, LOCK_CONVERSATION, key, timeout=TIMEOUT)
        except BaseException as exc:
            _cut(connection)  # the lock may still be held on it: never hand it on
            if not isinstance(exc, FAULTS):
                raise
        finally:
            self._out -= 1
            # (A connection that died was given back by the pool itself.)
            with contextlib.suppress(asyncpg.InterfaceError, *FAULTS):
                await taken.pool.release(connection)


def _gone(connection: asyncpg.Connection) -> bool:
    """Whether the connection closed (one that died is given back by the pool itself)."""
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:
        return True


def _cut(connection: asyncpg.Connection) -> None:
    """Close the connection at once (one that died was given back by the pool already)."""
    with contextlib.suppress(asyncpg.InterfaceError):
        connection.terminate()


def _why(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
