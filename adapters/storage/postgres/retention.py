"""Retention in the PostgreSQL store: idle conversations and old delivery keys, deleted in
small steps between live traffic, as in the SQLite store."""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime

from adapters.runtime import jsonio
from adapters.runtime.clock import parse_time
from adapters.storage.postgres.connection import Database, Session
from bot.errors import StoreError
from bot.model import HandoffState

# Conversations looked at, and Teams delivery keys deleted, per step.
PURGE_SCAN = 50
SEEN_BATCH = 2_000
OPEN_STATES = [HandoffState.QUEUED.value, HandoffState.JOINED.value]

_OLDEST = (
    "SELECT id, created_at FROM conversations WHERE created_at < $1"
    " ORDER BY created_at, id LIMIT $2"
)
_OLDEST_AFTER = (
    "SELECT id, created_at FROM conversations WHERE created_at < $1"
    " AND (created_at, id) > ($3, $4) ORDER BY created_at, id LIMIT $2"
)
# Appends wait on a conversation's counter row: locked, no activity lands while it is judged.
_LOCK_LOGS = "SELECT 1 FROM activity_counters WHERE conversation_id = ANY($1::text[]) FOR UPDATE"
_OPEN = (
    "SELECT DISTINCT conversation_id FROM handoffs"
    " WHERE conversation_id = ANY($1::text[]) AND state = ANY($2::text[])"
)
_LAST_TURNS = (
    "SELECT conversation_id, MAX(at) AS at FROM turns"
    " WHERE conversation_id = ANY($1::text[]) GROUP BY conversation_id"
)
_LAST_ACTIVITIES = (
    "SELECT a.conversation_id, a.body FROM activity_counters c JOIN activities a"
    " ON a.conversation_id = c.conversation_id AND a.seq = c.last_seq"
    " WHERE c.conversation_id = ANY($1::text[])"
)
# A conversation's rows, all in one statement.
_DELETE = """
WITH turns AS (DELETE FROM turns WHERE conversation_id = ANY($1::text[])),
activities AS (DELETE FROM activities WHERE conversation_id = ANY($1::text[])),
counters AS (DELETE FROM activity_counters WHERE conversation_id = ANY($1::text[])),
inbox AS (DELETE FROM inbox WHERE conversation_id = ANY($1::text[])),
meta AS (DELETE FROM meta WHERE conversation_id = ANY($1::text[])),
handoffs AS (DELETE FROM handoffs WHERE conversation_id = ANY($1::text[]))
DELETE FROM conversations WHERE id = ANY($1::text[])
"""
_FORGET = (
    "DELETE FROM seen WHERE key IN"
    " (SELECT key FROM seen WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)"
)
# Send times older than the longest Teams window tell the next leader nothing.
_FORGET_SENT = (
    "DELETE FROM sent WHERE ctid IN (SELECT ctid FROM sent"
    " WHERE at < now() - interval '1 hour' LIMIT $1 FOR UPDATE SKIP LOCKED)"
)


def _timestamp(body: str) -> datetime | None:
    """An activity's own time, if it has a readable one with its zone."""
    try:
        activity = jsonio.loads(body)
    except ValueError:
        return None
    return parse_time(activity.get("timestamp")) if isinstance(activity, dict) else None


class Retention:
    """Resumes each pass where the last step stopped; starts over after a failed step."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # (created_at, id) of the last conversation looked at in this pass
        self._cursor: tuple[datetime, str] | None = None

    async def purge(self, before: datetime, keep: Container[str]) -> tuple[list[str], bool]:
        """One step, as ``SqliteStore``'s: of the next ``PURGE_SCAN`` conversations created
        before ``before`` (oldest first), delete those idle since, with no open handoff and
        not in ``keep``, with everything of theirs. Judged and deleted in one transaction."""
        if self._cursor is None:
            rows = await self._db.rows(_OLDEST, before, PURGE_SCAN)
        else:
            rows = await self._db.rows(_OLDEST_AFTER, before, PURGE_SCAN, *self._cursor)
        done = len(rows) < PURGE_SCAN
        self._cursor = None if done else (rows[-1]["created_at"], rows[-1]["id"])
        candidates = [str(r["id"]) for r in rows if r["id"] not in keep]
        if not candidates:
            return [], done

        async def delete_idle(tx: Session) -> list[str]:
            await tx.rows(_LOCK_LOGS, candidates)
            busy = {r["conversation_id"] for r in await tx.rows(_OPEN, candidates, OPEN_STATES)}
            # The latest of each one's transcript and of its log's last activity.
            latest = {r["conversation_id"]: r["at"] for r in await tx.rows(_LAST_TURNS, candidates)}
            for r in await tx.rows(_LAST_ACTIVITIES, candidates):
                at = _timestamp(r["body"])
                if at is not None:
                    latest[r["conversation_id"]] = max(latest.get(r["conversation_id"], at), at)
            idle = [
                cid
                for cid in candidates
                if cid not in busy and (cid not in latest or latest[cid] < before)
            ]
            if idle:
                await tx.write(_DELETE, idle)
            return idle

        try:
            return await self._db.transaction(delete_idle), done
        except StoreError:
            self._cursor = None  # nothing of this step was deleted: look again from the start
            raise

    async def forget_deliveries(self, before: datetime) -> bool:
        """One step: delete up to ``SEEN_BATCH`` delivery keys remembered before ``before``,
        oldest first. Returns whether none older is left."""
        sent = await self._db.write(_FORGET_SENT, SEEN_BATCH)
        return await self._db.write(_FORGET, before, SEEN_BATCH) < SEEN_BATCH and sent < SEEN_BATCH
