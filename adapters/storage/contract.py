"""Everything a store does, in one place; every store (memory, SQLite, PostgreSQL) implements
``Store``, and one suite (tests/adapters/storage/test_store_contract.py) holds each to it.

- the domain's records (``bot.ports.HandoffStore``): conversations, transcript, handoffs (saved
  compare-and-set on their version) and inbound dedupe keys (``seen``/``remember``);
- the Direct Line activity log and the inbox's positions (``ActivityLog``);
- the Teams outbox (``OutboundStore``);
- meta rows, each optionally filed under a conversation (``MetaStore``);
- retention (``Retention``), reports (``Reports``) and durability (``Durability``);
- optionally, appends committed by other processes sharing the store (``ActivityFeed``), and
  claims and an election that hold across them (``SharedStore``).

Truth is what a store has committed. A store may keep caches of what it wrote, but only behind
this contract: a cache never answers what the truth would not, a failed commit empties it, and
it can be switched off (``SqliteStore(cache=False)``), so the suite runs with and without.

The edges name only the part they use (``ActivityLog``, ``OutboundStore``); the app takes the
whole ``Store``.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from adapters.runtime.leadership import Leadership
from bot.errors import StoreError
from bot.locks import Locks
from bot.model import Handoff
from bot.ports import HandoffStore


class MetaStore(Protocol):
    """Small named values. One filed under a conversation is deleted with it by retention;
    one filed under none (``conversation_id=""``) is kept until overwritten."""

    async def get_meta(self, *, key: str) -> str | None: ...

    async def set_meta(self, *, key: str, value: str, conversation_id: str = "") -> None:
        """Keep ``value`` under ``key`` (replacing any), filed under ``conversation_id``."""

    async def set_meta_once(self, *, key: str, value: str, conversation_id: str = "") -> str:
        """Keep ``value`` unless ``key`` holds one already; returns the value kept."""


class ActivityLog(MetaStore, Protocol):
    """Per-conversation, append-only activity storage with integer watermarks, and the
    inbox's positions in it."""

    async def append_activity(
        self, *, conversation_id: str, activity: dict[str, Any], key: str = ""
    ) -> int:
        """Append; returns its seq (1, 2, ... per conversation; one rolled back is not reused).
        A ``key`` names one activity of the conversation: a store shared by several processes
        refuses a second with the same key (``SharedStore.append_once`` finds the first)."""

    async def recent_keys(self, *, conversation_id: str, limit: int) -> list[tuple[int, str]]:
        """``(seq, key)`` of the conversation's latest keyed activities, oldest first."""

    async def keyed_activity(self, *, conversation_id: str, key: str) -> int | None:
        """The first activity stored with ``key`` (a scan: for rare look-ups)."""

    async def activities_after(
        self, *, conversation_id: str, watermark: int, limit: int = 500
    ) -> list[tuple[int, dict[str, Any]]]: ...

    async def last_watermark(self, *, conversation_id: str) -> int: ...

    async def inbox_position(self, *, conversation_id: str) -> int: ...

    async def set_inbox_position(self, *, conversation_id: str, seq: int) -> None:
        """Move the position forward (never back)."""

    async def inbox_backlog(self) -> list[tuple[str, int]]:
        """Conversations with activities past their inbox position, each with its latest
        activity's seq."""

    async def flush(self) -> None:
        """Return once every write so far is durable."""


class OutboundStore(Protocol):
    """The Teams outbox: items queued durably per thread, delivered in order."""

    async def enqueue_outbound(self, *, thread_id: str, item: dict[str, Any]) -> int: ...

    async def outbound(
        self, *, thread_id: str, limit: int = 50
    ) -> list[tuple[int, dict[str, Any]]]: ...

    async def outbound_threads(self) -> list[tuple[str, int]]:
        """Threads with items queued, each with its oldest item's seq."""

    async def drop_outbound(self, *, seqs: list[int]) -> None: ...

    async def flush(self) -> None:
        """Return once every write so far is durable."""

    @property
    def failed_commits(self) -> int:
        """How many commits failed so far (what was written before one may be gone)."""


class Retention(Protocol):
    """Deleting what is old, in small steps between live traffic."""

    async def purge(
        self, *, before: datetime, keep: Container[str] = ...
    ) -> tuple[list[str], bool]:
        """One step: delete conversations created and idle since before ``before`` (no open
        handoff, not in ``keep``) with everything of theirs (transcript, handoffs, activities,
        inbox position, meta rows filed under them). Returns the deleted conversations, and
        whether this pass has looked at all of them."""

    async def forget_deliveries(self, *, before: datetime) -> bool:
        """One step: delete dedupe keys remembered before ``before``; True when none is left."""


class Reports(Protocol):
    """What ``app.py report`` reads."""

    async def handoffs_created(self, *, since: datetime, until: datetime) -> list[Handoff]:
        """Every handoff created at or after ``since`` and before ``until``, oldest first."""
        ...


class Durability(Protocol):
    """Acknowledged means committed: what a store promises about its writes."""

    # Called once commits work again after failures (workers waiting out a backoff).
    on_recovered: list[Callable[[], None]]

    @property
    def failing(self) -> StoreError | None:
        """The last commit's failure while no commit has worked since, else None."""

    @property
    def failed_commits(self) -> int:
        """How many commits failed since the store opened."""

    async def flush(self, *, reads: bool = True) -> None:
        """Return once this task's writes are committed; ``StoreError`` if any was rolled back.
        ``reads``: also wait for a pending commit this task only read from."""

    async def health(self) -> str | None:
        """None when the store works, else why not."""

    async def close(self) -> None: ...


@runtime_checkable
class ActivityFeed(Protocol):
    """Optional: tells this process of activities appended and committed by any process that
    shares the store, so sockets held here show what another instance appended.

    Only a store that several processes share implements it (PostgreSQL). Memory and SQLite
    do not: one process holds the whole store and every append passes through its own
    ``ConversationStreams``, so there is nothing to follow (the app follows a store only if
    it is an ``ActivityFeed``).

    A notification is a hint, never the data: it may be late, lost or repeated. This process's
    own appends and posts are not notified: it knows them (an append that raised may still
    have committed: the appender makes its readers look). Whoever follows re-reads the log by
    watermark."""

    def follow(
        self,
        *,
        on_append: Callable[[str, int], None],
        on_resync: Callable[[], None],
        on_queued: Callable[[str], None] | None = None,
    ) -> None:
        """From now on, ``on_append(conversation_id, seq)`` once another process's row commits,
        and ``on_queued(thread_id)`` once another process's post for a Teams thread does;
        ``on_resync()`` whenever notifications may have been missed (at the start, and after
        every reconnect): then everything followed must be re-read."""

    async def unfollow(self) -> None:
        """Stop following (no callback is made once this returns)."""


Claim = Literal["mine", "done", "taken"]


@runtime_checkable
class SharedStore(ActivityFeed, Protocol):
    """Optional: a store several processes share (PostgreSQL), and what they need of it to act
    as one service: claims that hold across processes, and one leader among them.

    Memory and SQLite do not implement it: their process's memory (a conversation's recent
    keys, the Teams deliveries in flight) is the whole truth, and it leads alone."""

    async def append_once(
        self, *, conversation_id: str, activity: dict[str, Any], key: str
    ) -> tuple[int, bool]:
        """Append unless the conversation holds an activity stored with ``key`` already, decided
        in the appending transaction (so a client's retry that reaches another process is
        found); returns the seq, and whether it is new."""

    async def claim(self, *, key: str, now: datetime, lease: timedelta) -> Claim:
        """Claim a delivery (a Teams activity id) for handling: ``"mine"`` for the one caller
        that may handle it (the key is new, or claimed and never done by a claimer that went
        down: known gone, or claimed ``lease`` or more before ``now``); ``"done"`` once it was
        handled (``remember``); ``"taken"`` while another caller's claim stands."""

    async def release(self, *, key: str) -> None:
        """Give up a claim whose handling failed, so a redelivery is handled."""

    async def recent_sends(self, *, thread_id: str = "", within: float) -> list[float]:
        """How many seconds ago (by the store's clock) posts were sent into ``thread_id`` (any
        thread: "") within the last ``within`` seconds, oldest first: a new leader's Teams rate
        windows start from what its predecessor sent (each noted when its row was dropped)."""

    def conversation_locks(self) -> Locks:
        """Per-conversation locks that hold across the processes sharing the store."""

    def leadership(self, holder: str) -> Leadership:
        """An election among the processes sharing the store (``holder``: who this one is,
        for the logs)."""


class Store(HandoffStore, ActivityLog, OutboundStore, Retention, Reports, Durability, Protocol):
    """Everything a store does."""

    async def flush(self, *, reads: bool = True) -> None: ...

    @property
    def failed_commits(self) -> int: ...
