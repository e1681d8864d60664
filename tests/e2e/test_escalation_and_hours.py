"""Escalation, team choice, work hours and locales, through the real widget channel."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import CHANNEL, ChatFactory
from tests.support.directline_client import DirectLineClient
from tests.support.standin import Standin

CLOSED_NOW = {"timezone": "Europe/Berlin", "weekly": {"mon": ["09:00-17:00"]}}
TUESDAY_10_UTC = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


async def test_visitor_picks_a_team_when_several_are_offered(
    start_chat: ChatFactory, standin: Standin
) -> None:
    _, visitor = await start_chat(
        routes=[
            {
                "id": "billing",
                "name": "Billing",
                "description": "Invoices and refunds",
                "channel": "19:bill@thread.tacv2",
            },
            {
                "id": "tech",
                "name": "Technical support",
                "description": "Bugs and outages",
                "channel": CHANNEL,
            },
            {
                "id": "hidden",
                "name": "Partners",
                "channel": "19:p@thread.tacv2",
                "pretrigger": '"partner" in visitor.tags',
                "trigger": "true",
            },
        ],
    )
    await visitor.event("handoff.request", {})
    offer = await visitor.wait_text("Which team can help you?")
    assert "\u2022 Billing: Invoices and refunds" in offer["text"]
    actions = offer["suggestedActions"]["actions"]
    assert [a["title"] for a in actions] == ["Billing", "Technical support"]  # Partners not offered
    assert standin.threads == []
    chosen = actions[1]
    status, _ = await visitor.post(
        {"type": "message", "text": chosen["text"], "value": chosen["value"]}
    )
    assert status == 200
    call = await standin.thread_opened()
    assert call.body["channelData"]["channel"]["id"] == CHANNEL
    assert "Bugs and outages" in str(call.body)


async def test_frustration_hands_off(visitor: DirectLineClient, standin: Standin) -> None:
    await visitor.say("your product is useless")
    await visitor.wait_text("not sure I can answer")
    await visitor.say("this is ridiculous, nothing works")
    call = await standin.thread_opened()
    assert "seems frustrated (2 upset messages in a row)" in str(call.body)


async def test_bot_failing_three_times_hands_off(
    visitor: DirectLineClient, standin: Standin
) -> None:
    for question in ("Where is my parcel?", "Can you track order 42?"):
        await visitor.say(question)
    await visitor.wait_for(lambda: sum("not sure I can answer" in t for t in visitor.texts()) == 2)
    await visitor.say("Which courier do you use?")
    call = await standin.thread_opened()
    shown = str(call.body)
    assert "could not answer 3 times in a row" in shown
    assert "Where is my parcel?" in shown and "Which courier do you use?" in shown  # open questions


async def test_switched_off_triggers(start_chat: ChatFactory, standin: Standin) -> None:
    _, visitor = await start_chat(
        escalation={"phrases": {"enabled": False}, "widget_request": False},
    )
    await visitor.say("can I talk to a human?")
    await visitor.wait_text("not sure I can answer")
    await visitor.event("handoff.request", {})
    await visitor.wait_text("isn't available here")
    assert standin.threads == []


async def test_context_rule_hands_off(start_chat: ChatFactory, standin: Standin) -> None:
    _, visitor = await start_chat(
        escalation={
            "rules": [
                {
                    "name": "enterprise question",
                    "when": 'has(context.plan) && context.plan == "Enterprise" && "question" in conversation.intents',
                }
            ]
        },
    )
    await visitor.event("visitor.context", {"name": "Jane", "plan": "Enterprise"})
    await visitor.say("hello")
    await visitor.wait_text("How can I help")
    await visitor.say("Do you support SSO?")
    call = await standin.thread_opened()
    assert "rule \u201centerprise question\u201d matched" in str(call.body)


async def test_out_of_hours_says_when_the_team_is_back_in_the_visitors_zone(
    start_chat: ChatFactory, standin: Standin
) -> None:
    _, visitor = await start_chat(
        clock=lambda: TUESDAY_10_UTC,
        routes=[
            {
                "id": "support",
                "name": "Customer support",
                "channel": CHANNEL,
                "hours": CLOSED_NOW,
                "out_of_hours": "message",
            }
        ],
    )
    await visitor.event("visitor.context", {"name": "Jane", "timezone": "America/New_York"})
    await visitor.say("agent please")
    reply = await visitor.wait_text("are back")
    assert reply["text"] == (
        "Our specialists from Customer support are back on Monday at 03:00. "
        "I'll keep helping as best I can until then."
    )
    assert standin.threads == []


async def test_out_of_hours_continue_and_fallback_route(
    start_chat: ChatFactory, standin: Standin
) -> None:
    _, visitor = await start_chat(
        clock=lambda: TUESDAY_10_UTC,
        routes=[
            {
                "id": "day",
                "name": "Day team",
                "channel": "19:day@thread.tacv2",
                "hours": CLOSED_NOW,
                "trigger": "has(context.vip)",
                "out_of_hours": "fallback_route",
                "fallback_route": "night",
            },
            {"id": "night", "name": "Night desk", "channel": "19:night@thread.tacv2"},
            {
                "id": "weekday",
                "name": "Weekday team",
                "channel": "19:wd@thread.tacv2",
                "hours": CLOSED_NOW,
                "trigger": "has(context.weekday)",
            },
        ],
    )
    await visitor.event("visitor.context", {"weekday": True})
    await visitor.say("agent please")
    await visitor.wait_text("aren't available right now")  # continue: the bot keeps helping
    assert standin.threads == []
    await visitor.event("visitor.context", {"vip": True, "weekday": None})
    await visitor.say("agent please")
    call = await standin.thread_opened()
    assert call.body["channelData"]["channel"]["id"] == "19:night@thread.tacv2"


async def test_texts_follow_the_visitors_locale(start_chat: ChatFactory, standin: Standin) -> None:
    _, visitor = await start_chat(
        texts={
            "queued": "Connecting you to {route}.",
            "locales": {"de": {"queued": "Ich verbinde Sie mit {route}."}},
        },
    )
    await visitor.event("visitor.context", {"name": "Jana", "locale": "de-AT"})
    await visitor.say("Ich möchte mit einem Menschen sprechen")
    await visitor.wait_text("Ich verbinde Sie mit Customer support.")


async def test_a_rule_that_cannot_evaluate_never_silences_the_bot(
    start_chat: ChatFactory, standin: Standin
) -> None:
    _, visitor = await start_chat(
        escalation={"rules": [{"name": "vip", "when": 'visitor.tags[0] == "vip"'}]},
    )
    await visitor.event("visitor.context", {"name": "Jane", "seats": 2**70})  # beyond 64 bits too
    await visitor.say("what does it cost?")
    await visitor.wait_text("29 EUR")
    assert standin.threads == []
