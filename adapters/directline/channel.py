"""A self-hosted Direct Line 3.0 channel for the website widget.

Speaks the protocol the official Web Chat and ``botframework-directlinejs`` use, under
``/v3/directline``: tokens, conversations, activities with watermarks, and a WebSocket stream
that replays everything after the client's watermark on (re)connect. Activities are stored
before they are acknowledged, so a restart or a reconnect loses nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from adapters.directline import meta_keys
from adapters.directline.tokens import Grant, TokenError, TokenSigner
from adapters.runtime import jsonio
from adapters.runtime.clock import iso, utc_now
from adapters.runtime.failures import FAILURES, REFUSALS, bounded, clip
from adapters.runtime.workers import KeyedWorkers
from adapters.web.bodies import BodyBrokenError, BodyTooLargeError, BodyTooSlowError, read_body
from adapters.web.proxies import Proxies, is_loopback
from adapters.web.ratelimit import TokenBuckets, client_key, retry_after
from bot.config import Rate
from bot.errors import (
    HandoffError,
    StaleWriteError,
    StoreError,
    UnknownConversationError,
)
from bot.locks import KeyedLocks
from bot.model import Role
from bot.ports import Choice, Sender
from bot.usecases import HandoffService, UpstreamTurn

log = logging.getLogger(__name__)

PREFIX = "/v3/directline"
CHANNEL_ID = "directline"
MAX_BODY_BYTES = 256 * 1024
KEEPALIVE_SECONDS = 20.0
RECENT_KEYS = 64  # per conversation: client retries and Teams edits are looked up in memory
INBOX_BATCH = 500  # activities read at a time
# Process crashes while handling one visitor activity before it is quarantined (a handler that
# raises is quarantined at once: what it did before raising cannot be taken back, and doing it
# again would repeat it).
MAX_CRASHES = 3
# Rows waiting for a socket whose reader has stopped reading: past this, the socket is dropped
# (the widget reconnects and replays from its watermark) instead of buffering without end.
MAX_PENDING_ROWS = 1_000
MAX_WATERMARK_DIGITS = 18  # fits SQLite's 64-bit integers
# Stream URLs carry a token that only opens that conversation's stream, for this long (a client
# asks for a fresh stream URL on every reconnect).
STREAM_TOKEN_SECONDS = 300
# Pings when the client has been silent this long; no pong within half of it closes the socket.
HEARTBEAT_SECONDS = 30.0
# A frame the client does not take within this many keep-alive ticks (of KEEPALIVE_SECONDS/2)
# drops the socket: one that stopped reading (a browser's own pings keep it "alive").
SEND_TICKS = 3
# What one answer holds, so that no reader (a slow one, many at once) costs much memory: frames
# of the stream and pages of GET /activities, by bytes; rows read from the store at a time.
FRAME_BYTES = 256 * 1024
REPLAY_ROWS = 100
READ_BYTES = 1024 * 1024
READ_ROWS = 100
READ_RATE = Rate(per_minute=120, burst=30)  # GET /activities per conversation (polling: 60/min)
# A visitor's activity may store this much besides its text (at most 6 bytes a character, as
# JSON escapes); a server with the widget secret MAX_BODY_BYTES, for an upstream transcript.
MAX_VISITOR_ACTIVITY_BYTES = 32 * 1024
SOCKETS_PER_CONVERSATION = 8  # open streams of one conversation (tabs, devices)
TYPING_RATE = Rate(per_minute=60, burst=10)  # per conversation; typing is shown, never stored
TEAMS_PER_SECOND = 2.0  # what one Teams thread takes, sustained (60 in 30 s)
SLOW_DOWN_AGAIN = timedelta(minutes=1)  # a visitor told to slow down is told again after this
RECENT_CONVERSATIONS = 10_000  # conversations whose recent keys are kept (then started over)
ACCEPTED_TYPES = frozenset({"message", "typing", "event", "endOfConversation"})


class ActivityLog(Protocol):
    """Per-conversation, append-only activity storage with integer watermarks."""

    async def append_activity(
        self, *, conversation_id: str, activity: dict[str, Any], key: str = ""
    ) -> int: ...

    async def recent_keys(self, *, conversation_id: str, limit: int) -> list[tuple[int, str]]:
        """``(seq, key)`` of the conversation's latest keyed activities, oldest first."""

    async def keyed_activity(self, *, conversation_id: str, key: str) -> int | None:
        """The first activity stored with ``key`` (a scan: for rare look-ups)."""

    async def activities_after(
        self, *, conversation_id: str, watermark: int, limit: int = 500
    ) -> list[tuple[int, dict[str, Any]]]: ...

    async def last_watermark(self, *, conversation_id: str) -> int: ...

    async def get_meta(self, *, key: str) -> str | None: ...

    async def set_meta(self, *, key: str, value: str) -> None: ...

    async def set_meta_once(self, *, key: str, value: str) -> str: ...

    async def inbox_position(self, *, conversation_id: str) -> int: ...

    async def set_inbox_position(self, *, conversation_id: str, seq: int) -> None: ...

    async def inbox_backlog(self) -> list[str]: ...

    async def flush(self) -> None:
        """Return once every write so far is durable."""


class DirectLineError(web.HTTPException):
    """A Direct Line error response: ``{"error": {"code", "message"}}`` with a 4xx status."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status
        body = json.dumps({"error": {"code": code, "message": message}})
        super().__init__(text=body, content_type="application/json", headers=headers)


def _too_many(wait: float, message: str) -> DirectLineError:
    return DirectLineError(
        429, "TooManyRequests", message, headers={"Retry-After": retry_after(wait)}
    )


_AIOHTTP_CODES = {404: "NotFound", 405: "MethodNotAllowed", 413: "MessageSizeTooBig"}


def _activity_id(conversation_id: str, seq: int) -> str:
    return f"{conversation_id}|{seq:07d}"


def _with_id(conversation_id: str, seq: int, activity: dict[str, Any]) -> dict[str, Any]:
    return {**activity, "id": _activity_id(conversation_id, seq)}


def _is_loopback_origin(origin: str) -> bool:
    return is_loopback(urlsplit(origin).hostname or "")


_CLOSED = -1  # queue sentinel: the socket closed
_EPHEMERAL = -2  # a row that is shown, never stored: a visitor's typing (its id is its own)


class _Subscriber:
    """One open socket's view of its conversation: rows to send, and a wake-up for its writer.

    No task or timer per wait: keep-alives come from one ticker for every socket."""

    __slots__ = ("_rows", "_waiter", "busy", "idle_ticks", "on_overflow", "send_ticks", "sending")

    def __init__(self) -> None:
        self._rows: list[tuple[int, dict[str, Any]]] = []
        self._waiter: asyncio.Future[None] | None = None
        self.busy = False  # something was sent since the last keep-alive tick
        self.idle_ticks = 0  # keep-alive ticks in a row with nothing sent
        self.on_overflow: Callable[[], None] | None = None  # drops the connection
        # A frame is being written, and for how many ticks: a watchdog, with no timer per send.
        self.sending = False
        self.send_ticks = 0

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def push(self, row: tuple[int, dict[str, Any]]) -> None:
        self._rows.append(row)
        self.busy = True
        self._wake()
        if len(self._rows) > MAX_PENDING_ROWS and self.on_overflow is not None:
            self._rows = [(_CLOSED, {})]
            self.on_overflow()

    def tick(self) -> None:
        """A keep-alive period passed: an idle socket's writer wakes with nothing to send."""
        if self.sending:
            self.send_ticks += 1
            if self.send_ticks >= SEND_TICKS and self.on_overflow is not None:
                self.on_overflow()  # the send fails, and the writer ends
        if self.busy:
            self.idle_ticks = 0
        else:
            self.idle_ticks += 1
            self._wake()
        self.busy = False

    async def next(self) -> list[tuple[int, dict[str, Any]]]:
        """What arrived since the last call; empty when it is time for a keep-alive."""
        if not self._rows:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        rows, self._rows = self._rows, []
        return rows


class ConversationStreams:
    """Stored, ordered activity streams per conversation, fanned out to open sockets.

    Implements the domain's ``VisitorGateway``: what the bot or a specialist says is stored
    first (so a reconnect replays it) and then pushed to every socket of the conversation.
    """

    def __init__(self, log_store: ActivityLog, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = log_store
        self._clock = clock
        self._subscribers: dict[str, set[_Subscriber]] = {}
        self._ticker: asyncio.Task[None] | None = None
        # conversation -> its latest keys (client activity ids, Teams message ids) -> activity id
        self._recent: dict[str, dict[str, str]] = {}
        self._locks = KeyedLocks()
        # Told of every activity once committed, in the log's order (the inbox).
        self.on_committed: Callable[[str, int, dict[str, Any]], None] | None = None

    def subscribe(self, cid: str) -> _Subscriber:
        subscriber = _Subscriber()
        self._subscribers.setdefault(cid, set()).add(subscriber)
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._keepalive(), name="directline-keepalive")
        return subscriber

    async def _keepalive(self) -> None:
        """Sockets that sent nothing for half of ``KEEPALIVE_SECONDS`` send a keep-alive, so no
        socket stays silent for longer than ``KEEPALIVE_SECONDS``."""
        while self._subscribers:
            await asyncio.sleep(KEEPALIVE_SECONDS / 2)
            for subscribers in list(self._subscribers.values()):
                for subscriber in subscribers:
                    subscriber.tick()

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)

    def echo(self, cid: str, activity: dict[str, Any]) -> None:
        """Show an activity on the conversation's open sockets without storing it."""
        for subscriber in self._subscribers.get(cid, ()):
            subscriber.push((_EPHEMERAL, activity))

    def connected(self) -> frozenset[str]:
        """Conversations a widget has a socket open on."""
        return frozenset(self._subscribers)

    def sockets_of(self, cid: str) -> set[_Subscriber]:
        """The conversation's open sockets (their subscriptions)."""
        return self._subscribers.get(cid) or set()

    def forget(self, cids: Iterable[str]) -> None:
        """Retention deleted these conversations: drop what memory holds of them."""
        for cid in cids:
            self._recent.pop(cid, None)

    def unsubscribe(self, cid: str, subscriber: _Subscriber) -> None:
        subscribers = self._subscribers.get(cid)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[cid]

    async def _recent_keys(self, cid: str) -> dict[str, str]:
        recent = self._recent.get(cid)
        if recent is None:
            if len(self._recent) >= RECENT_CONVERSATIONS:
                self._recent.clear()
            rows = await self.store.recent_keys(conversation_id=cid, limit=RECENT_KEYS)
            recent = self._recent[cid] = {key: _activity_id(cid, seq) for seq, key in rows}
        return recent

    async def append(
        self, cid: str, activity: dict[str, Any], key: str = ""
    ) -> tuple[str, int | None]:
        """Append once per ``key`` among the conversation's latest ``RECENT_KEYS`` keyed
        activities (a client's retry comes within seconds); returns the activity id and, if
        it is new, its (committed) place in the log. The key is stored with the activity: no
        index or table of its own to write on every message.

        Stored and committed first, then fanned out to the open sockets, all under the
        conversation's lock so every socket sees the log's order."""
        async with self._locks.hold(cid):
            recent = await self._recent_keys(cid) if key else {}
            if key in recent:
                return recent[key], None
            seq = await self.store.append_activity(conversation_id=cid, activity=activity, key=key)
            activity_id = _activity_id(cid, seq)
            try:
                await self.store.flush()
            except Exception:
                self._recent.pop(cid, None)  # what it held may have been rolled back
                raise
            if key:
                recent[key] = activity_id
                if len(recent) > RECENT_KEYS:
                    del recent[next(iter(recent))]
            for subscriber in self._subscribers.get(cid, ()):
                subscriber.push((seq, activity))
            if self.on_committed is not None:
                self.on_committed(cid, seq, activity)
            return activity_id, seq

    def _outbound(self, cid: str, sender: Sender) -> dict[str, Any]:
        return {
            "timestamp": iso(self._clock()),
            "channelId": CHANNEL_ID,
            "conversation": {"id": cid},
            "from": {"id": f"{sender.role.value}:{sender.id}", "name": sender.name, "role": "bot"},
            "channelData": {"handoff": {"senderRole": sender.role.value}},
        }

    async def say(self, *, conversation_id: str, sender: Sender, text: str, ref: str = "") -> None:
        activity = {
            "type": "message",
            "text": text,
            "textFormat": "plain",
            **self._outbound(conversation_id, sender),
        }
        # The Teams message id goes with it, for the message's edits and deletion.
        await self.append(conversation_id, activity, key=f"teams:{ref}" if ref else "")

    async def _original(self, cid: str, ref: str) -> str | None:
        """The widget activity a Teams message became (edits usually follow soon: memory)."""
        key = f"teams:{ref}"
        recent = await self._recent_keys(cid)
        if key in recent:
            return recent[key]
        seq = await self.store.keyed_activity(conversation_id=cid, key=key)
        if seq is not None:
            return _activity_id(cid, seq)
        # Relayed before keys were stored with activities.
        return await self.store.get_meta(key=f"{meta_keys.REF}:{cid}:{ref}")

    async def amend(
        self, *, conversation_id: str, sender: Sender, ref: str, text: str | None
    ) -> bool:
        original = await self._original(conversation_id, ref)
        if original is None:
            return False
        # Bot Framework's own activity types; replyToId names the message they change.
        activity: dict[str, Any] = {
            "type": "messageDelete" if text is None else "messageUpdate",
            "replyToId": original,
            **self._outbound(conversation_id, sender),
        }
        if text is not None:
            activity.update(text=text, textFormat="plain")
        await self.append(conversation_id, activity)
        return True

    async def offer(
        self, *, conversation_id: str, sender: Sender, text: str, choices: Sequence[Choice]
    ) -> None:
        # Direct Line suggestedActions: Web Chat renders them as buttons; messageBack sends the
        # text (shown as the visitor's message) together with the value.
        actions = [
            {
                "type": "messageBack",
                "title": c.title,
                "text": c.text,
                "displayText": c.text,
                "value": dict(c.value),
            }
            for c in choices
        ]
        activity = {
            "type": "message",
            "text": text,
            "textFormat": "plain",
            "suggestedActions": {"actions": actions},
            **self._outbound(conversation_id, sender),
        }
        await self.append(conversation_id, activity)

    async def status(self, *, conversation_id: str, sender: Sender, state: str, text: str) -> None:
        activity = {
            "type": "event",
            "name": "handoff.status",
            "value": {"state": state, "message": text},
            **self._outbound(conversation_id, sender),
        }
        await self.append(conversation_id, activity)


def _pack(
    cid: str, rows: list[tuple[int, dict[str, Any]]], watermark: int, limit: int
) -> list[tuple[list[str], int]]:
    """Rows as serialized activities, in frames of at most about ``limit`` bytes (one row at
    least), each with the watermark it reaches: a large backlog never becomes one huge string."""
    frames: list[tuple[list[str], int]] = []
    parts: list[str] = []
    size = 0
    for seq, activity in rows:
        part = jsonio.dumps(activity if seq == _EPHEMERAL else _with_id(cid, seq, activity))
        if parts and size + len(part) > limit:
            frames.append((parts, watermark))
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 1
        if seq != _EPHEMERAL:
            watermark = seq
    if parts:
        frames.append((parts, watermark))
    return frames


def _frame(parts: list[str], watermark: int) -> str:
    """An ActivitySet of already serialized activities."""
    return '{"activities":[' + ",".join(parts) + '],"watermark":"' + str(watermark) + '"}'


def _from_visitor(activity: dict[str, Any]) -> bool:
    sender = activity.get("from")
    return isinstance(sender, dict) and sender.get("role") == "user"


def _drop_through(rows: list[tuple[int, dict[str, Any]]], position: int) -> int:
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
    ) -> None:
        self._store = store
        self._handle = handle
        self._quarantined = quarantined  # tells the visitor that a message of theirs failed
        self._clock = clock
        self._workers = KeyedWorkers(self._drain_once, "inbox")
        # conversation -> how far it was handled, as last written: only the inbox writes it
        self._positions: dict[str, int] = {}
        # conversation -> the activities committed since (all of them, in the log's order)
        self._fresh: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        # Conversations with a backlog at start: handled row by row, each attempt recorded
        # before it is made, since what they were handling may be what took the process down.
        self._careful: set[str] = set()

    def kick(self, cid: str) -> None:
        self._workers.kick(cid)

    def retry_now(self) -> None:
        """The store works again: conversations waiting to retry go now."""
        self._workers.retry_now()

    def forget(self, cids: Iterable[str]) -> None:
        """Retention deleted these conversations (each handled to its end, since idle)."""
        for cid in cids:
            self._positions.pop(cid, None)
            self._fresh.pop(cid, None)

    def appended(self, cid: str, seq: int, activity: dict[str, Any]) -> None:
        """An activity of the conversation's log was committed (called in the log's order)."""
        fresh = self._fresh.get(cid)
        if fresh is None:
            if len(self._fresh) >= RECENT_CONVERSATIONS:
                self._fresh.clear()
            fresh = self._fresh[cid] = []
        fresh.append((seq, activity))
        if len(fresh) > INBOX_BATCH:
            del fresh[0]  # too far behind: the store has them

    def _handled(self, cid: str, position: int) -> None:
        """Memory keeps no row once handled (an event can be large)."""
        fresh = self._fresh.get(cid)
        if fresh is not None and not _drop_through(fresh, position):
            del self._fresh[cid]

    def _committed_rows(self, cid: str, position: int) -> list[tuple[int, dict[str, Any]]] | None:
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
        try:
            while True:
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
                for seq, activity in rows:
                    if _from_visitor(activity):
                        if careful and not await self._attempt(cid, seq):
                            continue  # quarantined: its position is already kept
                        await self._handle_once(cid, seq, activity)
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
        await self._store.set_meta(key=f"{meta_keys.QUARANTINED}:{cid}:{seq}", value=record)
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
        await self._store.set_meta(key=key, value=f"{seq}:{crashed + 1}")
        await self._store.flush()
        return True

    async def resume(self) -> None:
        """After a restart: pick up what was stored but not handled, carefully (one activity at
        a time, each attempt recorded before it is made): an activity that took the process
        down ``MAX_CRASHES`` times is quarantined instead of crashing it once more."""
        for cid in await self._store.inbox_backlog():
            self._careful.add(cid)
            self.kick(cid)

    async def drain(self) -> None:
        await self._workers.drain()


class DirectLineChannel:
    """The Direct Line 3.0 HTTP and WebSocket endpoints."""

    def __init__(
        self,
        *,
        service: HandoffService,
        streams: ConversationStreams,
        signer: TokenSigner,
        widget_secret: str,
        local_mode: bool,
        clock: Callable[[], datetime] = utc_now,
        proxies: Proxies | None = None,
        teams_backlog: Callable[[str], int] | None = None,
    ) -> None:
        self._service = service
        self._streams = streams
        self._proxies = proxies or Proxies(lambda: service.settings.server.trusted_proxies)
        self._buckets = TokenBuckets()
        self._told_to_slow_down: dict[str, datetime] = {}  # conversation -> when
        # thread id -> messages waiting for it (the Teams delivery queue)
        self._teams_backlog = teams_backlog
        self._log = streams.store
        self._signer = signer
        self._widget_secret = widget_secret
        self._local = local_mode
        self._clock = clock
        self._sockets: set[web.WebSocketResponse] = set()
        self.inbox = Inbox(streams.store, self.dispatch, self._message_failed, clock)
        streams.on_committed = self.inbox.appended

    # ---- wiring ----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(f"{PREFIX}/tokens/generate", self.generate_token)
        app.router.add_post(f"{PREFIX}/tokens/refresh", self.refresh_token)
        app.router.add_post(f"{PREFIX}/conversations", self.start_conversation)
        app.router.add_get(f"{PREFIX}/conversations/{{cid}}", self.reconnect)
        app.router.add_post(f"{PREFIX}/conversations/{{cid}}/activities", self.post_activity)
        app.router.add_get(f"{PREFIX}/conversations/{{cid}}/activities", self.get_activities)
        app.router.add_get(f"{PREFIX}/conversations/{{cid}}/stream", self.stream)
        app.router.add_post(f"{PREFIX}/conversations/{{cid}}/upload", self.upload)

    def connected(self) -> frozenset[str]:
        """Conversations a widget has a socket open on: retention keeps them."""
        return self._streams.connected()

    def forget(self, cids: Sequence[str]) -> None:
        """Retention deleted these conversations."""
        self._streams.forget(cids)
        self.inbox.forget(cids)

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutdown")
        await self._streams.close()

    # ---- CORS ------------------------------------------------------------------------------

    def origin_allowed(self, origin: str) -> bool:
        if not origin:
            return False
        allowed = self._service.settings.widget.allowed_origins
        if origin.rstrip("/") in (o.rstrip("/") for o in allowed) or "*" in allowed:
            return True
        return self._local and _is_loopback_origin(origin)

    @web.middleware
    async def cors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith(PREFIX):
            return await handler(request)
        origin = request.headers.get("Origin", "")
        cors = self.origin_allowed(origin)
        if request.method == "OPTIONS" and cors:
            response: web.StreamResponse = web.Response(status=204)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if not isinstance(exc, DirectLineError) and exc.status >= 400:
                    # aiohttp's own (no such route, wrong method...): in the channel's shape.
                    allow = exc.headers.get("Allow")
                    exc = DirectLineError(
                        exc.status, _AIOHTTP_CODES.get(exc.status, "BadArgument"), exc.reason
                    )
                    if allow:
                        exc.headers["Allow"] = allow
                # The path names the conversation; the body says why (never a secret).
                REFUSALS.log(
                    log,
                    logging.INFO,
                    ("refused", request.method, exc.status, exc.text),
                    "%s %s refused: %d %s",
                    request.method,
                    clip(request.path),
                    exc.status,
                    exc.text,
                )
                response = exc
        # Whether allowed or not, the answer depends on the Origin: caches must keep them apart.
        response.headers["Vary"] = "Origin"
        if cors:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, x-ms-bot-agent, x-requested-with"
            )
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Max-Age"] = "600"
        if isinstance(response, web.HTTPException):
            raise response
        return response

    # ---- auth ------------------------------------------------------------------------------

    def _bearer(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return ""
        if not value.isascii():
            raise DirectLineError(403, "BadToken", "the token is not valid (not ASCII)")
        return value.strip()

    def _is_widget_secret(self, value: str) -> bool:
        return bool(self._widget_secret) and hmac.compare_digest(
            value.encode(), self._widget_secret.encode()
        )

    def _grant(
        self, request: web.Request, token: str | None = None, *, stream: bool = False
    ) -> Grant:
        token = token if token is not None else self._bearer(request)
        if not token:
            raise DirectLineError(401, "Unauthorized", "send 'Authorization: Bearer <token>'")
        if self._is_widget_secret(token):
            if stream:
                raise DirectLineError(403, "BadToken", "the secret does not go in a stream URL")
            # Direct Line lets the secret do anything a token can, for any conversation.
            cid = request.match_info.get("cid", "")
            return Grant(cid, "", "", int(self._clock().timestamp()) + 3600, trusted=True)
        try:
            grant = self._signer.check(token, self._clock().timestamp())
        except TokenError as exc:
            if exc.expired:
                raise DirectLineError(
                    403, "TokenExpired", "the token has expired; get a new one"
                ) from exc
            raise DirectLineError(403, "BadToken", f"the token is not valid ({exc})") from exc
        if grant.stream != stream:
            what = "only opens a stream" if grant.stream else "does not go in a stream URL"
            raise DirectLineError(403, "BadToken", f"this token {what}")
        return grant

    def _conversation_grant(
        self, request: web.Request, token: str | None = None, *, stream: bool = False
    ) -> Grant:
        grant = self._grant(request, token, stream=stream)
        if grant.conversation_id != request.match_info["cid"]:
            REFUSALS.log(
                log,
                logging.WARNING,
                ("foreign token", grant.conversation_id),
                "token for %s used on conversation %s",
                grant.conversation_id,
                clip(request.match_info["cid"]),
            )
            raise DirectLineError(403, "Forbidden", "the token is not valid for this conversation")
        return grant

    def _issue(self, conversation_id: str, user_id: str, user_name: str) -> dict[str, Any]:
        ttl = self._service.settings.widget.token_ttl_seconds
        expires = int(self._clock().timestamp()) + ttl
        token = self._signer.issue(Grant(conversation_id, user_id, user_name, expires))
        return {"conversationId": conversation_id, "token": token, "expires_in": ttl}

    def _stream_url(self, request: web.Request, grant: Grant, watermark: str = "") -> str:
        """The conversation's stream, with a short-lived token that opens only that stream
        (never the conversation's token or the secret: URLs end up in logs)."""
        scheme = "wss" if self._proxies.scheme(request) == "https" else "ws"
        stream = self._signer.issue(
            Grant(
                grant.conversation_id,
                grant.user_id,
                grant.user_name,
                int(self._clock().timestamp()) + STREAM_TOKEN_SECONDS,
                stream=True,
            )
        )
        query = f"t={stream}" + (f"&watermark={watermark}" if watermark else "")
        return (
            f"{scheme}://{self._proxies.host(request)}{PREFIX}/conversations/"
            f"{grant.conversation_id}/stream?{query}"
        )

    # ---- tokens and conversations ------------------------------------------------------------

    async def _json_body(
        self, request: web.Request, *, optional: bool = False, limit: int = MAX_BODY_BYTES
    ) -> dict[str, Any]:
        deadline = self._service.settings.limits.body_timeout_seconds
        try:
            raw = await read_body(request, limit, deadline)
        except BodyTooLargeError as exc:
            raise DirectLineError(
                413, "MessageSizeTooBig", f"the body is over {limit:,} bytes"
            ) from exc
        except BodyTooSlowError as exc:
            raise DirectLineError(408, "Timeout", "the body did not arrive in time") from exc
        except BodyBrokenError as exc:
            raise DirectLineError(400, "BadArgument", "the body could not be read") from exc
        if not raw.strip() and optional:
            return {}
        try:
            body = jsonio.loads_text(raw)
        except jsonio.NestingError as exc:
            raise DirectLineError(
                400, "BadArgument", f"the body nests deeper than {jsonio.MAX_DEPTH} levels"
            ) from exc
        except (ValueError, UnicodeDecodeError) as exc:
            # The parser's own words name offsets and internals: the client gets a plain answer.
            raise DirectLineError(400, "BadArgument", "the body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise DirectLineError(400, "BadArgument", "the body must be a JSON object")
        return body

    def _limit_new_conversations(self, request: web.Request, origin: str) -> None:
        """Conversations started by browsers, per client address and per website (a site's
        own server, with the secret, speaks for many visitors and is not counted)."""
        limits = self._service.settings.limits
        client = self._proxies.client(request)
        wait = self._buckets.take(f"ip:{client_key(client)}", limits.conversations_per_ip)
        if not wait:
            wait = self._buckets.take(f"origin:{origin}", limits.conversations_per_origin)
        if wait:
            REFUSALS.log(
                log,
                logging.WARNING,
                ("new conversations", client, origin),
                "new conversations refused for %s (origin %r): too many",
                client,
                clip(origin),
            )
            raise _too_many(wait, "too many new conversations; try again shortly")

    def _limit_posts(self, cid: str, kind: str) -> None:
        if kind == "typing":
            wait = self._buckets.take(f"typing:{cid}", TYPING_RATE)
        else:
            rate = self._service.settings.limits.messages_per_conversation
            wait = self._buckets.take(f"conversation:{cid}", rate)
        if wait:
            REFUSALS.log(
                log,
                logging.INFO,
                ("posts", cid, kind),
                "conversation %s: a %s refused, too many",
                clip(cid),
                kind,
            )
            raise _too_many(wait, "too many messages at once; wait a moment")

    async def _limit_teams_backlog(self, cid: str) -> None:
        """A visitor who writes faster than Teams takes messages is asked to slow down (once a
        spell, on the stream) and refused until the thread's queue drains: never accepted and
        then left to wait for minutes, or dropped."""
        if self._teams_backlog is None:
            return
        thread = await self._service.open_thread(conversation_id=cid)
        if not thread:
            return
        waiting, cap = self._teams_backlog(thread), self._service.settings.limits.teams_backlog
        if waiting < cap:
            return
        now = self._clock()
        told = self._told_to_slow_down.get(cid)
        text = await self._service.too_fast(
            conversation_id=cid, now=now, tell=told is None or now - told > SLOW_DOWN_AGAIN
        )
        if told is None or now - told > SLOW_DOWN_AGAIN:
            if len(self._told_to_slow_down) >= RECENT_CONVERSATIONS:
                self._told_to_slow_down.clear()
            self._told_to_slow_down[cid] = now
        REFUSALS.log(
            log,
            logging.WARNING,
            ("backlog", cid),
            "conversation %s: %d message(s) wait for Teams; refused",
            cid,
            waiting,
        )
        raise _too_many((waiting - cap + 1) / TEAMS_PER_SECOND, text)

    def _new_user(self, body: dict[str, Any]) -> tuple[str, str]:
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        assert isinstance(user, dict)
        user_id = str(user.get("id") or f"dl_{secrets.token_urlsafe(12)}")[:128]
        return user_id, str(user.get("name") or "")[:128]

    async def generate_token(self, request: web.Request) -> web.Response:
        secret = self._bearer(request)
        origin = request.headers.get("Origin", "")
        if not (self._is_widget_secret(secret) or self.origin_allowed(origin)):
            REFUSALS.log(
                log,
                logging.WARNING,
                ("origin", origin),
                "token request refused (origin %r)",
                clip(origin),
            )
            raise DirectLineError(
                403, "Forbidden", "token requests need an allowed Origin or the widget secret"
            )
        if not self._is_widget_secret(secret):
            self._limit_new_conversations(request, origin)
        body = await self._json_body(request, optional=True)
        user_id, user_name = self._new_user(body)
        conversation_id = secrets.token_urlsafe(16)
        # As Direct Line does, the conversation exists from here on: a client may open the
        # stream (GET /conversations/{id}) without ever POSTing /conversations.
        await self._service.start_conversation(
            conversation_id=conversation_id, visitor_id=user_id, now=self._clock()
        )
        log.info("conversation %s started (token generated)", conversation_id)
        return jsonio.response(self._issue(conversation_id, user_id, user_name))

    async def refresh_token(self, request: web.Request) -> web.Response:
        grant = self._grant(request)
        if not grant.conversation_id:
            raise DirectLineError(
                400, "BadArgument", "refresh a conversation's token, not the widget secret"
            )
        return jsonio.response(self._issue(grant.conversation_id, grant.user_id, grant.user_name))

    async def start_conversation(self, request: web.Request) -> web.Response:
        bearer = self._bearer(request)
        if self._is_widget_secret(bearer):
            body = await self._json_body(request, optional=True)
            user_id, user_name = self._new_user(body)
            issued = self._issue(secrets.token_urlsafe(16), user_id, user_name)
            grant = self._signer.check(issued["token"], self._clock().timestamp())
            token = issued["token"]
        else:
            grant = self._grant(request)
            token = bearer
        cid = grant.conversation_id
        # start_conversation is idempotent (a generated token already started it); the status
        # says whether this is the first POST /conversations for it, as Direct Line does.
        await self._service.start_conversation(
            conversation_id=cid, visitor_id=grant.user_id, now=self._clock()
        )
        marker = f"{meta_keys.POSTED}:{cid}"
        existed = await self._log.get_meta(key=marker) is not None
        await self._log.set_meta_once(key=marker, value=iso(self._clock()))
        body = {
            "conversationId": cid,
            "token": token,
            "expires_in": max(0, grant.expires - int(self._clock().timestamp())),
            "streamUrl": self._stream_url(request, replace(grant, conversation_id=cid)),
            "referenceGrammarId": "",
        }
        return jsonio.response(body, status=200 if existed else 201)

    async def upload(self, request: web.Request) -> web.Response:
        self._conversation_grant(request)
        raise DirectLineError(415, "NotSupported", "file upload is not supported yet; send text")

    async def reconnect(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        grant = self._conversation_grant(request)
        if not await self._service.conversation_exists(conversation_id=cid):
            raise DirectLineError(404, "BadArgument", "conversation not found")
        token = self._bearer(request)
        if grant.trusted:
            # Called with the widget secret: answer with a token for this conversation, never
            # the secret itself (answers get logged and cached too).
            issued = self._issue(cid, grant.user_id, grant.user_name)
            token = issued["token"]
            grant = self._signer.check(token, self._clock().timestamp())
        watermark = request.query.get("watermark", "")
        if watermark:
            self._watermark(request)  # refused here, not by the stream it would go into
        return jsonio.response(
            {
                "conversationId": cid,
                "token": token,
                "expires_in": max(0, grant.expires - int(self._clock().timestamp())),
                "streamUrl": self._stream_url(
                    request, replace(grant, conversation_id=cid), watermark
                ),
            }
        )

    # ---- activities ------------------------------------------------------------------------

    def _watermark(self, request: web.Request) -> int:
        raw = request.query.get("watermark", "") or "0"
        if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_WATERMARK_DIGITS:
            raise DirectLineError(400, "BadArgument", "watermark must be a number")
        return int(raw)

    async def get_activities(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        self._conversation_grant(request)
        watermark = self._watermark(request)
        if not await self._service.conversation_exists(conversation_id=cid):
            raise DirectLineError(404, "BadArgument", "conversation not found")
        wait = self._buckets.take(f"reads:{cid}", READ_RATE)
        if wait:
            raise _too_many(wait, "too many reads; use the stream, or poll less often")
        rows = await self._log.activities_after(
            conversation_id=cid, watermark=watermark, limit=READ_ROWS
        )
        if not rows:
            last = await self._not_past_the_end(cid, watermark)
            return jsonio.response({"activities": [], "watermark": str(last)})
        await self._log.flush()  # never show a row a failed commit could take back
        # One page of at most about READ_BYTES: the client asks again from its watermark.
        parts, last = _pack(cid, rows, watermark, READ_BYTES)[0]
        return web.Response(text=_frame(parts, last), content_type="application/json")

    def _validate(self, body: dict[str, Any]) -> str:
        kind = body.get("type")
        if not isinstance(kind, str) or kind not in ACCEPTED_TYPES:
            raise DirectLineError(
                400,
                "BadArgument",
                f"activity type must be one of {', '.join(sorted(ACCEPTED_TYPES))}",
            )
        text = body.get("text", "")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise DirectLineError(400, "BadArgument", "text must be a string")
        limit = self._service.settings.widget.max_message_chars
        if len(text) > limit:
            raise DirectLineError(
                413,
                "MessageSizeTooBig",
                f"the message is {len(text)} characters; the limit is {limit}",
            )
        if kind == "message" and not text.strip():
            raise DirectLineError(
                400, "BadArgument", "a message needs text (attachments are not supported yet)"
            )
        if kind == "event" and not isinstance(body.get("name"), str):
            raise DirectLineError(400, "BadArgument", "an event needs a name")
        return str(kind)

    async def post_activity(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        grant = self._conversation_grant(request)
        # All of it is kept (and replayed): a browser's activity is small; an upstream agent's
        # (with the secret) may carry a transcript.
        chars = self._service.settings.widget.max_message_chars
        limit = MAX_BODY_BYTES if grant.trusted else MAX_VISITOR_ACTIVITY_BYTES + 6 * chars
        body = await self._json_body(request, limit=limit)
        kind = self._validate(body)
        if kind == "event" and body.get("name") == "handoff.initiate" and not grant.trusted:
            # It sets the card's transcript and reason: only an upstream agent may send it.
            raise DirectLineError(
                403, "Forbidden", "handoff.initiate must be sent with the widget secret"
            )
        self._limit_posts(cid, kind)
        if not await self._service.conversation_exists(conversation_id=cid):
            raise DirectLineError(404, "BadArgument", "conversation not found; start it first")
        if kind == "message":
            await self._limit_teams_backlog(cid)
        now = self._clock()
        channel_data = body.get("channelData") if isinstance(body.get("channelData"), dict) else {}
        assert isinstance(channel_data, dict)
        client_id = str(channel_data.get("clientActivityID") or body.get("id") or "")[:128]
        sender = body.get("from") if isinstance(body.get("from"), dict) else {}
        assert isinstance(sender, dict)
        activity: dict[str, Any] = {
            key: body[key]
            for key in (
                "type",
                "text",
                "name",
                "value",
                "attachments",
                "locale",
                "textFormat",
                "channelData",
                "entities",
            )
            if key in body
        }
        activity.update(
            {
                "timestamp": iso(now),
                "channelId": CHANNEL_ID,
                "conversation": {"id": cid},
                "from": {
                    "id": grant.user_id or str(sender.get("id") or "server")[:128],
                    "name": str(sender.get("name") or grant.user_name)[:128],
                    "role": "user",
                },
            }
        )
        if kind == "typing":
            # Ephemeral: echoed to the conversation's open sockets, never stored or replayed.
            activity["id"] = f"{cid}|typing-{secrets.token_hex(4)}"
            self._streams.echo(cid, activity)
            return jsonio.response({"id": activity["id"]})
        key = f"client:{client_id}" if client_id else ""
        activity_id, seq = await self._streams.append(cid, activity, key)
        if seq is None:
            log.info("conversation %s: duplicate activity %s dropped", cid, client_id)
            return jsonio.response({"id": activity_id})
        # Stored and echoed: acknowledge now; the inbox handles it in order, even after a crash.
        self.inbox.kick(cid)
        return jsonio.response({"id": activity_id})

    async def _message_failed(self, cid: str) -> None:
        await self._service.message_failed(conversation_id=cid, now=self._clock())

    async def dispatch(self, cid: str, activity: dict[str, Any]) -> None:
        """Hand one stored visitor activity to the domain."""
        service = self._service
        kind = str(activity.get("type", ""))
        now = self._clock()
        name = activity.get("name", "")
        value = activity.get("value")
        try:
            chosen = _chosen_route(value)
            if kind == "message" and chosen is not None:
                await service.request_handoff(conversation_id=cid, category=chosen, now=now)
            elif kind == "message":
                await service.visitor_message(
                    conversation_id=cid, text=activity.get("text") or "", now=now
                )
            elif kind == "endOfConversation" or (kind == "event" and name == "handoff.end"):
                await service.visitor_ends(conversation_id=cid, now=now, explicit=kind == "event")
            elif kind == "event" and name == "visitor.context" and isinstance(value, dict):
                await service.visitor_context(conversation_id=cid, context=value, now=now)
            elif kind == "event" and name == "handoff.request":
                category = value.get("category", "") if isinstance(value, dict) else ""
                await service.request_handoff(conversation_id=cid, category=str(category), now=now)
            elif kind == "event" and name == "handoff.initiate":
                context = value if isinstance(value, dict) else {}
                await service.initiate_handoff(
                    conversation_id=cid,
                    context=context,
                    transcript=upstream_transcript(activity, now),
                    now=now,
                )
        except UnknownConversationError:
            log.warning("conversation %s: activity for an unknown conversation", cid)
        except HandoffError as exc:
            if isinstance(exc, StoreError) and not isinstance(exc, StaleWriteError):
                raise  # not saved: the inbox handles it again
            log.exception("conversation %s: could not handle a %s activity", cid, kind)

    # ---- the stream ------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        cid = request.match_info["cid"]
        in_url = request.query.get("t")
        if in_url is not None:
            self._conversation_grant(request, in_url, stream=True)  # a stream token only
        else:
            self._conversation_grant(request)  # a header may carry the conversation's token
        watermark = self._watermark(request)
        if not await self._service.conversation_exists(conversation_id=cid):
            raise DirectLineError(404, "BadArgument", "conversation not found")
        idle_ticks = (
            self._service.settings.limits.websocket_idle_minutes * 60 / (KEEPALIVE_SECONDS / 2)
        )
        if len(self._streams.sockets_of(cid)) >= SOCKETS_PER_CONVERSATION:
            raise DirectLineError(
                429,
                "TooManyRequests",
                f"at most {SOCKETS_PER_CONVERSATION} streams per conversation are open at once",
                headers={"Retry-After": "5"},
            )
        # Pings find a peer that is gone or no longer reads (a browser answers them itself).
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=64 * 1024)
        await ws.prepare(request)
        self._sockets.add(ws)
        subscriber = self._streams.subscribe(cid)
        transport = request.transport
        if transport is not None:
            subscriber.on_overflow = transport.abort  # unblocks a send the reader never takes
        reader = asyncio.create_task(self._read_client(ws, subscriber))
        close_code = WSCloseCode.OK
        try:
            sent = watermark
            while True:
                rows = await self._log.activities_after(
                    conversation_id=cid, watermark=sent, limit=REPLAY_ROWS
                )
                if not rows:
                    if sent == watermark and watermark:
                        sent = await self._not_past_the_end(cid, watermark)
                    break
                await self._log.flush()  # never show a row a failed commit could take back
                sent = await self._send(ws, subscriber, cid, rows, sent)
            while not ws.closed:
                batch = await subscriber.next()
                if not batch:
                    if subscriber.idle_ticks >= idle_ticks:
                        # Nothing either way for long: the widget reconnects when next used.
                        close_code = WSCloseCode.OK
                        await ws.close(code=close_code, message=b"idle")
                        break
                    await self._write(ws, subscriber, "")  # keep-alive, as Direct Line does
                    continue
                if any(seq == _CLOSED for seq, _ in batch):
                    break
                batch = [row for row in batch if row[0] > sent or row[0] == _EPHEMERAL]
                if batch:
                    sent = await self._send(ws, subscriber, cid, batch, sent)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the widget went away, or stopped reading and was dropped: it reconnects
        except StoreError as exc:
            # 1011: the server failed; the widget reconnects and replays from its watermark.
            log.warning("conversation %s: stream closed, the store failed: %s", cid, exc)
            close_code = WSCloseCode.INTERNAL_ERROR
        finally:
            reader.cancel()
            self._streams.unsubscribe(cid, subscriber)
            self._sockets.discard(ws)
            await ws.close(code=close_code)
        return ws

    async def _not_past_the_end(self, cid: str, watermark: int) -> int:
        """A watermark no further than the log goes: one from before the conversation was
        deleted and started again (or made up) must not hide what comes next."""
        return min(watermark, await self._log.last_watermark(conversation_id=cid))

    async def _send(
        self,
        ws: web.WebSocketResponse,
        subscriber: _Subscriber,
        cid: str,
        rows: list[tuple[int, dict[str, Any]]],
        watermark: int,
    ) -> int:
        """Frames of at most about ``FRAME_BYTES`` each; returns the watermark of the last
        (ephemeral rows do not move it)."""
        for parts, reached in _pack(cid, rows, watermark, FRAME_BYTES):
            await self._write(ws, subscriber, _frame(parts, reached))
            watermark = reached
        return watermark

    @staticmethod
    async def _write(ws: web.WebSocketResponse, subscriber: _Subscriber, text: str) -> None:
        """Send one frame, watched: one the client takes no part of for ``SEND_TICKS`` ticks
        drops the connection (the widget reconnects and replays)."""
        subscriber.sending = True
        try:
            await ws.send_str(text)
        finally:
            subscriber.sending = False
            subscriber.send_ticks = 0

    async def _read_client(self, ws: web.WebSocketResponse, subscriber: _Subscriber) -> None:
        """Clients only send pings; reading notices the close, which then stops the writer."""
        async for message in ws:
            if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
        subscriber.push((_CLOSED, {}))


def _chosen_route(value: Any) -> str | None:
    """The route a visitor picked from the "which team" buttons, if this message is that."""
    handoff = value.get("handoff") if isinstance(value, dict) else None
    route = handoff.get("route") if isinstance(handoff, dict) else None
    return str(route)[:64] if isinstance(route, str) and route else None


def upstream_transcript(activity: dict[str, Any], now: datetime) -> list[UpstreamTurn]:
    """Turns from a ``handoff.initiate`` transcript attachment (Bot Framework handoff protocol)."""
    turns: list[UpstreamTurn] = []
    for attachment in activity.get("attachments") or []:
        if not isinstance(attachment, dict):
            continue
        content = attachment.get("content")
        items = content.get("activities") if isinstance(content, dict) else None
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or item.get("type") != "message" or not item.get("text"):
                continue
            sender = item.get("from") if isinstance(item.get("from"), dict) else {}
            assert isinstance(sender, dict)
            role = Role.VISITOR if sender.get("role") == "user" else Role.BOT
            try:
                at = datetime.fromisoformat(str(item.get("timestamp")).replace("Z", "+00:00"))
                if at.tzinfo is None:
                    at = now
            except ValueError:
                at = now
            turns.append(
                UpstreamTurn(
                    role,
                    str(sender.get("name") or role.value),
                    str(item["text"])[:4000],
                    min(at, now),
                )
            )
    return turns
