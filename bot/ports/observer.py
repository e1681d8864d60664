"""What the service tells whoever watches it (the metrics): how handoffs change, and each
message relayed between a visitor and a thread. Told after the fact, synchronously, and never
allowed to fail the work it watches."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from bot.model import Handoff


class Direction(StrEnum):
    """Which way a message was relayed."""

    TO_TEAMS = "visitor_to_teams"
    TO_VISITOR = "teams_to_visitor"


class Observer(Protocol):
    """Told of what happened, by the process that made it happen (each instance tells its own)."""

    def handoff_changed(self, before: Handoff | None, after: Handoff) -> None:
        """A handoff was saved: created (``before`` None) or changed from ``before``."""
        ...

    def relayed(self, direction: Direction) -> None:
        """One message was relayed (queued for the thread, or stored for the visitor)."""
        ...


class Unobserved:
    """An ``Observer`` that nobody reads."""

    def handoff_changed(self, before: Handoff | None, after: Handoff) -> None:
        """Nothing to tell."""

    def relayed(self, direction: Direction) -> None:
        """Nothing to tell."""
