"""The leader among instances on one database (``adapters.storage.postgres.lease``), with short
timings: one leads at a time, a stop or a lost session hands over within a poll, a hung leader
is cut off after its lease ran out by its own clock (the fence), and a database restart
elects again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from adapters.storage.postgres import PostgresStore
from adapters.storage.postgres.lease import Lease
from tests.support.postgres import Cluster

TIMINGS = {"poll": 0.05, "beat": 0.1, "lease": 0.6, "takeover": 1.0}


class Instance:
    """One campaigning process's lease and duties, recording what it did."""

    def __init__(self, name: str, store: PostgresStore, events: list[tuple[str, str]]) -> None:
        self.name = name
        self.lease: Lease = store.leadership(name)
        for key, value in TIMINGS.items():
            setattr(self.lease, f"_{key}", value)
        self._events = events
        self.others: list[Instance] = []
        self.overlaps: list[str] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # The fence: whoever led before has stopped leading by its own clock already.
        self.overlaps += [o.name for o in self.others if o.lease.leading]
        self._events.append(("start", self.name))

    async def stop(self, *, graceful: bool) -> None:
        self._events.append(("stop" if graceful else "lost", self.name))

    def campaign(self) -> None:
        self.task = asyncio.create_task(self.lease.campaign(self))

    async def resign(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def three(postgres_url: str) -> AsyncIterator[tuple[list[Instance], list[tuple[str, str]]]]:
    events: list[tuple[str, str]] = []
    stores = [await PostgresStore.open(postgres_url) for _ in range(3)]
    instances = [Instance(f"i{n}", store, events) for n, store in enumerate(stores)]
    for instance in instances:
        instance.others = [o for o in instances if o is not instance]
        instance.campaign()
    yield instances, events
    for instance in instances:
        if instance.task is not None and not instance.task.done():
            await instance.resign()
    for store in stores:
        await store.close()


async def _until(check: Callable[[], Any], timeout: float = 10.0) -> float:
    """Seconds until ``check()`` holds."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, "timed out"
        await asyncio.sleep(0.01)
    return time.monotonic() - began


def _leaders(instances: list[Instance]) -> list[Instance]:
    return [i for i in instances if i.lease.leading]


async def test_one_leads_and_a_graceful_stop_hands_over_within_a_poll(
    three: tuple[list[Instance], list[tuple[str, str]]],
) -> None:
    instances, events = three
    await _until(lambda: len(_leaders(instances)) == 1)
    first = _leaders(instances)[0]
    await asyncio.sleep(0.3)  # beats go on; nobody else starts
    assert events == [("start", first.name)]

    await first.resign()
    handover = await _until(lambda: len(_leaders(instances)) == 1)
    second = _leaders(instances)[0]
    assert second is not first and handover < 1.0
    assert events == [("start", first.name), ("stop", first.name), ("start", second.name)]
    assert second.lease.epoch == first.lease.epoch + 1
    assert all(not i.overlaps for i in instances)


async def test_a_lost_session_steps_the_leader_down_and_another_takes_over(
    three: tuple[list[Instance], list[tuple[str, str]]], postgres_url: str
) -> None:
    """What a crashed leader's process leaves: its session ended by the server."""
    instances, events = three
    await _until(lambda: len(_leaders(instances)) == 1)
    first = _leaders(instances)[0]
    await _terminate(postgres_url, first.name)
    await _until(lambda: ("lost", first.name) in events)
    took = await _until(lambda: any(e == "start" and n != first.name for e, n in events))
    assert took < 1.0
    assert all(not i.overlaps for i in instances)


async def test_a_hung_leader_is_cut_off_after_its_own_lease_ran_out(
    three: tuple[list[Instance], list[tuple[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leader that stops beating but keeps its session (paused, stalled): a standby waits
    ``takeover``, by which time the old leader's lease has run out by its own clock, then ends
    its session and leads. The old one, woken, finds it lost (and does not start again)."""
    instances, events = three
    await _until(lambda: len(_leaders(instances)) == 1)
    hung = _leaders(instances)[0]
    woken = asyncio.Event()
    real = Lease._heartbeat

    async def stalled(self: Lease, connection: asyncpg.Connection) -> None:
        if self is hung.lease:
            await woken.wait()
        await real(self, connection)

    monkeypatch.setattr(Lease, "_heartbeat", stalled)
    began = time.monotonic()
    await _until(lambda: not hung.lease.leading)
    assert time.monotonic() - began < TIMINGS["lease"] + 0.2
    await _until(lambda: any(e == "start" and n != hung.name for e, n in events))
    assert time.monotonic() - began >= TIMINGS["takeover"]
    woken.set()
    await _until(lambda: ("lost", hung.name) in events)
    await asyncio.sleep(0.3)
    assert [e for e in events if e[0] == "start"][:2] == [
        ("start", hung.name),
        ("start", next(n for e, n in events[1:] if e == "start")),
    ]
    assert len(_leaders(instances)) == 1 and _leaders(instances)[0] is not hung
    assert all(not i.overlaps for i in instances)


async def test_a_leader_cut_off_unheard_is_waited_out_before_another_starts(
    three: tuple[list[Instance], list[tuple[str, str]]],
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server ends the leader's session, and the leader may hear nothing (a partition) and
    believe in its lease until it runs out: the next leader takes the lock at once, yet starts
    only once that lease has run out (no two lead at once)."""
    instances, events = three
    await _until(lambda: len(_leaders(instances)) == 1)
    deaf = _leaders(instances)[0]
    real = Lease._heartbeat

    async def unanswered(self: Lease, connection: asyncpg.Connection) -> None:
        if self is deaf.lease:
            await asyncio.get_running_loop().create_future()  # its beats go nowhere
        await real(self, connection)

    monkeypatch.setattr(Lease, "_heartbeat", unanswered)
    silent_since = time.monotonic()  # its last beat was at most a beat before
    connection: asyncpg.Connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM leases WHERE holder = $1", deaf.name
        )
    finally:
        await connection.close()
    await _until(lambda: any(e == "start" and n != deaf.name for e, n in events))
    # Not within a poll of the lock coming free: once the deaf one's lease had run out.
    assert time.monotonic() - silent_since >= TIMINGS["lease"] - TIMINGS["beat"]
    assert all(not i.overlaps for i in instances)


async def test_a_standby_that_was_paused_itself_does_not_cut_off_a_live_leader(
    three: tuple[list[Instance], list[tuple[str, str]]],
) -> None:
    """A standby's clock that jumps (it was paused, and the leader beat all along) makes it
    start watching over, not cut off the leader it last saw long ago."""
    instances, events = three
    await _until(lambda: len(_leaders(instances)) == 1)
    jump = [0.0]
    for standby in instances:
        if not standby.lease.leading:
            standby.lease._clock = lambda: time.monotonic() + jump[0]
    await asyncio.sleep(TIMINGS["poll"] * 3)
    jump[0] = TIMINGS["takeover"] * 2
    await asyncio.sleep(TIMINGS["takeover"] * 1.5)
    assert [e for e, _ in events] == ["start"]


async def test_after_a_database_restart_one_leads_again(
    postgres: Cluster, postgres_url: str
) -> None:
    events: list[tuple[str, str]] = []
    stores = [await PostgresStore.open(postgres_url) for _ in range(2)]
    instances = [Instance(f"r{n}", store, events) for n, store in enumerate(stores)]
    for instance in instances:
        instance.others = [o for o in instances if o is not instance]
        instance.campaign()
    try:
        await _until(lambda: len(_leaders(instances)) == 1)
        await asyncio.to_thread(postgres.stop)
        try:
            await _until(lambda: any(e == "lost" for e, _ in events))
        finally:
            await asyncio.to_thread(postgres.start)
        await _until(lambda: len(_leaders(instances)) == 1, timeout=30)
        assert all(not i.overlaps for i in instances)
    finally:
        for instance in instances:
            await instance.resign()
        for store in stores:
            await store.close()


def test_timings_must_leave_the_fence_before_a_takeover() -> None:
    async def connect() -> Any:
        raise AssertionError

    with pytest.raises(ValueError, match="beat < lease < takeover"):
        Lease(connect, "db", "me", beat=1.0, lease=5.0, takeover=5.0)


async def _terminate(url: str, holder: str) -> None:
    connection: asyncpg.Connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM leases WHERE holder = $1", holder
        )
    finally:
        await connection.close()
