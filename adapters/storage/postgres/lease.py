"""The leader among instances sharing the database (``adapters.runtime.leadership``): a session
advisory lock, a heartbeat, and a lease each side measures on its own clock.

- **Election.** Each instance keeps a connection of its own and tries the lock every
  ``POLL`` seconds. The one that gets it leads: it writes the ``leases`` row (its backend pid,
  the next epoch) and starts its duties.
- **Crash.** The server ends a dead process's session (its socket closes) and with it the lock:
  the next try by another instance, within ``POLL``, gets it. A leader whose session the server
  ends (a restart, a standby cutting it off) stops leading the moment it hears of it; but it
  may not hear (cut off, paused), so a new leader whose predecessor did not let go waits until
  the predecessor's lease from its last beat has run out (by the server's clock, which stamped
  the beat: at most ``LEASE``) before it starts.
- **Heartbeat and lease.** The leader beats every ``BEAT`` seconds on its connection. It leads
  for ``LEASE`` seconds from the moment it *sent* its last beat that was answered: past that, by
  its own monotonic clock, ``leading`` is false and it sends and handles nothing more; a beat
  that fails (the connection or the server gone) makes it step down at once.
- **Hang or partition.** A leader that is paused (``SIGSTOP``, a stalled host) or cut off keeps
  its session, so its lock, until the server notices. A standby that, looking every ``POLL``
  seconds without a break (a standby that was itself paused starts watching over), sees the
  same holder and the same beat for ``TAKEOVER`` seconds on its own clock ends the holder's
  session (``pg_terminate_backend``) and takes the lock.
  ``TAKEOVER`` > ``LEASE``: the old leader's lease ran out, by its own clock, before anyone
  takes over, so when it wakes it finds itself no longer leading (the fence). What it had
  begun sending in the instant before it froze may still arrive: at most one post per thread,
  which the new leader sends again (at least once).
- **Graceful stop.** Cancelled, the leader stops its duties (beating meanwhile, so what is under
  way finishes under a valid lease), marks the lease released, unlocks and closes: a standby's
  next try, within ``POLL``, takes over at once.

The clock is ``CLOCK_BOOTTIME``, which also counts while the machine is suspended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from adapters.runtime.failures import FAILURES
from adapters.runtime.leadership import Duties
from adapters.runtime.retry import backoff
from adapters.storage.postgres.connection import FAULTS
from adapters.storage.postgres.schema import LOCK_LEADER

log = logging.getLogger(__name__)

APPLICATION_NAME = "handoff-leader"  # shown in pg_stat_activity
NAME = "leader"  # the lease's row
POLL = 0.1  # seconds between a standby's tries for the lock
BEAT = 0.25  # seconds between the leader's heartbeats
LEASE = 1.2  # seconds the leader leads after sending a beat that was answered
TAKEOVER = 5.0  # seconds a standby waits on a silent holder before cutting it off
CLOCK_MARGIN = 0.05  # seconds: clocks that run at slightly different rates
RECONNECT_FIRST, RECONNECT_MAX = 0.2, 2.0


_ELECTED = """
INSERT INTO leases AS l (name, holder, pid, epoch, beat)
VALUES ($1, $2, pg_backend_pid(), 1, now())
ON CONFLICT (name) DO UPDATE
    SET holder = excluded.holder, pid = excluded.pid, epoch = l.epoch + 1, beat = now(),
        released = false
RETURNING epoch
"""
_PREVIOUS = (
    "SELECT released, extract(epoch FROM now() - beat)::float8 AS age FROM leases WHERE name = $1"
)
_RELEASED = "UPDATE leases SET released = true WHERE name = $1 AND epoch = $2"
_BEAT = "UPDATE leases SET beat = now() WHERE name = $1 AND epoch = $2 AND pid = pg_backend_pid()"
# Who holds the lock now (its backend), and the lease row's last beat.
_HOLDER = """
SELECT k.pid, l.pid AS lease_pid, l.holder, l.beat FROM pg_locks k
LEFT JOIN leases l ON l.name = $3
WHERE k.locktype = 'advisory' AND k.classid = $1::bigint::oid AND k.objid = $2::bigint::oid
    AND k.objsubid = 2 AND k.granted
"""

Connect = Callable[[], Awaitable[asyncpg.Connection]]


def _boot_clock() -> float:
    """Seconds that also count while the machine is suspended (a monotonic clock may not)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class Lost(Exception):
    """The lease was lost (the reason is the message)."""


class Lease:
    """``adapters.runtime.leadership.Leadership`` on PostgreSQL."""

    def __init__(
        self,
        connect: Connect,
        where: str,
        holder: str,
        *,
        poll: float = POLL,
        beat: float = BEAT,
        lease: float = LEASE,
        takeover: float = TAKEOVER,
        clock: Callable[[], float] = _boot_clock,
    ) -> None:
        # A standby's looks may be up to takeover / 4 apart (beyond, it watches over).
        if not (beat < lease < takeover and takeover - lease > takeover / 4):
            raise ValueError("beat < lease < takeover, and takeover - lease > takeover / 4")
        self._connect = connect
        self._where = where
        self.holder = holder
        self._poll, self._beat, self._lease, self._takeover = poll, beat, lease, takeover
        self._clock = clock
        self._until = 0.0  # leads while the clock is below this
        self.epoch = 0  # of the last election this process won
        # A standby's view of the holder: (pid, beat) and since when (its own clock).
        self._seen: tuple[object, object] | None = None
        self._seen_since = 0.0
        self._looked = 0.0  # when it last looked

    @property
    def leading(self) -> bool:
        return self._clock() < self._until

    async def campaign(self, duties: Duties) -> None:
        failures = 0
        while True:
            if failures:
                await asyncio.sleep(backoff(failures, RECONNECT_FIRST, RECONNECT_MAX))
            try:
                connection = await self._connect()
            except Exception as exc:  # whatever it was, stand again later: never give up
                failures += 1
                if failures == 1:
                    log.warning(
                        "leader election at %s: cannot connect (%s)", self._where, _why(exc)
                    )
                continue
            failures = 0
            try:
                await self._stand(connection, duties)
            except (*FAULTS, Lost) as exc:
                failures = 1
                log.warning("leader election at %s: %s; standing again", self._where, _why(exc))
            except Exception as exc:  # the duties would not start: stand again, after a while
                failures += 1
                FAILURES.failed(log, exc, "leading failed; standing again")
            finally:
                connection.terminate()

    async def _stand(self, connection: asyncpg.Connection, duties: Duties) -> None:
        """Try for the lock until it is ours, watching the holder meanwhile; then lead."""
        while True:
            if await connection.fetchval("SELECT pg_try_advisory_lock($1, 0)", LOCK_LEADER):
                await self._lead(connection, duties)
                return  # the connection may be in any state: a fresh one stands again
            await self._watch(connection)
            await asyncio.sleep(self._poll)

    async def _lead(self, connection: asyncpg.Connection, duties: Duties) -> None:
        await self._predecessor_gone(connection)
        sent = self._clock()
        self.epoch = await connection.fetchval(_ELECTED, NAME, self.holder, timeout=self._lease)
        self._until = sent + self._lease
        log.info("leading (epoch %d, %s)", self.epoch, self.holder)
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def session_ended(_connection: object) -> None:
            # The lock went with the session: another may lead any moment. Stop at once.
            self._until = 0.0
            if not ended.done():
                ended.set_result(None)

        connection.add_termination_listener(session_ended)
        try:
            await duties.start()
            await self._beat_on(connection, ended)
        except asyncio.CancelledError:
            # Still leading (and beating) while what is under way finishes; then let go.
            beating = asyncio.create_task(self._beat_on(connection, ended))
            try:
                await duties.stop(graceful=True)
            finally:
                beating.cancel()
                await asyncio.gather(beating, return_exceptions=True)
                self._until = 0.0
            with contextlib.suppress(*FAULTS):  # else the server lets go when it closes
                await connection.execute(_RELEASED, NAME, self.epoch)
                await connection.execute("SELECT pg_advisory_unlock($1, 0)", LOCK_LEADER)
            log.info("stepped down (epoch %d): stopping", self.epoch)
            raise
        except BaseException:
            self._until = 0.0
            await duties.stop(graceful=False)
            raise

    async def _predecessor_gone(self, connection: asyncpg.Connection) -> None:
        """The lock is ours; a predecessor that did not let go (it crashed, or the server ended
        its session while it may live on, cut off) leads by its own clock until its lease from
        its last beat runs out: wait for that before starting (by the server's clock, which
        stamped the beat)."""
        row = await connection.fetchrow(_PREVIOUS, NAME, timeout=self._lease)
        if row is None or row["released"]:
            return
        wait = self._lease + CLOCK_MARGIN - float(row["age"])
        if wait > 0:
            log.info(
                "the last leader did not let go: leading in %.2f s, once its lease ran out", wait
            )
            await asyncio.sleep(wait)

    async def _beat_on(self, connection: asyncpg.Connection, ended: asyncio.Future[None]) -> None:
        """Beat every ``beat`` seconds until the lease is lost (raises ``Lost``)."""
        while True:
            await asyncio.wait([ended], timeout=self._beat)
            await self._heartbeat(connection)

    async def _heartbeat(self, connection: asyncpg.Connection) -> None:
        """One beat; ``Lost`` if the session ended, the lease ran out meanwhile, or another
        took it over."""
        if connection.is_closed():
            raise Lost("the session (and with it the lock) ended")
        if not self.leading:
            raise Lost("the lease ran out before a beat was answered (a pause?)")
        sent = self._clock()
        status = await connection.execute(
            _BEAT, NAME, self.epoch, timeout=max(0.0, self._until - sent)
        )
        if status != "UPDATE 1":
            raise Lost("the lease was taken over")
        self._until = sent + self._lease

    async def _watch(self, connection: asyncpg.Connection) -> None:
        """A standby's look at the holder: one silent for ``takeover`` seconds is cut off."""
        row = await connection.fetchrow(_HOLDER, LOCK_LEADER, 0, NAME)
        now = self._clock()
        if row is None:
            self._seen = None  # nobody holds it: the next try takes it
            return
        seen = (row["pid"], row["beat"] if row["lease_pid"] == row["pid"] else None)
        gap, self._looked = now - self._looked, now
        if seen != self._seen or gap > self._takeover / 4:
            # A change, or the first look in a while (this process may have been the one
            # paused, the holder beating all along): watching starts over.
            self._seen, self._seen_since = seen, now
            return
        if now - self._seen_since < self._takeover:
            return
        log.warning(
            "the leader (%s, backend %s) has been silent for %.1f s: cutting it off",
            row["holder"] if row["lease_pid"] == row["pid"] else "not yet named",
            row["pid"],
            now - self._seen_since,
        )
        await connection.fetchval("SELECT pg_terminate_backend($1)", row["pid"])
        self._seen = None


def _why(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
