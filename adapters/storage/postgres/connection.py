"""The PostgreSQL store's connection pool: every write commits before it returns, database
errors become ``StoreError``, and the store recovers by itself when the server is back.

Acknowledged means committed, with nothing pending: each write is one transaction (one
statement where it can be, so one round trip) that has committed when the call returns, or
raised ``StoreError`` and kept nothing. There is no group commit as in SQLite (whose commit
costs about ten times a write, on this process's own file): here the server commits, other
instances read what this one committed at once, and a transaction held open across writes
would hold locks across awaits. So ``flush()`` has nothing to wait for.

Connection loss: the pool reconnects on the next acquire (asyncpg replaces a connection it
saw closed). One that died unseen (a network cut) fails a statement: then every pooled
connection is expired, so the next call connects afresh; a read is tried once more on a fresh
one (a write is not: it may have committed). While writes fail, a probe writes every few
hundred milliseconds until one commits, then the store says so (``on_recovered``), whether or
not anyone else writes meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from adapters.runtime.retry import backoff
from adapters.storage.postgres import prefetch, schema
from adapters.storage.postgres.pool import Pool
from bot.errors import StoreError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds to open a connection
COMMAND_TIMEOUT = 15.0  # seconds a statement (or waiting for a pooled connection) may take
# Connections per store, opened when needed: none is kept open for its own sake (a floor
# would reconnect during an outage; the probe below watches instead).
POOL_MAX = 10
PROBE_FIRST, PROBE_MAX = 0.25, 2.0  # seconds between probes while writes fail, doubling
CLOSE_TIMEOUT = 10.0  # seconds close() waits for connections in use before cutting them

# Failures of a statement, not of the connection: the connection stays.
_STATEMENT_CLASSES = ("22", "23", "42")  # data exceptions, constraint violations, syntax
# What a database or its connection can raise. InternalClientError: a connection left mid-way
# by an operation that was cut short (its server gone, say), found when next used.
FAULTS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
_T = TypeVar("_T")


def redacted(url: str) -> str:
    """The URL as logs may show it: no password, no query (which may hold one)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unreadable URL)"
    user = f"{parts.username}@" if parts.username else ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _reason(exc: BaseException, url: str = "") -> str:
    """What went wrong, on one line (never with the password of ``url``, should the driver
    quote the URL back)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, TimeoutError):
        text = f"timed out{': ' + text if text else ''}"
    password = _password(url)
    if password:
        text = text.replace(password, "***")
    return text or type(exc).__name__


def _password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def _connection_lost(exc: BaseException) -> bool:
    """Whether the connection (rather than one statement) failed."""
    sqlstate = getattr(exc, "sqlstate", None)
    return not (isinstance(sqlstate, str) and sqlstate[:2] in _STATEMENT_CLASSES)


def _text(value: Any) -> Any:
    """PostgreSQL's text cannot hold U+0000, which JSON and SQLite can: it becomes U+FFFD, as
    lone surrogates do at the edge (JSON text columns are unaffected: JSON escapes it)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


def _args(args: Sequence[Any]) -> list[Any]:
    return [_text(a) for a in args]


def _changed(status: str) -> int:
    """Rows a statement changed, from its status (``UPDATE 1``, ``INSERT 0 1``)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Released connections are not reset: the store never changes session state, and the
    default reset costs a round trip on every call."""


Work = Callable[[asyncpg.Connection], Awaitable[_T]]


def _settle(waiter: asyncio.Future[None], failure: BaseException | None = None) -> None:
    """Tell a grouped write's caller how it went (unless it stopped waiting)."""
    if waiter.done():
        return
    if failure is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(failure)


class _Group:
    """Writes of one statement waiting for the batch under way to commit (``write_grouped``)."""

    __slots__ = ("sending", "waiting")

    def __init__(self) -> None:
        self.sending = False
        self.waiting: list[tuple[list[Any], asyncio.Future[None]]] = []


class Session:
    """One connection inside a transaction (``Database.transaction``)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._connection.fetch(sql, *_args(args))
        return rows

    async def write(self, sql: str, *args: Any) -> int:
        return _changed(await self._connection.execute(sql, *_args(args)))


class Database:
    """A pool of connections to one database, and what the store promises about its writes."""

    def __init__(self, pool: Pool, where: str, url: str = "") -> None:
        self._pool = pool
        self.where = where
        self._url = url  # for connections of its own, outside the pool (the listener's)
        self.failed_commits = 0  # since the store opened: what memory mirrors check against
        self.failing: StoreError | None = None  # the last write failed, and none worked since
        # Called once a write commits again after failures (workers waiting out a backoff).
        self.on_recovered: list[Callable[[], None]] = []
        self._probe: asyncio.Task[None] | None = None
        self._closed = False
        self._side_pools: dict[str, asyncpg.Pool] = {}
        self._opening = asyncio.Lock()
        self._groups: dict[str, _Group] = {}  # statement -> its grouped writes
        self._sending: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        max_size: int = POOL_MAX,
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> Database:
        """Connect, create or migrate the tables, and check a write commits."""
        where = redacted(url)
        cannot = f"cannot open the PostgreSQL store at {where}"
        if not where.startswith(("postgresql://", "postgres://")):
            raise StoreError(f"{cannot}: not a readable postgresql:// URL")

        async def connect() -> asyncpg.Connection:
            connection: asyncpg.Connection = await asyncpg.connect(
                url, timeout=connect_timeout, command_timeout=command_timeout
            )
            return connection

        pool = Pool(connect, max_size)
        db = cls(pool, where, url)
        try:
            async with pool.acquired(command_timeout) as connection:
                version = await schema.prepare(connection)
                # A store that opens but cannot be written (read-only, no space) is found now,
                # not by the first visitor.
                await connection.execute(schema.MARK_OPENED)
        except Exception as exc:
            await db.close()
            raise StoreError(f"{cannot}: {_reason(exc, url)}") from exc
        log.info("PostgreSQL store at %s (schema version %d)", where, version)
        return db

    async def connect(self, application_name: str) -> asyncpg.Connection:
        """A connection of its own, outside the pool (asyncpg's errors as they come)."""
        connection: asyncpg.Connection = await asyncpg.connect(
            self._url,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            server_settings={"application_name": application_name},
        )
        return connection

    async def side_pool(self, name: str, max_size: int) -> asyncpg.Pool:
        """A pool of its own (``name``: shown in pg_stat_activity), opened on first use and
        closed with the store: for connections held while the store's pool does the work."""
        async with self._opening:
            pool = self._side_pools.get(name)
            if pool is None:
                if self._closed:
                    raise StoreError("the store is closed")
                pool = self._side_pools[name] = await asyncpg.create_pool(
                    self._url,
                    min_size=0,
                    max_size=max_size,
                    timeout=CONNECT_TIMEOUT,
                    command_timeout=COMMAND_TIMEOUT,
                    reset=_keep_session,
                    server_settings={"application_name": name},
                )
            return pool

    async def close(self) -> None:
        self._closed = True
        for side in self._side_pools.values():
            try:
                await asyncio.wait_for(side.close(), CLOSE_TIMEOUT)
            except (*FAULTS, asyncio.CancelledError):
                side.terminate()
        if self._sending:  # grouped writes on their way finish first
            await asyncio.wait(self._sending, timeout=CLOSE_TIMEOUT)
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        try:
            await self._pool.close(CLOSE_TIMEOUT)
        except (*FAULTS, asyncio.CancelledError):
            self._pool.terminate()

    # Reads
    async def rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._call(
            "read", lambda c: c.fetch(sql, *_args(args)), write=False
        )
        return rows

    async def one(self, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._call(
            "read", lambda c: c.fetchrow(sql, *_args(args)), write=False
        )
        return row

    # Writes: each committed when it returns
    async def write(self, sql: str, *args: Any) -> int:
        """One statement, committed; returns how many rows it changed."""
        prefetch.writing()
        status: str = await self._call("write", lambda c: c.execute(sql, *_args(args)))
        return _changed(status)

    async def write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for each of ``rows``, in order, in one round trip and one transaction:
        committed when this returns, or none of them."""
        prefetch.writing()
        values = [_args(row) for row in rows]
        if values:
            await self._call("write", lambda c: c.executemany(sql, values))

    async def write_grouped(self, sql: str, *args: Any) -> None:
        """One statement, committed when this returns, as ``write`` is; but while one of the
        same statement is on its way, the next ones gather and go together, in one round
        trip and one transaction (asyncpg's ``executemany``): group commit, so concurrent
        conversations' bookkeeping costs the database and this process about one statement
        whatever their number. Alone, it is one statement, sent at once.

        If the batch fails on one row's account, each of its writes is tried alone, so only
        that one raises."""
        prefetch.writing()
        values = _args(args)
        group = self._groups.get(sql)
        if group is None:
            group = self._groups[sql] = _Group()
        if group.sending:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            group.waiting.append((values, waiter))
            await waiter
            return
        group.sending = True
        try:
            await self._execute(sql, values)
        finally:
            if group.waiting:
                task = asyncio.create_task(self._send_group(sql, group), name="pg-grouped")
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            else:
                group.sending = False

    async def _send_group(self, sql: str, group: _Group) -> None:
        try:
            while group.waiting:
                batch, group.waiting = group.waiting, []
                await self._send_batch(sql, batch)
        finally:
            group.sending = False

    async def _send_batch(
        self, sql: str, batch: list[tuple[list[Any], asyncio.Future[None]]]
    ) -> None:
        try:
            if len(batch) == 1:
                await self._execute(sql, batch[0][0])
            else:
                await self._call("write", lambda c: c.executemany(sql, [v for v, _ in batch]))
        except StoreError as exc:
            if len(batch) == 1 or self.failing is not None:  # the database, not a row
                for _, waiter in batch:
                    _settle(waiter, exc)
                return
            for values, waiter in batch:  # one row's fault: each alone
                try:
                    await self._execute(sql, values)
                except StoreError as alone:
                    _settle(waiter, alone)
                else:
                    _settle(waiter)
            return
        for _, waiter in batch:
            _settle(waiter)

    async def _execute(self, sql: str, values: list[Any]) -> None:
        await self._call("write", lambda c: c.execute(sql, *values))

    async def write_one(
        self, sql: str, *args: Any, again_on: type[Exception] | None = None
    ) -> asyncpg.Record | None:
        """One statement with ``RETURNING``, committed; returns its first row. ``again_on``: an
        error that rolls the statement back and is worth running it once more (a unique index
        broken by another instance's commit, which the next statement's snapshot sees)."""
        prefetch.writing()
        values = _args(args)

        async def fetch(connection: asyncpg.Connection) -> asyncpg.Record | None:
            while True:
                try:
                    return await connection.fetchrow(sql, *values)
                except Exception as exc:
                    if again_on is None or not isinstance(exc, again_on):
                        raise

        row: asyncpg.Record | None = await self._call("write", fetch)
        return row

    async def transaction(self, work: Callable[[Session], Awaitable[_T]]) -> _T:
        """``work`` in one transaction, committed when this returns."""
        prefetch.writing()

        async def atomically(connection: asyncpg.Connection) -> _T:
            async with connection.transaction():
                return await work(Session(connection))

        return await self._call("write", atomically)

    async def _call(self, what: str, work: Work[_T], *, write: bool = True) -> _T:
        for attempt in (1, 2):
            try:
                connection = await self._pool.acquire(COMMAND_TIMEOUT)
                try:
                    result = await work(connection)
                finally:
                    self._pool.release(connection)
            except FAULTS as exc:
                lost = _connection_lost(exc)
                if lost:
                    # What else the pool holds may be as dead: the next calls connect afresh.
                    self._pool.expire()
                    if not write and attempt == 1:
                        continue  # a read is tried once more, on a fresh connection
                failure = StoreError(f"the PostgreSQL store could not {what}: {_reason(exc)}")
                if write:
                    self._not_kept(failure, lost)
                raise failure from exc
            if write and self.failing is not None:
                self._recovered()
            return result
        raise AssertionError("unreachable")

    def _not_kept(self, failure: StoreError, lost: bool) -> None:
        """A write was not kept. Only its own: others committed before it stay committed. When
        the database (not the statement) failed, the store is failing until a probe commits."""
        self.failed_commits += 1
        if not lost:
            return
        if self.failing is None:
            log.error("%s; writes fail until the database answers again", failure)
        self.failing = failure
        if not self._closed and (self._probe is None or self._probe.done()):
            self._probe = asyncio.create_task(self._probe_until_recovered(), name="pg-probe")

    def _recovered(self) -> None:
        self.failing = None
        log.warning("PostgreSQL store: writes commit again")
        for recovered in self.on_recovered:
            recovered()

    async def _probe_write(self) -> None:
        """A small write that tells whether commits work (a read would not: a server gone
        read-only answers reads)."""
        try:
            async with self._pool.acquired(COMMAND_TIMEOUT) as connection:
                await connection.execute(schema.MARK_PROBED)
        except FAULTS as exc:
            if _connection_lost(exc):
                self._pool.expire()
            self.failing = StoreError(f"the PostgreSQL store could not write: {_reason(exc)}")
            raise self.failing from exc
        if self.failing is not None:
            self._recovered()

    async def _probe_until_recovered(self) -> None:
        attempt = 0
        while self.failing is not None and not self._closed:
            attempt += 1
            await asyncio.sleep(backoff(attempt, PROBE_FIRST, PROBE_MAX))
            with contextlib.suppress(StoreError):
                await self._probe_write()

    async def health(self) -> str | None:
        """None when the store works, else why not (while writes fail, a probe write)."""
        try:
            if self.failing is None:
                await self.one("SELECT 1")
            else:
                await self._probe_write()
        except StoreError as exc:
            return str(exc)
        return None
