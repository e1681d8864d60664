"""Teams counts sends by arrival: the delivery queue keeps every window legal where the stand-in
records them, however the network spreads a burst (strict windows, no slack)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from adapters.storage.memory import MemoryStore
from adapters.teams.connector import BotConnector
from adapters.teams.delivery import DeliveryQueue
from tests.support.delivery import FAST_THREAD, connected
from tests.support.servers import serve
from tests.support.standin import Standin, build_standin_app

TENANT = ((10, 0.05),)  # tighter than the threads together: the shared window binds
Windows = tuple[tuple[int, float], ...]


def over_limit(times: list[float], windows: Windows) -> list[str]:
    """Half-open windows [t, t + W) holding more than the limit (``u - t < W``), no slack."""
    times = sorted(times)
    return [
        f"{limit + 1} arrivals within {times[i] - times[i - limit]!r} s"
        for limit, seconds in windows
        for i in range(limit, len(times))
        if times[i] - times[i - limit] < seconds
    ]


@pytest.fixture
async def jittery() -> AsyncIterator[Standin]:
    """The stand-in behind a network that delays each request (0-4 ms) before it arrives and
    each answer (0-2 ms) after: arrivals come in another order and spacing than the sends."""
    rng = random.Random(7)
    state = Standin()
    app = build_standin_app(state)

    @web.middleware
    async def network(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        await asyncio.sleep(rng.uniform(0.0, 0.004))
        response = await handler(request)  # the stand-in records the arrival in here
        await asyncio.sleep(rng.uniform(0.0, 0.002))
        return response

    app.middlewares.append(network)
    runner, state.url = await serve(app)
    yield state
    await runner.cleanup()


def delivery_for(connector: BotConnector) -> DeliveryQueue:
    return DeliveryQueue(
        connector=connector,
        store=MemoryStore(),
        thread_windows=FAST_THREAD,
        tenant_windows=TENANT,
        backoff_base=0.01,
    )


async def test_a_burst_across_threads_is_legal_at_arrival(jittery: Standin) -> None:
    threads = [f"19:arrival{n}@thread.tacv2;messageid=1" for n in range(8)]
    async with connected(jittery) as connector:
        delivery = delivery_for(connector)
        for k in range(25):
            for thread in threads:
                await delivery.post_text(thread_id=thread, text=f"{thread[:10]} {k}")
        await delivery.drain()
    arrivals = [c for c in jittery.calls if c.path.endswith("/activities")]
    assert len(arrivals) == 200
    assert over_limit([c.at for c in arrivals], TENANT) == []
    for thread in threads:
        calls = jittery.posts_to(thread)
        assert [c.body["text"] for c in calls] == [f"{thread[:10]} {k}" for k in range(25)]
        assert over_limit([c.at for c in calls], FAST_THREAD) == []


async def test_a_one_thread_burst_is_legal_at_arrival(jittery: Standin) -> None:
    thread = "19:alone@thread.tacv2;messageid=1"
    async with connected(jittery) as connector:
        delivery = delivery_for(connector)
        for k in range(70):
            await delivery.post_text(thread_id=thread, text=f"m{k}")
        await delivery.drain()
    calls = jittery.posts_to(thread)
    assert [c.body["text"] for c in calls] == [f"m{k}" for k in range(70)]
    assert over_limit([c.at for c in calls], FAST_THREAD) == []


async def test_a_new_thread_counts_its_root_in_its_windows(jittery: Standin) -> None:
    """The root card may count as the thread's first message: the first replies leave room."""
    async with connected(jittery) as connector:
        delivery = delivery_for(connector)
        ref = await delivery.open_thread(
            channel_id="19:support@thread.tacv2", card={"type": "AdaptiveCard"}, text="new"
        )
        for k in range(10):
            await delivery.post_text(thread_id=ref.thread_id, text=f"m{k}")
        await delivery.drain()
    root = jittery.threads[0]
    calls = jittery.posts_to(ref.thread_id)
    assert len(calls) == 10
    assert over_limit([root.at] + [c.at for c in calls], FAST_THREAD) == []
