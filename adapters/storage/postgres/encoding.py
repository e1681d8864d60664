"""Rows of the PostgreSQL store to domain objects and back.

The JSON in ``visitor``, ``context`` and a handoff's ``data`` has the SQLite store's shape, so
a database can be moved from one to the other by copying rows.
"""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from adapters.storage.records import Row, handoff_data, handoff_of, time_of, visitor_of
from bot.model import (
    Conversation,
    Handoff,
    Role,
    Turn,
)

# The columns a compare-and-set save writes besides ``id`` and ``version``, in the order of
# ``conversation_values`` and ``handoff_values``.
CONVERSATION_COLUMNS = ("created_at", "fallbacks", "visitor", "context")
HANDOFF_COLUMNS = ("conversation_id", "state", "thread_id", "created_at", "data")
TURN_COLUMNS = ("conversation_id", "at", "role", "author", "text", "fallback")


def conversation_values(c: Conversation) -> tuple[Any, ...]:
    return (
        c.created_at,
        c.fallbacks_in_row,
        json.dumps(c.visitor.fields()),
        json.dumps(dict(c.context), default=str),
    )


def conversation(row: Row) -> Conversation:
    return Conversation(
        id=row["id"],
        visitor=visitor_of(row["visitor"]),
        created_at=row["created_at"],
        fallbacks_in_row=row["fallbacks"],
        context=MappingProxyType(json.loads(row["context"])),
        version=row["version"],
    )


def handoff_values(h: Handoff) -> tuple[Any, ...]:
    return (h.conversation_id, h.state.value, h.thread_id, h.created_at, handoff_data(h))


def handoff(row: Row) -> Handoff:
    data = json.loads(row["data"])
    # The column orders and counts; the JSON keeps the time as it was given (its offset).
    return handoff_of(row, data, time_of(data.get("created_at")) or row["created_at"])


def turn_values(t: Turn) -> tuple[Any, ...]:
    return (t.conversation_id, t.at, t.role.value, t.author, t.text, t.fallback)


def turn(row: Row) -> Turn:
    return Turn(
        row["conversation_id"],
        row["at"],
        Role(row["role"]),
        row["author"],
        row["text"],
        row["fallback"],
    )
