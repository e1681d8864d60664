"""The per-key workers (``adapters.runtime.workers``): closed and opened again, as a leader's
inbox and delivery are on every change of leader."""

from __future__ import annotations

import asyncio

from adapters.runtime.workers import KeyedWorkers


async def test_a_worker_closed_before_it_ran_leaves_nothing_to_wait_for() -> None:
    ran: list[str] = []

    async def drain_once(key: str) -> None:
        ran.append(key)

    workers = KeyedWorkers(drain_once, "test")
    workers.kick("a")  # a task created, not yet run
    await workers.close()
    async with asyncio.timeout(1):
        await workers.drain()  # returns (it once spun forever on the never-run task)
    assert ran == []

    workers.kick("b")  # closed: no kick is taken
    await workers.drain()
    assert ran == []

    workers.open()
    workers.kick("a")
    await workers.drain()
    assert ran == ["a"]


async def test_a_kick_while_running_goes_round_once_more() -> None:
    rounds: list[str] = []
    gate = asyncio.Event()

    async def drain_once(key: str) -> None:
        rounds.append(key)
        if len(rounds) == 1:
            await gate.wait()

    workers = KeyedWorkers(drain_once, "test")
    workers.kick("a")
    await asyncio.sleep(0)
    workers.kick("a")
    workers.kick("a")
    gate.set()
    await workers.drain()
    assert rounds == ["a", "a"]


async def test_a_worker_carries_nothing_of_its_kicker_and_is_known_while_it_runs() -> None:
    """A worker outlives the request (or the lock block) that first kicked it: what they set in
    their context (log fields, what a lock read) must not follow it."""
    import contextvars

    mark: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="none")
    seen: list[str] = []
    go = asyncio.Event()

    async def drain_once(key: str) -> None:
        await go.wait()
        seen.append(mark.get())

    workers = KeyedWorkers(drain_once, "test")
    mark.set("the kicker's")
    workers.kick("a")
    assert workers.known("a") and not workers.known("b")
    go.set()
    await workers.drain()
    assert seen == ["none"]
    assert not workers.known("a")
