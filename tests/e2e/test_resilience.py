"""What the review found: crashes, timeouts, gone threads, slow Teams, hostile input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from adapters.runtime.httpclient import HttpClient
from adapters.storage.sqlite import SqliteStore
from bot.errors import RetryableGatewayError
from bot.model import Handoff, HandoffState
from tests.conftest import CHANNEL, BotFactory, ChatFactory
from tests.support.delivery import make_connector
from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import Teams, card_of, card_text, card_updates, handed_off, joined
from tests.support.standin import Standin


async def test_stored_but_unhandled_activity_is_handled_after_restart(
    start_chat: ChatFactory, start_bot: BotFactory, tmp_path: Path
) -> None:
    first, visitor = await start_chat(db=tmp_path / "crash.db")
    await visitor.wait_text("virtual assistant")
    await visitor.disconnect()
    await first.stop()
    # The process died right after storing the visitor's message, before handling it.
    store = SqliteStore(tmp_path / "crash.db")
    await store.append_activity(
        conversation_id=visitor.conversation_id,
        activity={
            "type": "message",
            "text": "what does it cost?",
            "from": {"id": "v", "role": "user"},
            "conversation": {"id": visitor.conversation_id},
            "timestamp": "2026-11-24T09:00:00Z",
        },
    )
    await store.close()

    second = await start_bot(db=tmp_path / "crash.db")
    visitor.follow(second.url)
    await visitor.connect(watermark=visitor.watermark)
    await visitor.wait_text("29 EUR")
    await visitor.disconnect()


async def test_queued_handoff_without_thread_is_opened_after_restart(
    start_chat: ChatFactory, start_bot: BotFactory, standin: Standin, tmp_path: Path
) -> None:
    first, visitor = await start_chat(db=tmp_path / "queued.db")
    await visitor.disconnect()
    await first.stop()
    # The process died between saving the queued handoff and opening its thread.
    store = SqliteStore(tmp_path / "queued.db")
    await store.save_handoff(
        handoff=Handoff(
            "h-crash",
            visitor.conversation_id,
            "support",
            HandoffState.QUEUED,
            datetime.now(UTC),
            "asked",
        )
    )
    await store.close()
    await start_bot(db=tmp_path / "queued.db")
    call = await standin.thread_opened()
    assert "h-crash" in card_text(card_of(call))


async def test_thread_creation_that_times_out_fails_cleanly(standin: Standin) -> None:
    standin.delay = 1.0
    connector = make_connector(standin.url)
    client = HttpClient(timeout=0.2)
    connector.use_client(client)
    try:
        await connector.open_thread(channel_id=CHANNEL, card={}, text="x")
    except RetryableGatewayError as exc:
        assert "TimeoutError" in str(exc)
    else:
        raise AssertionError("a timeout must surface as a gateway error")
    finally:
        await client.close()
    await asyncio.sleep(1.0)
    # The answer may have been lost after Teams created the thread: no blind second POST.
    assert len(standin.threads) == 1


async def test_gone_thread_ends_the_handoff_and_tells_the_visitor(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    await joined(visitor, teams)
    standin.failures = [(404, {})]  # the channel was deleted / the bot removed
    await visitor.say("hello?")
    await visitor.wait_for(lambda: visitor.statuses()[-1:] == ["failed"])
    await visitor.wait_text("couldn't reach a specialist")
    # The bot is first responder again.
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")


async def test_card_action_from_another_conversation_is_refused(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    handoff = await handed_off(visitor, standin)
    elsewhere = handoff._replace(thread_id=f"{CHANNEL};messageid=999999")
    status, body = await teams.click(elsewhere, "handoff.join")
    assert status == 200 and "not known" in body["value"]
    assert not any("has joined" in t for t in visitor.texts())


async def test_join_is_answered_while_a_relay_is_still_in_flight(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    handoff = await handed_off(visitor, standin)
    standin.gate = asyncio.Event()  # Teams stops answering posts into the thread
    await visitor.say("message while Teams is slow")
    await standin.wait_text_in(handoff.thread_id, "while Teams is slow")
    status, body = await teams.click(handoff, "handoff.join")
    assert status == 200 and "Alex Wilber joined" in card_text(body["value"])
    await visitor.wait_text("has joined")
    standin.gate.set()
    # The card update for everyone comes after the held relay, in order.
    update = await card_updates(standin, handoff.root)
    relay_index = next(
        i for i, c in enumerate(standin.calls) if "while Teams is slow" in c.body.get("text", "")
    )
    assert standin.calls.index(update[0]) > relay_index


async def test_visitor_markdown_is_shown_verbatim_in_the_thread(
    visitor: DirectLineClient, standin: Standin
) -> None:
    thread_id, _, _ = await handed_off(visitor, standin)
    await visitor.say("[Reset password](https://evil.example) **now**\n- a list")
    text = (await standin.wait_text_in(thread_id, "evil"))[0]
    assert "[Reset password]" not in text and "&#91;Reset password&#93;" in text
    assert "**now**" not in text and "<br>&#45; a list" in text


async def test_specialist_writing_after_the_end_is_told(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    thread_id, _, _ = await joined(visitor, teams)
    await visitor.event("handoff.end")
    await visitor.wait_text("You ended the chat")
    await teams.write(thread_id, "one more thing")
    assert await standin.wait_text_in(thread_id, "already ended")
    assert not any("one more thing" in t for t in visitor.texts())
