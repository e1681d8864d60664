"""Waiting for a condition that an asyncio.Event announces (a new activity, a new call)."""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_until(changed: asyncio.Event, predicate: Any, timeout: float = 10.0) -> Any:
    """Re-check ``predicate()`` whenever ``changed`` fires; return its first truthy value."""

    async def loop() -> Any:
        while True:
            value = predicate()
            if value:
                return value
            changed.clear()
            await changed.wait()

    return await asyncio.wait_for(loop(), timeout)
