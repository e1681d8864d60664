"""The whole handoff over real sockets: Direct Line visitor, real botbuilder adapter, connector stand-in."""

from __future__ import annotations

from tests.conftest import CHANNEL, ChatFactory
from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import (
    Teams,
    card_of,
    card_text,
    card_updates,
    handed_off,
    joined,
    summary_in,
)
from tests.support.standin import Standin
from tests.support.teams import ISAIAH, TENANT


async def test_visitor_hands_off_to_specialist_and_back(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    greeting = await visitor.wait_text("virtual assistant")
    assert greeting["from"]["role"] == "bot"

    handoff = await handed_off(visitor, standin)
    thread_id, root, _ = handoff

    # The thread: a new conversation in the route's channel, whose root is the context card.
    opened = standin.threads[0]
    assert opened.body["isGroup"] is True
    assert opened.body["channelData"]["channel"]["id"] == CHANNEL
    assert opened.body["channelData"]["tenant"]["id"] == TENANT
    card = card_of(opened)
    assert card["type"] == "AdaptiveCard" and float(card["version"]) <= 1.5
    shown = card_text(card)
    for fact in (
        "Fabrikam",
        "Jane Doe",
        "jane@fabrikam.example",
        "https://contoso.example/pricing",
        "Enterprise",
        "How do I export my invoices?",
    ):
        assert fact in shown, fact
    assert "Open questions" in shown
    join = next(a for a in card["actions"] if a["title"] == "Join conversation")
    assert join["type"] == "Action.Execute" and join["verb"] == "handoff.join"
    assert join["fallback"]["type"] == "Action.Submit"
    assert join["fallback"]["data"] == join["data"]
    assert any("specialist" in t for t in visitor.texts("bot"))

    # While waiting, what the visitor writes already lands in the thread.
    await visitor.say("Still there?")
    await standin.wait_text_in(thread_id, "Still there?")

    # Alex joins by clicking the card.
    status, body = await teams.click(handoff, "handoff.join")
    assert status == 200
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Alex Wilber joined" in card_text(body["value"])
    assert [a["title"] for a in body["value"]["actions"]] == ["End conversation", "Transcript"]
    update = await standin.wait_for(lambda: standin.of("PUT", f"/activities/{root}"))
    assert "Alex Wilber joined" in card_text(card_of(update[-1]))
    joined = await visitor.wait_text("has joined and has the full context")
    assert joined["text"].startswith("Alex Wilber")
    assert "accepted" in visitor.statuses()

    # Isaiah clicks Join too: he is told who has it, nothing changes.
    puts_before = len(standin.of("PUT"))
    status, body = await teams.click(handoff, "handoff.join", by=ISAIAH)
    assert status == 200
    assert "Alex Wilber is already handling this conversation" in card_text(body["value"])
    assert len(standin.of("PUT")) == puts_before
    assert sum("has joined" in t for t in visitor.texts()) == 1

    # Visitor -> thread, in order, under the visitor's name.
    burst = [f"message {n}" for n in range(8)]
    for text in burst:
        await visitor.say(text)

    # When the queue is behind, consecutive messages may share a post, whole and in order.
    def burst_lines() -> list[str]:
        posts = [t for t in standin.texts_in(thread_id) if "message " in t]
        assert all(t.startswith("**Jane Doe:**") for t in posts)
        return [line.removeprefix("**Jane Doe:** ") for t in posts for line in t.split("<br>")]

    await standin.wait_for(lambda: len(burst_lines()) == 8)
    assert burst_lines() == burst

    # Thread -> visitor: the specialist's reply, mention and HTML stripped, under his name.
    status, _ = await teams.write(
        thread_id, "Hi Jane, <b>happy</b> to help with <at>Isaiah Langer</at>&#39;s export!"
    )
    assert status in (200, 201)
    reply = await visitor.wait_text("Hi Jane")
    assert reply["text"] == "Hi Jane, happy to help with Isaiah Langer's export!"
    assert reply["from"]["name"] == "Alex Wilber"
    assert reply["channelData"]["handoff"]["senderRole"] == "specialist"

    # Someone who has not joined writes in the thread: an internal note, not relayed.
    await teams.write(thread_id, "FYI she is on the old plan", by=ISAIAH)
    # The bot stays silent while the human is first responder.
    bot_lines_before = len(visitor.texts("bot"))
    await visitor.say("What is the refund policy?")
    await standin.wait_text_in(thread_id, "refund policy")
    assert len(visitor.texts("bot")) == bot_lines_before
    assert not any("old plan" in t for t in visitor.texts())

    # Alex ends it with /end: both sides told, card shows it ended, summary in the thread.
    await teams.write(thread_id, "/end")
    await visitor.wait_text("has ended the chat")
    assert visitor.statuses()[-1] == "completed"
    summary_text = card_text(card_of(await summary_in(standin, thread_id)))
    for part in ("Jane Doe with Alex Wilber", "Still open", "refund policy"):
        assert part in summary_text, part
    ended = standin.of("PUT", f"/activities/{root}")[-1]
    assert "Ended by Alex Wilber" in card_text(card_of(ended))
    assert [a["title"] for a in card_of(ended)["actions"]] == ["Transcript"]

    # The bot is first responder again, and nothing more goes to the thread.
    posts_before = len(standin.posts_to(thread_id))
    await visitor.say("what are your opening hours?")
    await visitor.wait_text("Monday to Friday")
    assert len(standin.posts_to(thread_id)) == posts_before


async def test_visitor_ends_from_the_widget(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    handoff = await joined(visitor, teams)
    await visitor.event("handoff.end")
    await visitor.wait_text("You ended the chat with Alex Wilber")
    assert visitor.statuses()[-1] == "completed"
    assert await card_updates(standin, handoff.root, showing="Ended by Jane Doe")
    await summary_in(standin, handoff.thread_id)
    # A late click on the ended card is refused politely.
    status, body = await teams.click(handoff, "handoff.join", by=ISAIAH)
    assert status == 200
    assert "already ended" in card_text(body["value"])


async def test_visitor_end_of_conversation_activity_ends_handoff(
    visitor: DirectLineClient, standin: Standin
) -> None:
    thread_id, _, _ = await handed_off(visitor, standin)
    status, _ = await visitor.post({"type": "endOfConversation"})
    assert status == 200
    await visitor.wait_for(lambda: visitor.statuses()[-1:] == ["completed"])
    await standin.wait_for(
        lambda: any(c.body.get("attachments") for c in standin.posts_to(thread_id))
    )


async def test_specialist_ends_with_card_button_and_submit_fallback(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    handoff = await handed_off(visitor, standin)
    # Action.Submit fallback (hosts without Universal Actions) joins as well.
    status, _ = await teams.click(handoff, "handoff.join", submit=True)
    assert status in (200, 201)
    await visitor.wait_text("Alex Wilber has joined")
    # Isaiah may not end Alex's conversation.
    status, body = await teams.click(handoff, "handoff.end", by=ISAIAH)
    assert "Only Alex Wilber" in card_text(body["value"])
    status, body = await teams.click(handoff, "handoff.end")
    assert status == 200 and "Ended by Alex Wilber" in card_text(body["value"])
    await visitor.wait_text("Alex Wilber has ended the chat")


async def test_upstream_agent_initiates_handoff_with_transcript(
    start_chat: ChatFactory, standin: Standin
) -> None:
    _, visitor = await start_chat(env={"DIRECTLINE_SECRET": "agent-secret"})
    transcript = {
        "activities": [
            {
                "type": "message",
                "text": "My card was charged twice",
                "from": {"role": "user", "name": "Jane"},
                "timestamp": "2026-11-24T09:00:00Z",
            },
            {
                "type": "message",
                "text": "I can't see duplicate charges.",
                "from": {"role": "bot", "name": "Copilot"},
                "timestamp": "2026-11-24T09:00:05Z",
            },
            {
                "type": "message",
                "text": "Why was I charged twice?",
                "from": {"role": "user", "name": "Jane"},
                "timestamp": "2026-11-24T09:00:10Z",
            },
        ]
    }
    # The upstream agent is a server: it authenticates with the widget secret, not a visitor token.
    visitor_token, visitor.token = visitor.token, "agent-secret"
    status, _ = await visitor.post(
        {
            "type": "event",
            "name": "handoff.initiate",
            "value": {
                "reason": "the Copilot agent could not resolve a billing dispute",
                "category": "billing",
                "visitor": {"name": "Jane Doe", "company": "Fabrikam"},
            },
            "attachments": [
                {"contentType": "application/json", "name": "Transcript", "content": transcript}
            ],
        }
    )
    assert status == 200
    visitor.token = visitor_token
    call = await standin.thread_opened()
    shown = card_text(card_of(call))
    assert call.body["channelData"]["channel"]["id"] == CHANNEL  # category billing -> support
    for part in (
        "Fabrikam",
        "My card was charged twice",
        "Why was I charged twice?",
        "billing dispute",
    ):
        assert part in shown, part
    await visitor.wait_for(lambda: "queued" in visitor.statuses())


async def test_request_button_picks_route_by_category(
    visitor: DirectLineClient, standin: Standin
) -> None:
    await visitor.event("handoff.request", {"category": "sales"})
    call = await standin.thread_opened()
    assert call.body["channelData"]["channel"]["id"] == "19:sales@thread.tacv2"
    # Asking again while queued does not open a second thread.
    await visitor.event("handoff.request", {})
    await visitor.wait_text("already in line")
    assert len(standin.threads) == 1


async def test_visitor_leaves_the_queue_before_anyone_joins(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    first = await handed_off(visitor, standin)
    await visitor.event("handoff.end")
    await visitor.wait_text("cancelled the request for a specialist")
    ended = await standin.wait_for(lambda: standin.of("PUT", first.root))
    assert "Ended by Jane Doe" in card_text(card_of(ended[-1]))
    # A specialist declining a queued request is told apart from ending a joined chat.
    second = await handed_off(visitor, standin)
    status, body = await teams.click(second, "handoff.end", by=ISAIAH)
    assert status == 200 and "Ended by Isaiah Langer" in card_text(body["value"])
    await visitor.wait_text("can't take this chat right now")


async def test_the_handoff_notice_does_not_count_as_an_answer(
    visitor: DirectLineClient, standin: Standin
) -> None:
    await visitor.say("How do I export my invoices?")
    await visitor.wait_text("not sure I can answer")
    await visitor.event("handoff.request", {"category": "support"})
    call = await standin.thread_opened()
    card = card_text(card_of(call))
    assert "Open questions" in card and "How do I export my invoices?" in card
