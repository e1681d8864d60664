"""Rows of the SQLite store to domain objects and back."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

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

# The columns a compare-and-set save writes besides ``id`` and ``version``, in the order of
# ``conversation_values`` and ``handoff_values``.
CONVERSATION_COLUMNS = ("created_at", "fallbacks", "visitor", "context")
HANDOFF_COLUMNS = ("conversation_id", "state", "thread_id", "data")


def time_of(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _visitor(raw: str) -> Visitor:
    data = json.loads(raw)
    return Visitor(
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
        visitor=_visitor(row["visitor"]),
        created_at=created,
        fallbacks_in_row=row["fallbacks"],
        context=MappingProxyType(json.loads(row["context"])),
        version=row["version"],
    )


def handoff_values(handoff: Handoff) -> tuple[Any, ...]:
    who = handoff.specialist
    data = json.dumps(
        {
            "route_id": handoff.route_id,
            "created_at": handoff.created_at.isoformat(),
            "reason": handoff.reason,
            "root_activity_id": handoff.root_activity_id,
            "specialist": {"id": who.id, "name": who.name} if who else None,
            "joined_at": handoff.joined_at.isoformat() if handoff.joined_at else None,
            "ended_at": handoff.ended_at.isoformat() if handoff.ended_at else None,
            "ended_by": handoff.ended_by.value if handoff.ended_by else None,
            "ended_by_name": handoff.ended_by_name,
            "failure": handoff.failure,
            "timed_out_at": handoff.timed_out_at.isoformat() if handoff.timed_out_at else None,
            "reminded_at": handoff.reminded_at.isoformat() if handoff.reminded_at else None,
            "context": dict(handoff.context),
        },
        default=str,
    )
    return (handoff.conversation_id, handoff.state.value, handoff.thread_id, data)


def handoff(row: sqlite3.Row) -> Handoff:
    data = json.loads(row["data"])
    created = time_of(data["created_at"])
    assert created is not None
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
        joined_at=time_of(data["joined_at"]),
        ended_at=time_of(data["ended_at"]),
        ended_by=Party(data["ended_by"]) if data["ended_by"] else None,
        ended_by_name=data["ended_by_name"],
        failure=data["failure"],
        timed_out_at=time_of(data.get("timed_out_at")),
        reminded_at=time_of(data.get("reminded_at")),
        context=MappingProxyType(data["context"]),
        version=row["version"],
    )


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
