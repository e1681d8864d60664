"""Failure logging that stays readable under a storm: one bounded line per failure, and the
traceback only once per distinct cause and minute.

A full disk or a dead dependency makes the same error on every request; a traceback each time
buries the log (and fills the disk that is already full). The cause is the exception's type
and the place it was raised, not its message, which carries ids and so differs every time.
"""

from __future__ import annotations

import logging
import reprlib
import time
from collections.abc import Callable

MAX_LINE = 500  # characters of an exception's message kept in a log line
WINDOW = 60.0  # seconds: a cause's traceback is logged at most once per window
_CAUSES_KEPT = 1024


def bounded(exc: BaseException, limit: int = MAX_LINE) -> str:
    """``Type: message`` on one line, at most ``limit`` characters of the message."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[:limit] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cause(exc: BaseException) -> tuple[str, str, int]:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else ("", 0)
    return (type(exc).__qualname__, *where)


class FailureLog:
    """Logs failures: always one line, the traceback once per cause per ``window`` seconds."""

    def __init__(self, window: float = WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._last: dict[tuple[str, str, int], float] = {}

    def failed(
        self,
        logger: logging.Logger,
        exc: BaseException,
        message: str,
        *args: object,
        level: int = logging.ERROR,
    ) -> None:
        """``message % args``, then the bounded exception; with its traceback if this cause's
        was not logged within the window."""
        cause = _cause(exc)
        now = self._clock()
        last = self._last.get(cause)
        with_traceback = last is None or now - last >= self._window
        if with_traceback:
            if len(self._last) >= _CAUSES_KEPT:
                self._last.clear()
            self._last[cause] = now
        logger.log(
            level,
            message + ": %s",
            *args,
            bounded(exc),
            exc_info=exc if with_traceback else None,
        )


class Sampled:
    """A line that a flood repeats (a refused request, say): logged at most once per key and
    ``every`` seconds, with the count of those left out since."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._last: dict[object, tuple[float, int]] = {}  # key -> (logged at, left out since)

    def log(
        self, logger: logging.Logger, level: int, key: object, message: str, *args: object
    ) -> None:
        now = self._clock()
        at, left_out = self._last.get(key, (float("-inf"), 0))
        if now - at < self._every:
            self._last[key] = (at, left_out + 1)
            return
        if len(self._last) >= _CAUSES_KEPT:
            self._last.clear()
        self._last[key] = (now, 0)
        if left_out:
            logger.log(level, message + " (and %d more like it)", *args, left_out)
        else:
            logger.log(level, message, *args)


_CLIPPED = reprlib.Repr()
_CLIPPED.maxstring = _CLIPPED.maxother = 200


def clip(value: object, limit: int = 200) -> str:
    """Something from outside (a path, an id, an exception's message, a hostile body's part)
    for a log line: bounded, printable, on one line."""
    if isinstance(value, BaseException):
        text = str(value)
    else:
        text = value if isinstance(value, str) else _CLIPPED.repr(value)
    text = "".join(ch if ch.isprintable() else " " for ch in text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "..."


# Logging is process-wide, and so is its budget: one instance for every caller.
FAILURES = FailureLog()
REFUSALS = Sampled()
