"""One worker task per key (a conversation, a thread) that drains that key's durable queue.

``kick(key)`` after writing work to the store: it starts the key's worker, or, if one is
running, makes it go round once more so nothing written meanwhile is left behind. So a round
need not read the store again to learn that it is empty: what was written after its read came
with a kick.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class KeyedWorkers:
    """``drain_once(key)`` handles what the store holds for the key when it reads, then returns."""

    def __init__(self, drain_once: Callable[[str], Awaitable[None]], name: str) -> None:
        self._drain_once = drain_once
        self._name = name
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    def kick(self, key: str) -> None:
        if key in self._running:
            self._again.add(key)
            return
        self._running[key] = asyncio.create_task(self._run(key), name=f"{self._name}:{key}")

    async def _run(self, key: str) -> None:
        try:
            while True:
                self._again.discard(key)
                await self._drain_once(key)
                if key not in self._again:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            # The work stays in the store: the next kick or restart resumes it.
            log.exception("%s worker for %s stopped", self._name, key)
        finally:
            del self._running[key]

    async def drain(self) -> None:
        """Wait until every worker has finished (tests, benchmarks, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        """Stop now; unfinished work stays in the store for the next start."""
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)
