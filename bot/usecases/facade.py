"""``HandoffService``: the one door adapters use, composing the use cases by actor.

Adapters translate their wire formats into these calls; everything outward goes through the
ports. The parts share one lock per widget conversation, which keeps each conversation's
events in order, and the settings in force:

* ``visitor``: the widget conversation (greeting, context, messages, asking for a person);
* ``specialist``: the thread on the desk (Join and End, replies, notes, hand-overs, edits);
* ``lifecycle``: timers (join timeouts, idle reminders and closes), lost threads, recovery;
* ``opening``: starting a handoff, whoever asks; ``effects``: applying ``transition``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from bot.config import Settings
from bot.locks import Locks
from bot.model import Person
from bot.ports import DeskGateway, HandoffStore, Observer, VisitorGateway
from bot.usecases.effects import Effects
from bot.usecases.lifecycle import LifecycleCases
from bot.usecases.opening import Opening
from bot.usecases.results import DeskActionResult, ThreadResult, UpstreamTurn
from bot.usecases.shared import Shared
from bot.usecases.specialist import SpecialistCases
from bot.usecases.visitor import VisitorCases
from bot.views import DeskAction, TranscriptView

# The settings the service holds: the domain's, or the adapters' model of the whole file that
# extends them (its edges read their own sections back through ``HandoffService.settings``).
S = TypeVar("S", bound=Settings)


class HandoffService(Generic[S]):
    """The use cases; ``settings`` may be swapped at any time (config reload)."""

    def __init__(
        self,
        *,
        settings: S,
        store: HandoffStore,
        desk: DeskGateway,
        visitors: VisitorGateway,
        new_id: Callable[[], str],
        locks: Locks | None = None,
        observer: Observer | None = None,
    ) -> None:
        shared = Shared(
            settings=settings,
            store=store,
            desk=desk,
            visitors=visitors,
            new_id=new_id,
            locks=locks,
            observer=observer,
        )
        self._settings = settings
        effects = Effects(shared)
        opening = Opening(shared, effects)
        self._shared = shared
        self._visitor = VisitorCases(shared, effects, opening)
        self._specialist = SpecialistCases(shared, effects)
        self._lifecycle = LifecycleCases(shared, effects, opening)

    @property
    def settings(self) -> S:
        """The settings in force."""
        return self._settings

    @settings.setter
    def settings(self, settings: S) -> None:
        self._settings = settings
        self._shared.settings = settings

    # ---- widget side -------------------------------------------------------------------

    async def conversation_exists(self, *, conversation_id: str) -> bool:
        """Whether the widget conversation is known."""
        return await self._visitor.conversation_exists(conversation_id=conversation_id)

    async def start_conversation(
        self, *, conversation_id: str, visitor_id: str, now: datetime
    ) -> None:
        """A widget conversation began: remember it and greet."""
        await self._visitor.start_conversation(
            conversation_id=conversation_id, visitor_id=visitor_id, now=now
        )

    async def visitor_context(
        self, *, conversation_id: str, context: Mapping[str, Any], now: datetime
    ) -> None:
        """The site told us who the visitor is and where they are."""
        await self._visitor.visitor_context(
            conversation_id=conversation_id, context=context, now=now
        )

    async def visitor_message(self, *, conversation_id: str, text: str, now: datetime) -> None:
        """The visitor typed something: relay it to the human, or let the bot answer."""
        await self._visitor.visitor_message(conversation_id=conversation_id, text=text, now=now)

    async def visitor_messages(
        self, *, conversation_id: str, texts: Sequence[str], now: datetime
    ) -> None:
        """Messages the visitor typed one after another, handled together."""
        await self._visitor.visitor_messages(conversation_id=conversation_id, texts=texts, now=now)

    async def open_thread(self, *, conversation_id: str) -> str | None:
        """The desk thread of the conversation's open handoff ("" when there is none, None when
        there is no such conversation)."""
        return await self._visitor.open_thread(conversation_id=conversation_id)

    async def too_fast(self, *, conversation_id: str, now: datetime, tell: bool) -> str:
        """The visitor writes faster than the thread takes messages: the text that asks them to
        slow down, said on the conversation too when ``tell``."""
        return await self._visitor.too_fast(conversation_id=conversation_id, now=now, tell=tell)

    async def message_failed(self, *, conversation_id: str, now: datetime) -> None:
        """A message of the visitor's was set aside after failing again and again: say so."""
        await self._visitor.message_failed(conversation_id=conversation_id, now=now)

    async def request_handoff(self, *, conversation_id: str, category: str, now: datetime) -> None:
        """The widget's "talk to a person" button (``handoff.request``)."""
        await self._visitor.request_handoff(
            conversation_id=conversation_id, category=category, now=now
        )

    async def initiate_handoff(
        self,
        *,
        conversation_id: str,
        context: Mapping[str, Any],
        transcript: Sequence[UpstreamTurn],
        now: datetime,
    ) -> None:
        """An upstream agent handed the conversation over (``handoff.initiate``)."""
        await self._visitor.initiate_handoff(
            conversation_id=conversation_id, context=context, transcript=transcript, now=now
        )

    async def visitor_ends(self, *, conversation_id: str, now: datetime, explicit: bool) -> None:
        """The visitor ended the chat from the widget."""
        await self._visitor.visitor_ends(
            conversation_id=conversation_id, now=now, explicit=explicit
        )

    # ---- desk side ---------------------------------------------------------------------

    async def desk_action(
        self,
        *,
        action: DeskAction,
        handoff_id: str,
        person: Person,
        thread_id: str,
        now: datetime,
    ) -> DeskActionResult:
        """Join or End chosen at a thread's root (in the thread ``thread_id``)."""
        return await self._specialist.desk_action(
            action=action, handoff_id=handoff_id, person=person, thread_id=thread_id, now=now
        )

    async def transcript(self, *, handoff_id: str, thread_id: str) -> TranscriptView | None:
        """The handoff's transcript for its thread (None from any other thread)."""
        return await self._specialist.transcript(handoff_id=handoff_id, thread_id=thread_id)

    async def thread_message(
        self,
        *,
        thread_id: str,
        person: Person,
        text: str,
        now: datetime,
        message_id: str = "",
        mentions: Sequence[Person] = (),
        note: bool = False,
    ) -> ThreadResult:
        """A message posted in a desk thread (``mentions``: people it @mentions, not the bot;
        ``note``: the desk marks it an internal note, never relayed)."""
        return await self._specialist.thread_message(
            thread_id=thread_id,
            person=person,
            text=text,
            now=now,
            message_id=message_id,
            mentions=mentions,
            note=note,
        )

    async def thread_message_changed(
        self, *, thread_id: str, person: Person, message_id: str, text: str | None
    ) -> bool:
        """A specialist edited (or deleted: ``text=None``) a thread message; relayed ones follow."""
        return await self._specialist.thread_message_changed(
            thread_id=thread_id, person=person, message_id=message_id, text=text
        )

    # ---- timers and recovery -----------------------------------------------------------

    async def sweep(self, *, now: datetime) -> None:
        """Apply join timeouts and inactivity to open handoffs (called periodically)."""
        await self._lifecycle.sweep(now=now)

    async def thread_gone(self, *, thread_id: str, reason: str, now: datetime) -> None:
        """The desk says the thread or its channel is gone (or the bot was removed): end it."""
        await self._lifecycle.thread_gone(thread_id=thread_id, reason=reason, now=now)

    async def recover(self, *, now: datetime) -> None:
        """After a restart: open the threads of handoffs that were queued but never opened."""
        await self._lifecycle.recover(now=now)
