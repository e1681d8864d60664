"""How every store writes the domain's records as JSON (the same shape in SQLite and
PostgreSQL, so that one can be copied to the other), and the compare-and-set statements.

A store keeps a few fields as columns of its own (ids, state, thread, version, times it orders
by) and the rest as the JSON made here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from bot.model import Conversation, Handoff, HandoffState, Page, Party, Person, Visitor


class Row(Protocol):
    """A row by column name (``sqlite3.Row``, ``asyncpg.Record``)."""

    def __getitem__(self, key: str, /) -> Any: ...


class ReadsTogether:
    """``conversation_and_open_handoff`` and ``open_thread`` for a store whose reads cost no
    round trip (memory, SQLite and its cache): the two reads one after the other."""

    async def get_conversation(self, *, conversation_id: str) -> Conversation | None:
        raise NotImplementedError

    async def open_handoff(self, *, conversation_id: str) -> Handoff | None:
        raise NotImplementedError

    async def conversation_and_open_handoff(
        self, *, conversation_id: str
    ) -> tuple[Conversation | None, Handoff | None]:
        conversation = await self.get_conversation(conversation_id=conversation_id)
        if conversation is None:
            return None, None
        return conversation, await self.open_handoff(conversation_id=conversation_id)

    async def open_thread(self, *, conversation_id: str) -> str | None:
        conversation, handoff = await self.conversation_and_open_handoff(
            conversation_id=conversation_id
        )
        if conversation is None:
            return None
        return handoff.thread_id if handoff is not None else ""


def time_of(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def visitor_of(raw: str) -> Visitor:
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


def handoff_data(h: Handoff) -> str:
    """What of a handoff is kept as JSON."""
    who = h.specialist
    return json.dumps(
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


def handoff_of(row: Row, data: Mapping[str, Any], created_at: datetime) -> Handoff:
    """A handoff from its columns (``row``) and its JSON (``data``, read)."""
    return Handoff(
        id=row["id"],
        conversation_id=row["conversation_id"],
        route_id=data["route_id"],
        state=HandoffState(row["state"]),
        created_at=created_at,
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


@dataclass(frozen=True)
class SaveStatements:
    """The statements of a compare-and-set save into one table: an insert that fails (or
    changes nothing) when the id exists, an update only of the stored version."""

    kind: str
    insert: str
    update: str

    @classmethod
    def of(
        cls,
        table: str,
        kind: str,
        columns: tuple[str, ...],
        mark: Callable[[int], str],
        insert_suffix: str = "",
    ) -> SaveStatements:
        """``mark(i)``: the driver's placeholder for the i-th parameter (from 1)."""
        n = len(columns)
        names = ", ".join(columns)
        marks = ", ".join(mark(i) for i in range(1, n + 1))
        sets = ", ".join(f"{column} = {mark(i)}" for i, column in enumerate(columns, 1))
        return cls(
            kind,
            f"INSERT INTO {table} ({names}, id, version) VALUES ({marks}, {mark(n + 1)}, 1)"
            + insert_suffix,
            f"UPDATE {table} SET {sets}, version = version + 1"
            f" WHERE id = {mark(n + 1)} AND version = {mark(n + 2)}",
        )
