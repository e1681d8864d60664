"""Delivery into Teams threads: durable, ordered, paced, retried (what ``TeamsDesk`` sends by).

Every post or card update for a thread is written to the store first and then sent by that
thread's worker, oldest first:

- pacing: the per-thread and per-tenant Teams limits are waited out before each send, and each
  send counts in the windows until its answer is back, so the limits hold where Teams counts
  them, at arrival (see ``adapters.teams.pacing``);
- 429 waits for ``Retry-After``; 412/502/503/504 and network failures back off with jitter and
  retry, without end, so nothing is dropped (a restart resumes from the store);
- 403/404 (bot removed, thread deleted) drops the thread's queue and reports it, once;
- a queue that fell behind sends consecutive visitor messages as one post (whole messages
  only), and only the newest pending update of a card;
- a message over Teams' size limit is split cleanly into numbered parts.

Thread creation is not queued: the handoff needs the new thread's id before anything else.
``backlog(thread_id)``: what a thread's queue holds, in O(1) from memory (for the backlog cap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from adapters.runtime.leadership import DeposedError
from adapters.runtime.retry import backoff
from adapters.runtime.workers import KeyedWorkers
from adapters.storage.contract import OutboundStore
from adapters.teams.cards import Card
from adapters.teams.connector import BotConnector, MessageActivity, card_attachment
from adapters.teams.outbox import (
    KEPT_AS_IS,
    CardPost,
    CardUpdate,
    Item,
    Relay,
    Text,
    Unreadable,
    decode,
    encode,
)
from adapters.teams.pacing import TENANT_WINDOWS, THREAD_WINDOWS, SlidingWindows, Turnstile
from adapters.teams.text import MAX_TEXT_BYTES, relay_markdown, split_text
from bot import logcontext
from bot.errors import GatewayError, RetryableGatewayError, StoreError, ThreadGoneError
from bot.ports import ThreadRef

log = logging.getLogger(__name__)

Row = tuple[int, Item | Unreadable]  # a queued item and its place in the thread's queue

BATCH = 50
MIRRORED = 10_000  # threads whose queue is mirrored in memory (then started over)
# Rows read to count a thread's queue that memory does not know (a restart, a failed commit):
# beyond, a lower bound (far above any sensible cap: 5+ hours of what Teams takes in a thread).
COUNT_LIMIT = 10_000
STOP_GRACE = 5.0  # seconds a graceful stop lets sends under way finish


ThreadGone = Callable[[str, str], Awaitable[None]]
History = Callable[[str, float], Awaitable[list[float]]]


def _result(exc: GatewayError) -> str:
    """A failed request, as the metrics count it."""
    if isinstance(exc, RetryableGatewayError):
        return "throttled" if exc.status == 429 else "failed"
    return "refused"


class DeliveryQueue:
    """Sends cards and texts into threads, on top of the connector and a durable outbound store
    (``adapters.teams.desk`` renders the domain's views into the cards it takes)."""

    def __init__(
        self,
        *,
        connector: BotConnector,
        store: OutboundStore,
        clock: Callable[[], float] = time.monotonic,
        thread_windows: tuple[tuple[int, float], ...] = THREAD_WINDOWS,
        tenant_windows: tuple[tuple[int, float], ...] = TENANT_WINDOWS,
        backoff_base: float = 0.5,
        fence: Callable[[], bool] = lambda: True,
        shared: bool = False,
        active: bool = True,
        history: History | None = None,
    ) -> None:
        self._connector = connector
        # Several processes share the store: one of them sends (the leader, while ``fence()``
        # holds: checked right before each request), and the others' posts are in the store
        # only, so memory never stands in for it (no mirror).
        self._fence = fence
        self._shared = shared
        self._active = active
        # Sends made by whoever led before (seconds ago, per thread or "" for all): a thread's
        # windows, and the tenant's, start from them.
        self._history = history
        self._learned: set[str] = set()
        self._tenant_learned = False
        self._learning = asyncio.Lock()
        self._sending = 0  # requests under way (a graceful stop lets them finish)
        self._sent: asyncio.Future[None] | None = None  # set once none is left, when stopping
        self._store = store
        self._clock = clock
        self._thread_windows = thread_windows
        self._tenant = SlidingWindows(tenant_windows)
        self._backoff_base = backoff_base
        self._windows: dict[str, SlidingWindows] = {}  # per thread; idle ones are pruned
        self._windows_pruned_at = 1024
        self._workers = KeyedWorkers(self._drain_once, "deliver")
        self._recounts = KeyedWorkers(self._recount, "count")  # backlog figures to read back
        self.on_thread_gone: ThreadGone | None = None
        # Told of each request's result ("sent", "throttled", "failed", "refused") and how
        # long it took, for the metrics.
        self.watch: Callable[[str, float], None] = lambda _result, _seconds: None
        # thread -> its whole queue as stored, kept in step with every enqueue and drop, so a
        # send needs no read; valid while no commit failed since (a failed one may have taken
        # back rows it holds). No entry: read the store.
        self._mirror: dict[str, list[Row]] = {}
        self._failures_seen = 0  # the store's failed commits when memory was last in step
        self._turns = Turnstile(clock)  # the tenant's windows, taken in turn
        # thread -> rows queued and not yet delivered, kept in step with every enqueue and drop
        # (no entry: none). The writes not yet known committed, by thread (-> the latest one's
        # number): a failed commit may have taken them back, so those threads are counted again.
        self._backlog: dict[str, int] = {}
        self._writes = 0  # store writes begun
        self._writing = 0  # store writes under way
        self._uncommitted: OrderedDict[str, int] = OrderedDict()
        # At the last ``look``: threads with posts queued and no worker (-> the oldest post).
        self._idle: dict[str, int] = {}

    # ---- what the desk and the inbound handlers send -------------------------------------

    async def open_thread(self, *, channel_id: str, card: Card, text: str) -> ThreadRef:
        # A new thread is a request to the tenant too: it takes its place in the tenant window.
        with contextlib.suppress(GatewayError):
            await self._connector.prepare()  # if it fails, open_thread's own retries fetch it
        if self._history is not None:
            await self._learn_tenant()
        async with self._slot():
            if not self._fence():
                raise DeposedError("no longer leading: the next leader opens the thread")
            ref = await self._connector.open_thread(channel_id=channel_id, card=card, text=text)
        # The root is the thread's first message: Teams may count it in the thread's windows.
        self._thread_slots(ref.thread_id).record(self._clock())
        return ref

    async def post_message(self, *, thread_id: str, author: str, text: str) -> None:
        for number, piece in enumerate(pieces := split_text(text, author), start=1):
            label = f"{author} ({number}/{len(pieces)})" if len(pieces) > 1 else author
            await self._enqueue(thread_id, Relay(label, piece))

    async def post_text(self, *, thread_id: str, text: str, markdown: bool = False) -> None:
        """The bot's own words (markdown: formatted, as the setup help is)."""
        await self._enqueue(thread_id, Text(text, markdown))

    async def post_card(self, *, thread_id: str, card: Card, text: str) -> None:
        await self._enqueue(thread_id, CardPost(card, text))

    async def update_card(self, *, thread_id: str, activity_id: str, card: Card) -> None:
        await self._enqueue(thread_id, CardUpdate(activity_id, card))

    # ---- workers -------------------------------------------------------------------------

    async def _enqueue(self, thread_id: str, item: Item) -> None:
        self._in_step()
        self._writing += 1
        self._wrote(thread_id)
        try:
            seq = await self._store.enqueue_outbound(thread_id=thread_id, item=encode(item))
        except BaseException:
            self._kick(thread_id)  # it may have committed without saying so: look
            raise
        finally:
            self._writing -= 1
        self._count(thread_id, 1)
        mirrored = self._mirror.get(thread_id)
        if mirrored is not None and not self._shared:
            if isinstance(item, KEPT_AS_IS):
                if not mirrored or mirrored[-1][0] < seq:  # not already read from the store
                    mirrored.append((seq, item))
            else:
                del self._mirror[thread_id]  # read back what the store made of it
        self._kick(thread_id)

    async def _queued(self, thread_id: str) -> list[Row]:
        """The thread's next rows, from the mirror if it is in step, else from the store."""
        self._in_step()
        mirrored = self._mirror.get(thread_id)
        if mirrored is not None:
            return mirrored[:BATCH]
        mark = self._quiet()
        rows = [
            (seq, decode(raw))
            for seq, raw in await self._store.outbound(thread_id=thread_id, limit=BATCH)
        ]
        if len(rows) < BATCH:
            self._counted(thread_id, len(rows), mark)  # the whole queue: its figure for free
        if (
            len(rows) < BATCH
            and not self._shared
            and all(isinstance(item, KEPT_AS_IS) for _, item in rows)
        ):
            if len(self._mirror) >= MIRRORED:
                self._mirror.clear()
            self._mirror[thread_id] = list(rows)  # all there is: the mirror starts here
        return rows

    async def _drop(self, thread_id: str, seqs: list[int]) -> None:
        self._writing += 1
        self._wrote(thread_id)
        try:
            await self._store.drop_outbound(seqs=seqs)
        except BaseException:
            self._recounts.kick(thread_id)  # some of them may be gone
            raise
        finally:
            self._writing -= 1
        self._count(thread_id, -len(seqs))
        mirrored = self._mirror.get(thread_id)
        if mirrored is not None:
            gone = set(seqs)
            mirrored[:] = [row for row in mirrored if row[0] not in gone]

    def _kick(self, thread_id: str) -> None:
        if self._active:
            self._workers.kick(thread_id)

    def queued(self, thread_id: str) -> None:
        """Another process queued a post for the thread (sent here while this one leads)."""
        self._kick(thread_id)

    def start(self) -> None:
        """Send from now on (this process leads): memory starts over, since others wrote
        meanwhile; ``resume()`` then finds what is queued."""
        self._mirror.clear()
        self._backlog.clear()
        self._uncommitted.clear()
        self._idle.clear()
        if self._history is not None:  # the windows start from the store's record
            self._windows.clear()
            self._tenant = SlidingWindows(self._tenant.windows)
            self._learned.clear()
            self._tenant_learned = False
        self._workers.open()
        self._recounts.open()
        self._active = True

    async def stop(self, *, graceful: bool) -> None:
        """Send no more (another process may lead next). ``graceful``: requests under way are
        let finish first (so none is sent twice), for up to ``STOP_GRACE`` seconds; sends
        waiting for a slot or a retry stop at once."""
        self._active = False
        if graceful and self._sending:  # not those waiting for a slot or a retry: they stop
            self._sent = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._sent), STOP_GRACE)
        await self.close()

    async def resume(self) -> None:
        """After a restart: count and send what was queued and not yet delivered."""
        for thread_id, _ in await self._store.outbound_threads():
            try:
                await self._recount(thread_id)
            except StoreError as exc:
                log.warning("thread %s: queue not counted (%s); its worker will", thread_id, exc)
            self._kick(thread_id)

    async def look(self) -> None:
        """A look in the store for posts no wake-up announced (every few seconds while leading:
        ``housekeeping.watch``): a thread with posts queued and no worker, at this look and the
        last with the same oldest post, lost its wake-up; it is reported and sent now, instead
        of waiting for the thread's next post."""
        idle: dict[str, int] = {}
        for thread_id, oldest in await self._store.outbound_threads():
            if self._workers.known(thread_id):
                continue
            if self._idle.get(thread_id) == oldest:
                log.warning(
                    "thread %s: posts were queued with no worker to send them; sending now",
                    thread_id,
                )
                self._mirror.pop(thread_id, None)  # memory did not know of them: read the store
                self._kick(thread_id)
            else:
                idle[thread_id] = oldest
        self._idle = idle

    def retry_now(self) -> None:
        """The store works again: threads waiting to retry after its failure go now."""
        self._workers.retry_now()

    async def drain(self) -> None:
        """Wait until every queue is empty (tests, benchmarks)."""
        await self._workers.drain()
        await self._recounts.drain()

    async def close(self) -> None:
        """Stop sending; what is queued stays in the store for the next start."""
        await self._workers.close()
        await self._recounts.close()

    async def _drain_once(self, thread_id: str) -> None:
        with logcontext.about(thread=thread_id):
            await self._drain(thread_id)

    async def _drain(self, thread_id: str) -> None:
        attempt = 0
        # A post that may have arrived (its answer was lost) is sent again exactly as it was:
        # folding in what came since would show Teams the first lines twice.
        pinned: tuple[list[int], str, str, MessageActivity] | None = None
        # After Teams refused a folded post for good: its messages go one by one, so only the
        # one it cannot take is dropped.
        alone_through = 0
        while self._active:
            rows = await self._queued(thread_id)
            if not rows:
                return
            mark = self._quiet()
            await self._store.flush()  # send only what is committed: no duplicate on a retry
            if self._store.failed_commits != self._failures_seen:
                continue  # a commit failed: what was read may be gone, read again
            self._committed(mark)
            head = rows[0][1]
            if isinstance(head, Unreadable):
                # A row we cannot read can never be sent: drop it, keep the queue moving.
                log.error(
                    "thread %s: unreadable queued item %s dropped: %s",
                    thread_id,
                    rows[0][0],
                    head.why,
                )
                await self._drop(thread_id, [rows[0][0]])
                continue
            if pinned is not None and [s for s, _ in rows[: len(pinned[0])]] == pinned[0]:
                seqs, method, url, body = pinned
            else:
                seqs, method, url, body = self._next(
                    thread_id, rows, fold=rows[0][0] > alone_through
                )
            pinned = None
            if self._history is not None and thread_id not in self._learned:
                await self._learn(thread_id)
            try:
                # The token first: a refresh must not hold back sends whose slots were taken.
                await self._connector.prepare()
                async with self._slot(self._thread_slots(thread_id)):
                    if not (self._active and self._fence()):
                        return  # no longer leading: the next leader sends it (not a send)
                    self._sending += 1
                    began = time.monotonic()
                    try:
                        await self._connector.send_once(method, url, body)
                        self.watch("sent", time.monotonic() - began)
                    except GatewayError as exc:
                        self.watch(_result(exc), time.monotonic() - began)
                        raise
                    finally:
                        self._sending -= 1
                        if not self._sending and self._sent is not None and not self._sent.done():
                            self._sent.set_result(None)
            except ThreadGoneError as exc:
                if method == "PUT":
                    # That one message cannot be updated (deleted, say): the thread may be
                    # fine, and its next post will tell.
                    log.warning("thread %s: a card update was refused, dropped: %s", thread_id, exc)
                    await self._drop(thread_id, seqs)
                    continue
                await self._gone(thread_id, str(exc))
                return
            except (RetryableGatewayError, RuntimeError, OSError) as exc:
                if method == "POST" and getattr(exc, "ambiguous", False):
                    pinned = (seqs, method, url, body)
                attempt += 1
                retry_after = getattr(exc, "retry_after", None)
                wait = (
                    retry_after if retry_after is not None else backoff(attempt, self._backoff_base)
                )
                log.warning(
                    "thread %s: delivery failed (%s); retry %d in %.1fs",
                    thread_id,
                    exc,
                    attempt,
                    wait,
                )
                await asyncio.sleep(wait)
                continue
            except GatewayError as exc:
                if len(seqs) > 1 and method == "POST":
                    alone_through = seqs[-1]  # which of them? send them one at a time
                    log.warning("thread %s: Teams refused a folded post (%s)", thread_id, exc)
                    continue
                # Teams will never take this one (400, 413...): say so loudly, keep the rest.
                # (Only refusals with a status get here; token trouble is retryable.)
                log.error(
                    "thread %s: Teams refused a message for good, dropped: %s", thread_id, exc
                )
            attempt = 0
            await self._drop(thread_id, seqs)
            if len(rows) < BATCH and len(seqs) == len(rows):
                return  # all there was; what came since came with a kick (a new round)

    async def _learn(self, thread_id: str) -> None:
        """Before this leader's first send into the thread: what was sent into it (and into
        the tenant) before, by the store's record. A post its predecessor had under way when
        it went down is not in the record, and may have arrived: it counts as sent now."""
        assert self._history is not None
        await self._learn_tenant()
        windows = self._thread_slots(thread_id)
        ages = await self._history(thread_id, max(seconds for _, seconds in windows.windows))
        now = self._clock()
        for age in ages:
            windows.record(now - age)
        windows.record(now)
        self._learned.add(thread_id)

    async def _learn_tenant(self) -> None:
        """Before this leader's first request: what was sent into the tenant before."""
        assert self._history is not None
        async with self._learning:
            if self._tenant_learned:
                return
            ages = await self._history("", max(seconds for _, seconds in self._tenant.windows))
            now = self._clock()
            for age in ages:
                self._tenant.record(now - age)
            self._tenant_learned = True

    def _thread_slots(self, thread_id: str) -> SlidingWindows:
        windows = self._windows.get(thread_id)
        if windows is None:
            if len(self._windows) >= self._windows_pruned_at:
                self._prune_windows()
            windows = self._windows[thread_id] = SlidingWindows(self._thread_windows)
        return windows

    def _prune_windows(self) -> None:
        """Forget the windows of threads with no send in the last hour (they would be empty)."""
        now = self._clock()
        for thread_id in [t for t, w in self._windows.items() if w.idle(now)]:
            del self._windows[thread_id]
        self._windows_pruned_at = max(1024, 2 * len(self._windows))

    def _slot(self, thread: SlidingWindows | None = None) -> AbstractAsyncContextManager[None]:
        """Room in the thread's windows and then, in line, the tenant's, taken with no await
        before the request, and counted until its answer is back (see ``adapters.teams.pacing``)."""
        return self._turns.slot(self._tenant, thread)

    async def _gone(self, thread_id: str, reason: str) -> None:
        mark = self._quiet()
        rows = await self._store.outbound(thread_id=thread_id, limit=1_000_000)
        self._counted(thread_id, len(rows), mark)
        await self._drop(thread_id, [seq for seq, _ in rows])
        self._mirror.pop(thread_id, None)
        log.error(
            "thread %s is gone (%s); %d queued message(s) dropped", thread_id, reason, len(rows)
        )
        if self.on_thread_gone is not None:
            await self.on_thread_gone(thread_id, reason)

    # ---- backlog -------------------------------------------------------------------------

    def backlog(self, thread_id: str) -> int:
        """Items queued for the thread and not yet delivered (O(1), no store read).

        Every enqueue and drop (delivered, refused for good, folded, thread gone) moves it as it
        happens; ``resume()`` counts what the store held. After a failed commit, the threads
        written since the last commit known good are counted again from the store at once (in
        the background); until then (ms) their figures may be off by that transaction's writes.
        Above ``COUNT_LIMIT`` after a restart or a failed commit: a lower bound. Counts this
        process's writes only."""
        self._in_step()
        return self._backlog.get(thread_id, 0)

    def depth(self) -> int:
        """Items queued for every thread and not yet delivered (``backlog``'s sum)."""
        self._in_step()
        return sum(self._backlog.values())

    def _in_step(self) -> None:
        """Memory follows the store; if a commit failed since, forget what it may have undone."""
        failed = self._store.failed_commits
        if failed == self._failures_seen:
            return
        self._failures_seen = failed
        self._mirror.clear()
        self._writes += 1  # a count read before now may predate the rollback: not in step
        for thread_id in self._uncommitted:
            self._recounts.kick(thread_id)
            self._kick(thread_id)  # a drop taken back: what came back is sent (again)

    def _wrote(self, thread_id: str) -> None:
        self._writes += 1
        self._uncommitted[thread_id] = self._writes
        self._uncommitted.move_to_end(thread_id)

    def _quiet(self) -> int | None:
        """A mark for ``_counted``/``_committed``: none while a write is under way."""
        return None if self._writing else self._writes

    def _committed(self, mark: int | None) -> None:
        """Everything written before ``mark`` is committed: no failure can take it back now."""
        uncommitted = self._uncommitted
        while mark is not None and uncommitted and next(iter(uncommitted.values())) <= mark:
            uncommitted.popitem(last=False)

    def _count(self, thread_id: str, delta: int) -> None:
        n = self._backlog.get(thread_id, 0) + delta
        if n > 0:
            self._backlog[thread_id] = n
            return
        self._backlog.pop(thread_id, None)
        if n < 0:  # dropped more than it knew of: the figure was off
            self._recounts.kick(thread_id)

    def _counted(self, thread_id: str, n: int, mark: int | None) -> bool:
        """The store held ``n`` rows for the thread when a read began at ``mark``: that is its
        figure, if nothing was written since. (A lower bound at ``COUNT_LIMIT``: made exact by
        the worker's reads once fewer than ``BATCH`` rows are left.)"""
        if mark is None or mark != self._writes:
            return False  # a write of ours may or may not be in what was read
        if n:
            self._backlog[thread_id] = n
        else:
            self._backlog.pop(thread_id, None)
        return True

    async def _recount(self, thread_id: str) -> None:
        """Read the thread's figure from the store, up to ``COUNT_LIMIT`` rows (off the hot
        path: a restart, a failed commit); again while writes of ours ran meanwhile (only a
        store that awaits lets them). A store count would spare reading the rows."""
        for _ in range(3):
            mark = self._quiet()
            rows = await self._store.outbound(thread_id=thread_id, limit=COUNT_LIMIT)
            if self._counted(thread_id, len(rows), mark):
                return

    def _next(
        self, thread_id: str, rows: list[Row], *, fold: bool = True
    ) -> tuple[list[int], str, str, MessageActivity]:
        """The next request: the first row, with what may be folded into it (if ``fold``)."""
        seq, item = rows[0]
        connector = self._connector
        if isinstance(item, CardUpdate):
            # Only the newest pending version of a card matters.
            same = [
                (s, i)
                for s, i in rows
                if isinstance(i, CardUpdate) and i.activity_id == item.activity_id
            ]
            seqs = [s for s, _ in same]
            latest = same[-1][1]
            assert isinstance(latest, CardUpdate)
            body = connector.activity(
                attachments=[card_attachment(latest.card)], id=latest.activity_id
            )
            return seqs, "PUT", connector.activity_url(thread_id, latest.activity_id), body
        url = connector.activity_url(thread_id)
        if isinstance(item, Relay):
            seqs, lines = [seq], [item.text]
            for next_seq, other in rows[1:] if fold else ():
                # Consecutive messages of the same author, whole, while they fit one post.
                if not isinstance(other, Relay) or other.author != item.author:
                    break
                candidate = [*lines, other.text]
                if len(relay_markdown(item.author, "\n".join(candidate)).encode()) > MAX_TEXT_BYTES:
                    break
                seqs.append(next_seq)
                lines = candidate
            text = relay_markdown(item.author, "\n".join(lines))
            return seqs, "POST", url, connector.activity(text=text, textFormat="markdown")
        if isinstance(item, CardPost):
            body = connector.activity(
                attachments=[card_attachment(item.card)], summary=item.summary
            )
            return [seq], "POST", url, body
        assert isinstance(item, Text)
        if item.markdown:
            return [seq], "POST", url, connector.activity(text=item.text, textFormat="markdown")
        return [seq], "POST", url, connector.activity(text=item.text)
