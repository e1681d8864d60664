"""Rows of the SQLite store to domain objects and back."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from adapters.storage.records import handoff_data, handoff_of, time_of, visitor_of
from bot.model import (
    Conversation,
    Handoff,
    Role,
    Turn,
)

# The columns a compare-and-set save writes besides ``id`` and ``version``, in the order of
# ``conversation_values`` and ``handoff_values``.
CONVERSATION_COLUMNS = ("created_at", "fallbacks", "visitor", "context")
HANDOFF_COLUMNS = ("conversation_id", "state", "thread_id", "data")


def conversation_values(c: Conversation) -> tuple[Any, ...]:
    return (
        c.created_at.isoformat(),
        c.fallbacks_in_row,
        json.dumps(c.visitor.fields()),
        json.dumps(dict(c.context), default=str),
    )


def conversation(row: sqlite3.Row) -> Conversation:
    created = time_of(row["created_at"])
    assert created is not None
    return Conversation(
        id=row["id"],
        visitor=visitor_of(row["visitor"]),
        created_at=created,
        fallbacks_in_row=row["fallbacks"],
        context=MappingProxyType(json.loads(row["context"])),
        version=row["version"],
    )


def handoff_values(handoff: Handoff) -> tuple[Any, ...]:
    return (handoff.conversation_id, handoff.state.value, handoff.thread_id, handoff_data(handoff))


def handoff(row: sqlite3.Row) -> Handoff:
    data = json.loads(row["data"])
    created = time_of(data["created_at"])
    assert created is not None
    return handoff_of(row, data, created)


def turn_values(turn: Turn) -> tuple[Any, ...]:
    return (
        turn.conversation_id,
        # UTC, so that MAX(at) over the text orders by time whatever offset came in.
        turn.at.astimezone(UTC).isoformat(),
        turn.role.value,
        turn.author,
        turn.text,
        int(turn.fallback),
    )


def turn(row: sqlite3.Row) -> Turn:
    return Turn(
        row["conversation_id"],
        datetime.fromisoformat(row["at"]),
        Role(row["role"]),
        row["author"],
        row["text"],
        bool(row["fallback"]),
    )
