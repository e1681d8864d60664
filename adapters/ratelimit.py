"""Token buckets per key (a client address, a website, a conversation), bounded in memory.

One bucket is two floats. Past ``MAX_KEYS`` buckets, those that have refilled completely
(indistinguishable from a fresh one) are forgotten; should that not be enough (a flood of new
keys), all are: limits loosen for a moment rather than memory growing without end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from bot.config import Rate

MAX_KEYS = 100_000


class TokenBuckets:
    """``take(key, rate)``: 0 when allowed (a token is taken), else the seconds to wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, rate: Rate | None) -> float:
        if rate is None:
            return 0.0
        now = self._clock()
        per_second = rate.per_minute / 60.0
        tokens, at = self._buckets.get(key, (float(rate.burst), now))
        tokens = min(float(rate.burst), tokens + (now - at) * per_second)
        if tokens >= 1.0:
            if len(self._buckets) >= MAX_KEYS and key not in self._buckets:
                self._prune(now, per_second, rate.burst)
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / per_second

    def _prune(self, now: float, per_second: float, burst: int) -> None:
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * per_second >= burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= MAX_KEYS:
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """A Retry-After value (whole seconds, at least 1) for a wait in seconds."""
    return str(max(1, math.ceil(wait)))
