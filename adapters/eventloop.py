"""The event loop the service runs on: uvloop (libuv) where it is installed, else asyncio's.

uvloop runs the same asyncio code with transports, callbacks and timers in C; on this service
it cuts CPU per relayed message by about a seventh (bench/results.md). ``HANDOFF_EVENT_LOOP``
set to ``asyncio`` keeps the standard loop (for debugging, or where uvloop does not build).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

log = logging.getLogger(__name__)


def new_event_loop(env: Mapping[str, str]) -> asyncio.AbstractEventLoop:
    choice = env.get("HANDOFF_EVENT_LOOP", "uvloop").strip().lower() or "uvloop"
    if choice not in ("uvloop", "asyncio"):
        raise ValueError(f"HANDOFF_EVENT_LOOP must be uvloop or asyncio, not {choice!r}")
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed; running on the standard asyncio loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()
