"""Which conversation, handoff and thread the work under way is about, for the logs: set where
the work starts (a request, a worker's round, a handoff's event), read by the log formatter
(``LOG_FORMAT=json`` puts them in each line). Each task has its own (tasks it starts inherit a
copy), so concurrent work never mixes them up."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_IDS: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("handoff_log_ids", default=())
KINDS = ("conversation", "handoff", "thread")


def _merged(ids: dict[str, str]) -> tuple[tuple[str, str], ...]:
    known = dict(_IDS.get())
    known.update({kind: value for kind, value in ids.items() if value})
    return tuple((kind, known[kind]) for kind in KINDS if kind in known)


def mark(*, conversation: str = "", handoff: str = "", thread: str = "") -> None:
    """From now on, this task's work is about these (for the rest of it: a request's task)."""
    _IDS.set(_merged({"conversation": conversation, "handoff": handoff, "thread": thread}))


@contextlib.contextmanager
def about(*, conversation: str = "", handoff: str = "", thread: str = "") -> Iterator[None]:
    """The block's work is about these (then back to what it was: a worker's round)."""
    token = _IDS.set(_merged({"conversation": conversation, "handoff": handoff, "thread": thread}))
    try:
        yield
    finally:
        _IDS.reset(token)


def current() -> dict[str, str]:
    """The ids the work under way is about (none outside any)."""
    return dict(_IDS.get())
