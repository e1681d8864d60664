"""Teams rate limits, kept at arrival by construction: sliding windows that say when the next send
may go.

Teams allows, per bot per thread, 7 sends in 1 s, 8 in 2 s, 60 in 30 s and 1800 in 3600 s, and
50 requests per second per app per tenant, and it counts requests when they arrive. Going over
earns 429s and, repeated, a throttled bot; so sends wait until every window has room instead of
finding the limit by hitting it.

Why it holds at arrival, not only at the sender. A request arrives somewhere between the moment
it is started and the moment its answer comes back; exactly where is unknown (connection
set-up, a pool queue, the network, the far side's own queue). So a send takes its slot when it
starts (``take``: no await between that and the request), counts inside every window while it is
in flight, and when its answer (or failure) comes back its time becomes that moment
(``settle``). Then the (limit+1)-th send of a window starts at least one window after the answer
to the limit-th before it, hence at least one window after that one's arrival, whatever the
network did: every window of arrival times is legal, half-open and without slack. It is also the
least waiting that can be proven legal: with arrivals anywhere in [start, answer], a send that
starts less than a window after the answer of the limit-th before it may arrive inside that one's
window. What it costs over pacing at start times is one round trip per window a send waits for
(ms against windows of seconds); a fixed margin or jitter would cost more on every window and
still break when a round trip outlasts it.

A request that fails without an answer (refused connection, timeout) is settled at the moment
of failure too: a timed-out one may have arrived, and a refused one costs one slot during what
is an outage anyway.

The shared (tenant) windows are taken in the order senders became ready (``Turnstile``): every
thread gets its turn, so no thread is left with a tail to send alone at the end, and only the
sender at the head of the line watches the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from bisect import bisect_right, insort
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from math import inf, nextafter

THREAD_WINDOWS: tuple[tuple[int, float], ...] = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))
TENANT_WINDOWS: tuple[tuple[int, float], ...] = ((50, 1.0),)


class SlidingWindows:
    """Settled send times within the longest window, plus sends in flight; ``earliest`` is when
    the next send fits them all.

    A send settled at ``s`` is inside a window of ``seconds`` at ``now`` while
    ``now - s < seconds``: windows are half-open, ``[s, s + seconds)``, so ``limit`` sends at ``s``
    and one more at exactly ``s + seconds`` are fine. Both the counting and ``earliest`` use that
    one test, in float arithmetic as written (``s + seconds`` alone can round below the edge).
    A send in flight is inside every window until it is settled.
    """

    def __init__(self, windows: Sequence[tuple[int, float]]) -> None:
        self.windows = tuple(windows)
        self._horizon = max(seconds for _, seconds in self.windows)
        self._sent: list[float] = []  # settled, ascending
        self.in_flight = 0

    def _first_inside(self, now: float, seconds: float) -> int:
        """Index of the oldest send with ``now - sent < seconds``."""
        sent = self._sent
        # bisect finds it up to the rounding of now - seconds; settle the edge exactly.
        i = bisect_right(sent, now - seconds)
        while i < len(sent) and now - sent[i] >= seconds:
            i += 1
        while i and now - sent[i - 1] < seconds:
            i -= 1
        return i

    def earliest(self, now: float) -> float:
        """The first moment (>= now) a send keeps every window within its limit; ``inf`` while
        sends in flight fill a window (room opens only once one of them is settled)."""
        stale = self._first_inside(now, self._horizon)
        if stale:
            del self._sent[:stale]
        at = now
        for limit, seconds in self.windows:
            room = limit - self.in_flight  # settled sends a window may hold besides them
            if room <= 0:
                return inf
            if len(self._sent) - self._first_inside(now, seconds) >= room:
                # Room opens when the room-th most recent settled send leaves the window.
                oldest = self._sent[-room]
                leaves = oldest + seconds
                while leaves - oldest < seconds:
                    leaves = nextafter(leaves, inf)
                at = max(at, leaves)
        return at

    def idle(self, now: float) -> bool:
        """Sends were made, none in flight or within the longest window: forgetting them changes
        nothing. (Never used: not idle, its first send may be waiting for a slot right now.)"""
        return not self.in_flight and bool(self._sent) and now - self._sent[-1] >= self._horizon

    def take(self) -> None:
        """A send starts now: it is inside every window until ``settle``."""
        self.in_flight += 1

    def settle(self, at: float) -> None:
        """A send in flight was answered, or failed, at ``at``: it arrived no later."""
        if self.in_flight <= 0:
            raise ValueError("no send in flight to settle")
        self.in_flight -= 1
        self.record(at)

    def record(self, at: float) -> None:
        """A send that is over happened at ``at`` (monotonic seconds)."""
        insort(self._sent, at)


class Turnstile:
    """Slots in one shared window set, taken in the order senders asked (once their own windows
    allowed), each settled when its ``async with`` body (the request) is over."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._line: deque[asyncio.Future[None]] = deque()  # the head may take the next slot
        self._answered: asyncio.Future[None] | None = None  # set when a send is settled

    @contextlib.asynccontextmanager
    async def slot(
        self, shared: SlidingWindows, own: SlidingWindows | None = None
    ) -> AsyncIterator[None]:
        """Wait for room in ``own`` (nobody else's) and then, in line, in ``shared``; take it in
        both with no await before the body runs; settle both when the body is over."""
        windows = (shared,) if own is None else (shared, own)
        if own is not None:
            await self._room(own)
        turn = asyncio.get_running_loop().create_future()
        self._line.append(turn)
        try:
            if self._line[0] is not turn:
                await turn
            await self._room(*windows)
        finally:
            if self._line[0] is turn:
                self._line.popleft()
                if self._line and not self._line[0].done():
                    self._line[0].set_result(None)  # the next in line
            else:
                self._line.remove(turn)  # cancelled while waiting for its turn
        for w in windows:
            w.take()
        try:
            yield
        finally:
            now = self._clock()
            for w in windows:
                w.settle(now)
            if self._answered is not None and not self._answered.done():
                self._answered.set_result(None)

    async def _room(self, *windows: SlidingWindows) -> None:
        """Return at the first moment a send fits every window."""
        while True:
            now = self._clock()
            at = max(w.earliest(now) for w in windows)
            if at <= now:
                return
            if at < inf:
                await asyncio.sleep(at - now)
                continue
            # Sends in flight fill a window: room opens when one of them is answered.
            if self._answered is None or self._answered.done():
                self._answered = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._answered)
