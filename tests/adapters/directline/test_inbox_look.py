"""Wake-ups are hints: the leader's look every few seconds finds activities nobody was woken
for, handles them, and reports a row it was never told of (a lost wake-up); rows it heard of,
or the bot's own waiting for the conversation's next message, are handled without a report."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from adapters.directline.inbox import Inbox
from adapters.storage.memory import MemoryStore

CID = "c1"


def _visitor(text: str) -> dict[str, Any]:
    return {"type": "message", "from": {"id": "u", "role": "user"}, "text": text}


def _bot(text: str) -> dict[str, Any]:
    return {"type": "message", "from": {"id": "bot", "role": "bot"}, "text": text}


class Handled:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, cid: str, activity: dict[str, Any]) -> None:
        self.texts.append(activity["text"])


def _lost_wake_ups(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "never told" in r.getMessage()]


async def test_an_activity_nobody_was_told_of_is_handled_by_a_look_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, handled = MemoryStore(), Handled()
    inbox = Inbox(store, handled)
    # Another process committed it, and its notification never came.
    seq = await store.append_activity(conversation_id=CID, activity=_visitor("hello?"))
    await inbox.look()  # handled at once: a look kicks what has no worker
    await inbox.drain()
    assert handled.texts == ["hello?"]
    assert await store.inbox_position(conversation_id=CID) == seq
    assert _lost_wake_ups(caplog) == []  # a notification may be on its way: not yet
    with caplog.at_level(logging.WARNING):
        await inbox.look()  # still never told of it: it was lost
    assert _lost_wake_ups(caplog) == [
        f"conversation {CID}: activity {seq} was committed, and this process, leading, was"
        " never told; handled after a look"
    ]
    await inbox.look()
    assert len(_lost_wake_ups(caplog)) == 1  # reported once
    assert handled.texts == ["hello?"]  # and handled once


async def test_what_was_heard_of_or_resumed_is_never_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, handled = MemoryStore(), Handled()
    inbox = Inbox(store, handled)
    first = await store.append_activity(conversation_id=CID, activity=_visitor("one"))
    await inbox.resume(careful=False)  # read by a resume (after a restart, a reconnect)
    await inbox.drain()
    two = await store.append_activity(conversation_id=CID, activity=_visitor("two"))
    inbox.committed_elsewhere(CID, two)  # notified
    await inbox.drain()
    # The bot's own row, appended here: told, and left for the conversation's next message.
    own = _bot("the bot answers")
    inbox.appended(CID, await store.append_activity(conversation_id=CID, activity=own), own)
    for _ in range(3):
        await inbox.look()
        await inbox.drain()
    assert handled.texts == ["one", "two"]
    assert await store.inbox_position(conversation_id=CID) == first + 2  # passed by a look
    assert _lost_wake_ups(caplog) == []


async def test_a_look_leaves_a_worker_waiting_to_retry_alone() -> None:
    store = MemoryStore()
    calls: list[str] = []

    async def failing(cid: str, activity: dict[str, Any]) -> None:
        from bot.errors import StoreError

        calls.append(activity["text"])
        raise StoreError("the database is away")

    inbox = Inbox(store, failing)
    inbox.committed_elsewhere(
        CID, await store.append_activity(conversation_id=CID, activity=_visitor("x"))
    )
    await inbox.drain()
    assert calls == ["x"]  # failed: a retry is scheduled, in a second or more
    await inbox.look()
    await inbox.drain()
    assert calls == ["x"]  # the look did not cut its backoff short
    await inbox.stop(graceful=False)
