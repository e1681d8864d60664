"""The Teams delivery engine against the connector stand-in: storms, bursts, pacing, restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from adapters.runtime.httpclient import HttpClient
from adapters.storage.memory import MemoryStore
from adapters.storage.sqlite import SqliteStore
from adapters.teams.connector import BotConnector
from adapters.teams.delivery import DeliveryQueue
from adapters.teams.text import MAX_TEXT_BYTES, relay_markdown, split_text
from bot.errors import RetryableGatewayError, StoreError
from tests.support.delivery import (
    FAST_THREAD,
    THREAD,
    connected,
    delivered,
    make_connector,
    queue,
)
from tests.support.processes import eventually
from tests.support.standin import Standin


def texts(standin: Standin) -> list[str]:
    return [c.body.get("text", "") for c in standin.posts_to(THREAD)]


async def test_429_storm_with_and_without_retry_after(
    standin: Standin, connector: BotConnector
) -> None:
    standin.failures = [
        (429, {"Retry-After": "0.05"}),
        (429, {}),
        (429, {"Retry-After": "0"}),
        (429, {"Retry-After": "soon"}),
    ]
    delivery = queue(connector)
    for n in range(5):
        await delivery.post_text(thread_id=THREAD, text=f"m{n}")
    await delivery.drain()
    assert delivered(standin) == [f"m{n}" for n in range(5)]
    assert len(standin.posts_to(THREAD)) == 9  # 4 refused attempts, then every message once


async def test_5xx_burst_never_loses_a_message(standin: Standin, connector: BotConnector) -> None:
    standin.failures = [(503, {}), (502, {}), (504, {}), (412, {}), (500, {})]
    delivery = queue(connector)
    await delivery.post_text(thread_id=THREAD, text="survives")
    await delivery.post_text(thread_id=THREAD, text="in order")
    await delivery.drain()
    assert delivered(standin) == ["survives", "in order"]


async def test_a_message_teams_refuses_for_good_does_not_block_the_rest(
    standin: Standin, connector: BotConnector
) -> None:
    standin.failures = [(400, {})]
    delivery = queue(connector)
    await delivery.post_text(thread_id=THREAD, text="malformed for Teams")
    await delivery.post_text(thread_id=THREAD, text="next one")
    await delivery.drain()
    assert delivered(standin) == ["next one"]


def over_limit(times: list[float], windows: tuple[tuple[int, float], ...]) -> list[str]:
    bad = []
    for limit, seconds in windows:
        for i, start in enumerate(times):
            inside = sum(1 for t in times[i:] if t < start + seconds - 1e-3)
            if inside > limit:
                bad.append(f"{inside} sends within {seconds}s")
    return bad


async def test_100_message_burst_in_order_within_the_limits(
    standin: Standin, connector: BotConnector
) -> None:
    delivery = queue(connector)
    for n in range(100):
        await delivery.post_text(thread_id=THREAD, text=f"burst {n}")
    await delivery.drain()
    calls = standin.posts_to(THREAD)
    assert [c.body["text"] for c in calls] == [f"burst {n}" for n in range(100)]
    assert over_limit([c.at for c in calls], FAST_THREAD) == []


async def test_restart_with_a_non_empty_queue(
    standin: Standin, connector: BotConnector, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "q.db")
    standin.failures = [(503, {})] * 1000  # Teams is down while we queue...
    first = queue(connector, store)
    await first.post_message(thread_id=THREAD, author="Jane", text="queued before the crash")
    await first.post_text(thread_id=THREAD, text="me too")
    await standin.wait_for(lambda: standin.posts_to(THREAD))
    await first.close()  # ...and the process stops with both still queued.
    await store.close()

    standin.failures = []
    store = SqliteStore(tmp_path / "q.db")
    second = queue(connector, store)
    await second.resume()
    await second.drain()
    assert delivered(standin) == ["**Jane:** queued before the crash", "me too"]
    assert await store.outbound_threads() == []
    await store.close()


async def test_behind_queue_coalesces_whole_messages(
    standin: Standin, connector: BotConnector
) -> None:
    import asyncio

    standin.gate = asyncio.Event()
    delivery = queue(connector)
    await delivery.post_message(thread_id=THREAD, author="Jane", text="first")
    await standin.wait_for(lambda: standin.posts_to(THREAD))  # held in flight
    for text in ("second", "third", "fourth"):
        await delivery.post_message(thread_id=THREAD, author="Jane", text=text)
    await delivery.post_text(thread_id=THREAD, text="a bot line")
    await delivery.post_message(thread_id=THREAD, author="Jane", text="fifth")
    standin.gate.set()
    await delivery.drain()
    assert delivered(standin) == [
        "**Jane:** first",
        "**Jane:** second<br>third<br>fourth",
        "a bot line",
        "**Jane:** fifth",
    ]


async def test_only_the_newest_card_update_is_sent(
    standin: Standin, connector: BotConnector
) -> None:
    import asyncio

    standin.gate = asyncio.Event()
    delivery = queue(connector)
    await delivery.post_text(thread_id=THREAD, text="hold")
    await standin.wait_for(lambda: standin.posts_to(THREAD))
    for state in ("joined", "ended"):
        await delivery.update_card(thread_id=THREAD, activity_id="1", card={"state": state})
    standin.gate.set()
    await delivery.drain()
    puts = standin.of("PUT")
    assert len(puts) == 1 and puts[0].body["attachments"][0]["content"] == {"state": "ended"}


async def test_oversize_message_is_split_cleanly(standin: Standin, connector: BotConnector) -> None:
    text = "\n".join(f"Line {n}: " + "words " * 40 for n in range(400))
    delivery = queue(connector)
    await delivery.post_message(thread_id=THREAD, author="Jane", text=text)
    await delivery.drain()
    posts = delivered(standin)
    assert len(posts) > 1
    assert all(len(p.encode()) <= MAX_TEXT_BYTES for p in posts)
    assert posts[0].startswith(f"**Jane (1/{len(posts)}):**")
    rebuilt = " ".join(p.split(":** ", 1)[1].replace("<br>", "\n") for p in posts)
    assert rebuilt.split() == text.split()  # nothing lost, nothing cut mid-word


def test_split_handles_escaping_growth() -> None:
    hostile = "[x]" * 20_000  # every character is escaped, ~5x longer
    pieces = split_text(hostile, "Jane")
    assert "".join(pieces) == hostile
    assert all(len(relay_markdown("Jane", p).encode()) <= MAX_TEXT_BYTES for p in pieces)


async def test_gone_thread_drops_its_queue_and_reports_once(
    standin: Standin, connector: BotConnector
) -> None:
    standin.failures = [(404, {})]
    reported: list[str] = []

    async def gone(thread_id: str, reason: str) -> None:
        reported.append(thread_id)

    delivery = queue(connector)
    delivery.on_thread_gone = gone
    for n in range(3):
        await delivery.post_text(thread_id=THREAD, text=f"lost {n}")
    await delivery.drain()
    assert reported == [THREAD]
    assert delivered(standin) == []


class FlakyTokens:
    """A token source that fails the first ``failures`` times (an identity-platform outage)."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def bearer(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "token"

    def invalidate(self) -> None:
        pass


@pytest.mark.parametrize(
    "error",
    [
        __import__("bot.errors", fromlist=["RetryableGatewayError"]).RetryableGatewayError(
            "AAD says no"
        ),
        RuntimeError("Session is closed"),
    ],
)
async def test_token_trouble_delays_but_never_drops(standin: Standin, error: Exception) -> None:
    async with connected(standin, FlakyTokens(3, error)) as connector:
        delivery = queue(connector)
        await delivery.post_text(thread_id=THREAD, text="still delivered")
        await delivery.drain()
    assert delivered(standin) == ["still delivered"]


@pytest.mark.parametrize("status", [401, 408])  # 401: with a fresh token
async def test_a_passing_refusal_is_retried_not_dropped(
    standin: Standin, connector: BotConnector, status: int
) -> None:
    standin.failures = [(status, {})]
    delivery = queue(connector)
    await delivery.post_text(thread_id=THREAD, text="kept")
    await delivery.drain()
    assert delivered(standin) == ["kept"]


class SlowTokens:
    """A token fetch that takes as long as the test says (a slow identity platform)."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()

    async def bearer(self) -> str:
        await self.ready.wait()
        return "token"

    def invalidate(self) -> None:
        pass


async def test_no_slot_is_taken_while_the_token_is_fetched(standin: Standin) -> None:
    """Slots taken before a slow token refresh would all go out at once after it, over the
    limits: the token comes first, then the pacing, then the send."""
    tokens = SlowTokens()
    async with connected(standin, tokens) as connector:
        delivery = queue(connector)
        for n in range(3):
            await delivery.post_text(thread_id=f"{THREAD}{n}", text=f"message {n}")
        await asyncio.sleep(0.05)
        assert delivery._tenant._sent == [] and delivery._tenant.in_flight == 0  # no slot yet
        assert delivered(standin) == []
        tokens.ready.set()
        await delivery.drain()
    assert sorted(delivered(standin)) == ["message 0", "message 1", "message 2"]


async def test_pacing_history_of_quiet_threads_is_forgotten(connector: BotConnector) -> None:
    """One window set per thread ever seen would grow for ever: an hour's quiet prunes it."""
    now = [0.0]
    delivery = DeliveryQueue(connector=connector, store=MemoryStore(), clock=lambda: now[0])
    for n in range(1500):
        now[0] += 0.1  # slower than any limit: no waiting
        async with delivery._slot(delivery._thread_slots(f"19:t{n}@thread.tacv2;messageid=1")):
            pass
    assert len(delivery._windows) == 1500  # all within the hour: all kept
    now[0] += 3600.0
    for n in range(600):
        now[0] += 0.1
        async with delivery._slot(delivery._thread_slots(f"19:later{n}@thread.tacv2;messageid=1")):
            pass
    assert not any(t.startswith("19:t") for t in delivery._windows)
    assert len(delivery._windows) == 600


async def test_a_token_hiccup_does_not_fail_a_new_thread(standin: Standin) -> None:
    """Opening a thread fetches the token first; if that fails once, the connector's own
    retries fetch it again instead of failing the handoff."""
    async with connected(standin, FlakyTokens(1, RetryableGatewayError("AAD says no"))) as c:
        delivery = queue(c)
        ref = await delivery.open_thread(
            channel_id="19:support@thread.tacv2", card={"type": "AdaptiveCard"}, text="new"
        )
    assert ref.thread_id


def test_without_a_configured_tenant_the_latest_service_url_is_used() -> None:
    connector = make_connector("https://smba.trafficmanager.net/teams", tenant_id="")
    assert connector.base_url == "https://smba.trafficmanager.net/teams"
    connector.learn_service_url("tenant-a", "https://smba.trafficmanager.net/emea/")
    assert connector.base_url == "https://smba.trafficmanager.net/emea"
    connector.configure(service_url="https://smba.trafficmanager.net/teams", tenant_id="tenant-b")
    assert connector.base_url == "https://smba.trafficmanager.net/teams"  # not another tenant's


async def test_a_message_whose_commit_failed_is_never_sent(
    standin: Standin, connector: BotConnector, tmp_path: Path
) -> None:
    """Queues are kept in memory beside the store; a failed commit must not leave a message
    there that the store no longer holds."""
    from tests.support.faults import full_disk

    store = SqliteStore(tmp_path / "m.db")
    delivery = queue(connector, store)
    real = store._db
    standin.gate, standin.hold_path = asyncio.Event(), "/activities"
    try:
        await delivery.post_text(thread_id=THREAD, text="first")
        await store.flush()
        await standin.wait_for(lambda: standin.posts_to(THREAD))  # held there
        store._db = full_disk(real)  # type: ignore[assignment]
        await delivery.post_text(thread_id=THREAD, text="lost")  # mirrored, then rolled back
        with pytest.raises(StoreError):
            await store.flush()
        store._db = real
        standin.gate.set()
        await delivery.drain()
        await delivery.post_text(thread_id=THREAD, text="kept")
        await delivery.drain()
        assert delivered(standin) == ["first", "kept"]
        assert await store.outbound_threads() == []
    finally:
        store._db = real
        await store.close()


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from adapters.runtime.retry import retry_after as _retry_after

    in_30s = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (_retry_after(in_30s) or 0) <= 30.5
    assert _retry_after(format_datetime(datetime(2020, 1, 1, tzinfo=UTC), usegmt=True)) == 0
    assert _retry_after("120") == 120  # honoured, not cut short
    assert _retry_after(" 0.05 ") == 0.05
    assert _retry_after("-3") == 0
    for unreadable in ("soon", "nan", ""):
        assert _retry_after(unreadable) is None  # the queue backs off as without one


async def test_a_card_that_cannot_be_updated_does_not_end_the_thread(
    standin: Standin, connector: BotConnector
) -> None:
    standin.failures = [(404, {})]  # the root card was deleted, say
    reported: list[str] = []

    async def gone(thread_id: str, reason: str) -> None:
        reported.append(thread_id)

    delivery = queue(connector)
    delivery.on_thread_gone = gone
    await delivery.update_card(thread_id=THREAD, activity_id="1", card={"state": "joined"})
    await delivery.post_text(thread_id=THREAD, text="still delivered")
    await delivery.drain()
    assert standin.refused[0].method == "PUT"
    assert delivered(standin) == ["still delivered"]
    assert reported == []


async def test_a_post_whose_answer_was_lost_is_sent_again_as_it_was(standin: Standin) -> None:
    """A timed-out post may have arrived: it goes again alone, not folded with what came since
    (Teams would show its lines twice within a longer post)."""
    made = make_connector(standin.url)
    client = HttpClient(timeout=0.3)
    made.use_client(client)
    standin.gate, standin.hold_path = asyncio.Event(), "/activities"
    try:
        delivery = queue(made)
        await delivery.post_message(thread_id=THREAD, author="Jane", text="a")
        await standin.wait_for(lambda: standin.posts_to(THREAD))  # arrived; no answer comes
        standin.hold_path = "/not-any-more"
        await delivery.post_message(thread_id=THREAD, author="Jane", text="b")
        await delivery.drain()
        standin.gate.set()  # the first one is answered at last (to nobody)
        await standin.wait_for(lambda: len(texts(standin)) == 3)
        assert sorted(texts(standin)) == ["**Jane:** a", "**Jane:** a", "**Jane:** b"]
    finally:
        standin.gate.set()
        await client.close()


async def test_a_worker_stopped_by_a_failed_commit_goes_round_again(
    standin: Standin, connector: BotConnector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages already committed behind one whose drop failed to commit are not left waiting
    for the next message or a restart."""
    from tests.support.faults import full_disk

    monkeypatch.setattr("adapters.runtime.workers.RETRY_FIRST", 0.05)
    store = SqliteStore(tmp_path / "w.db")
    delivery = queue(connector, store)
    real = store._db
    standin.gate, standin.hold_path = asyncio.Event(), "/activities"
    try:
        for text in ("x1", "x2", "x3"):
            await delivery.post_text(thread_id=THREAD, text=text)
        await store.flush()
        await standin.wait_for(lambda: standin.posts_to(THREAD))  # x1 in flight
        store._db = full_disk(real)  # type: ignore[assignment]
        standin.gate.set()  # x1 delivered; dropping it from the queue fails to commit
        await eventually(lambda: store.failed_commits > 0)
        store._db = real
        await standin.wait_for(lambda: {"x2", "x3"} <= set(delivered(standin)), timeout=10)
        assert delivered(standin)[-2:] == ["x2", "x3"]  # x1 may go twice: its drop was lost
    finally:
        store._db = real
        await delivery.close()
        await store.close()


async def test_a_folded_post_teams_refuses_loses_only_the_message_it_cannot_take(
    standin: Standin, connector: BotConnector
) -> None:
    delivery = queue(connector)
    for text in ("first", "second", "third", "fourth"):  # queued before the worker runs
        await delivery.post_message(thread_id=THREAD, author="Jane", text=text)
    standin.failures = [(400, {}), (400, {})]  # the folded post, then "first" alone
    await delivery.drain()
    assert [c.body["text"] for c in standin.refused] == [
        "**Jane:** first<br>second<br>third<br>fourth",
        "**Jane:** first",
    ]
    assert delivered(standin) == ["**Jane:** second", "**Jane:** third", "**Jane:** fourth"]


@pytest.mark.parametrize(
    "row",
    [
        {"kind": "relay", "author": "Jane", "text": "hello"},
        {"kind": "text", "text": "setup help", "format": "markdown"},
        {"kind": "text", "text": "plain"},
        {"kind": "card", "card": {"type": "AdaptiveCard"}, "summary": "ended"},
        {"kind": "update", "activity_id": "42", "card": {"type": "AdaptiveCard"}},
    ],
)
def test_queued_items_keep_the_json_earlier_versions_stored(row: dict[str, Any]) -> None:
    """A queue written before an upgrade is still sent: the typed items read and write the
    same rows."""
    from adapters.teams.outbox import decode, encode

    item = decode(row)
    assert encode(item) == row  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "row", [None, [], {"kind": "relay"}, {"kind": "card", "card": "x"}, {"kind": "nope"}]
)
def test_a_row_that_is_no_item_is_unreadable_not_a_crash(row: Any) -> None:
    from adapters.teams.outbox import Unreadable, decode

    assert isinstance(decode(row), Unreadable)


async def test_a_stored_row_that_is_no_item_is_dropped_and_the_rest_sent(
    standin: Standin, connector: BotConnector
) -> None:
    store = MemoryStore()
    await store.enqueue_outbound(thread_id=THREAD, item={"kind": "from the future"})
    await store.enqueue_outbound(
        thread_id=THREAD, item={"kind": "relay", "author": "Jane", "text": "hi"}
    )
    delivery = queue(connector, store)
    await delivery.resume()
    await delivery.drain()
    assert len(delivered(standin)) == 1 and "hi" in delivered(standin)[0]
    assert await store.outbound(thread_id=THREAD) == []


async def test_a_post_queued_with_no_wake_up_is_sent_after_two_looks(
    standin: Standin, connector: BotConnector, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    delivery = queue(connector, store)
    await delivery.post_text(thread_id=THREAD, text="woken")
    await delivery.drain()
    # Another process queued this one, and its notification never came.
    await store.enqueue_outbound(thread_id=THREAD, item={"kind": "text", "text": "forgotten"})
    await delivery.look()  # a wake-up may be on its way yet
    await delivery.drain()
    assert delivered(standin) == ["woken"]
    await delivery.look()  # the same post, still with nobody on it: lost
    await delivery.drain()
    assert delivered(standin) == ["woken", "forgotten"]
    assert [r.getMessage() for r in caplog.records if "no worker" in r.getMessage()] == [
        f"thread {THREAD}: posts were queued with no worker to send them; sending now"
    ]
    await delivery.look()
    assert await store.outbound_threads() == []
