"""The visitor's side: what the domain says to the widget, and as whom."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


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
        """Deliver a message to the visitor; ``ref`` names its source (a desk message id)."""
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
