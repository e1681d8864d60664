"""Nothing is lost across a process kill or a widget reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import BotFactory, RunningBot
from tests.e2e.test_handoff_story import open_handoff
from tests.support.directline_client import DirectLineClient
from tests.support.processes import BotProcess
from tests.support.standin import Standin
from tests.support.teams import ALEX, card_action, send, thread_edit, thread_message


async def joined_handoff(
    url: str, standin: Standin, http: aiohttp.ClientSession
) -> tuple[DirectLineClient, str]:
    """A widget in a handoff Alex has joined; returns it and the thread id."""
    visitor = DirectLineClient(http, f"{url}/v3/directline", origin=url)
    await visitor.start()
    thread_id, _, handoff_id = await open_handoff(visitor, standin)
    await send(http, url, card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id))
    await visitor.wait_text("has joined")
    return visitor, thread_id


async def test_kill_mid_conversation_loses_nothing(
    bot_process: BotProcess, standin: Standin, http: aiohttp.ClientSession
) -> None:
    visitor, thread_id = await joined_handoff(bot_process.url, standin, http)
    seen = visitor.watermark

    bot_process.kill()
    await visitor.disconnect()
    await bot_process.start()

    # The widget reconnects with its watermark and its old token: nothing is replayed twice.
    before = len(visitor.activities)
    await visitor.connect(watermark=seen)
    await visitor.say("Are you still there after the hiccup?")
    await standin.wait_for(
        lambda: any(
            "after the hiccup" in c.body.get("text", "") for c in standin.posts_to(thread_id)
        )
    )
    ids = [a["id"] for a in visitor.activities]
    assert len(ids) == len(set(ids)), "replay duplicated activities"
    assert len(visitor.activities) > before

    # The thread still relays to the widget after the restart.
    await send(
        http, bot_process.url, thread_message(standin.url, thread_id, ALEX, "Yes, still here.")
    )
    reply = await visitor.wait_text("Yes, still here.")
    assert reply["from"]["name"] == "Alex Wilber"
    await visitor.disconnect()


async def test_reconnect_replays_everything_after_the_watermark(
    bot: RunningBot, visitor_factory: Callable[[RunningBot], DirectLineClient], standin: Standin
) -> None:
    visitor = visitor_factory(bot)
    await visitor.start()
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
    start_bot: BotFactory,
    visitor_factory: Callable[[RunningBot], DirectLineClient],
    standin: Standin,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    first = await start_bot(db=tmp_path / "keep.db")
    visitor = visitor_factory(first)
    await visitor.start()
    thread_id, _, handoff_id = await open_handoff(visitor, standin)
    await visitor.disconnect()
    await first.stop()

    second = await start_bot(db=tmp_path / "keep.db")
    status, body = await send(
        http, second.url, card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id)
    )
    assert status == 200 and "Alex Wilber joined" in str(body)
    visitor.base = second.directline
    visitor.stream_url = visitor.stream_url.replace(
        first.url.split("//")[1], second.url.split("//")[1]
    )
    await visitor.connect(watermark=visitor.watermark)
    await visitor.wait_text("has joined")
    await visitor.disconnect()


async def test_everything_acknowledged_survives_a_kill_right_after(
    bot_process: BotProcess, standin: Standin, http: aiohttp.ClientSession
) -> None:
    """An HTTP 200 is a promise: the process is killed the moment the last answer arrives."""
    visitor, thread_id = await joined_handoff(bot_process.url, standin, http)
    await visitor.disconnect()

    async def from_visitor(i: int) -> int:
        status, _ = await visitor.post({"type": "message", "text": f"visitor line {i}"})
        return status

    async def from_thread(i: int) -> int:
        status, _ = await send(
            http, bot_process.url, thread_message(standin.url, thread_id, ALEX, f"thread line {i}")
        )
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
    bot_process: BotProcess, http: aiohttp.ClientSession
) -> None:
    """SIGTERM with widgets open: they are told "going away" (1001) and the process exits."""
    visitor = DirectLineClient(http, f"{bot_process.url}/v3/directline", origin=bot_process.url)
    await visitor.start()
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
    start_bot: BotFactory,
    visitor_factory: Callable[[RunningBot], DirectLineClient],
    standin: Standin,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """A widget retrying across a restart is not duplicated, and a specialist's edit of a
    message relayed before the restart still reaches the widget."""
    first = await start_bot(db=tmp_path / "keys.db")
    visitor = visitor_factory(first)
    await visitor.start()
    thread_id, _, handoff_id = await open_handoff(visitor, standin)
    await send(
        http, first.url, card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id)
    )
    await visitor.wait_text("has joined")
    said = thread_message(standin.url, thread_id, ALEX, "Typo in thsi one")
    await send(http, first.url, said)
    await visitor.wait_text("Typo in thsi one")
    retry = {"type": "message", "text": "sent twice", "channelData": {"clientActivityID": "r-1"}}
    status, sent = await visitor.post(dict(retry))
    assert status == 200
    await visitor.disconnect()
    await first.stop()

    second = await start_bot(db=tmp_path / "keys.db")
    visitor.base = second.directline
    visitor.stream_url = visitor.stream_url.replace(
        first.url.split("//")[1], second.url.split("//")[1]
    )
    status, again = await visitor.post(dict(retry))
    assert status == 200 and again["id"] == sent["id"]
    await send(
        http,
        second.url,
        thread_edit(standin.url, thread_id, ALEX, said["id"], "Typo in this one"),
    )
    await visitor.connect(watermark="0")
    update = await visitor.wait_for(
        lambda: next((a for a in visitor.activities if a["type"] == "messageUpdate"), None)
    )
    assert update["text"] == "Typo in this one"
    assert [a.get("text") for a in visitor.activities].count("sent twice") == 1
    await visitor.disconnect()
