"""Where the domain keeps its records: conversations, transcripts, handoffs, inbound keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

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

    async def add_turns(self, *, turns: Sequence[Turn]) -> None:
        """Append transcript lines, in order (all or none)."""
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

    async def conversation_and_open_handoff(
        self, *, conversation_id: str
    ) -> tuple[Conversation | None, Handoff | None]:
        """The conversation and its open handoff, read together (one read where the store
        can): a visitor's message needs both before anything else."""
        ...

    async def open_thread(self, *, conversation_id: str) -> str | None:
        """The desk thread of the conversation's open handoff ("" when none is open or its
        thread is not opened yet), or None when there is no such conversation: one small read
        for each message a visitor posts."""
        ...

    async def handoff_for_thread(self, *, thread_id: str) -> Handoff | None:
        """The handoff whose desk thread this is, if any."""
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
        """Queued handoffs whose desk thread was never opened (a crash in between)."""
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
