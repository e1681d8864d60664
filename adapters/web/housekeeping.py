"""The service's background jobs: recovery after a restart, the sweeper, and retention; and the
leader's duties, which hold them together with the inbox and Teams delivery."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from adapters.directline.channel import DirectLineChannel
from adapters.directline.inbox import Inbox
from adapters.ops.settings import ServiceSettings
from adapters.runtime.failures import FAILURES
from adapters.runtime.retry import backoff
from adapters.storage.contract import Store
from adapters.teams.delivery import DeliveryQueue
from bot.usecases import HandoffService

log = logging.getLogger(__name__)

LOOK_EVERY = 5.0  # seconds between the leader's looks for work nobody was woken for
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


async def watch(inbox: Inbox, delivery: DeliveryQueue, every: float = LOOK_EVERY) -> None:
    """Wake-ups (kicks in this process, notifications from others) are hints: every ``every``
    seconds the leader looks in the store for work nobody was woken for, and starts it."""
    while True:
        await asyncio.sleep(every)
        try:
            await inbox.look()
            await delivery.look()
        except Exception as exc:  # the store away, say: the next look
            FAILURES.failed(log, exc, "the look for waiting work failed")


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


class LeaderDuties:
    """What the leader does (``adapters.runtime.leadership``): handle the inbox, send into
    Teams, recover what a crash interrupted, and run the sweeper and retention. Started when
    this process is elected, stopped when it steps down, in any process, any number of times."""

    def __init__(
        self,
        *,
        inbox: Inbox,
        delivery: DeliveryQueue,
        recover: Callable[[], Awaitable[None]],
        jobs: dict[str, Callable[[], Coroutine[Any, Any, None]]],
    ) -> None:
        self._inbox = inbox
        self._delivery = delivery
        self._recover = recover
        self._jobs = jobs
        self._tasks: list[asyncio.Task[None]] = []
        self.recovered = asyncio.Event()  # the first recovery after the last start is done

    async def start(self) -> None:
        self.recovered.clear()
        self._inbox.start()
        self._delivery.start()
        jobs: list[tuple[str, Coroutine[Any, Any, None]]] = []
        try:
            for name, job in self._jobs.items():
                jobs.append((name, job()))
        except BaseException:
            for _, begun in jobs:
                begun.close()
            raise
        self._tasks = [
            asyncio.create_task(self._recovery(), name="recovery"),
            *(asyncio.create_task(job, name=name) for name, job in jobs),
        ]

    async def _recovery(self) -> None:
        await retry_until_done(self._recover)
        self.recovered.set()

    def resync(self) -> None:
        """Notifications of other processes' writes may have been lost: look at everything
        (until a look works)."""
        if self._tasks:
            self._tasks = [t for t in self._tasks if not t.done()]
            self._tasks.append(asyncio.create_task(retry_until_done(self._rescan), name="rescan"))

    async def _rescan(self) -> None:
        await self._inbox.resume(careful=False)
        await self._delivery.resume()

    async def stop(self, *, graceful: bool) -> None:
        tasks, self._tasks = self._tasks, []
        if not graceful:  # the lease is lost: stop handling and sending first, at once
            await self._inbox.stop(graceful=False)
            await self._delivery.stop(graceful=False)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._inbox.stop(graceful=graceful)
        await self._delivery.stop(graceful=graceful)
