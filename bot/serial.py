"""Ordered background work per key: one worker per key runs its jobs one after another.

Used for everything sent into a Teams thread (relays, card refreshes, summaries), so those calls
keep their order without anyone holding a conversation lock while Teams answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[Any]]
_Item = tuple[Job, "asyncio.Future[Any] | None"]


class SerialQueues:
    """Per-key FIFO of jobs, each key drained by its own worker task."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[_Item]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    async def run(self, key: str, job: Job) -> Any:
        """Run ``job`` after the key's earlier jobs and return its result (or raise its error)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(key, (job, future))
        return await future

    def post(self, key: str, job: Job) -> None:
        """Queue ``job`` without waiting; a failure is logged with the key."""
        self._put(key, (job, None))

    def _put(self, key: str, item: _Item) -> None:
        queue = self._queues.setdefault(key, asyncio.Queue())
        queue.put_nowait(item)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key, queue), name=f"serial:{key}")

    async def _work(self, key: str, queue: asyncio.Queue[_Item]) -> None:
        while not queue.empty():
            job, future = queue.get_nowait()
            try:
                result = await job()
            except Exception as exc:
                if future is None:
                    log.error("background job for %s failed: %s", key, exc)
                elif not future.cancelled():
                    future.set_exception(exc)
            else:
                if future is not None and not future.cancelled():
                    future.set_result(result)
        # Nothing awaits between the empty check and here, so no job can slip in unseen.
        del self._workers[key]
        del self._queues[key]

    async def drain(self) -> None:
        """Wait until every queued job has run (shutdown, tests)."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)
