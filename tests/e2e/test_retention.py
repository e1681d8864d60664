"""Retention over the real app: idle conversations go with everything of theirs; a widget that
is open, a handoff that is open and a recent conversation stay; a deleted one answers as gone."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.directline import meta_keys
from adapters.runtime.clock import utc_now
from adapters.web.app import DIRECTLINE, STORE
from tests.conftest import BotFactory, ChatFactory, VisitorFactory
from tests.support.scenarios import Teams, handed_off, joined
from tests.support.standin import Standin


async def deleted(store: Any, cid: str, timeout: float) -> bool:
    """Whether retention deletes the conversation within ``timeout`` seconds."""
    for _ in range(int(timeout / 0.02)):
        if await store.get_conversation(conversation_id=cid) is None:
            return True
        await asyncio.sleep(0.02)
    return False


class Clock:
    """Real time, plus however far the test has moved it on."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def __call__(self) -> datetime:
        return utc_now() + self.ahead


async def test_idle_conversations_are_deleted_and_the_rest_kept(
    start_bot: BotFactory,
    start_visitor: VisitorFactory,
    standin: Standin,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    clock = Clock()
    storage = {"sqlite_path": str(tmp_path / "h.db"), "retention_days": 30}
    bot = await start_bot(clock=clock, retention_interval=0.05, storage=storage)
    store = bot.app[STORE]

    # Jane talked to Alex and left (socket closed); Sam is still on the page; Kim is waiting
    # for a specialist.
    teams = Teams(http, bot.url, standin)
    jane = await start_visitor(bot)
    handoff = await joined(jane, teams)
    await teams.write(handoff.thread_id, "/end")
    await jane.wait_text("has ended the chat")
    await jane.disconnect()
    sam = await start_visitor(bot)
    await sam.wait_text("virtual assistant")
    kim = await start_visitor(bot)
    await handed_off(kim, standin)
    await kim.disconnect()

    # The channel's own rows for the conversation are filed under it.
    posted = f"{meta_keys.POSTED}:{jane.conversation_id}"
    assert await store.get_meta(key=posted) is not None

    # 31 days on: the retention pass deletes Jane's conversation only.
    clock.ahead = timedelta(days=31)

    assert await deleted(store, jane.conversation_id, timeout=10)
    assert await store.activities_after(conversation_id=jane.conversation_id, watermark=0) == []
    assert await store.turns(conversation_id=jane.conversation_id) == []
    assert await store.get_handoff(handoff_id=handoff.handoff_id) is None
    assert await store.get_meta(key=posted) is None
    for kept in (sam, kim):
        assert await store.get_conversation(conversation_id=kept.conversation_id) is not None
    assert jane.conversation_id not in bot.app[DIRECTLINE].connected()

    # Jane's widget comes back with a token still valid (a tab left open keeps refreshing it;
    # here the clock goes back instead): the conversation is gone, clearly, so the widget
    # starts a new one.
    clock.ahead = timedelta()
    async with http.get(
        f"{bot.directline}/conversations/{jane.conversation_id}",
        params={"watermark": "1"},
        headers={"Authorization": f"Bearer {jane.token}"},
    ) as r:
        assert r.status == 404
    status, body = await jane.post({"type": "message", "text": "hello?"})
    assert status == 404 and body["error"]["code"] == "BadArgument"
    # Alex writes in the old thread, and clicks the old card: no error, nothing relayed.
    status, _ = await teams.write(handoff.thread_id, "anyone there?")
    assert status in (200, 201)
    status, card = await teams.click(handoff, "handoff.join")
    assert status == 200 and card["statusCode"] == 200

    # Sam, still on the page, talks on as if nothing happened.
    await sam.say("what are your opening hours?")
    await sam.wait_text("Monday to Friday")
    await sam.disconnect()


@pytest.mark.parametrize("days", [None, 30])
async def test_retention_can_be_switched_off(
    start_chat: ChatFactory,
    days: int | None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="adapters.web.housekeeping")
    clock = Clock()
    storage = {"sqlite_path": str(tmp_path / "h.db"), "retention_days": days}
    bot, visitor = await start_chat(clock=clock, retention_interval=0.05, storage=storage)
    await visitor.wait_text("virtual assistant")
    await visitor.disconnect()
    store = bot.app[STORE]
    await store.remember(key="teams:19:t;messageid=1:1", now=clock())
    await store.flush()
    clock.ahead = timedelta(days=3650)
    # Off: ten passes go by and it is still there.
    assert await deleted(store, visitor.conversation_id, timeout=0.5) == (days is not None)
    # Teams delivery keys are bookkeeping, not transcripts: they go after a day either way.
    assert not await store.seen(key="teams:19:t;messageid=1:1")
    told = "retention off" if days is None else "conversations idle for 30 days are deleted"
    assert sum(told in r.getMessage() for r in caplog.records) == 1  # once, not every pass
