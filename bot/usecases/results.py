"""What the use cases take and give besides the domain's own records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.model import Role
from bot.views import ThreadView


class ThreadOutcome(StrEnum):
    """What became of a message posted in a desk thread."""

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
class DeskActionResult:
    """The thread's root to show the person who acted, and any notice for them."""

    view: ThreadView | None
    notice: str = ""


@dataclass(frozen=True)
class UpstreamTurn:
    """A line of an upstream agent's transcript (``handoff.initiate``)."""

    role: Role
    author: str
    text: str
    at: datetime
