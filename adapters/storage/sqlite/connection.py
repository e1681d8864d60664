"""The SQLite store's connection: group commit, flush, rollback, the health probe, the lock.

Calls run on the event loop: with WAL and ``synchronous=NORMAL`` a commit is a write into the
OS page cache, cheaper than a thread hop, and durable across a process crash (a power loss may
lose the last commits, which is the trade WAL+NORMAL documents).

Group commit: the writes made during one turn of the event loop share one transaction, which
commits at the start of the next turn, or, under load, at most once per ``COMMIT_INTERVAL``.
A commit costs about ten times a write (every page it touched is written to the log), and
under load many conversations write meanwhile. ``flush()`` waits for that commit: whatever is
about to leave the process as a promise (an HTTP acknowledgement, a frame on a visitor's
socket) flushes first, so nothing is promised that a crash could take back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from adapters.storage.sqlite import checkpoints, schema
from bot.errors import StoreError

log = logging.getLogger(__name__)

# At most one commit per this many seconds: alone, a write commits at the next loop turn;
# under load, the writes of up to a millisecond share one commit (pages written once).
COMMIT_INTERVAL = 0.001
_TXNS_KEPT = 64  # a task's committed transactions are forgotten past this


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


def _directory_for(path: str | Path) -> None:
    try:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise StoreError(
            f"cannot open the SQLite store at {path}: {exc.filename} is not a directory"
        ) from exc
    except OSError as exc:
        raise StoreError(f"cannot open the SQLite store at {path}: {exc.strerror or exc}") from exc


class Connection:
    """One SQLite file, owned by this process, written in group-committed transactions."""

    def __init__(self, path: str | Path) -> None:
        _directory_for(path)
        self._commit_handle: asyncio.Handle | None = None
        self._waiters: list[asyncio.Future[None]] = []  # for the open transaction to end
        self._txn = 0  # transactions begun
        self._open_txn = _Txn(0)  # the current (or, between transactions, the last) one
        self._open_txn.over = True
        self._committed_at = float("-inf")  # loop time of the last commit
        self._commit_loop: asyncio.AbstractEventLoop | None = None
        self.failed_commits = 0  # since the store opened: what memory mirrors check against
        self.failing: StoreError | None = None  # the last commit failed, and none worked since
        # Called once a commit works again after failures (workers waiting out a backoff).
        self.on_recovered: list[Callable[[], None]] = []
        # Called when a transaction is rolled back: what memory holds of it must go too.
        self.on_rollback: list[Callable[[], None]] = []
        in_memory = str(path) == ":memory:"
        self._lock = None if in_memory else _own(Path(path))
        try:
            self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(f"PRAGMA wal_autocheckpoint={checkpoints.BACKSTOP_PAGES}")
            schema.prepare(self.db)
            # A store that opens but cannot be written (read-only, full) is found now, not by
            # the first visitor.
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('store.opened', ?)",
                (datetime.now(UTC).isoformat(),),
            )
            self.checkpointer = None if in_memory else checkpoints.Checkpointer(str(path))
        except sqlite3.Error as exc:
            if self._lock is not None:
                self._lock.close()
            raise StoreError(f"cannot open the SQLite store at {path}: {exc}") from exc

    async def close(self) -> None:
        if self._commit_handle is not None:
            self._commit_handle.cancel()
        self._commit()
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.close)
        self.db.close()
        if self._lock is not None:
            self._lock.close()  # and with it the lock

    def one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        try:
            row: sqlite3.Row | None = self.db.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise self._failure(exc, "read") from exc
        return row

    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        try:
            rows: list[sqlite3.Row] = self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._failure(exc, "read") from exc
        return rows

    def _begin(self) -> None:
        """Open this turn's transaction if need be, and schedule its commit."""
        if self._commit_handle is not None and self._commit_loop is not _running_loop():
            self._commit_handle.cancel()  # scheduled on a loop that is gone (tools, tests)
            self._commit()
        if not self.db.in_transaction:
            try:
                self.db.execute("BEGIN")
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

    def write(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        """A write in this turn's transaction. A constraint refusal (``IntegrityError``) fails
        only the statement; any other error loses the whole transaction (``StoreError``)."""
        self._begin()
        try:
            return self.db.execute(sql, args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise self._failure(exc, "write") from exc

    def write_one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.write(sql, args).fetchone()
        return row

    def write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._begin()
        try:
            self.db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._failure(exc, "write") from exc

    def _failure(self, exc: sqlite3.Error, what: str) -> StoreError:
        """A statement failed. Outside a transaction that is all; inside one, SQLite may have
        rolled back part or all of it (a full disk, an I/O error): the whole transaction is
        given up now, so that what it held is neither committed later nor promised."""
        if self.db.in_transaction or not self._open_txn.over:
            return self._lose(f"the SQLite store could not {what}: {exc}")
        return StoreError(f"the SQLite store could not {what}: {exc}")

    def _commit(self) -> None:
        self._commit_handle = None
        with contextlib.suppress(RuntimeError):  # no loop: close() after the loop ended
            self._committed_at = asyncio.get_running_loop().time()
        if self.db.in_transaction:
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._lose(f"the SQLite store could not commit: {exc}")
                return
            self._open_txn.over = True
            if self.checkpointer is not None:
                self.checkpointer.committed()
                if self.checkpointer.restart_wanted:
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
        for forget in self.on_rollback:
            forget()
        self._open_txn.over = True
        self._open_txn.failure = failure
        self.failed_commits += 1
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
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
        assert self.checkpointer is not None
        self.checkpointer.restart_wanted = False
        try:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            pass  # busy (the thread began another pass) or failing: the next restart retries

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
                self.one("SELECT 1 FROM meta LIMIT 1")
                return None
            self.write(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('store.probe', ?)", (self._txn,)
            )
            await self.flush()
        except StoreError as exc:
            return str(exc)
        return None
