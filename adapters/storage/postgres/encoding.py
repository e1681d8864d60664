"""Rows of the PostgreSQL store to domain objects and back.

The JSON in ``visitor``, ``context`` and a handoff's ``data`` has the SQLite store's shape, so
a database can be moved from one to the other by copying rows.
"""

from __future__ import annotations

import json
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from bot.model import (
    Conversation,
    Handoff,
    HandoffState,
    Page,
    Party,
    Person,
    Role,
    Turn,
    Visitor,
)


class Row(Protocol):
    """A row by column name (``asyncpg.Record``)."""

    def __getitem__(self, key: str) -> Any: ...


# The columns a compare-and-set save writes besides ``id`` and ``version``, in the order of
# ``conversation_values`` and ``handoff_values``.
CONVERSATION_COLUMNS = ("created_at", "fallbacks", "visitor", "context")
HANDOFF_COLUMNS = ("conversation_id", "state", "thread_id", "created_at", "data")
TURN_COLUMNS = ("conversation_id", "at", "role", "author", "text", "fallback")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def conversation_values(c: Conversation) -> tuple[Any, ...]:
    return (
        c.created_at,
        c.fallbacks_in_row,
        json.dumps(c.visitor.fields()),
        json.dumps(dict(c.context), default=str),
    )


def conversation(row: Row) -> Conversation:
    data = json.loads(row["visitor"])
    visitor = Visitor(
        id=data["id"],
        name=data["name"],
        email=data["email"],
        company=data["company"],
        page=Page(**data["page"]),
        locale=data["locale"],
        timezone=data["timezone"],
        user_agent=data["user_agent"],
        extra=MappingProxyType(data["extra"]),
    )
    return Conversation(
        id=row["id"],
        visitor=visitor,
        created_at=row["created_at"],
        fallbacks_in_row=row["fallbacks"],
        context=MappingProxyType(json.loads(row["context"])),
        version=row["version"],
    )


def handoff_values(h: Handoff) -> tuple[Any, ...]:
    who = h.specialist
    data = json.dumps(
        {
            "route_id": h.route_id,
            "created_at": h.created_at.isoformat(),
            "reason": h.reason,
            "root_activity_id": h.root_activity_id,
            "specialist": {"id": who.id, "name": who.name} if who else None,
            "joined_at": _iso(h.joined_at),
            "ended_at": _iso(h.ended_at),
            "ended_by": h.ended_by.value if h.ended_by else None,
            "ended_by_name": h.ended_by_name,
            "failure": h.failure,
            "timed_out_at": _iso(h.timed_out_at),
            "reminded_at": _iso(h.reminded_at),
            "context": dict(h.context),
        },
        default=str,
    )
    return (h.conversation_id, h.state.value, h.thread_id, h.created_at, data)


def handoff(row: Row) -> Handoff:
    data = json.loads(row["data"])
    # The column orders and counts; the JSON keeps the time as it was given (its offset).
    created = _time(data.get("created_at")) or row["created_at"]
    return Handoff(
        id=row["id"],
        conversation_id=row["conversation_id"],
        route_id=data["route_id"],
        state=HandoffState(row["state"]),
        created_at=created,
        reason=data["reason"],
        thread_id=row["thread_id"],
        root_activity_id=data["root_activity_id"],
        specialist=Person(**data["specialist"]) if data["specialist"] else None,
        joined_at=_time(data["joined_at"]),
        ended_at=_time(data["ended_at"]),
        ended_by=Party(data["ended_by"]) if data["ended_by"] else None,
        ended_by_name=data["ended_by_name"],
        failure=data["failure"],
        timed_out_at=_time(data.get("timed_out_at")),
        reminded_at=_time(data.get("reminded_at")),
        context=MappingProxyType(data["context"]),
        version=row["version"],
    )


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
