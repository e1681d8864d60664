"""PostgreSQL store, for several instances sharing one database.

Composed of the connection (pool, errors, recovery, health), the schema and its migrations,
the row encoding and retention. Nothing is cached: another instance may have written since.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Container, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from adapters.runtime import jsonio
from adapters.storage.contract import Claim
from adapters.storage.postgres import encoding, feed, lease, locks, prefetch, schema
from adapters.storage.postgres import statements as sql
from adapters.storage.postgres.connection import Database
from adapters.storage.postgres.lease import Lease
from adapters.storage.postgres.locks import SharedLocks
from adapters.storage.postgres.retention import OPEN_STATES, Retention
from adapters.storage.records import SaveStatements
from bot.errors import StaleWriteError, StoreError
from bot.model import Conversation, Handoff, HandoffState, Role, Turn

_Record = TypeVar("_Record", Conversation, Handoff)


class PostgresStore:
    """The storage contract (``adapters.storage.contract.Store``) on PostgreSQL.

    Every write has committed when it returns, so ``flush()`` returns at once: there is never
    anything pending, and a write that was not kept raised ``StoreError`` itself. It is also
    an ``ActivityFeed``: appends by any instance on the database are notified."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Signs this store's notifications: what it appended itself, its process knows.
        self._origin = secrets.token_hex(8)
        self._listener = feed.Listener(
            lambda: db.connect(feed.APPLICATION_NAME), db.where, self._origin
        )
        self._retention = Retention(db)
        self._locks: SharedLocks | None = None  # the conversation locks, once asked for
        self.on_recovered: list[Callable[[], None]] = db.on_recovered

    @classmethod
    async def open(cls, url: str, **pool: Any) -> PostgresStore:
        """Connect to ``url`` (``postgresql://``), creating or migrating the tables."""
        return cls(await Database.open(url, **pool))

    @property
    def where(self) -> str:
        """The database, as logs may show it (no password)."""
        return self._db.where

    @property
    def failing(self) -> StoreError | None:
        return self._db.failing

    @property
    def failed_commits(self) -> int:
        return self._db.failed_commits

    async def close(self) -> None:
        await self._listener.unfollow()
        if self._locks is not None:
            await self._locks.close()
        await self._db.close()

    # ActivityFeed
    def follow(
        self,
        *,
        on_append: Callable[[str, int], None],
        on_resync: Callable[[], None],
        on_queued: Callable[[str], None] | None = None,
    ) -> None:
        """See ``contract.ActivityFeed`` and ``feed``."""
        self._listener.follow(on_append=on_append, on_resync=on_resync, on_queued=on_queued)

    def conversation_locks(self) -> SharedLocks:
        """See ``contract.SharedStore.conversation_locks`` and ``locks``."""
        if self._locks is None:
            self._locks = SharedLocks(
                lambda: self._db.side_pool(locks.APPLICATION_NAME, locks.POOL_MAX)
            )
        return self._locks

    def leadership(self, holder: str) -> Lease:
        """See ``contract.SharedStore.leadership`` and ``lease``."""
        return Lease(lambda: self._db.connect(lease.APPLICATION_NAME), self._db.where, holder)

    async def unfollow(self) -> None:
        await self._listener.unfollow()

    async def flush(self, *, reads: bool = True) -> None:
        """Every write committed (or raised) before it returned: nothing is pending."""

    async def health(self) -> str | None:
        return await self._db.health()

    async def _save(
        self, table: SaveStatements, record: _Record, values: tuple[Any, ...]
    ) -> _Record:
        """Compare-and-set: insert at version 0, else update only the stored version."""
        if record.version == 0:
            if not await self._db.write(table.insert, *values, record.id):
                raise StaleWriteError(f"{table.kind} {record.id} exists")
        elif not await self._db.write(table.update, *values, record.id, record.version):
            raise StaleWriteError(f"{table.kind} {record.id} changed")
        return replace(record, version=record.version + 1)

    # HandoffStore
    async def get_conversation(self, *, conversation_id: str) -> Conversation | None:
        read = prefetch.current(conversation_id)
        if read is not None:
            row = read.conversation
        else:
            row = await self._db.one("SELECT * FROM conversations WHERE id = $1", conversation_id)
        return encoding.conversation(row) if row else None

    async def save_conversation(self, *, conversation: Conversation) -> Conversation:
        values = encoding.conversation_values(conversation)
        return await self._save(sql.CONVERSATIONS, conversation, values)

    async def add_turn(self, *, turn: Turn) -> None:
        await self._db.write_grouped(sql.ADD_TURN, *encoding.turn_values(turn))

    async def add_turns(self, *, turns: Sequence[Turn]) -> None:
        await self._db.write_many(sql.ADD_TURN, [encoding.turn_values(turn) for turn in turns])

    async def turns(self, *, conversation_id: str) -> list[Turn]:
        rows = await self._db.rows(
            "SELECT * FROM turns WHERE conversation_id = $1 ORDER BY n", conversation_id
        )
        return [encoding.turn(r) for r in rows]

    async def _handoff(self, sql: str, *args: Any) -> Handoff | None:
        row = await self._db.one(sql, *args)
        return encoding.handoff(row) if row else None

    async def _handoffs(self, sql: str, *args: Any) -> list[Handoff]:
        return [encoding.handoff(row) for row in await self._db.rows(sql, *args)]

    async def get_handoff(self, *, handoff_id: str) -> Handoff | None:
        read = prefetch.PREFETCHED.get()
        if read is not None and read.fresh and read.handoff is not None:
            if read.handoff["id"] == handoff_id:  # the open one, as read under its lock
                return encoding.handoff(read.handoff)
        return await self._handoff("SELECT * FROM handoffs WHERE id = $1", handoff_id)

    async def open_handoff(self, *, conversation_id: str) -> Handoff | None:
        read = prefetch.current(conversation_id)
        if read is not None:
            return encoding.handoff(read.handoff) if read.handoff is not None else None
        return await self._handoff(
            "SELECT * FROM handoffs WHERE conversation_id = $1 AND state = ANY($2::text[]) LIMIT 1",
            conversation_id,
            OPEN_STATES,
        )

    async def conversation_and_open_handoff(
        self, *, conversation_id: str
    ) -> tuple[Conversation | None, Handoff | None]:
        read = prefetch.current(conversation_id)
        if read is not None:
            conversation, handoff = read.conversation, read.handoff
        else:
            row = await self._db.one(sql.CONVERSATION_AND_OPEN_HANDOFF, conversation_id)
            conversation, handoff = (row["conversation"], row["handoff"]) if row else (None, None)
        if conversation is None:
            return None, None
        return (
            encoding.conversation(conversation),
            encoding.handoff(handoff) if handoff is not None else None,
        )

    async def open_thread(self, *, conversation_id: str) -> str | None:
        row = await self._db.one(sql.OPEN_THREAD, conversation_id)
        return None if row is None else str(row["thread_id"] or "")

    async def handoff_for_thread(self, *, thread_id: str) -> Handoff | None:
        return await self._handoff(
            "SELECT * FROM handoffs WHERE thread_id = $1 AND thread_id <> '' LIMIT 1", thread_id
        )

    async def open_handoffs(self) -> list[Handoff]:
        return await self._handoffs(
            f"SELECT * FROM handoffs WHERE state IN ({sql.OPEN_IN}) ORDER BY created_at, id"
        )

    async def last_human_turn_at(self, *, conversation_id: str) -> datetime | None:
        row = await self._db.one(
            "SELECT MAX(at) AS at FROM turns WHERE conversation_id = $1 AND role IN ($2, $3)",
            conversation_id,
            Role.VISITOR.value,
            Role.SPECIALIST.value,
        )
        at: datetime | None = row["at"] if row else None
        return at

    async def save_handoff(self, *, handoff: Handoff) -> Handoff:
        return await self._save(sql.HANDOFFS, handoff, encoding.handoff_values(handoff))

    async def unopened_handoffs(self) -> list[Handoff]:
        return await self._handoffs(
            "SELECT * FROM handoffs WHERE state = $1 AND thread_id = '' ORDER BY created_at, id",
            HandoffState.QUEUED.value,
        )

    async def handoffs_since(self, *, conversation_id: str, since: datetime) -> int:
        row = await self._db.one(
            "SELECT COUNT(*) AS n FROM handoffs WHERE conversation_id = $1 AND created_at >= $2",
            conversation_id,
            since,
        )
        return int(row["n"]) if row else 0

    async def handoffs_created(self, *, since: datetime, until: datetime) -> list[Handoff]:
        return await self._handoffs(
            "SELECT * FROM handoffs WHERE created_at >= $1 AND created_at < $2"
            " ORDER BY created_at, id",
            since,
            until,
        )

    async def seen(self, *, key: str) -> bool:
        sql = "SELECT 1 FROM seen WHERE key = $1 AND done"  # not one being handled now
        return await self._db.one(sql, key) is not None

    async def remember(self, *, key: str, now: datetime) -> None:
        await self._db.write_grouped(
            "INSERT INTO seen AS s (key, at) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET done = true, at = excluded.at WHERE NOT s.done",
            key,
            now,
        )

    # SharedStore
    async def claim(self, *, key: str, now: datetime, lease: timedelta) -> Claim:
        """See ``contract.SharedStore.claim``."""
        while True:
            if await self._db.write_one(sql.CLAIM, key, now, lease) is not None:
                return "mine"
            row = await self._db.one("SELECT done FROM seen WHERE key = $1", key)
            if row is not None:  # else forgotten meanwhile (retention): claim again
                return "done" if row["done"] else "taken"

    async def release(self, *, key: str) -> None:
        await self._db.write("DELETE FROM seen WHERE key = $1 AND NOT done", key)

    async def append_once(
        self, *, conversation_id: str, activity: dict[str, Any], key: str
    ) -> tuple[int, bool]:
        """See ``contract.SharedStore.append_once``."""
        row = await self._db.write_one(
            sql.APPEND_ONCE,
            conversation_id,
            jsonio.dumps(activity),
            key,
            self._origin,
            again_on=asyncpg.UniqueViolationError,
        )
        assert row is not None
        return int(row["seq"]), bool(row["new"])

    # Retention
    async def purge(
        self, *, before: datetime, keep: Container[str] = frozenset()
    ) -> tuple[list[str], bool]:
        """See ``retention.Retention.purge``."""
        return await self._retention.purge(before, keep)

    async def forget_deliveries(self, *, before: datetime) -> bool:
        """See ``retention.Retention.forget_deliveries``."""
        return await self._retention.forget_deliveries(before)

    # ActivityLog
    async def append_activity(
        self, *, conversation_id: str, activity: dict[str, Any], key: str = ""
    ) -> int:
        row = await self._db.write_one(
            sql.APPEND, conversation_id, jsonio.dumps(activity), key or None, self._origin
        )
        assert row is not None
        return int(row["seq"])

    async def recent_keys(self, *, conversation_id: str, limit: int) -> list[tuple[int, str]]:
        rows = await self._db.rows(
            "SELECT seq, key FROM activities WHERE conversation_id = $1 AND key IS NOT NULL"
            " ORDER BY seq DESC LIMIT $2",
            conversation_id,
            limit,
        )
        return [(int(r["seq"]), str(r["key"])) for r in reversed(rows)]

    async def keyed_activity(self, *, conversation_id: str, key: str) -> int | None:
        row = await self._db.one(
            "SELECT seq FROM activities WHERE conversation_id = $1 AND key = $2"
            " ORDER BY seq LIMIT 1",
            conversation_id,
            key,
        )
        return int(row["seq"]) if row else None

    async def activities_after(
        self, *, conversation_id: str, watermark: int, limit: int = 500
    ) -> list[tuple[int, dict[str, Any]]]:
        rows = await self._db.rows(
            "SELECT seq, body FROM activities WHERE conversation_id = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            conversation_id,
            watermark,
            limit,
        )
        return [(int(r["seq"]), jsonio.loads(r["body"])) for r in rows]

    async def last_watermark(self, *, conversation_id: str) -> int:
        row = await self._db.one(
            "SELECT last_seq FROM activity_counters WHERE conversation_id = $1", conversation_id
        )
        return int(row["last_seq"]) if row else 0

    async def inbox_position(self, *, conversation_id: str) -> int:
        row = await self._db.one(
            "SELECT processed FROM inbox WHERE conversation_id = $1", conversation_id
        )
        return int(row["processed"]) if row else 0

    async def set_inbox_position(self, *, conversation_id: str, seq: int) -> None:
        await self._db.write_grouped(
            "INSERT INTO inbox AS i (conversation_id, processed) VALUES ($1, $2)"
            " ON CONFLICT (conversation_id)"
            " DO UPDATE SET processed = GREATEST(i.processed, excluded.processed)",
            conversation_id,
            seq,
        )

    async def inbox_backlog(self) -> list[tuple[str, int]]:
        rows = await self._db.rows(
            "SELECT c.conversation_id, c.last_seq FROM activity_counters c LEFT JOIN inbox i"
            " USING (conversation_id) WHERE c.last_seq > COALESCE(i.processed, 0)"
        )
        return [(str(r["conversation_id"]), int(r["last_seq"])) for r in rows]

    # MetaStore
    async def get_meta(self, *, key: str) -> str | None:
        row = await self._db.one("SELECT value FROM meta WHERE key = $1", key)
        return str(row["value"]) if row else None

    async def set_meta(self, *, key: str, value: str, conversation_id: str = "") -> None:
        await self._db.write(
            f"{sql.KEEP_META} ON CONFLICT (key) DO UPDATE"
            " SET value = excluded.value, conversation_id = excluded.conversation_id",
            key,
            value,
            conversation_id or None,
        )

    async def set_meta_once(self, *, key: str, value: str, conversation_id: str = "") -> str:
        # Two statements: one that waited for another instance's insert of the key would not
        # see that row in its own snapshot.
        while True:
            row = await self._db.write_one(
                f"{sql.KEEP_META} ON CONFLICT (key) DO NOTHING RETURNING value",
                key,
                value,
                conversation_id or None,
            )
            if row is not None:
                return str(row["value"])
            kept = await self.get_meta(key=key)
            if kept is not None:  # else deleted meanwhile (retention): try again
                return kept

    # OutboundStore
    async def enqueue_outbound(self, *, thread_id: str, item: dict[str, Any]) -> int:
        row = await self._db.write_one(
            sql.ENQUEUE, thread_id, jsonio.dumps(item), schema.LOCK_OUTBOX_THREAD, self._origin
        )
        assert row is not None
        return int(row["seq"])

    async def outbound(
        self, *, thread_id: str, limit: int = 50
    ) -> list[tuple[int, dict[str, Any]]]:
        rows = await self._db.rows(
            "SELECT seq, item FROM outbound WHERE thread_id = $1 ORDER BY seq LIMIT $2",
            thread_id,
            limit,
        )
        return [(int(r["seq"]), jsonio.loads(r["item"])) for r in rows]

    async def outbound_threads(self) -> list[tuple[str, int]]:
        rows = await self._db.rows(
            "SELECT thread_id, min(seq) AS oldest FROM outbound GROUP BY thread_id"
        )
        return [(str(r["thread_id"]), int(r["oldest"])) for r in rows]

    async def drop_outbound(self, *, seqs: list[int]) -> None:
        """Also notes when (see ``recent_sends``): rows are dropped once sent (or refused).
        Alone, not group-committed: grouped, the failover suite saw up to 22 posts sent twice
        around a database restart and a leader's pause (not yet understood; see issue 14)."""
        await self._db.write(sql.DROP, seqs)

    async def recent_sends(self, *, thread_id: str = "", within: float) -> list[float]:
        """See ``contract.SharedStore.recent_sends``."""
        rows = await self._db.rows(
            "SELECT extract(epoch FROM now() - at)::float8 AS age FROM sent"
            " WHERE ($1 = '' OR thread_id = $1) AND at > now() - make_interval(secs => $2)"
            " ORDER BY at",
            thread_id,
            within,
        )
        return [max(0.0, float(r["age"])) for r in rows]
