"""The steps end-to-end stories share: a visitor asks for a person, a specialist joins from the
card, they talk both ways, and what the stand-in connector saw of it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp

from tests.support.directline_client import DirectLineClient
from tests.support.standin import Call, Standin
from tests.support.teams import ALEX, TENANT, card_action, card_submit, send, thread_message

# What the visitor's page tells the bot about her (her name, company and plan reach the card).
CONTEXT = {
    "name": "Jane Doe",
    "email": "jane@fabrikam.example",
    "company": "Fabrikam",
    "page": {"url": "https://contoso.example/pricing", "title": "Pricing", "referrer": ""},
    "locale": "en-GB",
    "timezone": "Europe/London",
    "plan": "Enterprise",
}


class Handoff(NamedTuple):
    """A handoff as Teams knows it: its thread, the thread's root (the card) and its id."""

    thread_id: str
    root: str
    handoff_id: str


def card_of(call: Call) -> dict[str, Any]:
    """The Adaptive Card a call to the stand-in posted or updated."""
    activity = call.body.get("activity", call.body)
    return activity["attachments"][0]["content"]


def card_text(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


@dataclass(frozen=True)
class Teams:
    """The specialists' side: card clicks and thread messages, posted to the bot at ``bot_url``
    as Teams (here the stand-in connector) sends them."""

    http: aiohttp.ClientSession
    bot_url: str
    standin: Standin

    async def send(self, activity: dict[str, Any]) -> tuple[int, Any]:
        return await send(self.http, self.bot_url, activity)

    async def click(
        self,
        handoff: Handoff,
        verb: str,
        *,
        by: dict[str, str] = ALEX,
        submit: bool = False,
        tenant: str = TENANT,
    ) -> tuple[int, Any]:
        """``by`` clicks a button of the handoff's card (``submit``: the Action.Submit fallback)."""
        action = card_submit if submit else card_action
        return await self.send(
            action(self.standin.url, handoff.thread_id, by, verb, handoff.handoff_id, tenant=tenant)
        )

    async def write(
        self, thread_id: str, text: str, *, by: dict[str, str] = ALEX, **options: Any
    ) -> tuple[int, Any]:
        """``by`` writes in the thread (mentioning the bot unless ``mention=False``)."""
        return await self.send(thread_message(self.standin.url, thread_id, by, text, **options))


async def handed_off(visitor: DirectLineClient, standin: Standin) -> Handoff:
    """Jane (``CONTEXT``) asks a question the bot cannot answer, then for a person: a thread
    opens and she is queued."""
    await visitor.event("visitor.context", CONTEXT)
    await visitor.say("How do I export my invoices?")
    await visitor.wait_text("not sure I can answer")
    threads_before = len(standin.created)
    await visitor.say("Can I talk to a human please?")
    await standin.wait_for(lambda: len(standin.created) > threads_before)
    await visitor.wait_for(lambda: "queued" in visitor.statuses())
    card = card_of(standin.threads[-1])
    join = next(a for a in card["actions"] if a["title"] == "Join conversation")
    thread_id, root = standin.created[-1]
    return Handoff(thread_id, root, join["data"]["handoffId"])


async def joined(visitor: DirectLineClient, teams: Teams, by: dict[str, str] = ALEX) -> Handoff:
    """A handoff (``handed_off``) that ``by`` has joined from the card, as the visitor is told."""
    handoff = await handed_off(visitor, teams.standin)
    await teams.click(handoff, "handoff.join", by=by)
    await visitor.wait_text("has joined")
    return handoff


async def card_updates(standin: Standin, root: str, showing: str = "") -> list[Call]:
    """Wait until the thread's root card has been updated (to show ``showing``); those updates."""
    return await standin.wait_for(
        lambda: [c for c in standin.of("PUT", root) if showing in card_text(card_of(c))]
    )


async def summary_in(standin: Standin, thread_id: str) -> Call:
    """Wait for the conversation summary card posted into the thread."""
    summaries = await standin.wait_for(
        lambda: [
            c
            for c in standin.posts_to(thread_id)
            if c.body.get("attachments") and "Conversation summary" in card_text(card_of(c))
        ]
    )
    return summaries[0]
