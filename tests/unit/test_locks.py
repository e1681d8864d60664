"""Keyed locks: one holder per key, first come first served, cancellation-safe, no leftovers."""

from __future__ import annotations

import asyncio

import pytest

from bot.locks import KeyedLocks


async def test_one_holder_per_key_in_arrival_order() -> None:
    locks = KeyedLocks()
    inside = 0
    order: list[int] = []

    async def worker(n: int) -> None:
        nonlocal inside
        async with locks.hold("k"):
            inside += 1
            assert inside == 1
            order.append(n)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(worker(n) for n in range(20)))
    assert order == list(range(20))
    assert not locks.held("k")


async def test_other_keys_do_not_wait() -> None:
    locks = KeyedLocks()
    async with locks.hold("a"):
        await asyncio.wait_for(_enter(locks, "b"), timeout=1)
        assert locks.held("a")
    assert not locks.held("a") and not locks.held("b")


async def _enter(
    locks: KeyedLocks, key: str, entered: list[str] | None = None, name: str = ""
) -> None:
    async with locks.hold(key):
        if entered is not None:
            entered.append(name)


async def test_an_error_in_the_block_releases_the_key() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("k"):
            raise RuntimeError("boom")
    assert not locks.held("k")
    await asyncio.wait_for(_enter(locks, "k"), timeout=1)


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    locks = KeyedLocks()
    entered: list[str] = []
    async with locks.hold("k"):
        first = asyncio.create_task(_enter(locks, "k", entered, "first"))
        second = asyncio.create_task(_enter(locks, "k", entered, "second"))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
    await asyncio.wait_for(second, timeout=1)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert entered == ["second"]
    assert not locks.held("k")


async def test_a_waiter_cancelled_after_the_handover_passes_the_lock_on() -> None:
    locks = KeyedLocks()
    entered: list[str] = []
    holder = locks.hold("k")
    await holder.__aenter__()
    first = asyncio.create_task(_enter(locks, "k", entered, "first"))
    second = asyncio.create_task(_enter(locks, "k", entered, "second"))
    await asyncio.sleep(0)
    await holder.__aexit__(None, None, None)  # hands the key to "first"...
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.wait_for(second, timeout=1)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert entered == ["second"]
    assert not locks.held("k")
