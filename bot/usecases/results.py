"""What the use cases take and give besides the domain's own records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.cards import Card
from bot.model import Role


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
