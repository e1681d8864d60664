"""Fan-out across instances: two stores on one PostgreSQL database (a pool each, as two app
instances have), each with its own streams; a widget's socket held by instance A shows what
instance B appends, in the log's order, once, also when notifications were lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from adapters.directline.sockets import Sockets
from adapters.directline.streams import ConversationStreams
from adapters.storage.postgres import PostgresStore, feed
from bot.errors import StoreError
from tests.support.servers import serve

CID = "c1"


@dataclass
class Instance:
    store: PostgresStore
    streams: ConversationStreams
    committed: list[tuple[str, int]] = field(default_factory=list)  # what the inbox was told
    resyncs: int = 0


@dataclass
class Widget:
    """A visitor's socket: every activity it got, with its seq."""

    ws: aiohttp.ClientWebSocketResponse
    seqs: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    async def read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT or not message.data:
                continue  # keep-alives are empty
            for activity in json.loads(message.data)["activities"]:
                self.seqs.append(int(activity["id"].rsplit("|", 1)[1]))
                self.texts.append(activity.get("text", ""))

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        for _ in range(int(timeout / 0.01)):
            if predicate():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the socket got {self.seqs}")


async def _instance(url: str) -> Instance:
    store = await PostgresStore.open(url)
    instance = Instance(store, ConversationStreams(store))

    def committed(cid: str, seq: int, _activity: dict[str, Any]) -> None:
        instance.committed.append((cid, seq))

    def resync() -> None:
        instance.resyncs += 1
        instance.streams.resync()

    instance.streams.on_committed = committed
    store.follow(on_append=instance.streams.committed, on_resync=resync)
    return instance


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[Instance, Instance]]:
    a, b = await _instance(postgres_url), await _instance(postgres_url)
    await _until(lambda: a.resyncs and b.resyncs)  # both listening
    yield a, b
    for instance in (a, b):
        await instance.streams.close()
        await instance.store.close()


async def _until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def widget_on(
    http: aiohttp.ClientSession,
) -> AsyncIterator[Callable[[Instance], Any]]:
    """Open a widget's socket on an instance (a server of its own, serving its sockets)."""
    runners: list[web.AppRunner] = []
    widgets: list[tuple[Widget, asyncio.Task[None]]] = []

    async def open_on(instance: Instance) -> Widget:
        sockets = Sockets(instance.streams, instance.store)

        async def stream(request: web.Request) -> web.WebSocketResponse:
            return await sockets.serve(request, CID, 0, idle_minutes=5)

        app = web.Application()
        app.router.add_get("/stream", stream)
        runner, url = await serve(app)
        runners.append(runner)
        widget = Widget(await http.ws_connect(f"{url}/stream"))
        widgets.append((widget, asyncio.create_task(widget.read())))
        # Subscribed once the socket's replay (of nothing) is done.
        await _until(lambda: instance.streams.sockets_of(CID))
        return widget

    yield open_on
    for widget, reader in widgets:
        await widget.ws.close()
        await reader
    for runner in runners:
        await runner.cleanup()


def _message(text: str) -> dict[str, Any]:
    return {"type": "message", "text": text}


async def test_what_another_instance_appends_reaches_this_ones_socket_in_order_once(
    pair: tuple[Instance, Instance], widget_on: Callable[[Instance], Any]
) -> None:
    a, b = pair
    widget: Widget = await widget_on(a)
    # Both instances append to the conversation at once: B's rows come by notification, A's
    # are pushed locally; each row reaches the socket once, in order.
    await asyncio.gather(
        *(b.streams.append(CID, _message(f"b{i}")) for i in range(20)),
        *(a.streams.append(CID, _message(f"a{i}")) for i in range(20)),
    )
    await widget.until(lambda: len(widget.seqs) >= 40)
    await asyncio.sleep(0.2)  # any duplicate would have come by now
    assert widget.seqs == list(range(1, 41))
    assert set(widget.texts) == {f"a{i}" for i in range(20)} | {f"b{i}" for i in range(20)}
    # Each instance's inbox hears of its own appends only, not of the other's.
    assert len(a.committed) == len(b.committed) == 20
    assert not {s for _, s in a.committed} & {s for _, s in b.committed}


async def test_appends_made_while_the_listener_was_down_arrive_once_it_is_back(
    pair: tuple[Instance, Instance],
    widget_on: Callable[[Instance], Any],
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = pair
    widget: Widget = await widget_on(a)
    await b.streams.append(CID, _message("before"))
    await widget.until(lambda: widget.seqs == [1])

    # The listening connections are cut, and stay away for a second: what B appends meanwhile
    # is notified to nobody (PostgreSQL keeps no notification for a listener not connected).
    monkeypatch.setattr(feed, "RECONNECT_FIRST", 2.0)
    resyncs = a.resyncs
    admin = await asyncpg.connect(postgres_url)
    try:
        listening = (
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()"
        )
        killed = await admin.fetch(
            f"SELECT pg_terminate_backend(pid) FROM ({listening}) AS l", feed.APPLICATION_NAME
        )
        assert len(killed) == 2
        for _ in range(200):
            if not await admin.fetch(listening, feed.APPLICATION_NAME):
                break
            await asyncio.sleep(0.01)
        for i in range(5):
            await b.streams.append(CID, _message(f"while down {i}"))
        assert not await admin.fetch(listening, feed.APPLICATION_NAME)
    finally:
        await admin.close()
    assert widget.seqs == [1]  # nothing told A yet

    # Reconnected, A re-reads from the socket's watermark: every row, once, in order.
    await widget.until(lambda: len(widget.seqs) >= 6, timeout=10)
    assert a.resyncs > resyncs
    assert widget.seqs == list(range(1, 7))
    # ...and it follows again by notification.
    await b.streams.append(CID, _message("after"))
    await widget.until(lambda: len(widget.seqs) >= 7)
    await asyncio.sleep(0.1)
    assert widget.seqs == list(range(1, 8))
    assert widget.texts[-1] == "after"
    assert a.committed == []  # A's inbox was never told of B's rows


async def test_a_row_pushed_past_one_committed_elsewhere_sends_the_socket_to_the_log(
    pair: tuple[Instance, Instance], widget_on: Callable[[Instance], Any]
) -> None:
    """B's row may be notified after A pushed its own next row: the socket must not skip it."""
    a, b = pair
    widget: Widget = await widget_on(a)
    await a.store.unfollow()  # B's notification never comes: only the gap tells
    await b.streams.append(CID, _message("from b"))
    await a.streams.append(CID, _message("from a"))
    await widget.until(lambda: len(widget.seqs) >= 2)
    await asyncio.sleep(0.1)
    assert widget.seqs == [1, 2]
    assert widget.texts == ["from b", "from a"]


async def test_an_append_that_raised_after_it_committed_still_reaches_socket_and_inbox(
    pair: tuple[Instance, Instance],
    widget_on: Callable[[Instance], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database committed, the answer was lost (the connection went): the visitor was told
    it failed, and a retry finds it stored (nothing pushed). Since an instance is not told of
    its own appends, the socket reads the log and the inbox is told to, at once."""
    a, _ = pair
    widget: Widget = await widget_on(a)
    uncertain: list[str] = []
    a.streams.on_uncertain = uncertain.append
    real = a.store.append_once

    async def committed_then_lost(**kwargs: Any) -> tuple[int, bool]:
        await real(**kwargs)
        raise StoreError("the PostgreSQL store could not write: connection lost")

    monkeypatch.setattr(a.store, "append_once", committed_then_lost)
    with pytest.raises(StoreError):
        await a.streams.append(CID, _message("hello"), key="client:1")
    await widget.until(lambda: widget.seqs == [1])
    assert widget.texts == ["hello"]
    assert uncertain == [CID]
    monkeypatch.undo()
    # The client's retry finds it: the same id, nothing new pushed or told.
    activity_id, seq = await a.streams.append(CID, _message("hello"), key="client:1")
    assert (int(activity_id.rsplit("|", 1)[1]), seq) == (1, None)
    await asyncio.sleep(0.2)
    assert widget.seqs == [1]
    assert a.committed == []
