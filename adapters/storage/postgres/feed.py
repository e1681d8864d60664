"""Appends committed by any instance, as they commit (``contract.ActivityFeed``), and posts
queued for Teams threads: LISTEN on one connection of its own per store, apart from the pool.

Every append notifies ``CHANNEL`` in its own transaction (``statements.APPEND``), so a notification
is sent once, on commit, and never for a row rolled back. Each is signed with the appending
store's origin: a store's own are passed over, since its process knows what it appended (and
the notification may well arrive before the append's own answer). Notifications are hints: none is
queued for a listener that is not connected, so after every (re)connect, once listening, the
follower is told to re-read the table (``on_resync``). A commit either comes after LISTEN (and
is notified) or before it (and is read by the resync): nothing is lost in between.

The connection is watched (the server closing it, or a ping unanswered, for a network cut
nobody saw) and reopened by itself, with backoff while the server is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from adapters.runtime.retry import backoff
from adapters.storage.postgres.connection import FAULTS

log = logging.getLogger(__name__)

CHANNEL = "handoff_activities"  # payload: "<origin> <conversation id>:<seq>"
OUTBOX = "handoff_outbox"  # payload: "<origin> <thread id>" (of a post queued)
APPLICATION_NAME = "handoff-listener"  # shown in pg_stat_activity
PING_SECONDS = 5.0  # a listening connection that stays silent is asked this often if it lives
RECONNECT_FIRST, RECONNECT_MAX = 0.05, 2.0  # seconds before reconnecting, doubling


Connect = Callable[[], Awaitable[asyncpg.Connection]]


def signed(text: str) -> tuple[str, str]:
    """``(origin, the rest)`` of a payload (origins are hex; ids may hold spaces)."""
    origin, _, rest = text.partition(" ")
    return origin, rest


def parsed(text: str) -> tuple[str, int] | None:
    """``(conversation id, seq)`` from a payload without its origin (ids may hold colons)."""
    cid, _, seq = text.rpartition(":")
    return (cid, int(seq)) if cid and seq.isdigit() else None


class Listener:
    """One store's listening connection, and the task that keeps it open while followed."""

    def __init__(self, connect: Connect, where: str, origin: str = "") -> None:
        self._connect = connect
        self._where = where
        self._origin = origin  # what this store signs its own notifications with
        self._task: asyncio.Task[None] | None = None
        self._listened = False  # the last connection got as far as LISTEN

    def follow(
        self,
        *,
        on_append: Callable[[str, int], None],
        on_resync: Callable[[], None],
        on_queued: Callable[[str], None] | None = None,
    ) -> None:
        if self._task is not None and not self._task.done():
            raise RuntimeError("the store's activity feed is followed already")
        self._task = asyncio.create_task(
            self._listen(on_append, on_resync, on_queued), name="pg-listen"
        )

    async def unfollow(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(
        self,
        on_append: Callable[[str, int], None],
        on_resync: Callable[[], None],
        on_queued: Callable[[str], None] | None,
    ) -> None:
        def notified(_connection: Any, _pid: int, channel: str, text: str) -> None:
            origin, text = signed(text)
            if origin == self._origin:
                return  # this store's own: its process knows
            if channel == OUTBOX:
                if on_queued is not None:
                    on_queued(text)
                return
            row = parsed(text)
            if row is None:
                log.warning("PostgreSQL store: unreadable notification %r ignored", text[:100])
                return
            on_append(*row)

        failures = 0
        while True:
            if failures:
                await asyncio.sleep(backoff(failures, RECONNECT_FIRST, RECONNECT_MAX))
            try:
                connection = await self._connect()
            except FAULTS as exc:
                failures += 1
                if failures == 1:
                    log.warning(
                        "PostgreSQL store at %s: cannot listen for other instances' activities"
                        " (%s); retrying",
                        self._where,
                        " ".join(str(exc).split()) or type(exc).__name__,
                    )
                continue
            self._listened = False
            try:
                await self._follow_on(connection, notified, on_resync)
            except FAULTS as exc:
                log.warning(
                    "PostgreSQL store at %s: the listening connection was lost (%s); reconnecting",
                    self._where,
                    " ".join(str(exc).split()) or type(exc).__name__,
                )
            finally:
                connection.terminate()
            # The next connect waits a little (the server may be going away), longer each time
            # a connection is lost before it listens.
            failures = 1 if self._listened else failures + 1

    async def _follow_on(
        self,
        connection: asyncpg.Connection,
        notified: Callable[[Any, int, str, str], None],
        on_resync: Callable[[], None],
    ) -> None:
        """Listen on ``connection`` until it is lost (raises)."""
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def closed(_connection: Any) -> None:
            if not lost.done():
                lost.set_result(None)

        connection.add_termination_listener(closed)
        await connection.add_listener(CHANNEL, notified)
        await connection.add_listener(OUTBOX, notified)
        self._listened = True
        log.info("PostgreSQL store at %s: listening for appended activities", self._where)
        # Listening now: what commits from here on is notified; what committed before (while
        # nobody listened) is found by re-reading.
        on_resync()
        while True:
            done, _ = await asyncio.wait([lost], timeout=PING_SECONDS)
            if done:
                raise ConnectionError("closed by the server")
            await connection.execute("SELECT 1", timeout=PING_SECONDS)
