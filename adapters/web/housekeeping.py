"""The service's background jobs: recovery after a restart, the sweeper, and retention."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from adapters.directline.channel import DirectLineChannel
from adapters.ops.settings import ServiceSettings
from adapters.runtime.failures import FAILURES
from adapters.runtime.retry import backoff
from adapters.storage.contract import Store
from bot.usecases import HandoffService

log = logging.getLogger(__name__)

PURGE_PAUSE = 0.01  # seconds between retention steps, for live traffic
FIRST_RETENTION_PASS = 60.0  # seconds after start
# Teams redelivers an activity within minutes when a turn failed; its key is kept this long.
DELIVERY_KEYS_KEPT = timedelta(days=1)


async def retry_until_done(job: Callable[[], Awaitable[None]], first_retry: float = 1.0) -> None:
    """Run ``job`` until it succeeds once: a store fault at start must neither keep the
    service down nor leave what a crash interrupted for the next restart."""
    for attempt in itertools.count(1):
        try:
            await job()
            return
        except Exception as exc:
            delay = backoff(attempt, first_retry)
            FAILURES.failed(log, exc, "recovery after the restart failed; again in %.0f s", delay)
        await asyncio.sleep(delay)


async def sweep(
    service: HandoffService[ServiceSettings], clock: Callable[[], datetime], every: float
) -> None:
    """Join timeouts and inactivity: checked every ``every`` seconds."""
    while True:
        await asyncio.sleep(every)
        try:
            await service.sweep(now=clock())
        except Exception as exc:  # the sweeper must outlive any one bad handoff
            FAILURES.failed(log, exc, "sweep failed")


async def retain(
    service: HandoffService[ServiceSettings],
    store: Store,
    directline: DirectLineChannel,
    clock: Callable[[], datetime],
    every: float,
) -> None:
    """Retention (``storage.retention_days``, read at each pass so a reload applies): a first
    pass soon after start, then one every ``every`` seconds."""
    told: object = ...
    delay = min(every, FIRST_RETENTION_PASS)
    while True:
        await asyncio.sleep(delay)
        delay = every
        days = service.settings.storage.retention_days
        if days != told:
            told = days
            if days is None:
                log.info("retention off: conversations are kept (storage.retention_days)")
            else:
                log.info(
                    "retention: conversations idle for %d days are deleted"
                    " (storage.retention_days)",
                    days,
                )
        try:
            old_keys = functools.partial(
                store.forget_deliveries, before=clock() - DELIVERY_KEYS_KEPT
            )
            await _in_steps(store, old_keys)
            if days is not None:
                await purge_idle(store, directline, before=clock() - timedelta(days=days))
        except Exception as exc:  # the next pass tries again; nothing is deleted half-way
            FAILURES.failed(log, exc, "retention pass failed")


async def _in_steps(store: Store, step: Callable[[], Awaitable[bool]]) -> None:
    """Run a store's step until it says it is done, committing each, live traffic between."""
    while True:
        done = await step()
        await store.flush()
        if done:
            return
        await asyncio.sleep(PURGE_PAUSE)


async def purge_idle(store: Store, directline: DirectLineChannel, *, before: datetime) -> int:
    """Delete every conversation idle since before ``before`` that no widget has open, in
    small steps with live traffic in between; returns how many."""
    total = 0

    async def step() -> bool:
        nonlocal total
        purged, done = await store.purge(before=before, keep=directline.connected())
        directline.forget(purged)
        total += len(purged)
        return done

    await _in_steps(store, step)
    if total:
        log.info(
            "retention: deleted %d conversation(s) idle since before %s",
            total,
            before.isoformat(timespec="seconds"),
        )
    return total
