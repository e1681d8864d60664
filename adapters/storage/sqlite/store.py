"""SQLite store, the default: one file, WAL, survives a process kill.

Composed of the connection (group commit, flush, rollback, the one-process lock), the schema
and its migrations, the row encoding, retention, and a switchable cache of records.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Container, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from adapters.runtime import jsonio
from adapters.runtime.clock import parse_time
from adapters.storage.records import ReadsTogether, SaveStatements, time_of
from adapters.storage.sqlite import encoding
from adapters.storage.sqlite.cache import MISS, NoCache, RecordCache, keep
from adapters.storage.sqlite.connection import Connection
from adapters.storage.sqlite.retention import OPEN_STATES, Retention
from bot.errors import StaleWriteError, StoreError
from bot.model import Conversation, Handoff, HandoffState, Role, Turn

_CONVERSATIONS = SaveStatements.of(
    "conversations", "conversation", encoding.CONVERSATION_COLUMNS, lambda _: "?"
)
_HANDOFFS = SaveStatements.of("handoffs", "handoff", encoding.HANDOFF_COLUMNS, lambda _: "?")
_Record = TypeVar("_Record", Conversation, Handoff)


class SqliteStore(ReadsTogether):
    """The storage contract (``adapters.storage.contract.Store``) on one SQLite file.

    ``cache=False``: conversations and handoffs are read from the file every time."""

    def __init__(self, path: str | Path, *, cache: bool = True) -> None:
        self.path = Path(path)
        self._conn = conn = Connection(path)
        self._cache = RecordCache() if cache else NoCache()
        conn.on_rollback.append(self._cache.clear)
        self._retention = Retention(conn)
        # conversation -> highest activity seq handed out. Not a cache, and kept with the cache
        # off: a socket may have been told of a seq whose commit then failed, so a rolled-back
        # seq is never handed out again.
        self._handed_out: dict[str, int] = {}
        self.on_recovered: list[Callable[[], None]] = conn.on_recovered

    @property
    def failing(self) -> StoreError | None:
        return self._conn.failing

    @property
    def failed_commits(self) -> int:
        return self._conn.failed_commits

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection the store writes through (tests put a faulty one in its place)."""
        return self._conn.db

    @_db.setter
    def _db(self, db: sqlite3.Connection) -> None:
        self._conn.db = db

    async def close(self) -> None:
        await self._conn.close()

    async def flush(self, *, reads: bool = True) -> None:
        await self._conn.flush(reads=reads)

    async def health(self) -> str | None:
        return await self._conn.health()

    def _save(self, table: SaveStatements, record: _Record, values: tuple[Any, ...]) -> _Record:
        """Compare-and-set: insert at version 0, else update only the stored version."""
        if record.version == 0:
            try:
                self._conn.write(table.insert, (*values, record.id))
            except sqlite3.IntegrityError as exc:
                raise StaleWriteError(f"{table.kind} {record.id} exists") from exc
        elif self._conn.write(table.update, (*values, record.id, record.version)).rowcount != 1:
            raise StaleWriteError(f"{table.kind} {record.id} changed")
        return replace(record, version=record.version + 1)

    # HandoffStore
    async def get_conversation(self, *, conversation_id: str) -> Conversation | None:
        cached = self._cache.conversation(conversation_id)
        if cached is not None:
            return cached
        row = self._conn.one("SELECT * FROM conversations WHERE id = ?", conversation_id)
        if row is None:
            return None
        conversation = encoding.conversation(row)
        self._cache.keep_conversation(conversation)
        return conversation

    async def save_conversation(self, *, conversation: Conversation) -> Conversation:
        values = encoding.conversation_values(conversation)
        saved = self._save(_CONVERSATIONS, conversation, values)
        self._cache.keep_conversation(saved)
        return saved

    async def add_turn(self, *, turn: Turn) -> None:
        self._conn.write(
            "INSERT INTO turns (conversation_id, at, role, author, text, fallback)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            encoding.turn_values(turn),
        )

    async def add_turns(self, *, turns: Sequence[Turn]) -> None:
        for turn in turns:  # pending writes: they commit together
            await self.add_turn(turn=turn)

    async def turns(self, *, conversation_id: str) -> list[Turn]:
        rows = self._conn.rows(
            "SELECT * FROM turns WHERE conversation_id = ? ORDER BY rowid", conversation_id
        )
        return [encoding.turn(r) for r in rows]

    def _read_handoff(self, sql: str, *args: Any) -> Handoff | None:
        row = self._conn.one(sql, *args)
        if row is None:
            return None
        handoff = encoding.handoff(row)
        self._cache.keep_handoff(handoff)
        return handoff

    async def get_handoff(self, *, handoff_id: str) -> Handoff | None:
        cached = self._cache.handoff(handoff_id)
        if cached is not None:
            return cached
        return self._read_handoff("SELECT * FROM handoffs WHERE id = ?", handoff_id)

    async def open_handoff(self, *, conversation_id: str) -> Handoff | None:
        cached = self._cache.open_handoff(conversation_id)
        if cached is not MISS:
            return cached
        handoff = self._read_handoff(
            "SELECT * FROM handoffs WHERE conversation_id = ? AND state IN (?, ?)",
            conversation_id,
            *OPEN_STATES,
        )
        if handoff is None:
            self._cache.none_open(conversation_id)
        return handoff

    async def handoff_for_thread(self, *, thread_id: str) -> Handoff | None:
        cached = self._cache.thread_handoff(thread_id)
        if cached is not None:
            return cached
        return self._read_handoff(
            "SELECT * FROM handoffs WHERE thread_id = ? AND thread_id != ''", thread_id
        )

    async def open_handoffs(self) -> list[Handoff]:
        rows = self._conn.rows("SELECT * FROM handoffs WHERE state IN (?, ?)", *OPEN_STATES)
        return [encoding.handoff(row) for row in rows]

    async def last_human_turn_at(self, *, conversation_id: str) -> datetime | None:
        row = self._conn.one(
            "SELECT MAX(at) AS at FROM turns WHERE conversation_id = ? AND role IN (?, ?)",
            conversation_id,
            Role.VISITOR.value,
            Role.SPECIALIST.value,
        )
        return time_of(row["at"]) if row and row["at"] else None

    async def save_handoff(self, *, handoff: Handoff) -> Handoff:
        saved = self._save(_HANDOFFS, handoff, encoding.handoff_values(handoff))
        self._cache.keep_handoff(saved)
        return saved

    async def unopened_handoffs(self) -> list[Handoff]:
        rows = self._conn.rows(
            "SELECT * FROM handoffs WHERE state = ? AND thread_id = ''", HandoffState.QUEUED.value
        )
        return [encoding.handoff(row) for row in rows]

    async def handoffs_since(self, *, conversation_id: str, since: datetime) -> int:
        # A conversation has a handful of handoffs: their times are read from the rows.
        rows = self._conn.rows(
            "SELECT data FROM handoffs WHERE conversation_id = ?", conversation_id
        )
        times = (parse_time(json.loads(r["data"]).get("created_at")) for r in rows)
        return sum(1 for at in times if at is not None and at >= since)

    async def handoffs_created(self, *, since: datetime, until: datetime) -> list[Handoff]:
        # The time is in the JSON, with its offset: compared as times, not as text.
        handoffs = [encoding.handoff(row) for row in self._conn.rows("SELECT * FROM handoffs")]
        found = [h for h in handoffs if since <= h.created_at < until]
        return sorted(found, key=lambda h: (h.created_at, h.id))

    async def seen(self, *, key: str) -> bool:
        return self._conn.one("SELECT 1 FROM seen WHERE key = ?", key) is not None

    async def remember(self, *, key: str, now: datetime) -> None:
        self._conn.write(
            "INSERT OR IGNORE INTO seen (key, at) VALUES (?, ?)", (key, now.isoformat())
        )

    # Retention
    async def purge(
        self, *, before: datetime, keep: Container[str] = frozenset()
    ) -> tuple[list[str], bool]:
        """See ``retention.Retention.purge``."""
        purged, done = self._retention.purge(before, keep)
        if purged:
            gone = set(purged)
            self._cache.evict(gone)
            for cid in gone:
                self._handed_out.pop(cid, None)
        return purged, done

    async def forget_deliveries(self, *, before: datetime) -> bool:
        """See ``retention.Retention.forget_deliveries``."""
        return self._retention.forget_deliveries(before)

    # ActivityLog
    async def append_activity(
        self, *, conversation_id: str, activity: dict[str, Any], key: str = ""
    ) -> int:
        row = self._conn.write_one(
            "INSERT INTO activities (conversation_id, seq, body, key) VALUES (?, MAX(?, "
            "COALESCE((SELECT MAX(seq) FROM activities WHERE conversation_id = ?), 0)) + 1, ?, ?)"
            " RETURNING seq",
            conversation_id,
            self._handed_out.get(conversation_id, 0),
            conversation_id,
            jsonio.dumps(activity),
            key or None,
        )
        assert row is not None
        seq = int(row["seq"])
        keep(self._handed_out, conversation_id, seq)
        return seq

    async def recent_keys(self, *, conversation_id: str, limit: int) -> list[tuple[int, str]]:
        rows = self._conn.rows(
            "SELECT seq, key FROM activities WHERE conversation_id = ? AND key IS NOT NULL"
            " ORDER BY seq DESC LIMIT ?",
            conversation_id,
            limit,
        )
        return [(int(r["seq"]), str(r["key"])) for r in reversed(rows)]

    async def keyed_activity(self, *, conversation_id: str, key: str) -> int | None:
        row = self._conn.one(
            "SELECT seq FROM activities WHERE conversation_id = ? AND key = ? ORDER BY seq LIMIT 1",
            conversation_id,
            key,
        )
        return int(row["seq"]) if row else None

    async def activities_after(
        self, *, conversation_id: str, watermark: int, limit: int = 500
    ) -> list[tuple[int, dict[str, Any]]]:
        rows = self._conn.rows(
            "SELECT seq, body FROM activities WHERE conversation_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            conversation_id,
            watermark,
            limit,
        )
        return [(r["seq"], jsonio.loads(r["body"])) for r in rows]

    async def last_watermark(self, *, conversation_id: str) -> int:
        row = self._conn.one(
            "SELECT COALESCE(MAX(seq), 0) AS seq FROM activities WHERE conversation_id = ?",
            conversation_id,
        )
        return int(row["seq"]) if row else 0

    async def inbox_position(self, *, conversation_id: str) -> int:
        row = self._conn.one(
            "SELECT processed FROM inbox WHERE conversation_id = ?", conversation_id
        )
        return int(row["processed"]) if row else 0

    async def set_inbox_position(self, *, conversation_id: str, seq: int) -> None:
        self._conn.write(
            "INSERT INTO inbox (conversation_id, processed) VALUES (?, ?) ON CONFLICT"
            " (conversation_id) DO UPDATE SET processed = MAX(processed, excluded.processed)",
            (conversation_id, seq),
        )

    async def inbox_backlog(self) -> list[tuple[str, int]]:
        rows = self._conn.rows(
            "SELECT a.conversation_id, MAX(a.seq) AS last FROM activities a"
            " LEFT JOIN inbox i USING (conversation_id)"
            " GROUP BY a.conversation_id HAVING MAX(a.seq) > COALESCE(MAX(i.processed), 0)"
        )
        return [(str(r["conversation_id"]), int(r["last"])) for r in rows]

    # MetaStore
    async def get_meta(self, *, key: str) -> str | None:
        row = self._conn.one("SELECT value FROM meta WHERE key = ?", key)
        return str(row["value"]) if row else None

    async def set_meta(self, *, key: str, value: str, conversation_id: str = "") -> None:
        self._conn.write(
            "INSERT OR REPLACE INTO meta (key, value, conversation_id) VALUES (?, ?, ?)",
            (key, value, conversation_id or None),
        )

    async def set_meta_once(self, *, key: str, value: str, conversation_id: str = "") -> str:
        self._conn.write(
            "INSERT OR IGNORE INTO meta (key, value, conversation_id) VALUES (?, ?, ?)",
            (key, value, conversation_id or None),
        )
        stored = await self.get_meta(key=key)
        assert stored is not None
        return stored

    # OutboundStore
    async def enqueue_outbound(self, *, thread_id: str, item: dict[str, Any]) -> int:
        cursor = self._conn.write(
            "INSERT INTO outbound (thread_id, item) VALUES (?, ?)", (thread_id, jsonio.dumps(item))
        )
        return int(cursor.lastrowid or 0)

    async def outbound(
        self, *, thread_id: str, limit: int = 50
    ) -> list[tuple[int, dict[str, Any]]]:
        rows = self._conn.rows(
            "SELECT seq, item FROM outbound WHERE thread_id = ? ORDER BY seq LIMIT ?",
            thread_id,
            limit,
        )
        return [(int(r["seq"]), jsonio.loads(r["item"])) for r in rows]

    async def outbound_threads(self) -> list[tuple[str, int]]:
        rows = self._conn.rows(
            "SELECT thread_id, MIN(seq) AS oldest FROM outbound GROUP BY thread_id"
        )
        return [(str(r["thread_id"]), int(r["oldest"])) for r in rows]

    async def drop_outbound(self, *, seqs: list[int]) -> None:
        self._conn.write_many("DELETE FROM outbound WHERE seq = ?", [(seq,) for seq in seqs])
