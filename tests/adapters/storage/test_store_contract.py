"""One contract every store must pass (memory, SQLite with its cache on and off, PostgreSQL).

The tests that build a ``SqliteStore`` themselves are the SQLite store's own: its group commit,
faults injected into its connection, its cache. Those among them that check what any store
must do (the inbox over the log, retention in steps) have twins on PostgreSQL, with its own
tests, in test_postgres_store.py."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from adapters.directline.inbox import Inbox
from adapters.runtime.clock import iso
from adapters.storage.contract import Store
from adapters.storage.memory import MemoryStore
from adapters.storage.postgres import PostgresStore
from adapters.storage.sqlite import SqliteStore
from bot.errors import StaleWriteError, StoreError
from bot.model import Conversation, Handoff, HandoffState, Party, Person, Role, Turn
from tests.adapters.storage.samples import T0, VISITOR
from tests.support.faults import faulty, full_disk
from tests.support.postgres import Cluster

STORES = {
    "memory": lambda tmp: MemoryStore(),
    "sqlite": lambda tmp: SqliteStore(tmp / "s.db"),
    "sqlite-uncached": lambda tmp: SqliteStore(tmp / "s.db", cache=False),
    # Given a fresh database of the suite's throwaway cluster (tests/support/postgres.py).
    "postgres": PostgresStore.open,
}


@pytest.fixture(params=list(STORES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "postgres":
        # Asked for here only: the other stores' tests run where PostgreSQL is missing.
        cluster: Cluster = request.getfixturevalue("postgres")
        async with cluster.database() as url:
            opened: Store = await STORES["postgres"](url)
            yield opened
            await opened.close()
        return
    made: Store = STORES[request.param](tmp_path)
    yield made
    await made.close()


@contextlib.asynccontextmanager
async def _durable(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Store]:
    """A store that keeps what it committed: SQLite, or PostgreSQL on a fresh database."""
    if kind == "postgres":
        cluster: Cluster = request.getfixturevalue("postgres")
        async with cluster.database() as url:
            opened: Store = await PostgresStore.open(url)
            try:
                yield opened
            finally:
                await opened.close()
        return
    made = SqliteStore(tmp_path / "d.db")
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def durable_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with _durable(request.param, request, tmp_path) as made:
        yield made


async def test_unknown_keys_are_none(store: Any) -> None:
    assert await store.get_conversation(conversation_id="nope") is None
    assert await store.get_handoff(handoff_id="nope") is None
    assert await store.open_handoff(conversation_id="nope") is None
    assert await store.handoff_for_thread(thread_id="nope") is None
    assert await store.turns(conversation_id="nope") == []
    assert await store.activities_after(conversation_id="nope", watermark=0) == []
    assert await store.get_meta(key="nope") is None


async def test_conversation_round_trip_and_compare_and_set(store: Any) -> None:
    saved = await store.save_conversation(
        conversation=Conversation(
            "c1", VISITOR, T0, context=MappingProxyType({"domain": "FINANCE", "tags": ["vip"]})
        )
    )
    assert saved.version == 1
    assert await store.get_conversation(conversation_id="c1") == saved
    updated = await store.save_conversation(conversation=replace(saved, fallbacks_in_row=2))
    assert updated.version == 2
    with pytest.raises(StaleWriteError):
        await store.save_conversation(conversation=replace(saved, fallbacks_in_row=5))  # stale v1
    with pytest.raises(StaleWriteError):
        await store.save_conversation(conversation=Conversation("c1", VISITOR, T0))  # exists
    assert (await store.get_conversation(conversation_id="c1")).fallbacks_in_row == 2


async def test_turn_times_compare_as_times_whatever_their_offset(store: Any) -> None:
    from datetime import timedelta, timezone

    kiribati = timezone(timedelta(hours=14))
    await store.add_turn(
        turn=Turn("c9", datetime(2026, 11, 24, 23, 59, tzinfo=kiribati), Role.VISITOR, "J", "early")
    )
    await store.add_turn(
        turn=Turn("c9", datetime(2026, 11, 24, 10, 30, tzinfo=UTC), Role.VISITOR, "J", "late")
    )
    assert await store.last_human_turn_at(conversation_id="c9") == datetime(
        2026, 11, 24, 10, 30, tzinfo=UTC
    )


async def test_turns_keep_order(store: Any) -> None:
    turns = [Turn("c1", T0, Role.VISITOR, "Jane", f"t{n}", fallback=n == 2) for n in range(5)]
    for turn in turns:
        await store.add_turn(turn=turn)
    assert await store.turns(conversation_id="c1") == turns
    # Several at once (a run of messages) come after, in their order.
    more = [Turn("c1", T0, Role.VISITOR, "Jane", f"u{n}") for n in range(5)]
    await store.add_turns(turns=more)
    await store.add_turns(turns=[])
    await store.flush()
    assert await store.turns(conversation_id="c1") == turns + more


async def test_handoff_round_trip_queries_and_stale_writes(store: Any) -> None:
    handoff = Handoff(
        "h1",
        "c1",
        "support",
        HandoffState.QUEUED,
        T0,
        "asked",
        context=MappingProxyType({"domain": "FINANCE"}),
    )
    saved = await store.save_handoff(handoff=handoff)
    assert saved == replace(handoff, version=1)
    assert await store.open_handoff(conversation_id="c1") == saved
    opened = await store.save_handoff(
        handoff=replace(saved, thread_id="19:t;messageid=1", root_activity_id="1")
    )
    assert await store.handoff_for_thread(thread_id="19:t;messageid=1") == opened
    joined = await store.save_handoff(
        handoff=replace(
            opened, state=HandoffState.JOINED, specialist=Person("a", "Alex"), joined_at=T0
        )
    )
    with pytest.raises(StaleWriteError):
        await store.save_handoff(handoff=replace(opened, state=HandoffState.ENDED))
    ended = await store.save_handoff(
        handoff=replace(
            joined,
            state=HandoffState.ENDED,
            ended_at=T0,
            ended_by=Party.VISITOR,
            ended_by_name="Jane",
        )
    )
    assert await store.get_handoff(handoff_id="h1") == ended
    assert await store.open_handoff(conversation_id="c1") is None
    with pytest.raises(StaleWriteError):
        await store.save_handoff(handoff=handoff)  # version 0 again: already exists


async def test_a_conversation_and_its_open_handoff_are_read_together(store: Any) -> None:
    assert await store.conversation_and_open_handoff(conversation_id="c1") == (None, None)
    assert await store.open_thread(conversation_id="c1") is None  # no such conversation
    conversation = await store.save_conversation(
        conversation=Conversation("c1", VISITOR, T0, context=MappingProxyType({"plan": "pro"}))
    )
    assert await store.conversation_and_open_handoff(conversation_id="c1") == (conversation, None)
    assert await store.open_thread(conversation_id="c1") == ""
    queued = await store.save_handoff(
        handoff=Handoff("h1", "c1", "support", HandoffState.QUEUED, T0, "asked")
    )
    assert await store.conversation_and_open_handoff(conversation_id="c1") == (
        conversation,
        queued,
    )
    assert await store.open_thread(conversation_id="c1") == ""  # its thread is not opened yet
    joined = await store.save_handoff(
        handoff=replace(
            queued,
            state=HandoffState.JOINED,
            thread_id="19:t;messageid=1",
            specialist=Person("a", "Alex"),
            joined_at=T0,
        )
    )
    assert await store.conversation_and_open_handoff(conversation_id="c1") == (
        conversation,
        joined,
    )
    assert await store.open_thread(conversation_id="c1") == "19:t;messageid=1"
    await store.save_handoff(handoff=replace(joined, state=HandoffState.ENDED, ended_at=T0))
    assert await store.conversation_and_open_handoff(conversation_id="c1") == (conversation, None)
    assert await store.open_thread(conversation_id="c1") == ""
    # Another conversation's handoff is not this one's.
    await store.save_handoff(handoff=Handoff("h2", "c2", "support", HandoffState.QUEUED, T0, "x"))
    assert await store.open_thread(conversation_id="c1") == ""


async def test_reports_read_the_handoffs_created_in_a_window(store: Any) -> None:
    from datetime import timedelta, timezone

    tokyo = timezone(timedelta(hours=9))
    times = {
        "before": T0 - timedelta(seconds=1),
        "first": T0,
        "tokyo": (T0 + timedelta(hours=1)).astimezone(tokyo),  # later, though its text is not
        "last": T0 + timedelta(days=7) - timedelta(seconds=1),
        "after": T0 + timedelta(days=7),
    }
    for name, at in times.items():
        await store.save_handoff(
            handoff=Handoff(name, f"c-{name}", "support", HandoffState.QUEUED, at, "x")
        )
    found = await store.handoffs_created(since=T0, until=T0 + timedelta(days=7))
    assert [h.id for h in found] == ["first", "tokyo", "last"]
    assert found[1].created_at == times["tokyo"]


async def test_seen_and_remember(store: Any) -> None:
    assert await store.seen(key="a") is False
    await store.remember(key="a", now=T0)
    await store.remember(key="a", now=T0)
    assert await store.seen(key="a") is True
    assert await store.seen(key="b") is False


async def test_unopened_handoffs(store: Any) -> None:
    queued = await store.save_handoff(
        handoff=Handoff("h1", "c1", "support", HandoffState.QUEUED, T0, "x")
    )
    await store.save_handoff(
        handoff=Handoff(
            "h2", "c2", "support", HandoffState.QUEUED, T0, "x", thread_id="19:t;messageid=1"
        )
    )
    await store.save_handoff(handoff=Handoff("h3", "c3", "support", HandoffState.FAILED, T0, "x"))
    assert await store.unopened_handoffs() == [queued]


async def test_handoffs_since_counts_a_conversations_recent_handoffs(store: Any) -> None:
    for n, minutes in enumerate((0, 30, 61, 90)):
        await store.save_handoff(
            handoff=Handoff(
                f"h{n}", "c1", "support", HandoffState.ENDED, T0 + timedelta(minutes=minutes), "x"
            )
        )
    await store.save_handoff(
        handoff=Handoff("other", "c2", "support", HandoffState.QUEUED, T0, "x")
    )
    since = T0 + timedelta(minutes=30)
    assert await store.handoffs_since(conversation_id="c1", since=since) == 3
    assert await store.handoffs_since(conversation_id="c1", since=T0) == 4
    assert await store.handoffs_since(conversation_id="c3", since=T0) == 0


async def test_inbox_positions_and_backlog(store: Any) -> None:
    assert await store.inbox_backlog() == []
    for cid in ("c1", "c2"):
        await store.append_activity(conversation_id=cid, activity={})
        await store.append_activity(conversation_id=cid, activity={})
    await store.set_inbox_position(conversation_id="c1", seq=2)
    await store.set_inbox_position(conversation_id="c2", seq=1)
    await store.set_inbox_position(conversation_id="c2", seq=0)  # never moves back
    assert await store.inbox_position(conversation_id="c2") == 1
    assert await store.inbox_backlog() == [("c2", 2)]


async def test_activity_log_watermarks(store: Any) -> None:
    for n in range(3):
        assert await store.append_activity(conversation_id="c1", activity={"n": n}) == n + 1
    assert await store.append_activity(conversation_id="c2", activity={"n": 9}) == 1
    assert await store.activities_after(conversation_id="c1", watermark=1) == [
        (2, {"n": 1}),
        (3, {"n": 2}),
    ]
    assert await store.activities_after(conversation_id="c1", watermark=0, limit=1) == [
        (1, {"n": 0})
    ]
    assert await store.last_watermark(conversation_id="c1") == 3


async def test_outbound_queue(store: Any) -> None:
    assert await store.outbound_threads() == []
    a1 = await store.enqueue_outbound(thread_id="t1", item={"kind": "relay", "text": "one"})
    b1 = await store.enqueue_outbound(thread_id="t2", item={"kind": "relay", "text": "other"})
    a2 = await store.enqueue_outbound(thread_id="t1", item={"kind": "update", "card": {"x": [1]}})
    assert a1 < b1 < a2
    assert await store.outbound(thread_id="t1") == [
        (a1, {"kind": "relay", "text": "one"}),
        (a2, {"kind": "update", "card": {"x": [1]}}),
    ]
    assert await store.outbound(thread_id="t1", limit=1) == [(a1, {"kind": "relay", "text": "one"})]
    assert sorted(await store.outbound_threads()) == [("t1", a1), ("t2", b1)]
    await store.drop_outbound(seqs=[a1])
    assert sorted(await store.outbound_threads()) == [("t1", a2), ("t2", b1)]
    await store.drop_outbound(seqs=[a2])
    assert await store.outbound(thread_id="t1") == []
    assert await store.outbound_threads() == [("t2", b1)]


async def test_meta_is_set_once(store: Any) -> None:
    assert await store.set_meta_once(key="k", value="first") == "first"
    assert await store.set_meta_once(key="k", value="second") == "first"
    assert await store.get_meta(key="k") == "first"


async def test_set_meta_replaces_and_set_meta_once_keeps(store: Any) -> None:
    await store.set_meta(key="k", value="one")
    await store.set_meta(key="k", value="two", conversation_id="c1")
    assert await store.get_meta(key="k") == "two"
    assert await store.set_meta_once(key="k", value="three", conversation_id="c1") == "two"
    assert await store.set_meta_once(key="new", value="four", conversation_id="c1") == "four"
    assert await store.get_meta(key="new") == "four"


async def test_open_handoffs_are_the_queued_and_joined_ones(store: Any) -> None:
    states = (HandoffState.QUEUED, HandoffState.JOINED, HandoffState.ENDED, HandoffState.FAILED)
    for n, state in enumerate(states):
        await store.save_handoff(handoff=Handoff(f"h{n}", f"c{n}", "support", state, T0, "x"))
    assert sorted(h.id for h in await store.open_handoffs()) == ["h0", "h1"]


async def test_a_working_store_is_healthy_and_its_flushes_return(store: Any) -> None:
    assert await store.health() is None
    assert store.failing is None and store.failed_commits == 0
    assert isinstance(store.on_recovered, list)
    await store.remember(key="a", now=T0)
    await store.flush(reads=False)
    await store.remember(key="b", now=T0)
    await store.flush()
    await store.flush()  # nothing pending
    assert await store.seen(key="a") and await store.seen(key="b")
    assert await store.health() is None


async def test_meta_filed_under_a_conversation_is_deleted_with_it(store: Any) -> None:
    """Retention finds a conversation's meta rows by the conversation they are filed under,
    whatever their keys; rows filed under none, or under another conversation, stay."""
    cutoff = T0 + timedelta(days=90)
    for cid in ("gone", "kept"):
        await _conversation_with_history(store, cid, last=T0)
        await store.set_meta(key=f"any key for {cid}", value="1", conversation_id=cid)
        await store.set_meta_once(key=f"{cid}/once", value="2", conversation_id=cid)
    await store.set_meta(key="about gone, but filed under none", value="3")
    await store.set_meta(key="gone:prefixed", value="4", conversation_id="elsewhere")
    await store.flush()
    purged: list[str] = []
    done = False
    while not done:
        step, done = await store.purge(before=cutoff, keep={"kept"})
        purged += step
        await store.flush()
    assert purged == ["gone"]
    assert await store.get_meta(key="any key for gone") is None
    assert await store.get_meta(key="gone/once") is None
    assert await store.get_meta(key="any key for kept") == "1"
    assert await store.get_meta(key="kept/once") == "2"
    assert await store.get_meta(key="about gone, but filed under none") == "3"
    assert await store.get_meta(key="gone:prefixed") == "4"


async def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "r.db")
    await first.save_conversation(conversation=Conversation("c1", VISITOR, T0))
    await first.save_handoff(
        handoff=Handoff("h1", "c1", "support", HandoffState.QUEUED, T0, "asked")
    )
    await first.append_activity(conversation_id="c1", activity={"type": "message"})
    await first.close()
    second = SqliteStore(tmp_path / "r.db")
    assert (await second.get_conversation(conversation_id="c1")).visitor == VISITOR
    assert (await second.open_handoff(conversation_id="c1")).id == "h1"
    assert await second.last_watermark(conversation_id="c1") == 1
    await second.close()


def _rows(path: Path, sql: str) -> list[Any]:
    """What another process would see in the file now."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        return other.execute(sql).fetchall()


async def test_sqlite_writes_of_one_loop_turn_commit_together_and_flush_waits(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "g.db")
    try:
        for i in range(3):
            await store.add_turn(turn=Turn(f"c{i}", T0, Role.VISITOR, "Jane", "hi"))
        # Still this loop turn: nothing committed yet, so no reader can see half of it.
        assert _rows(tmp_path / "g.db", "SELECT COUNT(*) FROM turns") == [(0,)]
        await store.flush()
        assert _rows(tmp_path / "g.db", "SELECT COUNT(*) FROM turns") == [(3,)]
        # Nothing pending: flush returns at once, and reads see their own writes meanwhile.
        await store.flush()
        await store.remember(key="k", now=T0)
        assert await store.seen(key="k")
    finally:
        await store.close()
    # close() commits what is pending.
    assert _rows(tmp_path / "g.db", "SELECT key FROM seen") == [("k",)]


USER = {"type": "message", "from": {"id": "u", "role": "user"}}


def recording_inbox(store: SqliteStore) -> tuple[Inbox, list[str]]:
    """An inbox that records the text of each activity it hands on."""
    handled: list[str] = []

    async def handle(cid: str, activity: dict[str, Any]) -> None:
        handled.append(activity["text"])

    return Inbox(store, handle), handled


async def test_sqlite_failed_commit_rolls_back_and_every_flush_hears_of_it(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "f.db")
    real = store._db
    store._db = full_disk(real)  # type: ignore[assignment]
    try:
        # Two writers in one transaction: one flushes before the commit, the other only after
        # it failed.
        async def early_writer() -> None:
            await store.add_turn(turn=Turn("c1", T0, Role.VISITOR, "Jane", "lost"))
            await store.save_conversation(conversation=Conversation("c1", VISITOR, T0))
            await store.save_handoff(
                handoff=Handoff("h1", "c1", "support", HandoffState.QUEUED, T0, "asked", "19:t")
            )
            await store.flush()

        async def late_writer() -> None:
            await store.remember(key="late", now=T0)
            await asyncio.sleep(0.01)  # the commit fails meanwhile
            await store.flush()

        results = await asyncio.gather(early_writer(), late_writer(), return_exceptions=True)
        assert all(isinstance(r, StoreError) for r in results), results
        assert await store.turns(conversation_id="c1") == []
        assert not await store.seen(key="late")
        # Nothing rolled back is still served from memory.
        assert await store.get_conversation(conversation_id="c1") is None
        assert await store.get_handoff(handoff_id="h1") is None
        assert await store.open_handoff(conversation_id="c1") is None
        assert await store.handoff_for_thread(thread_id="19:t") is None
        # A task that wrote none of it (here: this one) is not told of another's failure.
        await store.flush()
        store._db = real  # the disk has room again: the next writes commit
        await store.add_turn(turn=Turn("c1", T0, Role.VISITOR, "Jane", "kept"))
        await store.flush()
        assert [t.text for t in await store.turns(conversation_id="c1")] == ["kept"]
    finally:
        store._db = real
        await store.close()


async def test_sqlite_a_lost_write_is_reported_even_after_later_ones_commit(
    tmp_path: Path,
) -> None:
    """Write, wait (the commit fails meanwhile), write again (that one commits), flush: the
    flush must not say all is well."""
    store = SqliteStore(tmp_path / "l.db")
    real = store._db
    try:
        store._db = full_disk(real)  # type: ignore[assignment]
        await store.remember(key="first", now=T0)
        await asyncio.sleep(0.01)  # its commit fails
        store._db = real
        await store.remember(key="second", now=T0)
        with pytest.raises(StoreError):
            await store.flush()
        assert not await store.seen(key="first") and await store.seen(key="second")
        await store.remember(key="third", now=T0)
        await store.flush()  # reported once; what came after is fine
    finally:
        store._db = real
        await store.close()


async def test_activity_keys(store: Any) -> None:
    assert await store.recent_keys(conversation_id="c1", limit=10) == []
    await store.append_activity(conversation_id="c1", activity={"n": 1}, key="client:a")
    await store.append_activity(conversation_id="c1", activity={"n": 2})
    await store.append_activity(conversation_id="c1", activity={"n": 3}, key="teams:m1")
    await store.append_activity(conversation_id="c2", activity={"n": 1}, key="client:a")
    assert await store.recent_keys(conversation_id="c1", limit=10) == [
        (1, "client:a"),
        (3, "teams:m1"),
    ]
    assert await store.recent_keys(conversation_id="c1", limit=1) == [(3, "teams:m1")]
    assert await store.keyed_activity(conversation_id="c1", key="teams:m1") == 3
    assert await store.keyed_activity(conversation_id="c1", key="teams:nope") is None


async def test_sqlite_a_rolled_back_activity_number_is_never_handed_out_again(
    tmp_path: Path,
) -> None:
    """A socket may have been told about seq N before a failed commit took it back; the next
    activity must not become N too, or that socket would skip it."""
    store = SqliteStore(tmp_path / "s.db")
    real = store._db
    try:
        assert await store.append_activity(conversation_id="c1", activity={"n": 1}) == 1
        await store.flush()
        store._db = full_disk(real)  # type: ignore[assignment]
        assert await store.append_activity(conversation_id="c1", activity={"n": 2}) == 2
        with pytest.raises(StoreError):
            await store.flush()
        store._db = real
        assert await store.append_activity(conversation_id="c1", activity={"n": 3}) == 3
        await store.flush()
        assert [s for s, _ in await store.activities_after(conversation_id="c1", watermark=0)] == [
            1,
            3,
        ]
    finally:
        store._db = real
        await store.close()


async def test_inbox_handles_again_what_a_failed_commit_took_back(tmp_path: Path) -> None:
    """The inbox keeps its positions in memory: a rolled-back position must not be kept."""
    store = SqliteStore(tmp_path / "i.db")
    inbox, handled = recording_inbox(store)
    real = store._db
    try:
        await store.append_activity(conversation_id="c1", activity={**USER, "text": "one"})
        await store.flush()
        inbox.kick("c1")
        await inbox.drain()
        await store.append_activity(conversation_id="c1", activity={**USER, "text": "two"})
        await store.flush()
        store._db = full_disk(real)  # type: ignore[assignment]
        inbox.kick("c1")
        await inbox.drain()  # handled, but its position is rolled back
        store._db = real
        assert await store.inbox_position(conversation_id="c1") == 1
        inbox.kick("c1")
        await inbox.drain()
        assert handled == ["one", "two", "two"]  # at least once, never skipped
        assert await store.inbox_position(conversation_id="c1") == 2
    finally:
        store._db = real
        await store.close()


async def test_inbox_handles_only_committed_activities(tmp_path: Path) -> None:
    """An activity is handled only once committed: what the inbox reads from the store (after a
    restart, memory knows nothing) waits for the commit."""
    store = SqliteStore(tmp_path / "c.db")
    seen_committed: list[bool] = []

    async def handle(cid: str, activity: dict[str, Any]) -> None:
        count = _rows(tmp_path / "c.db", "SELECT COUNT(*) FROM activities")[0][0]
        seen_committed.append(count >= int(activity["text"]))

    inbox = Inbox(store, handle)
    try:
        await store.append_activity(conversation_id="c1", activity={**USER, "text": "1"})
        await store.flush()
        # The second is still in the open transaction when the inbox reads it.
        await store.append_activity(conversation_id="c1", activity={**USER, "text": "2"})
        inbox.kick("c1")
        await inbox.drain()
        assert seen_committed == [True, True]
    finally:
        await store.close()


async def test_inbox_reads_the_store_when_memory_missed_a_row(durable_store: Any) -> None:
    """Memory hands the inbox what was committed since; a row it never saw (appended before a
    restart) sends the inbox to the store, so nothing is skipped."""
    store = durable_store
    inbox, handled = recording_inbox(store)
    bot = {"type": "message", "from": {"id": "b", "role": "bot"}}
    for text in ("1", "2"):
        await store.append_activity(conversation_id="c1", activity={**USER, "text": text})
    await store.flush()
    for activity in ({**bot, "text": "answer"}, {**USER, "text": "3"}):
        seq = await store.append_activity(conversation_id="c1", activity=activity)
        await store.flush()
        inbox.appended("c1", seq, activity)  # memory saw only these two
    inbox.kick("c1")
    await inbox.drain()
    assert handled == ["1", "2", "3"]
    assert await store.inbox_position(conversation_id="c1") == 4
    # From here memory has it all: the next activity is handled from memory alone.
    last = {**USER, "text": "4"}
    seq = await store.append_activity(conversation_id="c1", activity=last)
    await store.flush()
    inbox.appended("c1", seq, last)
    inbox.kick("c1")
    await inbox.drain()
    assert handled == ["1", "2", "3", "4"]


async def test_inbox_reads_past_a_row_another_process_committed_after_its_own(
    durable_store: Any,
) -> None:
    """Several processes share the store: memory holds this process's appends only. Told of a
    row another one committed after them, a round reads the store for it instead of ending
    with what memory holds (it once ended, and the row waited for the next message)."""
    store = durable_store
    inbox, handled = recording_inbox(store)
    mine = {**USER, "text": "mine"}
    seq = await store.append_activity(conversation_id="c1", activity=mine)
    await store.flush()
    inbox.appended("c1", seq, mine)
    theirs = await store.append_activity(conversation_id="c1", activity={**USER, "text": "theirs"})
    await store.flush()
    inbox.committed_elsewhere("c1", theirs)  # the kick that starts the round
    await inbox.drain()
    assert handled == ["mine", "theirs"]
    assert await store.inbox_position(conversation_id="c1") == theirs


async def test_inbox_does_not_skip_an_activity_whose_handling_was_not_saved(
    durable_store: Any,
) -> None:
    store = durable_store
    attempts: list[str] = []

    async def handle(cid: str, activity: dict[str, Any]) -> None:
        attempts.append(activity["text"])
        if len(attempts) == 1:
            raise StoreError("the store could not commit")

    inbox = Inbox(store, handle)
    await store.append_activity(
        conversation_id="c1", activity={"from": {"role": "user"}, "text": "hi"}
    )
    await store.flush()
    inbox.kick("c1")
    await inbox.drain()
    assert await store.inbox_position(conversation_id="c1") == 0
    inbox.kick("c1")  # the next activity (or a restart) kicks it again
    await inbox.drain()
    assert attempts == ["hi", "hi"]
    assert await store.inbox_position(conversation_id="c1") == 1


async def _conversation_with_history(
    store: Any, cid: str, *, last: datetime, state: HandoffState | None = HandoffState.ENDED
) -> None:
    """A conversation created at T0 whose latest line was written at ``last``."""
    await store.save_conversation(conversation=Conversation(cid, VISITOR, T0))
    for n, at in enumerate((T0, last)):
        await store.add_turn(turn=Turn(cid, at, Role.VISITOR, "Jane", f"hello at {at}"))
        seq = await store.append_activity(
            conversation_id=cid,
            activity={"type": "message", "text": "hi", "timestamp": iso(at)},
            key=f"k-{cid}-{n}",
        )
    await store.set_inbox_position(conversation_id=cid, seq=seq)
    if state is not None:
        await store.save_handoff(
            handoff=Handoff(
                f"h-{cid}", cid, "support", state, T0, "asked", thread_id=f"19:{cid};messageid=1"
            )
        )
    await store.flush()


async def test_retention_deletes_idle_conversations_with_everything_of_theirs(store: Any) -> None:
    cutoff = T0 + timedelta(days=90)
    await _conversation_with_history(store, "idle", last=T0 + timedelta(days=1))
    await _conversation_with_history(store, "recent", last=cutoff + timedelta(minutes=1))
    await _conversation_with_history(
        store, "waiting", last=T0, state=HandoffState.QUEUED
    )  # a handoff still open: whatever its age
    await _conversation_with_history(store, "on-screen", last=T0)  # a widget has it open
    # Only an event since: the activity log counts, not only the transcript.
    await _conversation_with_history(store, "context-only", last=T0)
    await store.append_activity(
        conversation_id="context-only",
        activity={"type": "event", "name": "visitor.context", "timestamp": iso(cutoff)},
    )
    # Times a client or an older version could have left: unreadable or zoneless ones do not
    # count as activity, in both stores alike.
    for cid, stamp in (("odd-time", "last tuesday"), ("zoneless", "2099-01-01T00:00:00")):
        await _conversation_with_history(store, cid, last=T0)
        await store.append_activity(
            conversation_id=cid, activity={"type": "typing", "timestamp": stamp}
        )
    await store.remember(key="teams:old", now=T0)
    await store.remember(key="teams:new", now=cutoff)
    # What the Direct Line channel keeps per conversation besides its log.
    for cid in ("idle", "recent"):
        await store.set_meta_once(key=f"dl.posted:{cid}", value="x", conversation_id=cid)
        await store.set_meta(key=f"dl.ref:{cid}:m1", value="y", conversation_id=cid)
    # another conversation's
    await store.set_meta_once(key="dl.ref:idle-2:m1", value="z", conversation_id="idle-2")
    await store.flush()

    purged: list[str] = []
    done = False
    while not done:
        step, done = await store.purge(before=cutoff, keep={"on-screen"})
        purged += step
        await store.flush()
    while not await store.forget_deliveries(before=cutoff):
        pass
    await store.flush()

    assert sorted(purged) == ["idle", "odd-time", "zoneless"]
    assert await store.get_meta(key="dl.posted:idle") is None
    assert await store.get_meta(key="dl.ref:idle:m1") is None
    assert await store.get_meta(key="dl.posted:recent") == "x"
    assert await store.get_meta(key="dl.ref:recent:m1") == "y"
    assert await store.get_meta(key="dl.ref:idle-2:m1") == "z"
    assert await store.get_conversation(conversation_id="idle") is None
    assert await store.turns(conversation_id="idle") == []
    assert await store.activities_after(conversation_id="idle", watermark=0) == []
    assert await store.recent_keys(conversation_id="idle", limit=64) == []
    assert await store.inbox_position(conversation_id="idle") == 0
    assert await store.get_handoff(handoff_id="h-idle") is None
    assert await store.handoff_for_thread(thread_id="19:idle;messageid=1") is None
    for kept in ("recent", "waiting", "on-screen", "context-only"):
        assert await store.get_conversation(conversation_id=kept) is not None, kept
        assert len(await store.turns(conversation_id=kept)) == 2, kept
        assert await store.get_handoff(handoff_id=f"h-{kept}") is not None, kept
    assert not await store.seen(key="teams:old")
    assert await store.seen(key="teams:new")
    # A deleted conversation can be written to again as a new one (nothing lingers in caches).
    await store.save_conversation(conversation=Conversation("idle", VISITOR, cutoff))
    assert await store.append_activity(conversation_id="idle", activity={"text": "again"}) == 1


@pytest.fixture
async def sqlite_stepping_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[SqliteStore]:
    """The SQLite store with tiny retention steps (for a fault only SQLite can be given)."""
    monkeypatch.setattr("adapters.storage.sqlite.retention.PURGE_SCAN", 3)
    monkeypatch.setattr("adapters.storage.sqlite.retention.SEEN_BATCH", 4)
    store = SqliteStore(tmp_path / "r.db")
    yield store
    await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def stepping_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Store]:
    """A store whose retention steps are tiny: 3 conversations, 4 delivery keys."""
    monkeypatch.setattr(f"adapters.storage.{request.param}.retention.PURGE_SCAN", 3)
    monkeypatch.setattr(f"adapters.storage.{request.param}.retention.SEEN_BATCH", 4)
    async with _durable(request.param, request, tmp_path) as made:
        yield made


async def test_retention_works_in_steps_and_resumes_where_it_stopped(
    stepping_store: Any,
) -> None:
    store = stepping_store
    cutoff = T0 + timedelta(days=30)
    for n in range(8):
        last = T0 if n % 2 else cutoff  # odd ones are idle
        await _conversation_with_history(store, f"c{n}", last=last)
    for n in range(6):
        await store.remember(key=f"old{n}", now=T0)
    await store.remember(key="new", now=cutoff)
    steps = []
    done = False
    while not done:
        step, done = await store.purge(before=cutoff)
        steps.append(step)
        await store.flush()
    assert steps == [["c1"], ["c3", "c5"], ["c7"]]
    assert await store.forget_deliveries(before=cutoff) is False  # 4 of 6 old keys
    assert await store.forget_deliveries(before=cutoff) is True
    assert [await store.seen(key=f"old{n}") for n in range(6)] == [False] * 6
    assert await store.seen(key="new")
    # The next pass starts from the beginning, and finds nothing more.
    assert await store.purge(before=cutoff) == ([], False)


async def test_a_retention_pass_ends_at_the_first_conversation_too_young_to_be_idle(
    stepping_store: Any,
) -> None:
    store = stepping_store
    cutoff = T0 + timedelta(days=30)
    for n in range(4):
        await _conversation_with_history(store, f"old{n}", last=T0)
    for n in range(6):
        created = cutoff + timedelta(hours=n)
        await store.save_conversation(conversation=Conversation(f"new{n}", VISITOR, created))
    await store.flush()
    assert await store.purge(before=cutoff) == (["old0", "old1", "old2"], False)
    assert await store.purge(before=cutoff) == (["old3"], True)  # not three more steps
    assert await store.purge(before=cutoff) == ([], True)


async def test_retention_looks_again_after_a_failed_commit_and_keeps_caches_warm(
    sqlite_stepping_store: Any,
) -> None:
    store = sqlite_stepping_store
    real = store._db
    try:
        cutoff = T0 + timedelta(days=30)
        for n in range(4):
            await _conversation_with_history(store, f"c{n}", last=T0)
        await _conversation_with_history(store, "recent", last=cutoff)
        cached = store._cache.conversation("recent")
        assert cached is not None
        store._db = full_disk(real)  # type: ignore[assignment]
        assert await store.purge(before=cutoff) == (["c0", "c1", "c2"], False)
        with pytest.raises(StoreError):
            await store.flush()
        store._db = real
        # The failed step's conversations are back, and the pass starts over to find them.
        assert await store.get_conversation(conversation_id="c0") is not None
        assert await store.purge(before=cutoff) == (["c0", "c1", "c2"], False)
        await store.flush()
        # A kept conversation stays in memory across steps: no re-read for live traffic.
        recent = await store.get_conversation(conversation_id="recent")
        assert store._cache.conversation("recent") is recent
        # "recent" is as old as the others, but not idle: the pass ends without it.
        assert await store.purge(before=cutoff) == (["c3"], True)
        await store.flush()
        assert store._cache.conversation("recent") is recent
        assert recent.version == cached.version
    finally:
        store._db = real  # the fixture closes it


async def test_the_inbox_keeps_no_handled_activity_in_memory(tmp_path: Path) -> None:
    """An event can be large: once handled, memory lets it go (not at the next message)."""
    store = SqliteStore(tmp_path / "i.db")
    inbox, handled = recording_inbox(store)
    try:
        big = {**USER, "text": "context", "value": "x" * 200_000}
        seq = await store.append_activity(conversation_id="c1", activity=big)
        await store.flush()
        inbox.appended("c1", seq, big)
        inbox.kick("c1")
        await inbox.drain()
        assert handled == ["context"]
        assert inbox._fresh == {}
    finally:
        await store.close()


async def test_sqlite_a_lost_write_is_reported_however_many_commits_failed_since(
    tmp_path: Path,
) -> None:
    """Write, then wait (the handler awaits the network, say) while more than a thousand other
    commits fail: the flush must still hear that this task's write was lost."""
    store = SqliteStore(tmp_path / "many.db")
    try:
        with faulty(store) as disk:
            disk.full = True
            await store.remember(key="victim", now=T0)

            async def other(n: int) -> None:
                await store.remember(key=f"other {n}", now=T0)
                with contextlib.suppress(StoreError):
                    await store.flush()

            for n in range(1_100):
                await asyncio.create_task(other(n))
            disk.full = False
            with pytest.raises(StoreError):
                await store.flush(reads=False)
        assert not await store.seen(key="victim")
    finally:
        await store.close()


async def test_sqlite_another_tasks_lost_commit_between_mine_is_not_mine(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "span.db")
    try:
        await store.remember(key="mine 1", now=T0)
        await asyncio.sleep(0.01)  # committed
        with faulty(store) as disk:

            async def other() -> None:
                disk.full = True
                await store.remember(key="theirs", now=T0)
                with contextlib.suppress(StoreError):
                    await store.flush()
                disk.full = False

            await asyncio.create_task(other())
        await store.remember(key="mine 2", now=T0)
        await store.flush(reads=False)  # both of mine are committed: no error
        assert await store.seen(key="mine 1") and await store.seen(key="mine 2")
        assert not await store.seen(key="theirs")
    finally:
        await store.close()
