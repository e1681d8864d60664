"""``DeliveryQueue.backlog``: what a thread's queue holds, from memory, through deliveries,
refusals, a gone thread, a restart and failed commits; always what the store holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.storage.memory import MemoryStore
from adapters.storage.sqlite import SqliteStore
from adapters.teams.connector import BotConnector
from adapters.teams.delivery import DeliveryQueue
from adapters.teams.text import MAX_TEXT_BYTES
from bot.errors import StoreError
from tests.support.delivery import THREAD, delivered, queue
from tests.support.processes import eventually
from tests.support.standin import Standin

OTHER = "19:other@thread.tacv2;messageid=7"


async def stored(store: MemoryStore | SqliteStore, thread_id: str) -> int:
    return len(await store.outbound(thread_id=thread_id, limit=1_000_000))


def hold(standin: Standin) -> asyncio.Event:
    """Keep the next post in flight until the returned event is set."""
    standin.gate, standin.hold_path = asyncio.Event(), "/activities"
    return standin.gate


async def test_counts_every_item_until_it_is_delivered(
    standin: Standin, connector: BotConnector
) -> None:
    store = MemoryStore()
    delivery = queue(connector, store)
    assert delivery.backlog(THREAD) == 0
    gate = hold(standin)
    await delivery.post_message(thread_id=THREAD, author="Jane", text="first")
    await standin.wait_for(lambda: standin.posts_to(THREAD))  # in flight: still not delivered
    for text in ("second", "third"):
        await delivery.post_message(thread_id=THREAD, author="Jane", text=text)
    long = "\n".join(f"Line {n}: " + "words " * 40 for n in range(400))
    await delivery.post_message(thread_id=THREAD, author="Jane", text=long)  # several parts
    await delivery.update_card(thread_id=THREAD, activity_id="1", card={"state": "joined"})
    await delivery.post_text(thread_id=OTHER, text="elsewhere")
    assert delivery.backlog(THREAD) == await stored(store, THREAD) > 4 + len(long) // MAX_TEXT_BYTES
    assert delivery.backlog(OTHER) == 1
    gate.set()
    await delivery.drain()
    assert delivery.backlog(THREAD) == delivery.backlog(OTHER) == 0
    assert len(delivered(standin)) > 3  # folded: fewer posts than items, all counted down


async def test_kept_while_teams_refuses_dropped_when_refused_for_good(
    standin: Standin, connector: BotConnector
) -> None:
    standin.failures = [(503, {})] * 3 + [(400, {})]
    delivery = queue(connector)
    await delivery.post_text(thread_id=THREAD, text="Teams will not take this one")
    await delivery.post_text(thread_id=THREAD, text="but this one")
    await standin.wait_for(lambda: len(standin.refused) >= 2)
    assert delivery.backlog(THREAD) == 2  # retried, not delivered: still queued
    await delivery.drain()
    assert delivery.backlog(THREAD) == 0
    assert delivered(standin) == ["but this one"]


async def test_zero_once_the_thread_is_gone_and_counts_again_after(
    standin: Standin, connector: BotConnector
) -> None:
    store = MemoryStore()
    delivery = queue(connector, store)
    standin.failures = [(404, {})]
    for n in range(3):
        await delivery.post_text(thread_id=THREAD, text=f"lost {n}")
    await delivery.drain()
    assert delivery.backlog(THREAD) == 0 == await stored(store, THREAD)
    gate = hold(standin)
    await delivery.post_text(thread_id=THREAD, text="a new try")
    assert delivery.backlog(THREAD) == 1
    gate.set()
    await delivery.drain()
    assert delivery.backlog(THREAD) == 0


async def test_right_after_resume_from_a_store_holding_queued_rows(
    standin: Standin, connector: BotConnector, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "q.db")
    standin.failures = [(503, {})] * 10_000  # Teams is down while we queue...
    first = queue(connector, store)
    for n in range(120):  # more than one read's worth
        await first.post_text(thread_id=THREAD, text=f"m{n}")
    for n in range(3):
        await first.post_message(thread_id=OTHER, author="Jane", text=f"o{n}")
    await store.flush()
    await first.close()  # ...and the process stops with all of it queued.
    await store.close()

    standin.failures = []
    store = SqliteStore(tmp_path / "q.db")
    second = queue(connector, store)
    gate = hold(standin)
    assert second.backlog(THREAD) == 0  # nothing known before resume()
    await second.resume()
    assert (second.backlog(THREAD), second.backlog(OTHER)) == (120, 3)
    await standin.wait_for(lambda: standin.posts_to(THREAD) and standin.posts_to(OTHER))
    assert (second.backlog(THREAD), second.backlog(OTHER)) == (120, 3)  # in flight: not yet
    gate.set()
    await second.drain()
    assert (second.backlog(THREAD), second.backlog(OTHER)) == (0, 0)
    assert await store.outbound_threads() == []
    await store.close()


async def test_a_lost_enqueue_is_not_counted_once_the_commit_failed(
    standin: Standin, connector: BotConnector, tmp_path: Path
) -> None:
    from tests.support.faults import full_disk

    store = SqliteStore(tmp_path / "m.db")
    delivery = queue(connector, store)
    real = store._db
    gate = hold(standin)
    try:
        await delivery.post_text(thread_id=THREAD, text="first")
        await store.flush()
        await standin.wait_for(lambda: standin.posts_to(THREAD))  # held in flight
        store._db = full_disk(real)  # type: ignore[assignment]
        await delivery.post_text(thread_id=THREAD, text="lost")
        await delivery.post_text(thread_id=OTHER, text="lost too")
        assert (delivery.backlog(THREAD), delivery.backlog(OTHER)) == (2, 1)
        with pytest.raises(StoreError):
            await store.flush()
        store._db = real
        # Counted again from the store, in the background, while "first" is still in flight.
        await eventually(lambda: (delivery.backlog(THREAD), delivery.backlog(OTHER)) == (1, 0))
        assert await stored(store, THREAD) == 1
        gate.set()
        await delivery.drain()
        assert delivery.backlog(THREAD) == 0
        assert delivered(standin) == ["first"]
    finally:
        store._db = real
        gate.set()
        await delivery.close()
        await store.close()


async def test_a_drop_taken_back_by_a_failed_commit_is_counted_again(
    standin: Standin, connector: BotConnector, tmp_path: Path
) -> None:
    """x1 was delivered but its drop was rolled back: it is queued again (and sent again)."""
    from tests.support.faults import full_disk

    store = SqliteStore(tmp_path / "w.db")
    delivery = queue(connector, store)
    real = store._db
    gate = hold(standin)
    try:
        for text in ("x1", "x2", "x3"):
            await delivery.post_text(thread_id=THREAD, text=text)
        await store.flush()
        await standin.wait_for(lambda: standin.posts_to(THREAD))  # x1 in flight
        store._db = full_disk(real)  # type: ignore[assignment]
        again = asyncio.Event()
        standin.gate = again  # x1 is answered; what comes next is held
        gate.set()
        await eventually(lambda: store.failed_commits > 0)
        store._db = real
        await eventually(lambda: delivery.backlog(THREAD) == 3)
        assert await stored(store, THREAD) == 3
        again.set()
        await delivery.drain()
        assert delivery.backlog(THREAD) == 0 == await stored(store, THREAD)
    finally:
        store._db = real
        gate.set()
        await delivery.close()
        await store.close()


def test_backlog_reads_no_store(connector: BotConnector) -> None:
    """Called on every visitor post: memory only (a store that cannot be read is not read)."""

    class Unreadable(MemoryStore):
        async def outbound(self, *, thread_id: str, limit: int = 50) -> list[object]:  # type: ignore[override]
            raise AssertionError("read on the hot path")

    delivery = DeliveryQueue(connector=connector, store=Unreadable())
    assert delivery.backlog(THREAD) == 0
