"""Cleanup contexts: one per long-lived resource, each closing only what it opened.

aiohttp enters an app's cleanup contexts in the order they were added and, at cleanup, exits
the ones that entered in reverse: also when a later one failed to start (once the runner is
cleaned up, as ``adapters.web.server.start`` does), and an exit that raises does not stop the
ones after it (the errors are raised once all have run).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def closing(close: Callable[[], Awaitable[None]]) -> CleanupContext:
    """A resource open before the app starts: nothing to start, ``close`` at cleanup."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        yield
        await close()

    return context


def running(
    name: str, job: Callable[[], Coroutine[Any, Any, None]], *, first_wait: float = 0.0
) -> CleanupContext:
    """A background task for the app's lifetime: the start waits up to ``first_wait`` seconds
    for it; cleanup cancels it and waits until it has stopped."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(job(), name=name)
        try:
            if first_wait:
                await asyncio.wait([task], timeout=first_wait)
            yield
        finally:
            task.cancel()
            # Stopped, not just told to: nothing it does may reach a resource closed after it.
            await asyncio.wait([task])

    return context


def on_signal(signum: signal.Signals, handler: Callable[[], object]) -> CleanupContext:
    """A signal handler for the app's lifetime (none where the loop cannot have one)."""

    async def context(_app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, handler)
        yield
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signum)

    return context
