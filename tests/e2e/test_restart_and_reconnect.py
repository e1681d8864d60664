"""Nothing is lost across a process kill or a widget reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import BotFactory, ChatFactory, RunningBot, VisitorFactory
from tests.support.directline_client import DirectLineClient
from tests.support.processes import BotProcess
from tests.support.scenarios import Teams, handed_off, joined
from tests.support.standin import Standin
from tests.support.teams import ALEX, send, thread_edit, thread_message


async def test_kill_mid_conversation_loses_nothing(
    bot_process: BotProcess,
    standin: Standin,
    http: aiohttp.ClientSession,
    start_visitor: VisitorFactory,
) -> None:
    visitor = await start_visitor(bot_process)
    teams = Teams(http, bot_process.url, standin)
    thread_id, _, _ = await joined(visitor, teams)
    seen = visitor.watermark

    bot_process.kill()
    await visitor.disconnect()
    await bot_process.start()

    # The widget reconnects with its watermark and its old token: nothing is replayed twice.
    before = len(visitor.activities)
    await visitor.connect(watermark=seen)
    await visitor.say("Are you still there after the hiccup?")
    await standin.wait_text_in(thread_id, "after the hiccup")
    ids = [a["id"] for a in visitor.activities]
    assert len(ids) == len(set(ids)), "replay duplicated activities"
    assert len(visitor.activities) > before

    # The thread still relays to the widget after the restart.
    await teams.write(thread_id, "Yes, still here.")
    reply = await visitor.wait_text("Yes, still here.")
    assert reply["from"]["name"] == "Alex Wilber"
    await visitor.disconnect()


async def test_reconnect_replays_everything_after_the_watermark(
    bot: RunningBot,
    visitor: DirectLineClient,
    visitor_factory: Callable[[RunningBot], DirectLineClient],
) -> None:
    await visitor.say("hello")
    await visitor.wait_text("How can I help")
    mark = visitor.watermark
    await visitor.disconnect()

    # While the widget is away, the bot answers; on reconnect, those arrive, and only those.
    status, _ = await visitor.post({"type": "message", "text": "what does it cost?"})
    assert status == 200
    missed_from = len(visitor.activities)
    await visitor.connect(watermark=mark)
    await visitor.wait_text("29 EUR")
    replayed = visitor.activities[missed_from:]
    assert [a["from"]["role"] for a in replayed] == ["user", "bot"]
    assert int(visitor.watermark) == int(mark) + 2

    # From watermark 0, a fresh socket gets the whole transcript in order.
    fresh = visitor_factory(bot)
    fresh.token, fresh.conversation_id, fresh.stream_url = (
        visitor.token,
        visitor.conversation_id,
        visitor.stream_url,
    )
    await fresh.connect()
    await fresh.wait_for(lambda: len(fresh.activities) == len(visitor.activities))
    assert [a["id"] for a in fresh.activities] == [a["id"] for a in visitor.activities]
    await fresh.disconnect()
    await visitor.disconnect()


async def test_in_process_restart_keeps_handoff_and_thread(
    start_chat: ChatFactory,
    start_bot: BotFactory,
    standin: Standin,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    first, visitor = await start_chat(db=tmp_path / "keep.db")
    handoff = await handed_off(visitor, standin)
    await visitor.disconnect()
    await first.stop()

    second = await start_bot(db=tmp_path / "keep.db")
    status, body = await Teams(http, second.url, standin).click(handoff, "handoff.join")
    assert status == 200 and "Alex Wilber joined" in str(body)
    visitor.follow(second.url)
    await visitor.connect(watermark=visitor.watermark)
    await visitor.wait_text("has joined")
    await visitor.disconnect()


async def test_everything_acknowledged_survives_a_kill_right_after(
    bot_process: BotProcess,
    standin: Standin,
    http: aiohttp.ClientSession,
    start_visitor: VisitorFactory,
) -> None:
    """An HTTP 200 is a promise: the process is killed the moment the last answer arrives."""
    visitor = await start_visitor(bot_process)
    teams = Teams(http, bot_process.url, standin)
    thread_id, _, _ = await joined(visitor, teams)
    await visitor.disconnect()

    async def from_visitor(i: int) -> int:
        status, _ = await visitor.post({"type": "message", "text": f"visitor line {i}"})
        return status

    async def from_thread(i: int) -> int:
        status, _ = await teams.write(thread_id, f"thread line {i}")
        return status

    statuses = await asyncio.gather(
        *(from_visitor(i) for i in range(20)), *(from_thread(i) for i in range(20))
    )
    bot_process.kill()
    assert all(s in (200, 201) for s in statuses), statuses

    await bot_process.start()
    await visitor.connect(watermark="0")
    texts = lambda: {a.get("text") for a in visitor.activities}  # noqa: E731
    await visitor.wait_for(
        lambda: (
            {f"visitor line {i}" for i in range(20)} | {f"thread line {i}" for i in range(20)}
            <= texts()
        )
    )
    # ...and what the visitor said still reaches the thread (once handled, after the restart).
    await standin.wait_for(
        lambda: all(
            any(f"visitor line {i}" in c.body.get("text", "") for c in standin.posts_to(thread_id))
            for i in range(20)
        )
    )
    await visitor.disconnect()


async def test_stopping_closes_open_widgets_at_once(
    bot_process: BotProcess, http: aiohttp.ClientSession, start_visitor: VisitorFactory
) -> None:
    """SIGTERM with widgets open: they are told "going away" (1001) and the process exits."""
    visitor = await start_visitor(bot_process)
    async with http.ws_connect(visitor.stream_url) as ws:
        await ws.receive_json(timeout=5)
        assert bot_process.process is not None
        bot_process.process.terminate()
        closed = await ws.receive(timeout=10)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closed
        assert ws.close_code == 1001
        # Not the 60 s aiohttp would otherwise wait for the socket's handler.
        await asyncio.get_running_loop().run_in_executor(None, bot_process.process.wait, 10)
    await visitor.disconnect()


async def test_retries_and_edits_are_recognised_after_a_restart(
    start_chat: ChatFactory,
    start_bot: BotFactory,
    standin: Standin,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """A widget retrying across a restart is not duplicated, and a specialist's edit of a
    message relayed before the restart still reaches the widget."""
    first, visitor = await start_chat(db=tmp_path / "keys.db")
    thread_id, _, _ = await joined(visitor, Teams(http, first.url, standin))
    said = thread_message(standin.url, thread_id, ALEX, "Typo in thsi one")
    await send(http, first.url, said)
    await visitor.wait_text("Typo in thsi one")
    retry = {"type": "message", "text": "sent twice", "channelData": {"clientActivityID": "r-1"}}
    status, sent = await visitor.post(dict(retry))
    assert status == 200
    await visitor.disconnect()
    await first.stop()

    second = await start_bot(db=tmp_path / "keys.db")
    visitor.follow(second.url)
    status, again = await visitor.post(dict(retry))
    assert status == 200 and again["id"] == sent["id"]
    await send(
        http,
        second.url,
        thread_edit(standin.url, thread_id, ALEX, said["id"], "Typo in this one"),
    )
    await visitor.connect(watermark="0")
    update = await visitor.wait_type("messageUpdate")
    assert update["text"] == "Typo in this one"
    assert [a.get("text") for a in visitor.activities].count("sent twice") == 1
    await visitor.disconnect()
