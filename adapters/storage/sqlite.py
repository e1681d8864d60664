"""SQLite store, the default: one file, WAL, survives a process kill.

Calls run on the event loop: with WAL and ``synchronous=NORMAL`` a commit is a write into the
OS page cache, cheaper than a thread hop, and durable across a process crash (a power loss may
lose the last commits, which is the trade WAL+NORMAL documents).

Group commit: the writes made during one turn of the event loop share one transaction, which
commits at the start of the next turn, or, under load, at most once per ``COMMIT_INTERVAL``.
A commit costs about ten times a write (every page it touched is written to the log), and
under load many conversations write meanwhile. ``flush()`` waits for that commit: whatever is
about to leave the process as a promise (an HTTP acknowledgement, a frame on a visitor's
socket) flushes first, so nothing is promised that a crash could take back.

Conversations and handoffs are also kept in memory, written through: this store is the file's
only writer (one process owns it), so what it last wrote is what the file holds, and every
relayed message would otherwise read and decode both again. A failed commit empties the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import itertools
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from adapters.directline.meta_keys import CONVERSATION_META
from adapters.runtime import jsonio
from adapters.runtime.clock import parse_time
from bot.errors import StaleWriteError, StoreError
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, version INTEGER NOT NULL, created_at TEXT NOT NULL,
    fallbacks INTEGER NOT NULL, visitor TEXT NOT NULL, context TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS conversations_by_creation ON conversations (created_at, id);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL, at TEXT NOT NULL, role TEXT NOT NULL, author TEXT NOT NULL,
    text TEXT NOT NULL, fallback INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (conversation_id);
CREATE TABLE IF NOT EXISTS handoffs (
    id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, state TEXT NOT NULL,
    thread_id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS handoffs_by_conversation ON handoffs (conversation_id, state);
CREATE INDEX IF NOT EXISTS handoffs_by_thread ON handoffs (thread_id);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS activities (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, key TEXT,
    PRIMARY KEY (conversation_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (conversation_id TEXT PRIMARY KEY, processed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbound (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT NULL, item TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbound_by_thread ON outbound (thread_id, seq);
"""

log = logging.getLogger(__name__)



class _Txn:
    """One transaction: its number, and once it is over, whether it was lost."""

    __slots__ = ("failure", "number", "over")

    def __init__(self, number: int) -> None:
        self.number = number
        self.over = False
        self.failure: StoreError | None = None


class _Written:
    """The transactions a task wrote into since its last flush, so its flush can tell whether
    any of them was lost, and whether it must wait for the pending one. Each transaction is
    known by its own object: nothing is looked up by number in a table that could forget it,
    and another task's failed transaction between two of this task's is none of its business.

    Kept in a context variable, which child tasks (and, through aiohttp, later connections)
    inherit: it counts only for the task and store that made it."""

    __slots__ = ("store", "task", "txns")

    def __init__(self, store: int, task: object, txn: _Txn) -> None:
        self.store = store
        self.task = task
        self.txns = [txn]


_WRITTEN: contextvars.ContextVar[_Written | None] = contextvars.ContextVar(
    "sqlite_written", default=None
)
_TXNS_KEPT = 64  # a task's committed transactions are forgotten past this
# Checkpoints (copying the log back into the database file, with two fsyncs) run on a thread of
# their own, on a connection of their own, at most every CHECKPOINT_INTERVAL seconds while there
# are commits: on the event loop they took about a tenth of its time under load. The log starts
# over from its beginning only once it is wholly copied while no one writes, which a checkpoint
# beside the writes never sees: so once the log holds RESTART_PAGES pages, the loop's connection
# checkpoints right after the thread did (copying the few pages written meanwhile), and the next
# write starts the log over. SQLite's own checkpoints on the loop, at BACKSTOP_PAGES, bound the
# log should the thread fall behind or fail.
# Measured here (relay bench, 256 handoffs): visitor -> Teams +7%, Teams -> visitor +12%.
CHECKPOINT_INTERVAL = 0.05
RESTART_PAGES = 16_000  # 64 MB of log; the restart stalls the loop a few ms, about once a second
TAIL_PAGES = 100  # the thread checkpoints again at once until no more than this is left
BACKSTOP_PAGES = 2 * RESTART_PAGES
# At most one commit per this many seconds: alone, a write commits at the next loop turn;
# under load, the writes of up to a millisecond share one commit (pages written once).
COMMIT_INTERVAL = 0.001
_CACHED = 20_000  # conversations (and handoffs) kept in memory; the cache restarts past it

_OPEN_STATES = (HandoffState.QUEUED.value, HandoffState.JOINED.value)
# Retention works in small steps between live traffic: conversations looked at, and Teams
# delivery keys deleted, per ``purge`` call.
PURGE_SCAN = 50
SEEN_BATCH = 2_000
# A conversation's rows, child tables first.
_PURGED_TABLES = (
    ("turns", "conversation_id"),
    ("activities", "conversation_id"),
    ("inbox", "conversation_id"),
    ("handoffs", "conversation_id"),
    ("conversations", "id"),
)
_NO_CURSOR = ("", "")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _before(stamp: object, than: datetime) -> bool:
    """Whether a stored time is before ``than``; one that cannot be read is not."""
    at = parse_time(stamp)
    return at is not None and at < than


def _visitor_json(visitor: Visitor) -> str:
    return json.dumps(visitor.fields())


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


def _handoff_json(handoff: Handoff) -> str:
    who = handoff.specialist
    return json.dumps(
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


def _handoff(row: sqlite3.Row) -> Handoff:
    data = json.loads(row["data"])
    created = _time(data["created_at"])
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


def _put(cache: dict[str, Any], key: str, value: Any) -> None:
    """Keep ``value``; a cache that reached ``_CACHED`` entries starts over (cheap, bounded)."""
    if len(cache) >= _CACHED and key not in cache:
        cache.clear()
    cache[key] = value


_MAX_PASSES = 4  # back to back, towards a restart, should writes outpace the copying


class _Checkpointer:
    """Copies the write-ahead log into the database file on a thread (SQLite runs without the
    GIL), never blocking writers (a passive checkpoint), at most every
    ``CHECKPOINT_INTERVAL`` seconds and only after commits."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Set by the thread when the log is long and mostly copied, cleared by the loop.
        self.restart_wanted = False
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Called on the loop after each commit: an attribute read, mostly."""
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        last = 0  # pages in the log at the previous checkpoint
        passes = 0  # back to back, towards a restart
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            done = self._checkpoint()
            if done is not None:
                pages, copied = done
                fresh = pages - last if pages >= last else pages  # fewer: the log started over
                last = pages
                if pages >= RESTART_PAGES and copied == pages:
                    if fresh <= TAIL_PAGES or passes >= _MAX_PASSES:
                        self.restart_wanted = True  # the loop copies the tail written since
                        passes = 0
                    else:
                        passes += 1  # again at once: each pass has less to copy
                        self._wake.set()
                        continue
            if self._stop.wait(CHECKPOINT_INTERVAL):
                return

    def _checkpoint(self) -> tuple[int, int] | None:
        """(pages in the log, pages copied from it), or None if it failed."""
        try:
            _busy, pages, copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            if not self._failing:  # once per spell: the loop's own checkpoints bound the log
                log.warning("SQLite checkpoint failed; retrying after the next commit: %s", exc)
            self._failing = True
            return None
        if self._failing:
            log.info("SQLite checkpoints work again")
        self._failing = False
        return int(pages), int(copied)

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first) and close its connection."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._db.close()


def _own(path: Path) -> IO[bytes]:
    """Take the file for this process alone (a lock beside it, held while it is open): the
    store keeps what it wrote in memory, so a second process on the same file would serve
    stale data and undo the first's writes. SQLite on one machine is one process; several
    instances share PostgreSQL."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        lock = lock_path.open("ab")
    except OSError as exc:
        raise StoreError(
            f"cannot open the SQLite store at {path}: {lock_path}: {exc.strerror or exc}"
        ) from exc
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.close()
        raise StoreError(
            f"cannot open the SQLite store at {path}: another process is using it"
            " (one process per SQLite file; run several instances on PostgreSQL)"
        ) from exc
    return lock


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SqliteStore:
    """Implements ``HandoffStore`` and the Direct Line ``ActivityLog`` on one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:
            raise StoreError(
                f"cannot open the SQLite store at {path}: {exc.filename} is not a directory"
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"cannot open the SQLite store at {path}: {exc.strerror or exc}"
            ) from exc
        self._commit_handle: asyncio.Handle | None = None
        self._waiters: list[asyncio.Future[None]] = []  # for the open transaction to end
        self._txn = 0  # transactions begun
        self._open_txn = _Txn(0)  # the current (or, between transactions, the last) one
        self._open_txn.over = True
        self._committed_at = float("-inf")  # loop time of the last commit
        self._commit_loop: asyncio.AbstractEventLoop | None = None
        # conversation -> highest activity seq handed out: a rolled-back one is never reused
        self._last_seq: dict[str, int] = {}
        self.failed_commits = 0  # since the store opened: what memory mirrors check against
        self.failing: StoreError | None = None  # the last commit failed, and none worked since
        # Called once a commit works again after failures (workers waiting out a backoff).
        self.on_recovered: list[Callable[[], None]] = []
        self._conversations: dict[str, Conversation] = {}
        self._handoffs: dict[str, Handoff] = {}
        self._open_by_conversation: dict[str, str | None] = {}  # -> open handoff id, or none
        self._by_thread: dict[str, str] = {}  # thread id -> handoff id
        # (created_at, id) of the last conversation retention looked at in this pass
        self._purge_cursor = _NO_CURSOR
        self._lock = None if str(path) == ":memory:" else _own(self.path)
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            self._db.executescript(SCHEMA)
            self._migrate()
            # A store that opens but cannot be written (read-only, full) is found now, not by
            # the first visitor.
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('store.opened', ?)",
                (datetime.now(UTC).isoformat(),),
            )
            self._checkpointer = None if str(path) == ":memory:" else _Checkpointer(str(path))
        except sqlite3.Error as exc:
            if self._lock is not None:
                self._lock.close()
            raise StoreError(f"cannot open the SQLite store at {path}: {exc}") from exc

    def _migrate(self) -> None:
        """Bring a file written by an older version up to date (additive changes only)."""
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(conversations)")}
        if "context" not in columns:
            self._db.execute(
                "ALTER TABLE conversations ADD COLUMN context TEXT NOT NULL DEFAULT '{}'"
            )
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(activities)")}
        if "key" not in columns:
            self._db.execute("ALTER TABLE activities ADD COLUMN key TEXT")

    async def close(self) -> None:
        if self._commit_handle is not None:
            self._commit_handle.cancel()
        self._commit()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.close)
        self._db.close()
        if self._lock is not None:
            self._lock.close()  # and with it the lock

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        try:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise self._failure(exc, "read") from exc
        return row

    def _rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        try:
            rows: list[sqlite3.Row] = self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._failure(exc, "read") from exc
        return rows

    def _begin(self) -> None:
        """Open this turn's transaction if need be, and schedule its commit."""
        if self._commit_handle is not None and self._commit_loop is not _running_loop():
            self._commit_handle.cancel()  # scheduled on a loop that is gone (tools, tests)
            self._commit()
        if not self._db.in_transaction:
            try:
                self._db.execute("BEGIN")
            except sqlite3.Error as exc:
                raise self._failure(exc, "write") from exc
            self._txn += 1
            self._open_txn = _Txn(self._txn)
        if self._commit_handle is None:
            loop = asyncio.get_running_loop()
            wait = self._committed_at + COMMIT_INTERVAL - loop.time()
            self._commit_handle = (
                loop.call_later(wait, self._commit) if wait > 0 else loop.call_soon(self._commit)
            )
            self._commit_loop = loop
        txn = self._open_txn
        written = _WRITTEN.get()
        task = asyncio.current_task()
        if written is None or written.store != id(self) or written.task is not task:
            _WRITTEN.set(_Written(id(self), task, txn))
        elif written.txns[-1] is not txn:
            txns = written.txns
            txns.append(txn)
            if len(txns) > _TXNS_KEPT:  # a long task that never flushes: keep what matters
                txns[:] = [t for t in txns if not t.over or t.failure is not None]

    def _write(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        """A write in this turn's transaction. A constraint refusal (``IntegrityError``) fails
        only the statement; any other error loses the whole transaction (``StoreError``)."""
        self._begin()
        try:
            return self._db.execute(sql, args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise self._failure(exc, "write") from exc

    def _write_one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._write(sql, args).fetchone()
        return row

    def _write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._begin()
        try:
            self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._failure(exc, "write") from exc

    def _failure(self, exc: sqlite3.Error, what: str) -> StoreError:
        """A statement failed. Outside a transaction that is all; inside one, SQLite may have
        rolled back part or all of it (a full disk, an I/O error): the whole transaction is
        given up now, so that what it held is neither committed later nor promised."""
        if self._db.in_transaction or not self._open_txn.over:
            return self._lose(f"the SQLite store could not {what}: {exc}")
        return StoreError(f"the SQLite store could not {what}: {exc}")

    def _commit(self) -> None:
        self._commit_handle = None
        with contextlib.suppress(RuntimeError):  # no loop: close() after the loop ended
            self._committed_at = asyncio.get_running_loop().time()
        if self._db.in_transaction:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._lose(f"the SQLite store could not commit: {exc}")
                return
            self._open_txn.over = True
            if self._checkpointer is not None:
                self._checkpointer.committed()
                if self._checkpointer.restart_wanted:
                    self._restart_log()
            if self.failing is not None:
                self.failing = None
                log.warning("SQLite store: commits work again")
                for recovered in self.on_recovered:
                    recovered()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _lose(self, reason: str) -> StoreError:
        """Roll back the open transaction and fail everyone waiting for it: their writes (and
        whatever they read of it) are gone. One log line; the next write starts afresh."""
        failure = self.failing = StoreError(reason)
        log.error("%s; the writes of transaction %d are rolled back", reason, self._txn)
        self._forget()
        self._purge_cursor = _NO_CURSOR  # what a purge step deleted is back: look again
        self._open_txn.over = True
        self._open_txn.failure = failure
        self.failed_commits += 1
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite already rolled back
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(StoreError(reason))
        return StoreError(reason)

    def _restart_log(self) -> None:
        """Copy what the checkpoint thread has not (it has just run), so the next write starts
        the log over. Errors are the thread's to report: the commit itself succeeded."""
        assert self._checkpointer is not None
        self._checkpointer.restart_wanted = False
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            pass  # busy (the thread began another pass) or failing: the next restart retries

    def _forget(self) -> None:
        self._conversations.clear()
        self._handoffs.clear()
        self._open_by_conversation.clear()
        self._by_thread.clear()

    def _remember_conversation(self, conversation: Conversation) -> None:
        _put(self._conversations, conversation.id, conversation)

    def _remember_handoff(self, handoff: Handoff) -> None:
        if len(self._handoffs) >= _CACHED:
            self._handoffs.clear()
            self._open_by_conversation.clear()
            self._by_thread.clear()
        self._handoffs[handoff.id] = handoff
        if handoff.thread_id:
            self._by_thread[handoff.thread_id] = handoff.id
        if handoff.state.is_open:
            self._open_by_conversation[handoff.conversation_id] = handoff.id
        elif self._open_by_conversation.get(handoff.conversation_id) == handoff.id:
            self._open_by_conversation[handoff.conversation_id] = None

    async def flush(self, *, reads: bool = True) -> None:
        """Return once this task's writes so far are committed; raise ``StoreError`` if any
        of them was rolled back (even by a commit that failed before this call).

        ``reads``: also wait for (and fail with) the pending transaction when this task wrote
        nothing to it, since what it read may come from it. An HTTP answer that only promises
        its own writes passes False: another request's failed commit is not its failure."""
        written = _WRITTEN.get()
        mine: list[_Txn] = []
        if (
            written is not None
            and written.store == id(self)
            and written.task is asyncio.current_task()
        ):
            _WRITTEN.set(None)
            mine = written.txns
        for txn in mine:
            if txn.failure is not None:
                raise StoreError(str(txn.failure))
        pending = self._open_txn
        if pending.over or self._commit_handle is None:
            return
        if not reads and all(txn is not pending for txn in mine):
            return  # nothing of ours is pending
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    async def health(self) -> str | None:
        """None when the store works, else why not. While commits fail, a small write tells
        whether they work again (nothing else may be writing, when the disk was freed)."""
        try:
            if self.failing is None:
                self._one("SELECT 1 FROM meta LIMIT 1")
                return None
            self._write(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('store.probe', ?)", (self._txn,)
            )
            await self.flush()
        except StoreError as exc:
            return str(exc)
        return None

    # HandoffStore
    async def get_conversation(self, *, conversation_id: str) -> Conversation | None:
        cached = self._conversations.get(conversation_id)
        if cached is not None:
            return cached
        row = self._one("SELECT * FROM conversations WHERE id = ?", conversation_id)
        if row is None:
            return None
        created = _time(row["created_at"])
        assert created is not None
        conversation = Conversation(
            id=row["id"],
            visitor=_visitor(row["visitor"]),
            created_at=created,
            fallbacks_in_row=row["fallbacks"],
            context=MappingProxyType(json.loads(row["context"])),
            version=row["version"],
        )
        self._remember_conversation(conversation)
        return conversation

    async def save_conversation(self, *, conversation: Conversation) -> Conversation:
        c = conversation
        values = (
            c.created_at.isoformat(),
            c.fallbacks_in_row,
            _visitor_json(c.visitor),
            json.dumps(dict(c.context), default=str),
        )
        if c.version == 0:
            try:
                self._write(
                    "INSERT INTO conversations (id, version, created_at, fallbacks, visitor,"
                    " context) VALUES (?, 1, ?, ?, ?, ?)",
                    (c.id, *values),
                )
            except sqlite3.IntegrityError as exc:
                raise StaleWriteError(f"conversation {c.id} exists") from exc
        else:
            cursor = self._write(
                "UPDATE conversations SET version = version + 1, fallbacks = ?,"
                " visitor = ?, context = ? WHERE id = ? AND version = ?",
                (*values[1:], c.id, c.version),
            )
            if cursor.rowcount != 1:
                raise StaleWriteError(f"conversation {c.id} changed")
        saved = replace(c, version=c.version + 1)
        self._remember_conversation(saved)
        return saved

    async def add_turn(self, *, turn: Turn) -> None:
        self._write(
            "INSERT INTO turns (conversation_id, at, role, author, text, fallback)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                turn.conversation_id,
                # UTC, so that MAX(at) over the text orders by time whatever offset came in.
                turn.at.astimezone(UTC).isoformat(),
                turn.role.value,
                turn.author,
                turn.text,
                int(turn.fallback),
            ),
        )

    async def turns(self, *, conversation_id: str) -> list[Turn]:
        rows = self._rows(
            "SELECT * FROM turns WHERE conversation_id = ? ORDER BY rowid", conversation_id
        )
        return [
            Turn(
                r["conversation_id"],
                datetime.fromisoformat(r["at"]),
                Role(r["role"]),
                r["author"],
                r["text"],
                bool(r["fallback"]),
            )
            for r in rows
        ]

    def _read_handoff(self, sql: str, *args: Any) -> Handoff | None:
        row = self._one(sql, *args)
        if row is None:
            return None
        handoff = _handoff(row)
        self._remember_handoff(handoff)
        return handoff

    async def get_handoff(self, *, handoff_id: str) -> Handoff | None:
        cached = self._handoffs.get(handoff_id)
        if cached is not None:
            return cached
        return self._read_handoff("SELECT * FROM handoffs WHERE id = ?", handoff_id)

    async def open_handoff(self, *, conversation_id: str) -> Handoff | None:
        if conversation_id in self._open_by_conversation:
            known = self._open_by_conversation[conversation_id]
            if known is None:
                return None
            cached = self._handoffs.get(known)
            if cached is not None:
                return cached
        handoff = self._read_handoff(
            "SELECT * FROM handoffs WHERE conversation_id = ? AND state IN (?, ?)",
            conversation_id,
            *_OPEN_STATES,
        )
        if handoff is None:
            _put(self._open_by_conversation, conversation_id, None)
        return handoff

    async def handoff_for_thread(self, *, thread_id: str) -> Handoff | None:
        known = self._by_thread.get(thread_id)
        if known is not None and known in self._handoffs:
            return self._handoffs[known]
        return self._read_handoff(
            "SELECT * FROM handoffs WHERE thread_id = ? AND thread_id != ''", thread_id
        )

    async def open_handoffs(self) -> list[Handoff]:
        rows = self._rows("SELECT * FROM handoffs WHERE state IN (?, ?)", *_OPEN_STATES)
        return [_handoff(row) for row in rows]

    async def last_human_turn_at(self, *, conversation_id: str) -> datetime | None:
        row = self._one(
            "SELECT MAX(at) AS at FROM turns WHERE conversation_id = ? AND role IN (?, ?)",
            conversation_id,
            Role.VISITOR.value,
            Role.SPECIALIST.value,
        )
        return _time(row["at"]) if row and row["at"] else None

    async def save_handoff(self, *, handoff: Handoff) -> Handoff:
        h = handoff
        values = (h.conversation_id, h.state.value, h.thread_id, _handoff_json(h))
        if h.version == 0:
            try:
                self._write(
                    "INSERT INTO handoffs (conversation_id, state, thread_id, data, id, version)"
                    " VALUES (?, ?, ?, ?, ?, 1)",
                    (*values, h.id),
                )
            except sqlite3.IntegrityError as exc:
                raise StaleWriteError(f"handoff {h.id} exists") from exc
        else:
            cursor = self._write(
                "UPDATE handoffs SET conversation_id = ?, state = ?, thread_id = ?, data = ?,"
                " version = version + 1 WHERE id = ? AND version = ?",
                (*values, h.id, h.version),
            )
            if cursor.rowcount != 1:
                raise StaleWriteError(f"handoff {h.id} changed")
        saved = replace(h, version=h.version + 1)
        self._remember_handoff(saved)
        return saved

    async def unopened_handoffs(self) -> list[Handoff]:
        rows = self._rows(
            "SELECT * FROM handoffs WHERE state = ? AND thread_id = ''", HandoffState.QUEUED.value
        )
        return [_handoff(row) for row in rows]

    async def handoffs_since(self, *, conversation_id: str, since: datetime) -> int:
        # A conversation has a handful of handoffs: their times are read from the rows.
        rows = self._rows("SELECT data FROM handoffs WHERE conversation_id = ?", conversation_id)
        times = (parse_time(json.loads(r["data"]).get("created_at")) for r in rows)
        return sum(1 for at in times if at is not None and at >= since)

    async def seen(self, *, key: str) -> bool:
        return self._one("SELECT 1 FROM seen WHERE key = ?", key) is not None

    async def remember(self, *, key: str, now: datetime) -> None:
        self._write("INSERT OR IGNORE INTO seen (key, at) VALUES (?, ?)", (key, now.isoformat()))

    async def purge(
        self, *, before: datetime, keep: Container[str] = frozenset()
    ) -> tuple[list[str], bool]:
        """One step of retention. Of the next ``PURGE_SCAN`` conversations created before
        ``before`` (oldest first, resuming where the last step stopped), delete those idle
        since (no activity or transcript line since either), with no open handoff and not in
        ``keep``, with everything of theirs. Returns the deleted conversations, and whether
        this pass has looked at all of them."""
        rows = self._rows(
            "SELECT id, created_at FROM conversations WHERE created_at < ?"
            " AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?",
            before.astimezone(UTC).isoformat(),
            *self._purge_cursor,
            PURGE_SCAN,
        )
        done = len(rows) < PURGE_SCAN
        self._purge_cursor = _NO_CURSOR if done else (rows[-1]["created_at"], rows[-1]["id"])
        purged = [r["id"] for r in rows if r["id"] not in keep and self._idle(r, before)]
        for start in range(0, len(purged), 100):
            chunk = purged[start : start + 100]
            marks = ",".join("?" * len(chunk))
            for table, column in _PURGED_TABLES:
                self._write(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
        for cid in purged:
            for prefix in CONVERSATION_META:
                self._write(
                    "DELETE FROM meta WHERE key = ? OR (key >= ? AND key < ?)",
                    (f"{prefix}:{cid}", f"{prefix}:{cid}:", f"{prefix}:{cid};"),
                )
        if purged:
            self._evict(set(purged))
        return purged, done

    async def forget_deliveries(self, *, before: datetime) -> bool:
        """One step: delete inbound delivery keys (``remember``) older than ``before``, oldest
        first (rowids grow with time). Returns whether none older is left."""
        oldest = self._rows("SELECT rowid, at FROM seen ORDER BY rowid LIMIT ?", SEEN_BATCH)
        expired = list(itertools.takewhile(lambda r: _before(r["at"], before), oldest))
        if expired:
            self._write("DELETE FROM seen WHERE rowid <= ?", (expired[-1]["rowid"],))
        return len(expired) < SEEN_BATCH

    def _idle(self, row: sqlite3.Row, before: datetime) -> bool:
        """Whether nothing happened in the conversation since ``before``; unreadable creation
        times are kept, unreadable later times do not count."""
        cid = row["id"]
        if not _before(row["created_at"], before):
            return False
        if self._one(
            "SELECT 1 FROM handoffs WHERE conversation_id = ? AND state IN (?, ?) LIMIT 1",
            cid,
            *_OPEN_STATES,
        ):
            return False
        turn = self._one("SELECT MAX(at) AS at FROM turns WHERE conversation_id = ?", cid)
        last = self._one(
            "SELECT CASE WHEN json_valid(body) THEN json_extract(body, '$.timestamp') END AS at"
            " FROM activities WHERE conversation_id = ? ORDER BY seq DESC LIMIT 1",
            cid,
        )
        return not any(
            r is not None and (at := parse_time(r["at"])) is not None and at >= before
            for r in (turn, last)
        )

    def _evict(self, cids: set[str]) -> None:
        """Drop deleted conversations from the caches (only them: the rest stay warm)."""
        for cid in cids:
            self._conversations.pop(cid, None)
            self._open_by_conversation.pop(cid, None)
            self._last_seq.pop(cid, None)
        for handoff in [h for h in self._handoffs.values() if h.conversation_id in cids]:
            del self._handoffs[handoff.id]
            if self._by_thread.get(handoff.thread_id) == handoff.id:
                del self._by_thread[handoff.thread_id]

    # ActivityLog
    async def append_activity(
        self, *, conversation_id: str, activity: dict[str, Any], key: str = ""
    ) -> int:
        row = self._write_one(
            "INSERT INTO activities (conversation_id, seq, body, key) VALUES (?, MAX(?, "
            "COALESCE((SELECT MAX(seq) FROM activities WHERE conversation_id = ?), 0)) + 1, ?, ?)"
            " RETURNING seq",
            conversation_id,
            self._last_seq.get(conversation_id, 0),
            conversation_id,
            jsonio.dumps(activity),
            key or None,
        )
        assert row is not None
        seq = int(row["seq"])
        _put(self._last_seq, conversation_id, seq)
        return seq

    async def recent_keys(self, *, conversation_id: str, limit: int) -> list[tuple[int, str]]:
        rows = self._rows(
            "SELECT seq, key FROM activities WHERE conversation_id = ? AND key IS NOT NULL"
            " ORDER BY seq DESC LIMIT ?",
            conversation_id,
            limit,
        )
        return [(int(r["seq"]), str(r["key"])) for r in reversed(rows)]

    async def keyed_activity(self, *, conversation_id: str, key: str) -> int | None:
        row = self._one(
            "SELECT seq FROM activities WHERE conversation_id = ? AND key = ? ORDER BY seq LIMIT 1",
            conversation_id,
            key,
        )
        return int(row["seq"]) if row else None

    async def activities_after(
        self, *, conversation_id: str, watermark: int, limit: int = 500
    ) -> list[tuple[int, dict[str, Any]]]:
        rows = self._rows(
            "SELECT seq, body FROM activities WHERE conversation_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            conversation_id,
            watermark,
            limit,
        )
        return [(r["seq"], jsonio.loads(r["body"])) for r in rows]

    async def last_watermark(self, *, conversation_id: str) -> int:
        row = self._one(
            "SELECT COALESCE(MAX(seq), 0) AS seq FROM activities WHERE conversation_id = ?",
            conversation_id,
        )
        return int(row["seq"]) if row else 0

    async def get_meta(self, *, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", key)
        return str(row["value"]) if row else None

    async def inbox_position(self, *, conversation_id: str) -> int:
        row = self._one("SELECT processed FROM inbox WHERE conversation_id = ?", conversation_id)
        return int(row["processed"]) if row else 0

    async def set_inbox_position(self, *, conversation_id: str, seq: int) -> None:
        self._write(
            "INSERT INTO inbox (conversation_id, processed) VALUES (?, ?) ON CONFLICT"
            " (conversation_id) DO UPDATE SET processed = MAX(processed, excluded.processed)",
            (conversation_id, seq),
        )

    async def inbox_backlog(self) -> list[str]:
        rows = self._rows(
            "SELECT a.conversation_id FROM activities a LEFT JOIN inbox i USING (conversation_id)"
            " GROUP BY a.conversation_id HAVING MAX(a.seq) > COALESCE(MAX(i.processed), 0)"
        )
        return [str(r["conversation_id"]) for r in rows]

    async def enqueue_outbound(self, *, thread_id: str, item: dict[str, Any]) -> int:
        cursor = self._write(
            "INSERT INTO outbound (thread_id, item) VALUES (?, ?)", (thread_id, jsonio.dumps(item))
        )
        return int(cursor.lastrowid or 0)

    async def outbound(
        self, *, thread_id: str, limit: int = 50
    ) -> list[tuple[int, dict[str, Any]]]:
        rows = self._rows(
            "SELECT seq, item FROM outbound WHERE thread_id = ? ORDER BY seq LIMIT ?",
            thread_id,
            limit,
        )
        return [(int(r["seq"]), jsonio.loads(r["item"])) for r in rows]

    async def outbound_threads(self) -> list[str]:
        rows = self._rows("SELECT DISTINCT thread_id FROM outbound")
        return [str(r["thread_id"]) for r in rows]

    async def drop_outbound(self, *, seqs: list[int]) -> None:
        self._write_many("DELETE FROM outbound WHERE seq = ?", [(seq,) for seq in seqs])

    async def set_meta(self, *, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    async def set_meta_once(self, *, key: str, value: str) -> str:
        self._write("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
        stored = await self.get_meta(key=key)
        assert stored is not None
        return stored
