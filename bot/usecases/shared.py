"""What every use case reaches: the ports, the settings in force, the per-conversation locks,
and the bot's own voice (its texts, and saying them to the visitor)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from bot.config import Route, Settings
from bot.errors import UnknownConversationError
from bot.locks import KeyedLocks, Locks
from bot.model import EMPTY, Conversation, Handoff, Role, Turn
from bot.ports import (
    DeskGateway,
    Direction,
    HandoffStore,
    Observer,
    Sender,
    SenderRole,
    Unobserved,
    VisitorGateway,
)

log = logging.getLogger(__name__)


class Shared:
    """One per service, shared by its parts; ``settings`` may be swapped at any time."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: HandoffStore,
        desk: DeskGateway,
        visitors: VisitorGateway,
        new_id: Callable[[], str],
        locks: Locks | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.desk = desk
        self.visitors = visitors
        self.new_id = new_id
        # One lock per widget conversation, whichever part takes it: events stay in order (in
        # every process sharing the store, with locks that hold across them).
        self.locks: Locks = locks or KeyedLocks()
        self.observer: Observer = observer or Unobserved()

    def changed(self, before: Handoff | None, after: Handoff) -> None:
        """Tell the observer a handoff was saved (what watches never fails what it watches)."""
        try:
            self.observer.handoff_changed(before, after)
        except Exception:
            log.exception("handoff %s: the observer failed", after.id)

    def relayed(self, direction: Direction) -> None:
        """Tell the observer a message was relayed."""
        try:
            self.observer.relayed(direction)
        except Exception:
            log.exception("the observer failed on a relayed message")

    @property
    def bot(self) -> Sender:
        """The bot, as the sender of what it says."""
        return Sender("bot", self.settings.bot.name, SenderRole.BOT)

    def text(self, key: str, values: Mapping[str, str], locale: str = "") -> str:
        """The configured text ``key``, filled in (``{bot}`` is always the bot's name)."""
        values = {"bot": self.settings.bot.name, **values}
        return self.settings.texts.render(key, values, locale)

    def names(self, handoff: Handoff) -> dict[str, str]:
        """The handoff's names the texts may use: ``{specialist}`` and ``{route}``."""
        route = self.settings.route(handoff.route_id)
        return {
            "specialist": handoff.specialist.name if handoff.specialist else "",
            "route": route.title if route else handoff.route_id,
        }

    def route(self, handoff: Handoff) -> Route:
        """The handoff's route."""
        # A route removed by a config reload keeps its handoffs alive under a stand-in.
        return self.settings.route(handoff.route_id) or Route(
            id=handoff.route_id, channel="19:removed", name=handoff.route_id
        )

    async def conversation(self, conversation_id: str) -> Conversation:
        """The widget conversation (UnknownConversationError when there is none)."""
        conversation = await self.store.get_conversation(conversation_id=conversation_id)
        if conversation is None:
            raise UnknownConversationError(conversation_id)
        return conversation

    async def conversation_and_open_handoff(
        self, conversation_id: str
    ) -> tuple[Conversation, Handoff | None]:
        """The widget conversation and its open handoff, read together
        (UnknownConversationError when there is no such conversation)."""
        conversation, handoff = await self.store.conversation_and_open_handoff(
            conversation_id=conversation_id
        )
        if conversation is None:
            raise UnknownConversationError(conversation_id)
        return conversation, handoff

    async def reload(self, handoff: Handoff) -> Handoff:
        """The handoff as stored now."""
        fresh = await self.store.get_handoff(handoff_id=handoff.id)
        return fresh or handoff

    async def bot_says(
        self,
        conversation: Conversation,
        key: str,
        now: datetime,
        values: Mapping[str, str] = EMPTY,
        *,
        role: Role = Role.SYSTEM,
        fallback: bool = False,
    ) -> str:
        """Say the text ``key`` to the visitor, in their language; returns the text."""
        visitor = conversation.visitor
        text = self.text(key, {"visitor": visitor.name, **values}, visitor.locale)
        await self.say(conversation.id, text, now, role=role, fallback=fallback)
        return text

    async def say(
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
        bot = self.bot
        turn = Turn(conversation_id, now, role, bot.name, text, fallback=fallback)
        await self.store.add_turn(turn=turn)
        await self.visitors.say(conversation_id=conversation_id, sender=bot, text=text)


class Part:
    """A part of the use cases: the shared ports, and the settings in force."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._store = shared.store
        self._desk = shared.desk
        self._visitors = shared.visitors
        self._locks = shared.locks

    @property
    def settings(self) -> Settings:
        """The settings in force (a reload swaps them)."""
        return self._shared.settings
