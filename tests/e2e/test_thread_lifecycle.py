"""Thread lifecycle: internal notes, join timeouts, inactivity — sweeps driven with explicit times."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp

from adapters.runtime.clock import utc_now
from adapters.web.app import SERVICE
from tests.conftest import CHANNEL, BotFactory, RunningBot
from tests.e2e.test_handoff_story import card_of, card_text, open_handoff, relayed_texts
from tests.support.directline_client import DirectLineClient
from tests.support.standin import Standin
from tests.support.teams import ALEX, card_action, send, thread_message


def route(**extra: Any) -> list[dict[str, Any]]:
    return [
        {"id": "support", "name": "Customer support", "channel": CHANNEL, **extra},
        {"id": "overflow", "name": "Overflow desk", "channel": "19:overflow@thread.tacv2"},
    ]


async def sweep(bot: RunningBot, minutes: float) -> None:
    await bot.app[SERVICE].sweep(now=utc_now() + timedelta(minutes=minutes))


async def test_notes_are_not_relayed(
    bot: RunningBot, visitor: DirectLineClient, standin: Standin, http: aiohttp.ClientSession
) -> None:
    thread_id, _, handoff_id = await open_handoff(visitor, standin)
    await send(http, bot.url, card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id))
    await visitor.wait_text("has joined")
    for note in ("// she is on the legacy plan", "Note: check the refund first"):
        await send(http, bot.url, thread_message(standin.url, thread_id, ALEX, note))
    await send(http, bot.url, thread_message(standin.url, thread_id, ALEX, "Hello Jane!"))
    await visitor.wait_text("Hello Jane!")
    assert not any("legacy plan" in t or "refund first" in t for t in visitor.texts())


async def test_join_timeout_keeps_the_bot(
    start_bot: BotFactory, visitor_factory: Any, standin: Standin
) -> None:
    bot = await start_bot(routes=route(join_timeout_minutes=5))
    visitor = visitor_factory(bot)
    await visitor.start()
    _, root, _ = await open_handoff(visitor, standin)
    await sweep(bot, 4)
    assert standin.of("PUT") == []
    await sweep(bot, 6)
    await visitor.wait_text("none of our specialists could take your chat")
    assert visitor.statuses()[-1] == "failed"
    update = await standin.wait_for(lambda: standin.of("PUT", root))
    assert "No one joined within" in card_text(card_of(update[-1]))
    assert card_of(update[-1])["actions"] == []
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")  # the bot is first responder again
    await sweep(bot, 30)  # nothing happens twice
    assert sum("none of our specialists" in t for t in visitor.texts()) == 1


async def test_join_timeout_leave_a_message(
    start_bot: BotFactory, visitor_factory: Any, standin: Standin, http: aiohttp.ClientSession
) -> None:
    bot = await start_bot(routes=route(join_timeout_minutes=5, on_join_timeout="leave_message"))
    visitor = visitor_factory(bot)
    await visitor.start()
    thread_id, root, handoff_id = await open_handoff(visitor, standin)
    await sweep(bot, 6)
    await visitor.wait_text("Leave your message here")
    update = await standin.wait_for(lambda: standin.of("PUT", root))
    assert "visitor can leave a message" in card_text(card_of(update[-1]))
    await visitor.say("Please call me back on 555-0100")
    await standin.wait_for(lambda: any("555-0100" in t for t in relayed_texts(standin, thread_id)))
    # Someone can still join later.
    status, body = await send(
        http, bot.url, card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id)
    )
    assert "Alex Wilber joined" in card_text(body["value"])


async def test_join_timeout_tries_another_route(
    start_bot: BotFactory, visitor_factory: Any, standin: Standin
) -> None:
    bot = await start_bot(
        routes=route(join_timeout_minutes=5, on_join_timeout="route", join_timeout_route="overflow")
    )
    visitor = visitor_factory(bot)
    await visitor.start()
    await open_handoff(visitor, standin)
    await sweep(bot, 6)
    second = await standin.wait_for(
        lambda: standin.threads[1] if len(standin.threads) > 1 else None
    )
    assert second.body["channelData"]["channel"]["id"] == "19:overflow@thread.tacv2"
    assert "nobody joined on Customer support within 5 min" in card_text(card_of(second))
    # The visitor hears that the first team could not take it, then is queued with the next.
    await visitor.wait_text("none of our specialists")
    await visitor.wait_for(lambda: visitor.statuses()[-2:] == ["failed", "queued"])


async def test_idle_reminder_then_close_with_summary(
    start_bot: BotFactory, visitor_factory: Any, standin: Standin, http: aiohttp.ClientSession
) -> None:
    bot = await start_bot(routes=route(idle_reminder_minutes=10, idle_close_minutes=20))
    visitor = visitor_factory(bot)
    await visitor.start()
    thread_id, root, handoff_id = await open_handoff(visitor, standin)
    await send(http, bot.url, card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id))
    await visitor.wait_text("has joined")
    await sweep(bot, 5)
    assert not any("still there" in t for t in visitor.texts())
    await sweep(bot, 11)
    await visitor.wait_text("Are you still there?")
    await sweep(bot, 12)
    assert sum("Are you still there?" in t for t in visitor.texts()) == 1  # reminded once
    await sweep(bot, 21)
    await visitor.wait_text("closed after a while without messages")
    ended = await standin.wait_for(
        lambda: [
            c for c in standin.of("PUT", root) if "Closed automatically" in card_text(card_of(c))
        ]
    )
    assert "no messages for 21 min" in card_text(card_of(ended[-1]))
    await standin.wait_for(
        lambda: any(
            "Conversation summary" in card_text(card_of(c))
            for c in standin.posts_to(thread_id)
            if c.body.get("attachments")
        )
    )


async def test_activity_resets_the_idle_clock(
    start_bot: BotFactory, visitor_factory: Any, standin: Standin, http: aiohttp.ClientSession
) -> None:
    bot = await start_bot(routes=route(idle_reminder_minutes=10, idle_close_minutes=20))
    visitor = visitor_factory(bot)
    await visitor.start()
    thread_id, _, handoff_id = await open_handoff(visitor, standin)
    await send(http, bot.url, card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id))
    await visitor.wait_text("has joined")
    await sweep(bot, 11)
    await visitor.wait_text("Are you still there?")
    await visitor.say("yes, still here")  # now
    await standin.wait_for(
        lambda: any("still here" in t for t in relayed_texts(standin, thread_id))
    )
    await sweep(bot, 15)  # 15 min after the join, but only seconds after the visitor's reply
    assert not any("closed after a while" in t for t in visitor.texts())


async def test_a_left_message_request_closes_when_it_goes_quiet(
    start_bot: BotFactory, visitor_factory: Any, standin: Standin
) -> None:
    bot = await start_bot(
        routes=route(
            join_timeout_minutes=5,
            on_join_timeout="leave_message",
            idle_reminder_minutes=10,
            idle_close_minutes=20,
        )
    )
    visitor = visitor_factory(bot)
    await visitor.start()
    await open_handoff(visitor, standin)
    await sweep(bot, 6)
    await visitor.wait_text("Leave your message here")
    await sweep(bot, 30)
    await visitor.wait_text("closed after a while without messages")
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")  # the bot answers again


async def test_transfer_only_to_people(
    bot: RunningBot, visitor: DirectLineClient, standin: Standin, http: aiohttp.ClientSession
) -> None:
    thread_id, _, handoff_id = await open_handoff(visitor, standin)
    await send(http, bot.url, card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id))
    await visitor.wait_text("has joined")
    channel = {"id": CHANNEL, "name": "General"}
    message = thread_message(standin.url, thread_id, ALEX, "/transfer", mentions=(channel,))
    message["entities"][-1]["mentioned"]["conversationIdentityType"] = "channel"
    await send(http, bot.url, message)
    await standin.wait_for(
        lambda: any(
            "mention your colleague" in c.body.get("text", "") for c in standin.posts_to(thread_id)
        )
    )
    assert not any("taken over" in t for t in visitor.texts())
