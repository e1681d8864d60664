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
