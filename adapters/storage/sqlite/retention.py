"""Retention in the SQLite store: idle conversations and old delivery keys, deleted in small
steps between live traffic."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Container
from datetime import UTC, datetime

from adapters.runtime.clock import parse_time
from adapters.storage.sqlite.connection import Connection
from bot.model import HandoffState

# Conversations looked at, and Teams delivery keys deleted, per step.
PURGE_SCAN = 50
SEEN_BATCH = 2_000
OPEN_STATES = (HandoffState.QUEUED.value, HandoffState.JOINED.value)
# A conversation's rows, child tables first.
_PURGED_TABLES = (
    ("turns", "conversation_id"),
    ("activities", "conversation_id"),
    ("inbox", "conversation_id"),
    ("meta", "conversation_id"),
    ("handoffs", "conversation_id"),
    ("conversations", "id"),
)
_NO_CURSOR = ("", "")
_CHUNK = 100  # conversations per DELETE statement


def _before(stamp: object, than: datetime) -> bool:
    """Whether a stored time is before ``than``; one that cannot be read is not."""
    at = parse_time(stamp)
    return at is not None and at < than


class Retention:
    """Resumes each pass where the last step stopped; starts over after a rollback."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # (created_at, id) of the last conversation looked at in this pass
        self._cursor = _NO_CURSOR
        conn.on_rollback.append(self.rolled_back)

    def rolled_back(self) -> None:
        """What a purge step deleted is back: look again."""
        self._cursor = _NO_CURSOR

    def purge(self, before: datetime, keep: Container[str]) -> tuple[list[str], bool]:
        """One step of retention. Of the next ``PURGE_SCAN`` conversations created before
        ``before`` (oldest first, resuming where the last step stopped), delete those idle
        since (no activity or transcript line since either), with no open handoff and not in
        ``keep``, with everything of theirs. Returns the deleted conversations, and whether
        this pass has looked at all of them."""
        rows = self._conn.rows(
            "SELECT id, created_at FROM conversations WHERE created_at < ?"
            " AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?",
            before.astimezone(UTC).isoformat(),
            *self._cursor,
            PURGE_SCAN,
        )
        done = len(rows) < PURGE_SCAN
        self._cursor = _NO_CURSOR if done else (rows[-1]["created_at"], rows[-1]["id"])
        purged = [r["id"] for r in rows if r["id"] not in keep and self._idle(r, before)]
        for start in range(0, len(purged), _CHUNK):
            chunk = purged[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for table, column in _PURGED_TABLES:
                self._conn.write(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
        return purged, done

    def forget_deliveries(self, before: datetime) -> bool:
        """One step: delete inbound delivery keys (``remember``) older than ``before``, oldest
        first (rowids grow with time). Returns whether none older is left."""
        oldest = self._conn.rows("SELECT rowid, at FROM seen ORDER BY rowid LIMIT ?", SEEN_BATCH)
        expired = list(itertools.takewhile(lambda r: _before(r["at"], before), oldest))
        if expired:
            self._conn.write("DELETE FROM seen WHERE rowid <= ?", (expired[-1]["rowid"],))
        return len(expired) < SEEN_BATCH

    def _idle(self, row: sqlite3.Row, before: datetime) -> bool:
        """Whether nothing happened in the conversation since ``before``; unreadable creation
        times are kept, unreadable later times do not count."""
        cid = row["id"]
        if not _before(row["created_at"], before):
            return False
        one = self._conn.one
        if one(
            "SELECT 1 FROM handoffs WHERE conversation_id = ? AND state IN (?, ?) LIMIT 1",
            cid,
            *OPEN_STATES,
        ):
            return False
        turn = one("SELECT MAX(at) AS at FROM turns WHERE conversation_id = ?", cid)
        last = one(
            "SELECT CASE WHEN json_valid(body) THEN json_extract(body, '$.timestamp') END AS at"
            " FROM activities WHERE conversation_id = ? ORDER BY seq DESC LIMIT 1",
            cid,
        )
        return not any(
            r is not None and (at := parse_time(r["at"])) is not None and at >= before
            for r in (turn, last)
        )
