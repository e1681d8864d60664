"""One leader among the processes that share a store: the one that sends into Teams, handles
the inbox and runs the timers (join timeouts, reminders, retention, recovery after a crash), so
that each of them happens once, in one place, whichever instance a request reached.

A store of one process (memory, SQLite) needs no election: ``Solo`` leads from the start. A
store several processes share elects one (``adapters.storage.postgres.lease``). The leader is
fenced: ``leading`` turns false on its own clock before any other process may take over, so an
old leader that was paused (or cut off) and wakes up checks it before each send and handling
and stops, instead of acting beside its successor.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from bot.errors import StoreError


class DeposedError(StoreError):
    """This process no longer leads: what it was doing is left to the next leader, as after a
    failed commit (an activity is handled again, a handoff without a thread is opened by the
    next leader's recovery)."""


class Duties(Protocol):
    """What the leader does: started on election, stopped when it steps down."""

    async def start(self) -> None:
        """Begin (quickly: long work goes in tasks of its own)."""

    async def stop(self, *, graceful: bool) -> None:
        """Stop everything begun, and return once it has stopped. ``graceful`` (stepping down,
        not losing the lease): what is under way may finish first, so nothing is done twice."""


class Leadership(Protocol):
    @property
    def leading(self) -> bool:
        """Whether this process leads now (checked before each send into Teams and each
        handling: false as soon as the lease may have run out, by this process's clock)."""

    async def campaign(self, duties: Duties) -> None:
        """Until cancelled: lead whenever it can (``duties.start``), step down whenever it must
        (``duties.stop``, then stand again). Cancelled: steps down and lets go at once, so that
        another process takes over without waiting for the lease to run out."""


class Solo:
    """The only process on its store: it leads from the start, and until it stops."""

    def __init__(self) -> None:
        self._leading = False

    @property
    def leading(self) -> bool:
        return self._leading

    async def campaign(self, duties: Duties) -> None:
        self._leading = True
        try:
            await duties.start()
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            self._leading = False
            await duties.stop(graceful=True)
