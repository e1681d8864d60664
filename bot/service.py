"""The handoff use cases: what happens when a visitor or a specialist does something.

Adapters translate their wire formats into these calls; everything outward goes through the
ports. One lock per widget conversation keeps each conversation's events in order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.cards import END_VERB, JOIN_VERB, Card, ThreadCardView, summary_card, thread_card
from bot.config import OutOfHours, Route, Settings
from bot.errors import GatewayError, StaleWriteError, StoreError, UnknownConversationError
from bot.escalation import detect, fallback_trigger
from bot.expressions import Facts
from bot.hours import back_at
from bot.locks import KeyedLocks
from bot.model import (
    EMPTY,
    Conversation,
    Handoff,
    HandoffState,
    Party,
    Person,
    Role,
    Turn,
    Visitor,
    merge_context,
    merge_raw_context,
)
from bot.ports import Choice, HandoffStore, Sender, SenderRole, TeamsGateway, VisitorGateway
from bot.routing import RouteChoice, availability, choose_route, facts_for
from bot.rules import find_answer, is_greeting
from bot.summary import end_summary, format_duration, loops, summary_so_far
from bot.transition import (
    Effect,
    End,
    Event,
    IdleReminder,
    Join,
    JoinTimedOut,
    NotifyVisitor,
    OpenFailed,
    PostSummary,
    RefreshCard,
    Refusal,
    Refuse,
    TellVisitor,
    ThreadLost,
    ThreadOpened,
    Transfer,
    VisitorNotice,
    transition,
)

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]

END_COMMANDS = frozenset({"/end", "/close"})
_CAS_ATTEMPTS = 5


class ThreadOutcome(StrEnum):
    """What became of a message posted in a Teams thread."""

    RELAYED = "relayed"
    NOTE = "note"
    ENDED = "ended"
    TRANSFERRED = "transferred"
    REFUSED = "refused"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ThreadResult:
    """Outcome plus an optional reply for the thread."""

    outcome: ThreadOutcome
    reply: str = ""


@dataclass(frozen=True)
class CardActionResult:
    """The card to show the person who clicked, and any notice for them."""

    card: Card | None
    notice: str = ""


@dataclass(frozen=True)
class UpstreamTurn:
    """A line of an upstream agent's transcript (``handoff.initiate``)."""

    role: Role
    author: str
    text: str
    at: datetime


def _ended_key(handoff: Handoff) -> str:
    """Which text tells the visitor the handoff ended: by whom, and whether anyone had joined."""
    if handoff.specialist is None:
        return {Party.VISITOR: "cancelled_by_visitor", Party.SPECIALIST: "declined"}.get(
            handoff.ended_by or Party.SYSTEM, "ended_idle"
        )
    return {Party.VISITOR: "ended_by_visitor", Party.SPECIALIST: "ended_by_specialist"}.get(
        handoff.ended_by or Party.SYSTEM, "ended_idle"
    )


class HandoffService:
    """The use cases; ``settings`` may be swapped at any time (config reload)."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: HandoffStore,
        teams: TeamsGateway,
        visitors: VisitorGateway,
        new_id: Callable[[], str],
    ) -> None:
        self.settings = settings
        self._store = store
        self._teams = teams
        self._visitors = visitors
        self._new_id = new_id
        self._locks = KeyedLocks()

    async def sweep(self, *, now: datetime) -> None:
        """Apply join timeouts and inactivity to open handoffs (called periodically)."""
        for handoff in await self._store.open_handoffs():
            route = self._route(handoff)
            try:
                if handoff.state is HandoffState.QUEUED and handoff.timed_out_at is None:
                    waited = now - handoff.created_at
                    if waited >= timedelta(minutes=route.join_timeout_minutes):
                        await self._join_timed_out(handoff, route, now)
                elif handoff.state is HandoffState.QUEUED:
                    await self._check_idle(handoff, route, now)  # a left message, gone quiet
                elif handoff.state is HandoffState.JOINED:
                    await self._check_idle(handoff, route, now)
            except StoreError as exc:  # the store is failing: one line, it says why
                log.error("handoff %s: sweep failed: %s", handoff.id, exc)
            except Exception:  # one handoff that cannot be swept must not stop the others
                log.exception("handoff %s: sweep failed", handoff.id)

    async def _join_timed_out(self, handoff: Handoff, route: Route, now: datetime) -> None:
        action = route.on_join_timeout.value
        log.warning(
            "handoff %s: nobody joined within %g min (%s)",
            handoff.id,
            route.join_timeout_minutes,
            action,
        )
        async with self._locks.hold(handoff.conversation_id):
            after, _ = await self._act(await self._reload(handoff), JoinTimedOut(action), now)
            target = self.settings.route(route.join_timeout_route)
            if action == "route" and after.state is HandoffState.EXPIRED and target is not None:
                conversation = await self._conversation(handoff.conversation_id)
                reason = f"nobody joined on {route.title} within {route.join_timeout_minutes:g} min"
                await self._start_handoff(conversation, reason, "", now, route=target)

    async def _check_idle(self, handoff: Handoff, route: Route, now: datetime) -> None:
        last = await self._store.last_human_turn_at(conversation_id=handoff.conversation_id)
        marks = (last, handoff.joined_at, handoff.timed_out_at, handoff.created_at)
        since = max(t for t in marks if t is not None)
        idle = now - since
        if idle >= timedelta(minutes=route.idle_close_minutes):
            log.info("handoff %s: closed after %s without messages", handoff.id, idle)
            async with self._locks.hold(handoff.conversation_id):
                event = End(Party.SYSTEM, f"no messages for {format_duration(idle)}")
                await self._act(await self._reload(handoff), event, now)
        elif (
            handoff.state is HandoffState.JOINED
            and idle >= timedelta(minutes=route.idle_reminder_minutes)
            and (handoff.reminded_at is None or handoff.reminded_at < since)
        ):
            async with self._locks.hold(handoff.conversation_id):
                await self._act(await self._reload(handoff), IdleReminder(), now)

    async def thread_message_changed(
        self, *, thread_id: str, person: Person, message_id: str, text: str | None
    ) -> bool:
        """A specialist edited (or deleted: ``text=None``) a thread message; relayed ones follow."""
        handoff = await self._store.handoff_for_thread(thread_id=thread_id)
        if handoff is None or not message_id:
            return False
        sender = Sender(person.id, person.name, SenderRole.SPECIALIST)
        changed = await self._visitors.amend(
            conversation_id=handoff.conversation_id, sender=sender, ref=message_id, text=text
        )
        if changed:
            what = "deleted" if text is None else "edited"
            log.info("handoff %s: %s %s a relayed message", handoff.id, person.id, what)
        return changed

    async def _transfer(
        self, handoff: Handoff, person: Person, mentions: Sequence[Person], now: datetime
    ) -> ThreadResult:
        colleague = next((m for m in mentions if m.id != person.id), None)
        if colleague is None:
            return ThreadResult(ThreadOutcome.REFUSED, self._text("transfer_usage", {}))
        after, notice = await self._act(handoff, Transfer(person, colleague), now)
        if notice:
            return ThreadResult(ThreadOutcome.REFUSED, notice)
        log.info("handoff %s: %s handed over to %s", handoff.id, person.id, colleague.id)
        done = self._text("transfer_done", self._names(after))
        return ThreadResult(ThreadOutcome.TRANSFERRED, done)

    async def thread_gone(self, *, thread_id: str, reason: str, now: datetime) -> None:
        """Teams says the thread or the team is gone (or the bot was removed): end the handoff."""
        handoff = await self._store.handoff_for_thread(thread_id=thread_id)
        if handoff is None:
            return
        log.error("handoff %s: its thread is gone (%s); ending it", handoff.id, reason)
        async with self._locks.hold(handoff.conversation_id):
            await self._act(await self._reload(handoff), ThreadLost(reason), now)

    async def recover(self, *, now: datetime) -> None:
        """After a restart: open the threads of handoffs that were queued but never opened."""
        for handoff in await self._store.unopened_handoffs():
            log.warning(
                "handoff %s: queued without a thread after a restart; opening it", handoff.id
            )
            async with self._locks.hold(handoff.conversation_id):
                conversation = await self._conversation(handoff.conversation_id)
                await self._open_thread(await self._reload(handoff), conversation, now)

    # ---- widget side -------------------------------------------------------------------

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
            await self._bot_says(conversation, "greeting", now, role=Role.BOT)

    async def visitor_context(
        self, *, conversation_id: str, context: Mapping[str, Any], now: datetime
    ) -> None:
        """The site told us who the visitor is and where they are."""
        async with self._locks.hold(conversation_id):
            conversation = await self._conversation(conversation_id)
            visitor = merge_context(conversation.visitor, context)
            raw = merge_raw_context(conversation.context, context)
            await self._store.save_conversation(
                conversation=replace(conversation, visitor=visitor, context=raw)
            )

    async def visitor_message(self, *, conversation_id: str, text: str, now: datetime) -> None:
        """The visitor typed something: relay it to the human, or let the bot answer."""
        async with self._locks.hold(conversation_id):
            conversation = await self._conversation(conversation_id)
            visitor = conversation.visitor
            await self._store.add_turn(
                turn=Turn(conversation_id, now, Role.VISITOR, visitor.display_name, text)
            )
            handoff = await self._store.open_handoff(conversation_id=conversation_id)
            if handoff is None:
                turns = await self._store.turns(conversation_id=conversation_id)
                facts = facts_for(self.settings, conversation, turns, now)
                trigger = detect(self.settings.escalation, text, turns, facts)
                if trigger is not None:
                    log.info("conversation %s: escalation (%s)", conversation_id, trigger.reason)
                    await self._start_handoff(conversation, trigger.reason, "", now, facts=facts)
                else:
                    await self._answer(conversation, text, now)
                return
        # The human is first responder: the bot stays silent and the message goes to the thread.
        await self._relay_to_thread(handoff, visitor, text)

    async def open_thread(self, *, conversation_id: str) -> str:
        """The Teams thread of the conversation's open handoff ("" when there is none)."""
        handoff = await self._store.open_handoff(conversation_id=conversation_id)
        return handoff.thread_id if handoff is not None else ""

    async def too_fast(self, *, conversation_id: str, now: datetime, tell: bool) -> str:
        """The visitor writes faster than the thread takes messages: the text that asks them to
        slow down, said on the conversation too when ``tell``."""
        conversation = await self._conversation(conversation_id)
        handoff = await self._store.open_handoff(conversation_id=conversation_id)
        values = self._names(handoff) if handoff is not None else {}
        visitor = conversation.visitor
        text = self._text("slow_down", {"visitor": visitor.name, **values}, visitor.locale)
        if tell:
            await self._visitors.say(conversation_id=conversation_id, sender=self._bot, text=text)
        return text

    async def message_failed(self, *, conversation_id: str, now: datetime) -> None:
        """A message of the visitor's was set aside after failing again and again: say so."""
        async with self._locks.hold(conversation_id):
            conversation = await self._conversation(conversation_id)
            await self._bot_says(conversation, "message_failed", now)

    async def request_handoff(self, *, conversation_id: str, category: str, now: datetime) -> None:
        """The widget's "talk to a person" button (``handoff.request``)."""
        async with self._locks.hold(conversation_id):
            conversation = await self._conversation(conversation_id)
            if not self.settings.escalation.widget_request:
                await self._bot_says(conversation, "handoff_unavailable", now)
                return
            if not category and await self._offer_routes(conversation, now):
                return
            reason = "the visitor pressed \u201cTalk to a person\u201d"
            await self._start_handoff(conversation, reason, category, now)

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
            conversation = await self._conversation(conversation_id)
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
            await self._start_handoff(conversation, reason, category, now, context)

    async def visitor_ends(self, *, conversation_id: str, now: datetime, explicit: bool) -> None:
        """The visitor ended the chat from the widget."""
        async with self._locks.hold(conversation_id):
            conversation = await self._conversation(conversation_id)
            handoff = await self._store.open_handoff(conversation_id=conversation_id)
            if handoff is None:
                if explicit:
                    await self._bot_says(conversation, "nothing_to_end", now)
                return
            name = conversation.visitor.display_name
            await self._act(handoff, End(Party.VISITOR, name), now)

    # ---- Teams side --------------------------------------------------------------------

    async def card_action(
        self, *, verb: str, handoff_id: str, person: Person, thread_id: str, now: datetime
    ) -> CardActionResult:
        """Join or End clicked on a thread card (in the thread ``thread_id``)."""
        handoff = await self._store.get_handoff(handoff_id=handoff_id)
        if handoff is not None and handoff.thread_id and thread_id != handoff.thread_id:
            log.warning(
                "handoff %s: card action from another conversation %s", handoff_id, thread_id
            )
            handoff = None
        if handoff is None:
            log.warning("card action %s for unknown handoff %s by %s", verb, handoff_id, person.id)
            return CardActionResult(None, "This handoff is not known to me any more.")
        event: Event
        if verb == JOIN_VERB:
            event = Join(person)
        elif verb == END_VERB:
            event = End(Party.SPECIALIST, person.name, person)
        else:
            log.warning("handoff %s: unknown card verb %r from %s", handoff_id, verb, person.id)
            return CardActionResult(None, f"I don't know the action {verb!r}.")
        async with self._locks.hold(handoff.conversation_id):
            # The state may have moved (a transfer, an end) since it was read above.
            handoff, notice = await self._act(await self._reload(handoff), event, now)
            return CardActionResult(await self._card(handoff, notice), notice)

    async def thread_message(
        self,
        *,
        thread_id: str,
        person: Person,
        text: str,
        now: datetime,
        message_id: str = "",
        mentions: Sequence[Person] = (),
    ) -> ThreadResult:
        """A message posted in a Teams thread (``mentions``: people it @mentions, not the bot)."""
        handoff = await self._store.handoff_for_thread(thread_id=thread_id)
        if handoff is None:
            return ThreadResult(ThreadOutcome.UNKNOWN, self._text("unknown_thread", {}))
        async with self._locks.hold(handoff.conversation_id):
            handoff = await self._reload(handoff)
            if text.strip().casefold() in END_COMMANDS:
                after, notice = await self._act(
                    handoff, End(Party.SPECIALIST, person.name, person), now
                )
                ended = after.state is HandoffState.ENDED and handoff.state.is_open
                return ThreadResult(ThreadOutcome.ENDED if ended else ThreadOutcome.REFUSED, notice)
            if text.strip().casefold().startswith("/transfer"):
                return await self._transfer(handoff, person, mentions, now)
            joined = handoff.specialist
            lowered = text.lstrip().casefold()
            if any(lowered.startswith(p.casefold()) for p in self.settings.teams.note_prefixes):
                log.info("handoff %s: internal note from %s, not relayed", handoff.id, person.id)
                return ThreadResult(ThreadOutcome.NOTE)
            if (
                handoff.state is HandoffState.JOINED
                and joined is not None
                and joined.id == person.id
            ):
                turn = Turn(handoff.conversation_id, now, Role.SPECIALIST, person.name, text)
                await self._store.add_turn(turn=turn)
                sender = Sender(person.id, person.name, SenderRole.SPECIALIST)
                await self._visitors.say(
                    conversation_id=handoff.conversation_id,
                    sender=sender,
                    text=text,
                    ref=message_id,
                )
                return ThreadResult(ThreadOutcome.RELAYED)
            if not handoff.state.is_open and joined is not None and joined.id == person.id:
                # The specialist kept typing after the end: say the visitor will not see it.
                return ThreadResult(ThreadOutcome.REFUSED, self._text("closed", {}))
            log.info("handoff %s: internal note from %s, not relayed", handoff.id, person.id)
            return ThreadResult(ThreadOutcome.NOTE)

    # ---- internals -----------------------------------------------------------------------

    @property
    def _bot(self) -> Sender:
        return Sender("bot", self.settings.bot.name, SenderRole.BOT)

    def _text(self, key: str, values: Mapping[str, str], locale: str = "") -> str:
        values = {"bot": self.settings.bot.name, **values}
        return self.settings.texts.render(key, values, locale)

    async def _conversation(self, conversation_id: str) -> Conversation:
        conversation = await self._store.get_conversation(conversation_id=conversation_id)
        if conversation is None:
            raise UnknownConversationError(conversation_id)
        return conversation

    async def _reload(self, handoff: Handoff) -> Handoff:
        fresh = await self._store.get_handoff(handoff_id=handoff.id)
        return fresh or handoff

    async def _bot_says(
        self,
        conversation: Conversation,
        key: str,
        now: datetime,
        values: Mapping[str, str] = EMPTY,
        *,
        role: Role = Role.SYSTEM,
        fallback: bool = False,
    ) -> str:
        visitor = conversation.visitor
        text = self._text(key, {"visitor": visitor.name, **values}, visitor.locale)
        await self._say(conversation.id, text, now, role=role, fallback=fallback)
        return text

    async def _say(
        self,
        conversation_id: str,
        text: str,
        now: datetime,
        *,
        role: Role = Role.SYSTEM,
        fallback: bool = False,
    ) -> None:
        """Say something as the bot. Role.BOT marks a reply to the visitor (it may answer a
        question); notices about the handoff itself are Role.SYSTEM."""
        bot = self._bot
        turn = Turn(conversation_id, now, role, bot.name, text, fallback=fallback)
        await self._store.add_turn(turn=turn)
        await self._visitors.say(conversation_id=conversation_id, sender=bot, text=text)

    async def _answer(self, conversation: Conversation, text: str, now: datetime) -> None:
        answer = find_answer(text, self.settings.bot.answers)
        if answer is not None:
            await self._say(conversation.id, answer.answer, now, role=Role.BOT)
            fallbacks = 0
        elif is_greeting(text):
            await self._bot_says(conversation, "hello", now, role=Role.BOT)
            fallbacks = 0
        else:
            trigger = fallback_trigger(self.settings.escalation, conversation.fallbacks_in_row)
            if trigger is not None:
                conversation = await self._store.save_conversation(
                    conversation=replace(conversation, fallbacks_in_row=0)
                )
                log.info("conversation %s: escalation (%s)", conversation.id, trigger.reason)
                await self._start_handoff(conversation, trigger.reason, "", now)
                return
            await self._bot_says(conversation, "fallback", now, role=Role.BOT, fallback=True)
            fallbacks = conversation.fallbacks_in_row + 1
        if fallbacks != conversation.fallbacks_in_row:
            await self._store.save_conversation(
                conversation=replace(conversation, fallbacks_in_row=fallbacks)
            )

    async def _offer_routes(self, conversation: Conversation, now: datetime) -> bool:
        """Several teams are offered and no rule decides: let the visitor pick (True if asked)."""
        if await self._store.open_handoff(conversation_id=conversation.id) is not None:
            return False
        turns = await self._store.turns(conversation_id=conversation.id)
        facts = facts_for(self.settings, conversation, turns, now)
        offered = [
            r for r in self.settings.routes if r.pretrigger is None or facts.matches(r.pretrigger)
        ]
        decided = any(r.trigger is not None and facts.matches(r.trigger) for r in offered)
        if len(offered) < 2 or decided:
            return False
        visitor = conversation.visitor
        lines = [self._text("choose_route", {"visitor": visitor.name}, visitor.locale)]
        lines += [f"\u2022 {r.title}: {r.description}" for r in offered if r.description]
        choices = [Choice(r.title, r.title, {"handoff": {"route": r.id}}) for r in offered]
        text = "\n".join(lines)
        await self._store.add_turn(
            turn=Turn(conversation.id, now, Role.SYSTEM, self._bot.name, text)
        )
        await self._visitors.offer(
            conversation_id=conversation.id, sender=self._bot, text=text, choices=choices
        )
        return True

    async def _start_handoff(
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
        current = await self._store.open_handoff(conversation_id=conversation.id)
        if current is not None:
            key = "already_joined" if current.state is HandoffState.JOINED else "already_queued"
            await self._bot_says(conversation, key, now, self._names(current))
            return
        limit = self.settings.limits.handoffs_per_conversation_per_hour
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
            await self._bot_says(conversation, "too_many_handoffs", now)
            return
        if facts is None:
            turns = await self._store.turns(conversation_id=conversation.id)
            facts = facts_for(self.settings, conversation, turns, now, context)
        choice = (
            RouteChoice(route, f"named route {route.id}", (route.id,))
            if route is not None
            else choose_route(self.settings.routes, facts, category)
        )
        if choice.route is None:
            log.info("conversation %s: no route offered (%s)", conversation.id, choice.why)
            await self._bot_says(conversation, "no_route", now)
            return
        open_now = availability(choice.route, self.settings.routes, now)
        if open_now.route is None:
            closed = open_now.closed_route or choice.route
            log.info("conversation %s: route %s is outside work hours", conversation.id, closed.id)
            if open_now.behaviour is OutOfHours.MESSAGE and open_now.back is not None:
                back = back_at(open_now.back, now, conversation.visitor.timezone)
                await self._bot_says(
                    conversation, "out_of_hours_back", now, {"route": closed.title, "back": back}
                )
            else:
                await self._bot_says(conversation, "out_of_hours", now, {"route": closed.title})
            return
        chosen = open_now.route
        log.info("conversation %s: route %s (%s)", conversation.id, chosen.id, choice.why)
        handoff = Handoff(
            id=self._new_id(),
            conversation_id=conversation.id,
            route_id=chosen.id,
            state=HandoffState.QUEUED,
            created_at=now,
            reason=reason,
            context=context,
        )
        handoff = await self._store.save_handoff(handoff=handoff)
        log.info("handoff %s: queued on route %s (%s)", handoff.id, chosen.id, reason)
        await self._notify(handoff, conversation.visitor, VisitorNotice.QUEUED, now)
        await self._open_thread(handoff, conversation, now)

    async def _open_thread(
        self, handoff: Handoff, conversation: Conversation, now: datetime
    ) -> None:
        route = self._route(handoff)
        card = await self._card(handoff)
        try:
            ref = await self._teams.open_thread(
                channel_id=route.channel,
                card=card,
                text=f"Handoff request from {conversation.visitor.display_name}",
            )
        except GatewayError as exc:
            log.error(
                "handoff %s: could not open a thread in %s: %s", handoff.id, route.channel, exc
            )
            await self._act(handoff, OpenFailed(str(exc)), now)
            return
        await self._act(handoff, ThreadOpened(ref.thread_id, ref.root_activity_id), now)
        log.info("handoff %s: thread %s opened", handoff.id, ref.thread_id)

    async def _act(self, handoff: Handoff, event: Event, now: datetime) -> tuple[Handoff, str]:
        """Run one event through the state machine, save it (compare-and-set), apply effects."""
        for _ in range(_CAS_ATTEMPTS):
            after, effects = transition(handoff, event, now)
            if after == handoff:
                break
            try:
                after = await self._store.save_handoff(handoff=after)
                break
            except StaleWriteError:
                handoff = await self._reload(handoff)
        else:
            raise StaleWriteError(f"handoff {handoff.id} kept changing under us")
        notice = await self._apply(after, effects, now)
        return after, notice

    async def _apply(self, handoff: Handoff, effects: Sequence[Effect], now: datetime) -> str:
        notice = ""
        conversation = await self._conversation(handoff.conversation_id)
        for effect in effects:
            match effect:
                case NotifyVisitor(notice=what):
                    await self._notify(handoff, conversation.visitor, what, now)
                case RefreshCard():
                    await self._to_thread(handoff, "update the card", self._refresh_job(handoff))
                case PostSummary():
                    await self._to_thread(
                        handoff, "post the summary", self._summary_job(handoff, now)
                    )
                case TellVisitor(text=key):
                    await self._bot_says(conversation, key, now, self._names(handoff))
                case Refuse(why=why):
                    notice = self._text(why.value, self._names(handoff))
                    log.info("handoff %s: refused (%s)", handoff.id, why.value)
        return notice

    def _names(self, handoff: Handoff) -> dict[str, str]:
        route = self.settings.route(handoff.route_id)
        return {
            "specialist": handoff.specialist.name if handoff.specialist else "",
            "route": route.title if route else handoff.route_id,
        }

    async def _notify(
        self, handoff: Handoff, visitor: Visitor, notice: VisitorNotice, now: datetime
    ) -> None:
        key = {
            VisitorNotice.QUEUED: "queued",
            VisitorNotice.ACCEPTED: "joined",
            VisitorNotice.FAILED: "join_timeout"
            if handoff.state is HandoffState.EXPIRED
            else "failed",
            VisitorNotice.COMPLETED: _ended_key(handoff),
        }[notice]
        text = self._text(key, {"visitor": visitor.name, **self._names(handoff)}, visitor.locale)
        await self._visitors.status(
            conversation_id=handoff.conversation_id, sender=self._bot, state=notice.value, text=text
        )
        await self._say(handoff.conversation_id, text, now)

    def _route(self, handoff: Handoff) -> Route:
        # A route removed by a config reload keeps its handoffs alive under a stand-in.
        return self.settings.route(handoff.route_id) or Route(
            id=handoff.route_id, channel="19:removed", name=handoff.route_id
        )

    async def _card(self, handoff: Handoff, notice: str = "") -> Card:
        conversation = await self._conversation(handoff.conversation_id)
        before = [
            t
            for t in await self._store.turns(conversation_id=conversation.id)
            if t.at <= handoff.created_at
        ]
        name = conversation.visitor.display_name
        view = ThreadCardView(
            handoff=handoff,
            route=self._route(handoff),
            visitor=conversation.visitor,
            summary=summary_so_far(before, name, handoff.reason),
            open_loops=loops(before).open,
            notice=notice,
        )
        return thread_card(view)

    async def _to_thread(self, handoff: Handoff, what: str, job: Job) -> None:
        """Queue Teams work for the handoff's thread (a durable, ordered queue: quick)."""
        if not handoff.thread_id:
            return
        try:
            await job()
        except GatewayError as exc:
            log.error("handoff %s: could not %s: %s", handoff.id, what, exc)

    def _refresh_job(self, handoff: Handoff) -> Job:
        async def refresh() -> None:
            # Built when it runs, from the latest state: the last update always shows the truth.
            current = await self._reload(handoff)
            if current.root_activity_id:
                await self._teams.update_card(
                    thread_id=current.thread_id,
                    activity_id=current.root_activity_id,
                    card=await self._card(current),
                )

        return refresh

    def _summary_job(self, handoff: Handoff, now: datetime) -> Job:
        async def post() -> None:
            conversation = await self._conversation(handoff.conversation_id)
            turns = await self._store.turns(conversation_id=conversation.id)
            summary = end_summary(handoff, turns, conversation.visitor.display_name, now)
            await self._teams.post_card(
                thread_id=handoff.thread_id,
                card=summary_card(summary),
                text=f"Summary: {summary.who}, {summary.duration}",
            )

        return post

    async def _relay_to_thread(self, handoff: Handoff, visitor: Visitor, text: str) -> None:
        if not handoff.thread_id:
            log.warning("handoff %s: no thread yet, message kept in transcript only", handoff.id)
            return

        try:
            await self._teams.post_message(
                thread_id=handoff.thread_id, author=visitor.display_name, text=text
            )
        except GatewayError as exc:
            log.error("handoff %s: could not queue a visitor message: %s", handoff.id, exc)


__all__ = [
    "CardActionResult",
    "HandoffService",
    "Refusal",
    "ThreadOutcome",
    "ThreadResult",
    "UpstreamTurn",
]
