"""The store's own pool of connections: taken and given back with no task, timer or round trip
of their own, since every statement the service runs takes one (asyncpg's pool spends a task
on each acquire with a timeout and on each release, which cost about as much as a statement's
own client side).

A connection given back in a transaction, closed, or from before ``expire()`` is closed
instead of kept. Callers waiting for one are served first come, first served; one that waits
longer than it may gets ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class Pool:
    """At most ``max_size`` connections, opened when needed (none kept open while idle ones
    suffice), the last given back taken first."""

    def __init__(self, connect: Connect, max_size: int) -> None:
        self._connect = connect
        self._max = max_size
        self._idle: list[asyncpg.Connection] = []
        self._out: dict[asyncpg.Connection, int] = {}  # taken -> the generation it was born in
        self._born: dict[asyncpg.Connection, int] = {}  # idle -> its generation
        self._opening = 0
        self._generation = 0
        # Waiters get a connection, or None: a place freed up, so they open one themselves.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._closed = False

    @contextlib.asynccontextmanager
    async def acquired(self, wait: float) -> AsyncIterator[asyncpg.Connection]:
        connection = await self.acquire(wait)
        try:
            yield connection
        finally:
            self.release(connection)

    async def acquire(self, wait: float) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the pool is closed")
        while self._idle:
            connection = self._idle.pop()
            generation = self._born.pop(connection)
            if not connection.is_closed():
                self._out[connection] = generation
                return connection
        if self._size() >= self._max:
            waiter: asyncio.Future[asyncpg.Connection | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(wait):
                    given = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._pass_on(waiter.result())  # served, but gone: serve the next one
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
            if given is not None:
                return given
        return await self._open(wait)

    def release(self, connection: asyncpg.Connection) -> None:
        generation = self._out.pop(connection, None)
        if generation is None:
            return  # not ours, or given back already
        if (
            self._closed
            or generation != self._generation
            or connection.is_closed()
            or connection.is_in_transaction()
        ):
            connection.terminate()
            self._pass_on(None)
            return
        self._pass_on(connection, generation)

    def expire(self) -> None:
        """Every connection open now is closed: idle ones at once, taken ones when given back
        (after a connection died unseen, the others may be as dead)."""
        self._generation += 1
        idle, self._idle = self._idle, []
        self._born.clear()
        for connection in idle:
            connection.terminate()

    async def close(self, wait: float) -> None:
        """Close the idle connections, wait up to ``wait`` seconds for the taken ones, then cut
        them."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the pool is closed"))
        self._waiters.clear()
        idle, self._idle = self._idle, []
        self._born.clear()
        await asyncio.gather(*(c.close(timeout=wait) for c in idle), return_exceptions=True)
        for _ in range(int(wait / 0.05)):
            if not self._out:
                break
            await asyncio.sleep(0.05)
        self.terminate()

    def terminate(self) -> None:
        self._closed = True
        for connection in [*self._idle, *self._out]:
            connection.terminate()
        self._idle.clear()
        self._born.clear()
        self._out.clear()

    def _size(self) -> int:
        return len(self._idle) + len(self._out) + self._opening

    async def _open(self, wait: float) -> asyncpg.Connection:
        self._opening += 1
        try:
            connection = await asyncio.wait_for(self._connect(), wait)
        except BaseException:
            self._opening -= 1
            self._pass_on(None)  # the place is free again
            raise
        self._opening -= 1
        self._out[connection] = self._generation
        return connection

    def _pass_on(self, connection: asyncpg.Connection | None, generation: int = 0) -> None:
        """A connection (or, None, a place for one) is free: the first waiter gets it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if connection is not None:
                    self._out[connection] = generation
                waiter.set_result(connection)
                return
        if connection is not None:
            self._idle.append(connection)
            self._born[connection] = generation
