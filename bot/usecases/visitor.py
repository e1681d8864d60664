"""The visitor's side: what happens when the widget (or an upstream agent) does something."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot import logcontext
from bot.errors import GatewayError
from bot.model import (
    Conversation,
    Handoff,
    Party,
    Role,
    Turn,
    Visitor,
    merge_context,
    merge_raw_context,
)
from bot.ports import Direction
from bot.rules.escalation import detect, fallback_trigger
from bot.rules.phrases import find_answer, is_greeting
from bot.rules.routing import facts_for
from bot.transition import End
from bot.usecases.effects import Effects
from bot.usecases.opening import Opening
from bot.usecases.results import UpstreamTurn
from bot.usecases.shared import Part, Shared

log = logging.getLogger(__name__)


class VisitorCases(Part):
    """The widget conversation: greeting, context, messages, asking for a person, ending."""

    def __init__(self, shared: Shared, effects: Effects, opening: Opening) -> None:
        super().__init__(shared)
        self._effects = effects
        self._opening = opening

    async def conversation_exists(self, *, conversation_id: str) -> bool:
        """Whether the widget conversation is known."""
        return await self._store.get_conversation(conversation_id=conversation_id) is not None

    async def start_conversation(
        self, *, conversation_id: str, visitor_id: str, now: datetime
    ) -> None:
        """A widget conversation began: remember it and greet."""
        async with self._locks.hold(conversation_id):
            if await self._store.get_conversation(conversation_id=conversation_id):
                return
            conversation = Conversation(conversation_id, Visitor(id=visitor_id), created_at=now)
            conversation = await self._store.save_conversation(conversation=conversation)
            await self._shared.bot_says(conversation, "greeting", now, role=Role.BOT)

    async def visitor_context(
        self, *, conversation_id: str, context: Mapping[str, Any], now: datetime
    ) -> None:
        """The site told us who the visitor is and where they are."""
        async with self._locks.hold(conversation_id):
            conversation = await self._shared.conversation(conversation_id)
            visitor = merge_context(conversation.visitor, context)
            raw = merge_raw_context(conversation.context, context)
            await self._store.save_conversation(
                conversation=replace(conversation, visitor=visitor, context=raw)
            )

    async def visitor_message(self, *, conversation_id: str, text: str, now: datetime) -> None:
        """The visitor typed something: relay it to the human, or let the bot answer."""
        async with self._locks.hold(conversation_id):
            # Both at once: a message waits on one read, not two, before it is relayed.
            conversation, handoff = await self._shared.conversation_and_open_handoff(
                conversation_id
            )
            if handoff is not None:
                logcontext.mark(handoff=handoff.id, thread=handoff.thread_id)
            visitor = conversation.visitor
            await self._store.add_turn(
                turn=Turn(conversation_id, now, Role.VISITOR, visitor.display_name, text)
            )
            if handoff is None:
                turns = await self._store.turns(conversation_id=conversation_id)
                facts = facts_for(self.settings, conversation, turns, now)
                trigger = detect(self.settings.escalation, text, turns, facts)
                if trigger is not None:
                    log.info("conversation %s: escalation (%s)", conversation_id, trigger.reason)
                    await self._opening.start(conversation, trigger.reason, "", now, facts=facts)
                else:
                    await self._answer(conversation, text, now)
                return
        # The human is first responder: the bot stays silent and the message goes to the thread.
        await self._relay_to_thread(handoff, visitor, text)

    async def visitor_messages(
        self, *, conversation_id: str, texts: Sequence[str], now: datetime
    ) -> None:
        """Messages the visitor typed one after another, handled together (a backlog of them):
        while a specialist's thread is open, with one lock, one read and one write for their
        transcript lines, then relayed in order; otherwise each is handled as it would be
        alone (the bot answers each, any of them may escalate)."""
        async with self._locks.hold(conversation_id):
            conversation, handoff = await self._shared.conversation_and_open_handoff(
                conversation_id
            )
            visitor = conversation.visitor
            if handoff is not None and handoff.thread_id:
                await self._store.add_turns(
                    turns=[
                        Turn(conversation_id, now, Role.VISITOR, visitor.display_name, text)
                        for text in texts
                    ]
                )
        if handoff is None or not handoff.thread_id:
            for text in texts:
                await self.visitor_message(conversation_id=conversation_id, text=text, now=now)
            return
        for text in texts:
            await self._relay_to_thread(handoff, visitor, text)

    async def open_thread(self, *, conversation_id: str) -> str | None:
        """The desk thread of the conversation's open handoff ("" when there is none, None when
        there is no such conversation), in one small read."""
        return await self._store.open_thread(conversation_id=conversation_id)

    async def too_fast(self, *, conversation_id: str, now: datetime, tell: bool) -> str:
        """The visitor writes faster than the thread takes messages: the text that asks them to
        slow down, said on the conversation too when ``tell``."""
        shared = self._shared
        conversation = await shared.conversation(conversation_id)
        handoff = await self._store.open_handoff(conversation_id=conversation_id)
        values = shared.names(handoff) if handoff is not None else {}
        visitor = conversation.visitor
        text = shared.text("slow_down", {"visitor": visitor.name, **values}, visitor.locale)
        if tell:
            await self._visitors.say(conversation_id=conversation_id, sender=shared.bot, text=text)
        return text

    async def message_failed(self, *, conversation_id: str, now: datetime) -> None:
        """A message of the visitor's was set aside after failing again and again: say so."""
        async with self._locks.hold(conversation_id):
            conversation = await self._shared.conversation(conversation_id)
            await self._shared.bot_says(conversation, "message_failed", now)

    async def request_handoff(self, *, conversation_id: str, category: str, now: datetime) -> None:
        """The widget's "talk to a person" button (``handoff.request``)."""
        async with self._locks.hold(conversation_id):
            conversation = await self._shared.conversation(conversation_id)
            if not self.settings.escalation.widget_request:
                await self._shared.bot_says(conversation, "handoff_unavailable", now)
                return
            if not category and await self._opening.offer_routes(conversation, now):
                return
            reason = "the visitor pressed \u201cTalk to a person\u201d"
            await self._opening.start(conversation, reason, category, now)

    async def initiate_handoff(
        self,
        *,
        conversation_id: str,
        context: Mapping[str, Any],
        transcript: Sequence[UpstreamTurn],
        now: datetime,
    ) -> None:
        """An upstream agent handed the conversation over (``handoff.initiate``)."""
        if not self.settings.escalation.upstream_initiate:
            log.warning("conversation %s: handoff.initiate ignored (switched off)", conversation_id)
            return
        async with self._locks.hold(conversation_id):
            conversation = await self._shared.conversation(conversation_id)
            for line in transcript:
                turn = Turn(conversation_id, line.at, line.role, line.author, line.text)
                await self._store.add_turn(turn=turn)
            visitor = conversation.visitor
            visitor_fields = context.get("visitor")
            if isinstance(visitor_fields, Mapping):
                visitor = merge_context(visitor, visitor_fields)
            raw = merge_raw_context(conversation.context, context)
            conversation = await self._store.save_conversation(
                conversation=replace(conversation, visitor=visitor, context=raw)
            )
            reason = str(context.get("reason") or "an upstream agent handed the conversation over")
            category = str(context.get("category") or context.get("route") or "")
            await self._opening.start(conversation, reason, category, now, context)

    async def visitor_ends(self, *, conversation_id: str, now: datetime, explicit: bool) -> None:
        """The visitor ended the chat from the widget."""
        async with self._locks.hold(conversation_id):
            conversation = await self._shared.conversation(conversation_id)
            handoff = await self._store.open_handoff(conversation_id=conversation_id)
            if handoff is None:
                if explicit:
                    await self._shared.bot_says(conversation, "nothing_to_end", now)
                return
            name = conversation.visitor.display_name
            await self._effects.act(handoff, End(Party.VISITOR, name), now)

    async def _answer(self, conversation: Conversation, text: str, now: datetime) -> None:
        shared = self._shared
        answer = find_answer(text, self.settings.bot.answers)
        if answer is not None:
            await shared.say(conversation.id, answer.answer, now, role=Role.BOT)
            fallbacks = 0
        elif is_greeting(text):
            await shared.bot_says(conversation, "hello", now, role=Role.BOT)
            fallbacks = 0
        else:
            trigger = fallback_trigger(self.settings.escalation, conversation.fallbacks_in_row)
            if trigger is not None:
                conversation = await self._store.save_conversation(
                    conversation=replace(conversation, fallbacks_in_row=0)
                )
                log.info("conversation %s: escalation (%s)", conversation.id, trigger.reason)
                await self._opening.start(conversation, trigger.reason, "", now)
                return
            await shared.bot_says(conversation, "fallback", now, role=Role.BOT, fallback=True)
            fallbacks = conversation.fallbacks_in_row + 1
        if fallbacks != conversation.fallbacks_in_row:
            await self._store.save_conversation(
                conversation=replace(conversation, fallbacks_in_row=fallbacks)
            )

    async def _relay_to_thread(self, handoff: Handoff, visitor: Visitor, text: str) -> None:
        if not handoff.thread_id:
            log.warning("handoff %s: no thread yet, message kept in transcript only", handoff.id)
            return

        try:
            await self._desk.post_message(
                thread_id=handoff.thread_id, author=visitor.display_name, text=text
            )
        except GatewayError as exc:
            log.error("handoff %s: could not queue a visitor message: %s", handoff.id, exc)
            return
        self._shared.relayed(Direction.TO_TEAMS)
