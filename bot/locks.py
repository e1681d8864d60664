"""Per-key asyncio locks, so events for one conversation or thread are handled in order.

Every relayed message takes one or two of these, so they are built for the common case, a key
nobody else holds: no ``asyncio.Lock`` and no generator-based context manager per use, just an
entry in a dict. Waiters queue first come, first served, and the lock is handed straight to the
next one on release (nobody can barge in between).
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Locks(Protocol):
    """Per-key locks, as the use cases take them (``KeyedLocks`` in one process; a store that
    several processes share provides ones that hold across them)."""

    def hold(self, key: str) -> AbstractAsyncContextManager[None]:
        """``async with locks.hold(key):`` holds the key's lock for the block."""


class _Entry:
    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: deque[asyncio.Future[None]] = deque()


class KeyedLocks:
    """A lock per key, held while its entry exists; the entry goes with the last holder."""

    def __init__(self) -> None:
        self._held: dict[str, _Entry] = {}

    def hold(self, key: str) -> _Hold:
        """``async with locks.hold(key):`` holds the key's lock for the block."""
        return _Hold(self, key)

    def held(self, key: str) -> bool:
        """Whether someone holds the key's lock now."""
        return key in self._held

    async def _acquire(self, key: str) -> None:
        entry = self._held.get(key)
        if entry is None:
            self._held[key] = _Entry()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry.waiters.append(waiter)
        try:
            await waiter  # resolved by the release that hands the lock over
        except BaseException:  # cancelled, or torn down
            if waiter.done() and not waiter.cancelled():
                self._release(key)  # handed over, but cancelled before it ran: pass it on
            else:
                try:
                    entry.waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    def _release(self, key: str) -> None:
        entry = self._held[key]
        while entry.waiters:
            waiter = entry.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the key stays held, now by the waiter
                return
        del self._held[key]


class _Hold:
    __slots__ = ("_locks", "_key")

    def __init__(self, locks: KeyedLocks, key: str) -> None:
        self._locks = locks
        self._key = key

    async def __aenter__(self) -> None:
        await self._locks._acquire(self._key)

    async def __aexit__(self, *_exc: object) -> None:
        self._locks._release(self._key)
