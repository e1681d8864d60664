"""The PostgreSQL store's own tests (the contract suite runs on it too): two instances on one
database, a late commit and a watermark reader, the schema's versions, the server stopped
and started under a live store, and what the contract's SQLite-only tests check, on it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from adapters.storage.postgres import PostgresStore, schema
from adapters.storage.postgres.connection import Database, redacted
from adapters.storage.postgres.statements import APPEND
from bot.errors import StaleWriteError, StoreError
from bot.model import Conversation, Handoff, HandoffState, Person, Role, Turn
from tests.adapters.storage import test_store_contract as contract
from tests.adapters.storage.conftest import Pair
from tests.adapters.storage.samples import T0, VISITOR
from tests.support.postgres import Cluster
from tests.support.processes import free_port


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[PostgresStore]:
    store = await PostgresStore.open(postgres_url)
    yield store
    await store.close()


@pytest.mark.both_loops
async def test_two_instances_appending_at_once_get_gap_free_numbers_that_no_reader_skips(
    two: Pair,
) -> None:
    a, b = two
    appenders, each = 8, 12
    total = appenders * each
    read: list[int] = []

    async def append(store: PostgresStore, name: int) -> list[int]:
        seqs = []
        for i in range(each):
            activity = {"by": name, "i": i}
            seqs.append(await store.append_activity(conversation_id="c1", activity=activity))
        return seqs

    async def reader() -> None:
        """Follows the log by watermark, as a reconnecting widget does."""
        watermark = 0
        while watermark < total:
            for seq, _ in await b.activities_after(conversation_id="c1", watermark=watermark):
                read.append(seq)
                watermark = seq

    following = asyncio.create_task(reader())
    given = await asyncio.gather(*(append((a, b)[n % 2], n) for n in range(appenders)))
    await asyncio.wait_for(following, 10)
    assert sorted(itertools.chain(*given)) == list(range(1, total + 1))
    assert all(seqs == sorted(seqs) for seqs in given)
    assert read == list(range(1, total + 1))  # every row, once, in order
    log = await a.activities_after(conversation_id="c1", watermark=0, limit=1000)
    assert [(body["by"], body["i"]) for _, body in log] == sorted(
        ((n, i) for n in range(appenders) for i in range(each)),
        key=lambda bi: given[bi[0]][bi[1]],
    )
    assert await b.last_watermark(conversation_id="c1") == total


async def test_a_late_commit_is_never_skipped_by_a_watermark_reader(
    two: Pair, postgres_url: str
) -> None:
    """An appender that took number 2 and has not committed yet holds up the appender after
    it: number 3 cannot become visible before 2, so a reader at watermark 1 sees 2 first."""
    a, b = two
    assert await a.append_activity(conversation_id="c1", activity={"n": 1}) == 1
    slow = await asyncpg.connect(postgres_url)
    try:
        transaction = slow.transaction()
        await transaction.start()
        assert await slow.fetchval(APPEND, "c1", '{"n": 2}', None, "test") == 2
        fast = asyncio.create_task(b.append_activity(conversation_id="c1", activity={"n": 3}))
        await asyncio.sleep(0.3)
        assert not fast.done()
        assert await a.activities_after(conversation_id="c1", watermark=1) == []
        await transaction.commit()
        assert await asyncio.wait_for(fast, 5) == 3
    finally:
        await slow.close()
    assert await a.activities_after(conversation_id="c1", watermark=1) == [
        (2, {"n": 2}),
        (3, {"n": 3}),
    ]


async def test_a_rolled_back_append_hands_out_no_number(two: Pair, postgres_url: str) -> None:
    """Rolled back, its number is taken by the next append: no one was ever told it."""
    a, _ = two
    await a.append_activity(conversation_id="c1", activity={"n": 1})
    other = await asyncpg.connect(postgres_url)
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.fetchval(APPEND, "c1", '{"n": "lost"}', None, "test")
        await transaction.rollback()
    finally:
        await other.close()
    assert await a.append_activity(conversation_id="c1", activity={"n": 2}) == 2
    assert [s for s, _ in await a.activities_after(conversation_id="c1", watermark=0)] == [1, 2]


async def test_compare_and_set_holds_across_instances(two: Pair) -> None:
    a, b = two
    await a.save_conversation(conversation=Conversation("c1", VISITOR, T0))
    mine = await a.get_conversation(conversation_id="c1")
    theirs = await b.get_conversation(conversation_id="c1")
    assert mine == theirs and mine is not None and theirs is not None
    await a.save_conversation(conversation=replace(mine, fallbacks_in_row=1))
    with pytest.raises(StaleWriteError):
        await b.save_conversation(conversation=replace(theirs, fallbacks_in_row=2))
    # Both create the same handoff at once: one of them does.
    new = Handoff("h1", "c1", "support", HandoffState.QUEUED, T0, "asked")
    created = await asyncio.gather(
        *(s.save_handoff(handoff=new) for s in (a, b, a, b)), return_exceptions=True
    )
    assert sum(isinstance(r, Handoff) for r in created) == 1
    assert sum(isinstance(r, StaleWriteError) for r in created) == 3
    # Ten specialists click Join on two instances at once: one joins.
    queued = await b.get_handoff(handoff_id="h1")
    assert queued is not None
    joins = [
        replace(queued, state=HandoffState.JOINED, specialist=Person(f"s{n}", f"S{n}"))
        for n in range(10)
    ]
    results = await asyncio.gather(
        *((a, b)[n % 2].save_handoff(handoff=join) for n, join in enumerate(joins)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, Handoff)]
    assert len(winners) == 1
    assert all(isinstance(r, StaleWriteError) for r in results if r not in winners)
    assert await a.get_handoff(handoff_id="h1") == winners[0]
    assert winners[0].version == queued.version + 1


async def test_dedupe_keys_and_set_once_values_hold_across_instances(two: Pair) -> None:
    a, b = two
    await a.remember(key="teams:m1", now=T0)
    assert await b.seen(key="teams:m1")
    kept = await asyncio.gather(
        *((a, b)[n % 2].set_meta_once(key="token.key", value=f"v{n}") for n in range(12))
    )
    assert len(set(kept)) == 1
    assert await b.get_meta(key="token.key") == kept[0]


async def test_a_threads_posts_are_numbered_in_commit_order(two: Pair, postgres_url: str) -> None:
    """An enqueue takes its number under its thread's lock: while another enqueue into the
    thread is uncommitted it waits, and then numbers after what committed meanwhile (so the
    thread's worker never finds an older post behind one it sent). Other threads go on."""
    a, b = two
    other = await asyncpg.connect(postgres_url)
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", schema.LOCK_OUTBOX_THREAD, "t1"
        )
        waiting = asyncio.create_task(a.enqueue_outbound(thread_id="t1", item={"n": 1}))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        meanwhile = await b.enqueue_outbound(thread_id="t2", item={"n": 2})
        await transaction.commit()
        first = await asyncio.wait_for(waiting, 5)
    finally:
        await other.close()
    assert first > meanwhile
    assert await b.outbound(thread_id="t1") == [(first, {"n": 1})]


@pytest.mark.both_loops
async def test_the_database_stopped_and_started_again_under_a_live_store(
    postgres: Cluster, pg: PostgresStore
) -> None:
    """Stopped: writes raise StoreError (the web answers 503) and health says why. Started
    again: the same store works within seconds, by itself (no write needed to notice)."""
    recovered = asyncio.Event()
    pg.on_recovered.append(recovered.set)
    await pg.remember(key="before", now=T0)
    await asyncio.to_thread(postgres.stop)
    try:
        with pytest.raises(StoreError) as caught:
            await pg.remember(key="during", now=T0)
        assert not isinstance(caught.value, StaleWriteError)
        with pytest.raises(StoreError):
            await pg.seen(key="before")
        assert pg.failing is not None and pg.failed_commits == 1
        problem = await pg.health()
        assert problem is not None and "PostgreSQL" in problem
        await pg.flush()  # nothing pending: the failed write raised itself
    finally:
        await asyncio.to_thread(postgres.start)
    started = time.monotonic()
    await asyncio.wait_for(recovered.wait(), 10)
    assert time.monotonic() - started < 5
    assert pg.failing is None and await pg.health() is None
    await pg.remember(key="after", now=T0)
    assert await pg.seen(key="before") and await pg.seen(key="after")
    assert not await pg.seen(key="during")
    assert pg.failed_commits == 1


async def test_a_reopened_store_finds_what_was_committed(postgres_url: str) -> None:
    first = await PostgresStore.open(postgres_url)
    await first.save_conversation(conversation=Conversation("c1", VISITOR, T0))
    await first.save_handoff(
        handoff=Handoff("h1", "c1", "support", HandoffState.QUEUED, T0, "asked")
    )
    await first.append_activity(conversation_id="c1", activity={"type": "message"})
    await first.close()
    second = await PostgresStore.open(postgres_url)
    try:
        conversation = await second.get_conversation(conversation_id="c1")
        assert conversation is not None and conversation.visitor == VISITOR
        handoff = await second.open_handoff(conversation_id="c1")
        assert handoff is not None and handoff.id == "h1"
        assert await second.append_activity(conversation_id="c1", activity={}) == 2
    finally:
        await second.close()


async def _schema_version(url: str) -> Any:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval("SELECT version FROM schema_version")
    finally:
        await connection.close()


async def test_instances_starting_together_on_an_empty_database_migrate_once(
    postgres_url: str,
) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(postgres_url) for _ in range(3)))
    try:
        assert await _schema_version(postgres_url) == schema.VERSION
        await stores[0].set_meta(key="k", value="v")
        assert await stores[2].get_meta(key="k") == "v"
    finally:
        for store in stores:
            await store.close()


async def test_an_older_database_is_migrated_at_start(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await (await PostgresStore.open(postgres_url)).close()
    ran: list[int] = []

    async def add_notes(db: asyncpg.Connection) -> None:
        ran.append(1)
        await db.execute("ALTER TABLE handoffs ADD COLUMN notes text NOT NULL DEFAULT ''")

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, add_notes))
    monkeypatch.setattr(schema, "VERSION", schema.VERSION + 1)
    for _ in range(2):  # the second start finds it done
        await (await PostgresStore.open(postgres_url)).close()
    assert ran == [1]
    assert await _schema_version(postgres_url) == schema.VERSION


async def test_a_database_written_by_a_newer_version_is_refused(postgres_url: str) -> None:
    await (await PostgresStore.open(postgres_url)).close()
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("UPDATE schema_version SET version = $1", schema.VERSION + 1)
    finally:
        await connection.close()
    with pytest.raises(StoreError, match="written by a newer version") as caught:
        await PostgresStore.open(postgres_url)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://handoff:s3cret-pw@127.0.0.1:{free_port()}/handoff?sslmode=disable",
        "postgresql://handoff:s3cret-pw@127.0.0.1:1/handoff?sslmode=bogus",
        "postgresql://handoff:s3cret-pw@127.0.0.1:99999/handoff",
        "postgresql://handoff:s3cret-pw@[::1/handoff",
    ],
    ids=["refused", "bad-option", "bad-port", "bad-host"],
)
async def test_a_url_with_a_password_is_never_shown(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreError) as caught:
        await PostgresStore.open(url, connect_timeout=2)
    message = str(caught.value)
    assert message.startswith("cannot open the PostgreSQL store at "), message
    assert "\n" not in message
    assert "s3cret-pw" not in message and "s3cret-pw" not in caplog.text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@db.example:5432/handoff", "postgresql://u@db.example:5432/handoff"),
        ("postgres://db.example/handoff?password=pw", "postgres://db.example/handoff"),
        ("postgresql://u:pw@[::1]:5433/h", "postgresql://u@[::1]:5433/h"),
        ("postgresql://u:pw@host:notaport/h", "(an unreadable URL)"),
        ("postgresql://u:pw@[::1/h", "(an unreadable URL)"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


async def test_text_postgresql_cannot_hold_is_kept_as_sqlite_would_show_it(
    pg: PostgresStore,
) -> None:
    """U+0000: in plain text columns it becomes U+FFFD; in JSON it is escaped, so exact."""
    await pg.add_turn(turn=Turn("c1", T0, Role.VISITOR, "Ja\x00ne", "a\x00b"))
    assert [(t.author, t.text) for t in await pg.turns(conversation_id="c1")] == [
        ("Ja\ufffdne", "a\ufffdb")
    ]
    seq = await pg.append_activity(
        conversation_id="c1", activity={"text": "a\x00b"}, key="client:\x00"
    )
    assert await pg.activities_after(conversation_id="c1", watermark=0) == [
        (seq, {"text": "a\x00b"})
    ]
    assert await pg.recent_keys(conversation_id="c1", limit=1) == [(seq, "client:\ufffd")]
    await pg.remember(key="teams:\x00", now=T0)
    assert await pg.seen(key="teams:\x00")


@pytest.fixture
async def stepping(pg: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> PostgresStore:
    """Retention steps of 3 conversations and 4 delivery keys."""
    monkeypatch.setattr("adapters.storage.postgres.retention.PURGE_SCAN", 3)
    monkeypatch.setattr("adapters.storage.postgres.retention.SEEN_BATCH", 4)
    return pg


async def test_a_failed_retention_step_deletes_nothing_and_the_pass_starts_over(
    stepping: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step's connection dies in its transaction (after the conversations were judged):
    nothing of it is deleted, and the next step looks again from the start."""
    store = stepping
    cutoff = T0 + timedelta(days=30)
    for n in range(5):
        await contract._conversation_with_history(store, f"c{n}", last=T0)
    with monkeypatch.context() as patch, pytest.raises(StoreError):
        patch.setattr(
            "adapters.storage.postgres.retention._DELETE",
            "SELECT pg_terminate_backend(pg_backend_pid()), $1::text[]",
        )
        await store.purge(before=cutoff)
    assert await store.get_conversation(conversation_id="c0") is not None
    assert await store.purge(before=cutoff) == (["c0", "c1", "c2"], False)
    assert await store.purge(before=cutoff) == (["c3", "c4"], True)


async def test_the_activity_feed_resyncs_and_follows_again_after_a_database_restart(
    postgres: Cluster, two: Pair
) -> None:
    """Appends are notified once committed; after the server went away and came back, the
    follower is told to re-read (what was missed meanwhile is in the table), then notified."""
    a, b = two
    appended: list[tuple[str, int]] = []
    resyncs: list[float] = []
    a.follow(
        on_append=lambda cid, seq: appended.append((cid, seq)),
        on_resync=lambda: resyncs.append(time.monotonic()),
    )

    async def until(predicate: Any) -> None:
        for _ in range(1000):
            if predicate():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"not met: appended {appended}, resyncs {len(resyncs)}")

    await until(lambda: resyncs)
    await b.append_activity(conversation_id="c:1", activity={"n": 1})
    await until(lambda: appended == [("c:1", 1)])
    await asyncio.to_thread(postgres.stop)
    await asyncio.to_thread(postgres.start)
    started = time.monotonic()
    await until(lambda: len(resyncs) == 2)
    assert resyncs[-1] - started < 5
    await b.append_activity(conversation_id="c:1", activity={"n": 2})
    await until(lambda: appended == [("c:1", 1), ("c:1", 2)])
    await a.unfollow()
    await b.append_activity(conversation_id="c:1", activity={"n": 3})
    await asyncio.sleep(0.1)
    assert appended == [("c:1", 1), ("c:1", 2)]


async def test_a_key_is_appended_once_across_instances_even_at_the_same_moment(two: Pair) -> None:
    """A client's retry reaching another instance finds the first copy: the claim is made in
    the appending statement, and two at once get one new row, numbered without a gap."""
    a, b = two
    for n in range(20):
        key = f"client:{n}"
        results = await asyncio.gather(
            *(
                (a, b)[i % 2].append_once(
                    conversation_id="c1", activity={"type": "message", "n": n}, key=key
                )
                for i in range(4)
            )
        )
        assert sorted(new for _, new in results) == [False, False, False, True]
        assert len({seq for seq, _ in results}) == 1
    rows = await a.activities_after(conversation_id="c1", watermark=0)
    assert [seq for seq, _ in rows] == list(range(1, 21))
    assert await b.append_once(
        conversation_id="c2", activity={"type": "message"}, key="client:0"
    ) == (1, True)  # a key names an activity of its conversation only


async def test_a_delivery_is_claimed_by_one_instance_until_done_or_its_claim_runs_out(
    two: Pair,
) -> None:
    a, b = two
    lease = timedelta(seconds=30)
    claims = await asyncio.gather(
        *((a, b)[i % 2].claim(key="teams:t:1", now=T0, lease=lease) for i in range(6))
    )
    assert sorted(claims) == ["mine"] + ["taken"] * 5
    assert not await b.seen(key="teams:t:1")  # claimed is not handled
    await a.remember(key="teams:t:1", now=T0)
    assert await b.claim(key="teams:t:1", now=T0 + timedelta(hours=1), lease=lease) == "done"
    assert await b.seen(key="teams:t:1")

    # A claimer that went down: its claim runs out; one that failed gives it up at once.
    assert await a.claim(key="teams:t:2", now=T0, lease=lease) == "mine"
    assert await b.claim(key="teams:t:2", now=T0 + lease / 2, lease=lease) == "taken"
    assert await b.claim(key="teams:t:2", now=T0 + lease, lease=lease) == "mine"
    await b.release(key="teams:t:2")
    assert await a.claim(key="teams:t:2", now=T0 + lease, lease=lease) == "mine"


async def test_a_claim_of_a_process_that_went_down_is_free_at_once(
    postgres_url: str, two: Pair
) -> None:
    _, b = two
    gone = await PostgresStore.open(postgres_url)
    assert await gone.claim(key="teams:t:3", now=T0, lease=timedelta(seconds=30)) == "mine"
    assert await b.claim(key="teams:t:3", now=T0, lease=timedelta(seconds=30)) == "taken"
    await gone.close()  # its connections close with it, as a killed process's do
    assert await b.claim(key="teams:t:3", now=T0, lease=timedelta(seconds=30)) == "mine"


async def test_a_send_is_noted_once_however_many_rows_it_folded(pg: PostgresStore) -> None:
    seqs = [
        await pg.enqueue_outbound(thread_id=t, item={"kind": "text", "text": str(n)})
        for t in ("t1", "t2")
        for n in range(3)
    ]
    await pg.drop_outbound(seqs=seqs[:3])  # one post into t1 that folded three messages
    assert len(await pg.recent_sends(thread_id="t1", within=60)) == 1
    assert await pg.recent_sends(thread_id="t2", within=60) == []
    await pg.drop_outbound(seqs=seqs[3:])
    assert len(await pg.recent_sends(within=60)) == 2


async def test_the_feed_tells_of_other_instances_writes_not_of_its_own(two: Pair) -> None:
    """A store's own appends and posts are not notified to it (its process knows them, and the
    notification could arrive before the append's answer); another store's are, whatever the
    ids hold (spaces, colons)."""
    a, b = two
    appended: list[tuple[str, int]] = []
    queued: list[str] = []
    resynced = asyncio.Event()
    a.follow(
        on_append=lambda cid, seq: appended.append((cid, seq)),
        on_resync=resynced.set,
        on_queued=queued.append,
    )
    await asyncio.wait_for(resynced.wait(), 10)
    await a.append_activity(conversation_id="own one", activity={"n": 1})
    await a.append_once(conversation_id="own one", activity={"n": 2}, key="k")
    await a.enqueue_outbound(thread_id="19:own thread", item={"n": 1})
    await b.append_activity(conversation_id="a b:c", activity={"n": 1})
    await b.append_once(conversation_id="a b:c", activity={"n": 2}, key="k")
    await b.enqueue_outbound(thread_id="19:their thread;messageid=1", item={"n": 1})
    for _ in range(500):
        if len(appended) == 2 and queued:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # and nothing more comes
    await a.unfollow()
    assert appended == [("a b:c", 1), ("a b:c", 2)]
    assert queued == ["19:their thread;messageid=1"]


async def _grouped_db(url: str) -> Database:
    db = await Database.open(url)
    await db.write("CREATE TABLE IF NOT EXISTS grouped (k text PRIMARY KEY, v integer NOT NULL)")
    return db


async def test_concurrent_writes_of_one_statement_go_together_and_are_all_committed(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: while one write is on its way, those that come meanwhile go as one batch;
    each caller returns once its own row is committed."""
    db = await _grouped_db(postgres_url)
    batches: list[int] = []
    real = asyncpg.connection.Connection.executemany

    async def counted(self: asyncpg.Connection, sql: str, args: list[Any], **kw: Any) -> None:
        batches.append(len(args))
        await real(self, sql, args, **kw)

    monkeypatch.setattr(asyncpg.connection.Connection, "executemany", counted)
    sql = "INSERT INTO grouped (k, v) VALUES ($1, $2)"
    try:
        await asyncio.gather(*(db.write_grouped(sql, f"k{n}", n) for n in range(50)))
        assert dict(await db.one("SELECT count(*) AS n FROM grouped") or {}) == {"n": 50}
        assert batches and sum(batches) == 49  # the first went alone, the rest together
        assert len(batches) < 10
    finally:
        await db.close()


async def test_a_row_that_breaks_a_batch_fails_only_its_own_write(postgres_url: str) -> None:
    db = await _grouped_db(postgres_url)
    sql = "INSERT INTO grouped (k, v) VALUES ($1, $2)"
    try:
        await db.write(sql, "taken", 0)
        keys = [f"k{n}" for n in range(10)]
        keys[5] = "taken"  # a unique violation in the middle of a batch
        results = await asyncio.gather(
            *(db.write_grouped(sql, key, n) for n, key in enumerate(keys)),
            return_exceptions=True,
        )
        failed = [n for n, result in enumerate(results) if isinstance(result, StoreError)]
        assert failed == [5]
        rows = await db.rows("SELECT k FROM grouped ORDER BY k")
        assert sorted(r["k"] for r in rows) == sorted({*keys})
        assert db.failing is None  # a row's fault, not the database's
    finally:
        await db.close()


async def test_grouped_writes_fail_with_the_database_and_work_again_after(
    postgres: Cluster, postgres_url: str
) -> None:
    db = await _grouped_db(postgres_url)
    sql = "INSERT INTO grouped (k, v) VALUES ($1, $2)"
    try:
        await asyncio.to_thread(postgres.stop)
        try:
            results = await asyncio.gather(
                *(db.write_grouped(sql, f"k{n}", n) for n in range(5)), return_exceptions=True
            )
            assert all(isinstance(result, StoreError) for result in results), results
        finally:
            await asyncio.to_thread(postgres.start)
        for _ in range(100):
            with contextlib.suppress(StoreError):
                await asyncio.gather(*(db.write_grouped(sql, f"j{n}", n) for n in range(5)))
                break
            await asyncio.sleep(0.1)
        assert dict(await db.one("SELECT count(*) AS n FROM grouped") or {}) == {"n": 5}
    finally:
        await db.close()
