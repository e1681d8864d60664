"""One retry policy for every caller: exponential backoff with jitter, and Retry-After read the
way RFC 9110 writes it. Connector calls, the delivery queue, the per-key workers and the
recovery at start all wait by these."""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime

MAX_BACKOFF = 60.0  # seconds: the longest wait between attempts
MAX_RETRY_AFTER = 3600.0  # a sanity bound only: Teams' own answers are seconds


def backoff(attempt: int, base: float = 0.5, cap: float = MAX_BACKOFF) -> float:
    """The wait before attempt ``attempt + 1``: base, 2x base, 4x base ... at most ``cap``,
    times a random factor in [0.5, 1] (so that many waiting callers do not retry at once)."""
    return min(cap, base * 2.0 ** min(attempt - 1, 20)) * random.uniform(0.5, 1.0)


def retry_after(header: str) -> float | None:
    """Retry-After in seconds from now (delay-seconds or an HTTP date), or None when it cannot
    be read (the caller backs off as it would without one)."""
    header = header.strip()
    try:
        seconds = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))
