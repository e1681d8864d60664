"""Starting a handoff, whoever asks for it (the visitor, a rule, an upstream agent, a join
timeout handing on): the limits, the route and its hours, then the thread on the desk."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bot import logcontext
from bot.cel import Facts
from bot.config import OutOfHours, Route
from bot.errors import GatewayError
from bot.hours import back_at
from bot.model import EMPTY, Conversation, Handoff, HandoffState, Role, Turn
from bot.ports import Choice
from bot.rules.routing import RouteChoice, availability, choose_route, facts_for
from bot.transition import OpenFailed, ThreadOpened, VisitorNotice
from bot.usecases.effects import Effects
from bot.usecases.shared import Part, Shared

log = logging.getLogger(__name__)


class Opening(Part):
    """Opens handoffs: the one place a handoff is created and its thread opened."""

    def __init__(self, shared: Shared, effects: Effects) -> None:
        super().__init__(shared)
        self._effects = effects

    async def offer_routes(self, conversation: Conversation, now: datetime) -> bool:
        """Several teams are offered and no rule decides: let the visitor pick (True if asked)."""
        if await self._store.open_handoff(conversation_id=conversation.id) is not None:
            return False
        shared, settings = self._shared, self.settings
        turns = await self._store.turns(conversation_id=conversation.id)
        facts = facts_for(settings, conversation, turns, now)
        offered = [
            r for r in settings.routes if r.pretrigger is None or facts.matches(r.pretrigger)
        ]
        decided = any(r.trigger is not None and facts.matches(r.trigger) for r in offered)
        if len(offered) < 2 or decided:
            return False
        visitor = conversation.visitor
        lines = [shared.text("choose_route", {"visitor": visitor.name}, visitor.locale)]
        lines += [f"\u2022 {r.title}: {r.description}" for r in offered if r.description]
        choices = [Choice(r.title, r.title, {"handoff": {"route": r.id}}) for r in offered]
        text = "\n".join(lines)
        await self._store.add_turn(
            turn=Turn(conversation.id, now, Role.SYSTEM, shared.bot.name, text)
        )
        await self._visitors.offer(
            conversation_id=conversation.id, sender=shared.bot, text=text, choices=choices
        )
        return True

    async def start(
        self,
        conversation: Conversation,
        reason: str,
        category: str,
        now: datetime,
        context: Mapping[str, Any] = EMPTY,
        facts: Facts | None = None,
        route: Route | None = None,
    ) -> None:
        """Start a handoff; ``route`` skips the rules (a join-timeout hand-on to a named route)."""
        shared, settings = self._shared, self.settings
        current = await self._store.open_handoff(conversation_id=conversation.id)
        if current is not None:
            key = "already_joined" if current.state is HandoffState.JOINED else "already_queued"
            await shared.bot_says(conversation, key, now, shared.names(current))
            return
        limit = settings.limits.handoffs_per_conversation_per_hour
        recent = await self._store.handoffs_since(
            conversation_id=conversation.id, since=now - timedelta(hours=1)
        )
        if recent >= limit:
            log.warning(
                "conversation %s: no handoff (%d in the last hour; the limit is %d)",
                conversation.id,
                recent,
                limit,
            )
            await shared.bot_says(conversation, "too_many_handoffs", now)
            return
        if facts is None:
            turns = await self._store.turns(conversation_id=conversation.id)
            facts = facts_for(settings, conversation, turns, now, context)
        choice = (
            RouteChoice(route, f"named route {route.id}", (route.id,))
            if route is not None
            else choose_route(settings.routes, facts, category)
        )
        if choice.route is None:
            log.info("conversation %s: no route offered (%s)", conversation.id, choice.why)
            await shared.bot_says(conversation, "no_route", now)
            return
        open_now = availability(choice.route, settings.routes, now)
        if open_now.route is None:
            closed = open_now.closed_route or choice.route
            log.info("conversation %s: route %s is outside work hours", conversation.id, closed.id)
            if open_now.behaviour is OutOfHours.MESSAGE and open_now.back is not None:
                back = back_at(open_now.back, now, conversation.visitor.timezone)
                await shared.bot_says(
                    conversation, "out_of_hours_back", now, {"route": closed.title, "back": back}
                )
            else:
                await shared.bot_says(conversation, "out_of_hours", now, {"route": closed.title})
            return
        chosen = open_now.route
        log.info("conversation %s: route %s (%s)", conversation.id, chosen.id, choice.why)
        handoff = Handoff(
            id=shared.new_id(),
            conversation_id=conversation.id,
            route_id=chosen.id,
            state=HandoffState.QUEUED,
            created_at=now,
            reason=reason,
            context=context,
        )
        handoff = await self._store.save_handoff(handoff=handoff)
        shared.changed(None, handoff)
        logcontext.mark(handoff=handoff.id)
        log.info("handoff %s: queued on route %s (%s)", handoff.id, chosen.id, reason)
        await self._effects.notify(handoff, conversation.visitor, VisitorNotice.QUEUED, now)
        await self.open_thread(handoff, conversation, now)

    async def open_thread(
        self, handoff: Handoff, conversation: Conversation, now: datetime
    ) -> None:
        """Open the handoff's thread in its route's channel, the handoff shown at its root."""
        route = self._shared.route(handoff)
        view = await self._effects.view(handoff)
        try:
            ref = await self._desk.open_thread(channel_id=route.channel, view=view)
        except GatewayError as exc:
            log.error(
                "handoff %s: could not open a thread in %s: %s", handoff.id, route.channel, exc
            )
            await self._effects.act(handoff, OpenFailed(str(exc)), now)
            return
        await self._effects.act(handoff, ThreadOpened(ref.thread_id, ref.root_activity_id), now)
        logcontext.mark(handoff=handoff.id, thread=ref.thread_id)
        log.info("handoff %s: thread %s opened", handoff.id, ref.thread_id)
