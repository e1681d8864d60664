"""One worker task per key (a conversation, a thread) that drains that key's durable queue.

``kick(key)`` after writing work to the store: it starts the key's worker, or, if one is
running, makes it go round once more so nothing written meanwhile is left behind. So a round
need not read the store again to learn that it is empty: what was written after its read came
with a kick.

Each worker runs in a context of its own, not its kicker's: a worker outlives the request or
the lock block that first kicked it, and must not carry what they had set (log fields, what a
lock read).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable

from adapters.runtime.failures import FAILURES
from adapters.runtime.retry import backoff

log = logging.getLogger(__name__)

RETRY_FIRST = 1.0  # seconds before a failed worker goes round again, doubling while it fails
RETRY_MAX = 60.0


class KeyedWorkers:
    """``drain_once(key)`` handles what the store holds for the key when it reads, then returns."""

    def __init__(self, drain_once: Callable[[str], Awaitable[None]], name: str) -> None:
        self._drain_once = drain_once
        self._name = name
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._failures: dict[str, int] = {}  # key -> failed rounds in a row
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._closed = False

    def kick(self, key: str) -> None:
        if self._closed:
            return
        if key in self._running:
            self._again.add(key)
            return
        retry = self._retries.pop(key, None)
        if retry is not None:
            retry.cancel()
        self._running[key] = asyncio.create_task(
            self._run(key), name=f"{self._name}:{key}", context=contextvars.Context()
        )

    async def _run(self, key: str) -> None:
        try:
            while True:
                self._again.discard(key)
                await self._drain_once(key)
                self._failures.pop(key, None)
                if key not in self._again:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The work stays in the store (a failed commit, say): go round again after a
            # while, sooner if new work comes or the store recovers, rather than leave it for a
            # restart.
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            delay = backoff(failures, RETRY_FIRST, RETRY_MAX)
            FAILURES.failed(
                log, exc, "%s worker for %s failed; again in %.0f s", self._name, key, delay
            )
            self._retries[key] = asyncio.get_running_loop().call_later(delay, self._retry, key)
        finally:
            del self._running[key]

    def known(self, key: str) -> bool:
        """Whether the key has a worker: running, or waiting to retry after a failure."""
        return key in self._running or key in self._retries

    def _retry(self, key: str) -> None:
        self._retries.pop(key, None)
        self.kick(key)

    def retry_now(self) -> None:
        """What failed (the store, say) works again: every worker waiting to retry goes now."""
        for key in list(self._retries):
            self.kick(key)

    async def drain(self) -> None:
        """Wait until every worker has finished (tests, benchmarks, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)
            # A task cancelled before it ever ran never reached its own clean-up.
            for key, task in list(self._running.items()):
                if task.done():
                    del self._running[key]

    def open(self) -> None:
        """Take kicks again after ``close``."""
        self._closed = False

    async def close(self) -> None:
        """Stop now; unfinished work stays in the store for the next start (or ``open``)."""
        self._closed = True
        for retry in self._retries.values():
            retry.cancel()
        self._retries.clear()
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)
        self._running.clear()  # (one cancelled before it ran never removed itself)
        self._again.clear()
