"""Token buckets per key (a client address, a website, a conversation), bounded in memory.

One bucket is a few floats. Past ``MAX_KEYS`` buckets, those that have refilled completely
(indistinguishable from a fresh one) are forgotten; should that not be enough (a flood of new
keys), the least recently used quarter is: memory stays bounded, and what is forgotten is what
was quiet longest.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable

from adapters.web.settings import Rate

MAX_KEYS = 100_000
MAX_WAIT = 3600.0  # seconds: the longest Retry-After given


class TokenBuckets:
    """``take(key, rate)``: 0 when allowed (a token is taken), else the seconds to wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # key -> (tokens, at, tokens per second, burst): each judged by its own rate
        self._buckets: dict[str, tuple[float, float, float, int]] = {}

    def take(self, key: str, rate: Rate | None) -> float:
        if rate is None:
            return 0.0
        now = self._clock()
        per_second, burst = rate.per_minute / 60.0, rate.burst
        known = self._buckets.pop(key, None)  # re-inserted below: the dict stays oldest-first
        tokens = float(burst) if known is None else known[0] + (now - known[1]) * per_second
        tokens = min(float(burst), tokens)
        if known is None and len(self._buckets) >= MAX_KEYS:
            self._prune(now)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now, per_second, burst)
            return 0.0
        self._buckets[key] = (tokens, now, per_second, burst)
        return min(MAX_WAIT, (1.0 - tokens) / per_second)

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, (tokens, at, per_second, burst) in self._buckets.items()
            if tokens + (now - at) * per_second >= burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= MAX_KEYS:  # still too many: the least recently used go
            for key in list(self._buckets)[: MAX_KEYS // 4]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """A Retry-After value (whole seconds, at least 1) for a wait in seconds."""
    return str(max(1, math.ceil(min(wait, MAX_WAIT))))


def client_key(address: str) -> str:
    """What a per-client limit counts by: the address, or for IPv6 its /64 (one host is given
    a whole /64, and could otherwise take a fresh address for every request)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
