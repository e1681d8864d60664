"""What the domain needs from the edges, as Protocols the adapters implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from bot.model import Conversation, Handoff, Turn


class HandoffStore(Protocol):
    """Conversations, transcripts and handoffs; writes that can race are compare-and-set."""

    async def get_conversation(self, *, conversation_id: str) -> Conversation | None:
        """The conversation, or None."""
        ...

    async def save_conversation(self, *, conversation: Conversation) -> Conversation:
        """Insert (version 0) or update (stored version must match); returns version + 1."""
        ...

    async def add_turn(self, *, turn: Turn) -> None:
        """Append a transcript line."""
        ...

    async def turns(self, *, conversation_id: str) -> list[Turn]:
        """The whole transcript, oldest first."""
        ...

    async def get_handoff(self, *, handoff_id: str) -> Handoff | None:
        """The handoff, or None."""
        ...

    async def open_handoff(self, *, conversation_id: str) -> Handoff | None:
        """The conversation's queued or joined handoff, if any."""
        ...

    async def handoff_for_thread(self, *, thread_id: str) -> Handoff | None:
        """The handoff whose Teams thread this is, if any."""
        ...

    async def open_handoffs(self) -> list[Handoff]:
        """Every queued or joined handoff (for timeouts and inactivity)."""
        ...

    async def last_human_turn_at(self, *, conversation_id: str) -> datetime | None:
        """When the visitor or a specialist last wrote."""
        ...

    async def save_handoff(self, *, handoff: Handoff) -> Handoff:
        """Insert (version 0) or update (stored version must match); returns version + 1."""
        ...

    async def unopened_handoffs(self) -> list[Handoff]:
        """Queued handoffs whose Teams thread was never opened (a crash in between)."""
        ...

    async def handoffs_since(self, *, conversation_id: str, since: datetime) -> int:
        """How many handoffs the conversation started at or after ``since``."""
        ...

    async def seen(self, *, key: str) -> bool:
        """Whether an inbound delivery with this key was handled already."""
        ...

    async def remember(self, *, key: str, now: datetime) -> None:
        """Record that the delivery with this key was handled."""
        ...


@dataclass(frozen=True)
class ThreadRef:
    """A Teams channel thread: its conversation id and root message id."""

    thread_id: str
    root_activity_id: str


Card = dict[str, Any]


class TeamsGateway(Protocol):
    """Posting into Teams channel threads.

    Sends are queued durably and delivered in order; a thread that turns out to be gone is
    reported back through ``HandoffService.thread_gone``.
    """

    async def open_thread(self, *, channel_id: str, card: Card, text: str) -> ThreadRef:
        """Start a new thread in the channel whose root message is the card."""
        ...

    async def post_message(self, *, thread_id: str, author: str, text: str) -> None:
        """Reply in the thread on someone's behalf."""
        ...

    async def post_card(self, *, thread_id: str, card: Card, text: str) -> None:
        """Reply in the thread with a card."""
        ...

    async def update_card(self, *, thread_id: str, activity_id: str, card: Card) -> None:
        """Replace a message's card for everyone."""
        ...


class SenderRole(StrEnum):
    """Who a message to the visitor is from."""

    BOT = "bot"
    SPECIALIST = "specialist"


@dataclass(frozen=True)
class Sender:
    """The author of a message to the visitor."""

    id: str
    name: str
    role: SenderRole


@dataclass(frozen=True)
class Choice:
    """A button offered to the visitor: clicking sends ``text`` with ``value``."""

    title: str
    text: str
    value: Mapping[str, Any]


class VisitorGateway(Protocol):
    """Talking to the visitor's widget."""

    async def say(self, *, conversation_id: str, sender: Sender, text: str, ref: str = "") -> None:
        """Deliver a message to the visitor; ``ref`` names its source (a Teams message id)."""
        ...

    async def amend(
        self, *, conversation_id: str, sender: Sender, ref: str, text: str | None
    ) -> bool:
        """Change (``text=None``: delete) the message said with ``ref``; False if unknown."""
        ...

    async def status(self, *, conversation_id: str, sender: Sender, state: str, text: str) -> None:
        """Deliver handoff progress (``queued|accepted|completed|failed``) as an event."""
        ...

    async def offer(
        self, *, conversation_id: str, sender: Sender, text: str, choices: Sequence[Choice]
    ) -> None:
        """A message with buttons to choose from."""
        ...
