"""The inbox: visitor activities are handled after they are stored and acknowledged, one
conversation at a time, in order, at least once; a poison activity is quarantined."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from adapters.directline import meta_keys
from adapters.directline.protocol import RECENT_CONVERSATIONS, Row
from adapters.runtime import jsonio
from adapters.runtime.clock import iso, utc_now
from adapters.runtime.failures import FAILURES, bounded
from adapters.runtime.workers import KeyedWorkers
from adapters.storage.contract import ActivityLog
from bot import logcontext
from bot.errors import StoreError

log = logging.getLogger(__name__)

INBOX_BATCH = 500  # activities read at a time
# Visitor messages in a row handled as one run (a backlog under load): one lock, one read and
# one transcript write for them all (``handle_run``), one position after.
RUN_MAX = 20
# Process crashes while handling one visitor activity before it is quarantined (a handler that
# raises is quarantined at once: what it did before raising cannot be taken back, and doing it
# again would repeat it).
MAX_CRASHES = 3
STOP_GRACE = 5.0  # seconds a graceful stop lets handling under way finish


def _from_visitor(activity: dict[str, Any]) -> bool:
    sender = activity.get("from")
    return isinstance(sender, dict) and sender.get("role") == "user"


def _drop_through(rows: list[Row], position: int) -> int:
    """Drop the rows up to ``position`` (they come in the log's order); returns how many are
    left."""
    while rows and rows[0][0] <= position:
        del rows[0]
    return len(rows)


class Inbox:
    """Visitor activities are handled after they are stored, one conversation at a time, in order.

    The store keeps how far each conversation was handled, so a crash or a failure is resumed
    from there (at least once) instead of losing what the visitor sent. What was appended and
    committed since the last round is also handed over in memory (``appended``), so a round
    usually reads nothing; a gap (a restart, a rolled-back row) sends it to the store. This
    relies on every append going through ``ConversationStreams.append``, which tells the inbox
    before anyone kicks it.
    """

    def __init__(
        self,
        store: ActivityLog,
        handle: Callable[[str, dict[str, Any]], Awaitable[None]],
        quarantined: Callable[[str], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = utc_now,
        fence: Callable[[], bool] = lambda: True,
        active: bool = True,
        handle_run: Callable[[str, list[dict[str, Any]]], Awaitable[None]] | None = None,
        runnable: Callable[[dict[str, Any]], bool] = lambda _activity: False,
    ) -> None:
        self._store = store
        # Visitor activities that may be handled together (``runnable``), and how.
        self._handle_run = handle_run
        self._runnable = runnable
        # Several processes share the store: one of them handles (the leader, while
        # ``fence()`` holds: checked right before each activity is handled).
        self._fence = fence
        self._active = active
        self._handle = handle
        self._quarantined = quarantined  # tells the visitor that a message of theirs failed
        self._clock = clock
        self._workers = KeyedWorkers(self._drain_once, "inbox")
        # conversation -> how far it was handled, as last written: only the inbox writes it
        self._positions: dict[str, int] = {}
        # conversation -> the activities committed since (all of them, in the log's order)
        self._fresh: dict[str, list[Row]] = {}
        # conversation -> the latest row committed anywhere, as told (``committed_elsewhere``)
        self._told: dict[str, int] = {}
        # Conversations with a backlog at start: handled row by row, each attempt recorded
        # before it is made, since what they were handling may be what took the process down.
        self._careful: set[str] = set()
        # conversation -> the latest row heard of while leading: appended here, notified from
        # elsewhere, or read by a resume; and, at the last ``look``, the rows committed that
        # were not (a lost wake-up, if still not heard of at the next).
        self._heard: dict[str, int] = {}
        self._unheard: dict[str, int] = {}
        self._unsure: set[str] = set()  # an append here raised, and may have committed

    def kick(self, cid: str) -> None:
        if self._active:
            self._workers.kick(cid)

    def start(self) -> None:
        """Handle from now on (this process leads): memory starts over, since others handled
        meanwhile; ``resume()`` then finds what waits."""
        self._positions.clear()
        self._fresh.clear()
        self._told.clear()
        self._careful.clear()
        self._heard.clear()
        self._unheard.clear()
        self._unsure.clear()
        self._workers.open()
        self._active = True

    async def stop(self, *, graceful: bool) -> None:
        """Handle no more (another process may lead next). ``graceful``: what is being handled
        is let finish first, for up to ``STOP_GRACE`` seconds."""
        self._active = False
        if graceful:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._workers.drain()), STOP_GRACE)
        await self._workers.close()

    def retry_now(self) -> None:
        """The store works again: conversations waiting to retry go now."""
        self._workers.retry_now()

    def forget(self, cids: Iterable[str]) -> None:
        """Retention deleted these conversations (each handled to its end, since idle)."""
        for cid in cids:
            self._positions.pop(cid, None)
            self._fresh.pop(cid, None)
            self._told.pop(cid, None)

    def appended(self, cid: str, seq: int, activity: dict[str, Any]) -> None:
        """An activity of the conversation's log was committed (called in the log's order)."""
        if not self._active:
            return
        self._hear(cid, seq)
        fresh = self._fresh.get(cid)
        if fresh is None:
            if len(self._fresh) >= RECENT_CONVERSATIONS:
                self._fresh.clear()
            fresh = self._fresh[cid] = []
        fresh.append((seq, activity))
        if len(fresh) > INBOX_BATCH:
            del fresh[0]  # too far behind: the store has them

    def reread(self, cid: str) -> None:
        """The conversation's log may hold a row memory was not given (an append that raised
        after it may have committed): the next round reads the store."""
        self._fresh.pop(cid, None)
        self._unsure.add(cid)
        self.kick(cid)

    def committed_elsewhere(self, cid: str, seq: int) -> None:
        """Row ``seq`` of the conversation was committed by another process sharing the
        store: memory holds only this process's appends, so a round must not end before it
        has read past ``seq`` (from the store)."""
        if not self._active:
            return
        self._hear(cid, seq)
        if seq > self._told.get(cid, 0):
            if len(self._told) >= RECENT_CONVERSATIONS:
                self._told.clear()
            self._told[cid] = seq
        self.kick(cid)

    def _hear(self, cid: str, seq: int) -> None:
        if seq > self._heard.get(cid, 0):
            if len(self._heard) >= RECENT_CONVERSATIONS:
                self._heard.clear()  # (the next looks may report a few rows as unheard)
            self._heard[cid] = seq

    async def look(self) -> None:
        """A look in the store for work no wake-up announced (every few seconds while leading:
        ``housekeeping.watch``). Wake-ups are hints; this makes sure that a lost one delays an
        activity by seconds instead of leaving it until the conversation's next. Conversations
        with rows not yet handled and no worker get one (rows the bot appended are passed, so
        the position keeps up). A row committed but not heard of at the last look, and still
        not, is reported: a wake-up was lost (or the listening connection was away so long)."""
        backlog = await self._store.inbox_backlog()
        unsure, self._unsure = self._unsure, set()
        for cid, seq in backlog:
            if cid in unsure:
                self._hear(cid, seq)  # told of, in a way: "read the store"
        for cid, seq in self._unheard.items():
            if seq > self._heard.get(cid, 0):
                log.warning(
                    "conversation %s: activity %d was committed, and this process, leading, was"
                    " never told; handled after a look",
                    cid,
                    seq,
                )
                self._hear(cid, seq)
        self._unheard = {cid: seq for cid, seq in backlog if seq > self._heard.get(cid, 0)}
        for cid, _ in backlog:
            if not self._workers.known(cid):
                self.kick(cid)

    def waiting(self) -> int:
        """Visitor activities committed and known here, not yet handled (while this process
        leads; the bot's own rows in the log wait for nothing)."""
        return sum(
            sum(
                1
                for seq, activity in rows
                if seq > self._positions.get(cid, 0) and _from_visitor(activity)
            )
            for cid, rows in self._fresh.items()
        )

    def _handled(self, cid: str, position: int) -> None:
        """Memory keeps no row once handled (an event can be large)."""
        fresh = self._fresh.get(cid)
        if fresh is not None and not _drop_through(fresh, position):
            del self._fresh[cid]

    def _committed_rows(self, cid: str, position: int) -> list[Row] | None:
        """The rows after ``position`` from memory, if memory has every one of them."""
        fresh = self._fresh.get(cid)
        if fresh is None:
            return None
        _drop_through(fresh, position)
        expected = position + 1
        for seq, _ in fresh:
            if seq != expected:
                return None  # a gap: a row memory never saw (or one rolled back)
            expected += 1
        if expected <= self._told.get(cid, 0):
            return None  # another process appended past what memory holds
        return fresh[:]

    async def _position(self, cid: str) -> int:
        known = self._positions.get(cid)
        if known is None:
            known = await self._store.inbox_position(conversation_id=cid)
            if len(self._positions) >= RECENT_CONVERSATIONS:
                self._positions.clear()
            self._positions[cid] = known
        return known

    async def _drain_once(self, cid: str) -> None:
        with logcontext.about(conversation=cid):
            await self._drain(cid)

    async def _drain(self, cid: str) -> None:
        try:
            while self._active:
                position = await self._position(cid)
                rows = self._committed_rows(cid, position)
                if rows is None:
                    rows = await self._store.activities_after(
                        conversation_id=cid, watermark=position, limit=INBOX_BATCH
                    )
                    if rows:
                        await self._store.flush()  # handle only what is committed (and acked)
                if not rows:
                    self._careful.discard(cid)
                    return
                careful = cid in self._careful
                index = 0
                while index < len(rows):
                    if not (self._active and self._fence()):
                        return  # no longer leading: the next leader handles the rest
                    seq, activity = rows[index]
                    end = index + 1 if careful else self._run_end(rows, index)
                    if end - index > 1:
                        seq = await self._handle_run_once(cid, rows[index:end])
                    elif _from_visitor(activity):
                        if careful and not await self._attempt(cid, seq):
                            index = end
                            continue  # quarantined: its position is already kept
                        await self._handle_once(cid, seq, activity)
                    index = end
                    await self._store.set_inbox_position(conversation_id=cid, seq=seq)
                    self._positions[cid] = seq
                    if careful:
                        await self._store.flush()
                # A failed commit raises here: the worker stops and the rows are handled again.
                await self._store.flush()
                self._handled(cid, rows[-1][0])
                if len(rows) < INBOX_BATCH:
                    self._careful.discard(cid)
                    return  # all there was; what came since came with a kick (a new round)
        except BaseException:
            self._positions.pop(cid, None)  # what was written may have been rolled back
            raise

    def _run_end(self, rows: list[Row], start: int) -> int:
        """Where the run of rows from ``start`` ends (exclusive): rows whose visitor activities
        are all ``runnable``, at least two of them and at most ``RUN_MAX``; ``start + 1`` when
        there is none (rows of others in between are only passed)."""
        if self._handle_run is None:
            return start + 1
        end, count = start, 0
        while end < len(rows) and count < RUN_MAX:
            activity = rows[end][1]
            if _from_visitor(activity):
                if not self._runnable(activity):
                    break
                count += 1
            end += 1
        return end if count > 1 else start + 1

    async def _handle_run_once(self, cid: str, run: list[Row]) -> int:
        """Handle a run of rows together; returns the position it reaches. If the run fails
        (not the store: a bug, or one poison message), each is handled alone, so that only a
        poison one is set aside (a transcript line written before the failure is written
        again)."""
        assert self._handle_run is not None
        visitor = [(seq, activity) for seq, activity in run if _from_visitor(activity)]
        try:
            await self._handle_run(cid, [activity for _, activity in visitor])
        except StoreError:
            raise
        except Exception as exc:
            first, last = visitor[0][0], visitor[-1][0]
            what = "conversation %s: activities %d-%d failed together; each alone now"
            FAILURES.failed(log, exc, what, cid, first, last)
            for seq, activity in visitor:
                await self._handle_once(cid, seq, activity)
        return run[-1][0]

    async def _handle_once(self, cid: str, seq: int, activity: dict[str, Any]) -> None:
        """Handle one activity. A store failure is not the activity's fault: it raises, and the
        activity is handled again once the store works (its writes were rolled back). Anything
        else is a poison message: set aside at once, so that it cannot wedge the conversation
        (what the handler did before it raised stays done; doing it again would repeat it)."""
        try:
            await self._handle(cid, activity)
        except StoreError:
            raise
        except Exception as exc:
            FAILURES.failed(log, exc, "conversation %s: activity %d failed", cid, seq)
            await self._quarantine(cid, seq, bounded(exc))

    async def _quarantine(self, cid: str, seq: int, why: str) -> None:
        """Set an activity aside for good: kept in the log, recorded with why, handled no
        more (its position is committed first); then the visitor hears that it went wrong."""
        log.error("conversation %s: activity %d quarantined (%s)", cid, seq, why)
        record = jsonio.dumps({"at": iso(self._clock()), "why": why})
        await self._store.set_meta(
            key=f"{meta_keys.QUARANTINED}:{cid}:{seq}", value=record, conversation_id=cid
        )
        await self._store.set_inbox_position(conversation_id=cid, seq=seq)
        self._positions[cid] = seq
        await self._store.flush()
        if self._quarantined is None:
            return
        try:
            await self._quarantined(cid)
        except Exception as exc:  # the activity stays set aside; only the apology is lost
            FAILURES.failed(log, exc, "conversation %s: could not tell the visitor", cid)

    async def _attempt(self, cid: str, seq: int) -> bool:
        """Record (and commit) that the activity is about to be handled; False, and it is
        quarantined, if it already went down with the process ``MAX_CRASHES - 1`` times
        (besides the crash that made this a careful start)."""
        key = f"{meta_keys.ATTEMPT}:{cid}"
        last, _, count = (await self._store.get_meta(key=key) or "").partition(":")
        crashed = int(count) if last == str(seq) and count.isdigit() else 0
        if crashed >= MAX_CRASHES - 1:
            why = f"the process went down {crashed + 1} times while handling it"
            await self._quarantine(cid, seq, why)
            return False
        if crashed:
            log.warning(
                "conversation %s: activity %d was being handled when the process went down"
                " (%d time(s)); handling it again",
                cid,
                seq,
                crashed + 1,
            )
        await self._store.set_meta(key=key, value=f"{seq}:{crashed + 1}", conversation_id=cid)
        await self._store.flush()
        return True

    async def resume(self, *, careful: bool = True) -> None:
        """After a restart: pick up what was stored but not handled, carefully (one activity at
        a time, each attempt recorded before it is made): an activity that took the process
        down ``MAX_CRASHES`` times is quarantined instead of crashing it once more.
        ``careful=False``: a look for work this process was not told of (no crash)."""
        for cid, seq in await self._store.inbox_backlog():
            self._hear(cid, seq)
            if careful:
                self._careful.add(cid)
            self.kick(cid)

    async def drain(self) -> None:
        await self._workers.drain()
