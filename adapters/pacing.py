"""Teams rate limits, respected by construction: sliding windows that say when the next send may go.

Teams allows, per bot per thread, 7 sends in 1 s, 8 in 2 s, 60 in 30 s and 1800 in 3600 s, and
50 requests per second per app per tenant. Going over earns 429s and, repeated, a throttled bot;
so sends wait until every window has room instead of finding the limit by hitting it.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Sequence
from math import inf, nextafter

THREAD_WINDOWS: tuple[tuple[int, float], ...] = ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))
TENANT_WINDOWS: tuple[tuple[int, float], ...] = ((50, 1.0),)


class SlidingWindows:
    """Send times within the longest window; ``earliest`` is when the next send fits them all.

    A send at ``s`` is inside a window of ``seconds`` at ``now`` while ``now - s < seconds``:
    windows are half-open, ``[s, s + seconds)``, so ``limit`` sends at ``s`` and one more at
    exactly ``s + seconds`` are fine. Both the counting and ``earliest`` use that one test, in
    float arithmetic as written (``s + seconds`` alone can round below the edge).
    """

    def __init__(self, windows: Sequence[tuple[int, float]]) -> None:
        self.windows = tuple(windows)
        self._horizon = max(seconds for _, seconds in self.windows)
        self._sent: list[float] = []  # ascending

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
        """The first moment (>= now) a send keeps every window within its limit."""
        stale = self._first_inside(now, self._horizon)
        if stale:
            del self._sent[:stale]
        at = now
        for limit, seconds in self.windows:
            if len(self._sent) - self._first_inside(now, seconds) >= limit:
                # Room opens when the limit-th most recent send leaves the window.
                oldest = self._sent[-limit]
                leaves = oldest + seconds
                while leaves - oldest < seconds:
                    leaves = nextafter(leaves, inf)
                at = max(at, leaves)
        return at

    def idle(self, now: float) -> bool:
        """Sends were made, none within the longest window: forgetting them changes nothing.
        (Never used: not idle, its first send may be waiting for a slot right now.)"""
        return bool(self._sent) and now - self._sent[-1] >= self._horizon

    def record(self, at: float) -> None:
        """A send happened at ``at`` (monotonic seconds, never earlier than the last one)."""
        insort(self._sent, at)
