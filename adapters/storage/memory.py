"""In-memory store: for unit tests and throwaway demos. Same contract as the SQLite store
(``adapters.storage.contract.Store``)."""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from adapters.runtime.clock import parse_time
from adapters.storage.records import ReadsTogether
from bot.errors import StaleWriteError
from bot.model import Conversation, Handoff, HandoffState, Role, Turn

_Record = TypeVar("_Record", Conversation, Handoff)


def _save(table: dict[str, _Record], record: _Record, kind: str) -> _Record:
    """Compare-and-set: the stored version (0: none stored) must be the record's."""
    stored = table.get(record.id)
    if (stored.version if stored else 0) != record.version:
        raise StaleWriteError(f"{kind} {record.id} changed")
    saved = replace(record, version=record.version + 1)
    table[record.id] = saved
    return saved


class MemoryStore(ReadsTogether):
    """The storage contract in memory."""

    def __init__(self) -> None:
        self._conversations: dict[str, Conversation] = {}
        self._turns: dict[str, list[Turn]] = {}
        self._handoffs: dict[str, Handoff] = {}
        self._seen: dict[str, datetime] = {}
        self._activities: dict[str, list[dict[str, Any]]] = {}
        self._keys: dict[str, list[tuple[int, str]]] = {}  # conversation -> (seq, key), in order
        self._meta: dict[str, tuple[str, str]] = {}  # key -> (value, conversation or "")
        self._inbox: dict[str, int] = {}
        self._outbound: dict[int, tuple[str, dict[str, Any]]] = {}
        self._outbound_seq = 0
        self.on_recovered: list[Callable[[], None]] = []  # never called: nothing fails here

    async def close(self) -> None:
        """Nothing to release."""

    failed_commits = 0  # nothing here commits, so nothing fails to
    failing = None

    async def flush(self, *, reads: bool = True) -> None:
        """Every write is already as durable as this store gets."""

    async def health(self) -> str | None:
        """Memory always answers."""
        return None

    # HandoffStore
    async def get_conversation(self, *, conversation_id: str) -> Conversation | None:
        return self._conversations.get(conversation_id)

    async def save_conversation(self, *, conversation: Conversation) -> Conversation:
        return _save(self._conversations, conversation, "conversation")

    async def add_turn(self, *, turn: Turn) -> None:
        utc = replace(turn, at=turn.at.astimezone(UTC))
        self._turns.setdefault(turn.conversation_id, []).append(utc)

    async def add_turns(self, *, turns: Sequence[Turn]) -> None:
        for turn in turns:
            await self.add_turn(turn=turn)

    async def turns(self, *, conversation_id: str) -> list[Turn]:
        return list(self._turns.get(conversation_id, []))

    async def get_handoff(self, *, handoff_id: str) -> Handoff | None:
        return self._handoffs.get(handoff_id)

    async def open_handoff(self, *, conversation_id: str) -> Handoff | None:
        return next(
            (
                h
                for h in self._handoffs.values()
                if h.conversation_id == conversation_id and h.state.is_open
            ),
            None,
        )

    async def handoff_for_thread(self, *, thread_id: str) -> Handoff | None:
        return next((h for h in self._handoffs.values() if h.thread_id == thread_id), None)

    async def open_handoffs(self) -> list[Handoff]:
        return [h for h in self._handoffs.values() if h.state.is_open]

    async def last_human_turn_at(self, *, conversation_id: str) -> datetime | None:
        human = [
            t.at
            for t in self._turns.get(conversation_id, [])
            if t.role in (Role.VISITOR, Role.SPECIALIST)
        ]
        return max(human, default=None)

    async def save_handoff(self, *, handoff: Handoff) -> Handoff:
        return _save(self._handoffs, handoff, "handoff")

    async def unopened_handoffs(self) -> list[Handoff]:
        return [
            h for h in self._handoffs.values() if h.state is HandoffState.QUEUED and not h.thread_id
        ]

    async def handoffs_since(self, *, conversation_id: str, since: datetime) -> int:
        return sum(
            1
            for h in self._handoffs.values()
            if h.conversation_id == conversation_id and h.created_at >= since
        )

    async def handoffs_created(self, *, since: datetime, until: datetime) -> list[Handoff]:
        found = [h for h in self._handoffs.values() if since <= h.created_at < until]
        return sorted(found, key=lambda h: (h.created_at, h.id))

    async def seen(self, *, key: str) -> bool:
        return key in self._seen

    async def remember(self, *, key: str, now: datetime) -> None:
        self._seen.setdefault(key, now)

    async def purge(
        self, *, before: datetime, keep: Container[str] = frozenset()
    ) -> tuple[list[str], bool]:
        """Retention, all in one step here: see ``contract.Retention.purge``."""
        purged = [
            cid
            for cid, conversation in self._conversations.items()
            if cid not in keep
            and self._idle(conversation, before)
            and not any(
                h.conversation_id == cid and h.state.is_open for h in self._handoffs.values()
            )
        ]
        gone = set(purged)
        for cid in purged:
            for table in (self._turns, self._activities, self._keys, self._inbox):
                table.pop(cid, None)
            del self._conversations[cid]
        self._handoffs = {k: h for k, h in self._handoffs.items() if h.conversation_id not in gone}
        self._meta = {k: row for k, row in self._meta.items() if row[1] not in gone}
        return purged, True

    async def forget_deliveries(self, *, before: datetime) -> bool:
        """See ``contract.Retention.forget_deliveries``."""
        self._seen = {k: at for k, at in self._seen.items() if at >= before}
        return True

    def _idle(self, conversation: Conversation, before: datetime) -> bool:
        """As ``SqliteStore``: unreadable creation times are kept, unreadable later ones ignored."""
        created = conversation.created_at
        if created.tzinfo is None or created >= before:
            return False
        turns = self._turns.get(conversation.id, [])
        activities = self._activities.get(conversation.id, [])
        later = [turns[-1].at if turns else None]
        later.append(parse_time(activities[-1].get("timestamp")) if activities else None)
        return not any(at is not None and at >= before for at in later)

    # ActivityLog
    async def recent_keys(self, *, conversation_id: str, limit: int) -> list[tuple[int, str]]:
        return self._keys.get(conversation_id, [])[-limit:]

    async def keyed_activity(self, *, conversation_id: str, key: str) -> int | None:
        return next((s for s, k in self._keys.get(conversation_id, []) if k == key), None)

    async def append_activity(
        self, *, conversation_id: str, activity: dict[str, Any], key: str = ""
    ) -> int:
        seq = await self._append(conversation_id, activity)
        if key:
            self._keys.setdefault(conversation_id, []).append((seq, key))
        return seq

    async def _append(self, conversation_id: str, activity: dict[str, Any]) -> int:
        log = self._activities.setdefault(conversation_id, [])
        log.append(activity)
        return len(log)

    async def activities_after(
        self, *, conversation_id: str, watermark: int, limit: int = 500
    ) -> list[tuple[int, dict[str, Any]]]:
        log = self._activities.get(conversation_id, [])
        return [(n, log[n - 1]) for n in range(watermark + 1, min(len(log), watermark + limit) + 1)]

    async def last_watermark(self, *, conversation_id: str) -> int:
        return len(self._activities.get(conversation_id, []))

    async def get_meta(self, *, key: str) -> str | None:
        row = self._meta.get(key)
        return row[0] if row else None

    async def enqueue_outbound(self, *, thread_id: str, item: dict[str, Any]) -> int:
        self._outbound_seq += 1
        self._outbound[self._outbound_seq] = (thread_id, dict(item))
        return self._outbound_seq

    async def outbound(
        self, *, thread_id: str, limit: int = 50
    ) -> list[tuple[int, dict[str, Any]]]:
        rows = [
            (seq, item) for seq, (tid, item) in sorted(self._outbound.items()) if tid == thread_id
        ]
        return rows[:limit]

    async def outbound_threads(self) -> list[tuple[str, int]]:
        oldest: dict[str, int] = {}
        for seq, (tid, _) in sorted(self._outbound.items()):
            oldest.setdefault(tid, seq)
        return sorted(oldest.items())

    async def drop_outbound(self, *, seqs: list[int]) -> None:
        for seq in seqs:
            self._outbound.pop(seq, None)

    async def set_meta(self, *, key: str, value: str, conversation_id: str = "") -> None:
        self._meta[key] = (value, conversation_id)

    async def set_meta_once(self, *, key: str, value: str, conversation_id: str = "") -> str:
        return self._meta.setdefault(key, (value, conversation_id))[0]

    async def inbox_position(self, *, conversation_id: str) -> int:
        return self._inbox.get(conversation_id, 0)

    async def set_inbox_position(self, *, conversation_id: str, seq: int) -> None:
        self._inbox[conversation_id] = max(seq, self._inbox.get(conversation_id, 0))

    async def inbox_backlog(self) -> list[tuple[str, int]]:
        return [
            (cid, len(log))
            for cid, log in self._activities.items()
            if len(log) > self._inbox.get(cid, 0)
        ]
