"""The stream's WebSockets: each replays its conversation from the client's watermark, then
follows it; one keep-alive ticker watches them all (idle, heartbeat, a send nobody takes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web

from adapters.directline.protocol import EPHEMERAL, DirectLineError, Row, frame, pack
from adapters.storage.contract import ActivityLog
from bot.errors import StoreError

if TYPE_CHECKING:
    from adapters.directline.streams import ConversationStreams


log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 20.0
# Pings when the client has been silent this long; no pong within half of it closes the socket.
HEARTBEAT_SECONDS = 30.0
# A frame the client does not take within this many keep-alive ticks (of KEEPALIVE_SECONDS/2)
# drops the socket: one that stopped reading (a browser's own pings keep it "alive").
SEND_TICKS = 3
# Rows waiting for a socket whose reader has stopped reading: past this, the socket is dropped
# (the widget reconnects and replays from its watermark) instead of buffering without end.
MAX_PENDING_ROWS = 1_000
# What one frame holds, so that no reader (a slow one, many at once) costs much memory; rows
# read from the store at a time while replaying.
FRAME_BYTES = 256 * 1024
REPLAY_ROWS = 100
SOCKETS_PER_CONVERSATION = 8  # open streams of one conversation (tabs, devices)

CLOSED = -1  # in place of a seq: the socket closed
REREAD = -3  # in place of a seq: rows may have committed that were not pushed: read the store


async def not_past_the_end(log: ActivityLog, cid: str, watermark: int) -> int:
    """A watermark no further than the log goes: one from before the conversation was deleted
    and started again (or made up) must not hide what comes next."""
    return min(watermark, await log.last_watermark(conversation_id=cid))


class Subscriber:
    """One open socket's view of its conversation: rows to send, and a wake-up for its writer.

    No task or timer per wait: keep-alives come from one ticker for every socket."""

    __slots__ = (
        "_behind",
        "_rows",
        "_waiter",
        "busy",
        "idle_ticks",
        "known",
        "on_overflow",
        "send_ticks",
        "sending",
    )

    def __init__(self) -> None:
        self._rows: list[Row] = []
        self._waiter: asyncio.Future[None] | None = None
        self.busy = False  # something was sent since the last keep-alive tick
        self.idle_ticks = 0  # keep-alive ticks in a row with nothing sent
        self.on_overflow: Callable[[], None] | None = None  # drops the connection
        # A frame is being written, and for how many ticks: a watchdog, with no timer per send.
        self.sending = False
        self.send_ticks = 0
        self.known = 0  # the highest seq pushed: rows up to it reach the socket without a read
        self._behind = False  # told to re-read the store (once, however often told)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def push(self, row: Row) -> None:
        self._rows.append(row)
        self.known = max(self.known, row[0])
        self.busy = True
        self._wake()
        if len(self._rows) > MAX_PENDING_ROWS and self.on_overflow is not None:
            self._rows = [(CLOSED, {})]
            self.on_overflow()

    def catch_up(self, seq: int = 0) -> None:
        """Row ``seq`` (0: any row) may have been committed without being pushed here (by
        another process): the writer re-reads the store from its watermark."""
        if seq and seq <= self.known:
            return  # pushed already (this process appended it): the writer has it
        if not self._behind:
            self._behind = True
            self.busy = True
            self._wake()

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

    async def next(self) -> list[Row]:
        """What arrived since the last call; empty when it is time for a keep-alive."""
        if not self._rows and not self._behind:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        rows, self._rows = self._rows, []
        if self._behind:
            self._behind = False
            rows.append((REREAD, {}))
        return rows


def _in_order(batch: list[Row], sent: int) -> tuple[list[Row], bool]:
    """What of the pushed rows to send after ``sent``: each stored row once, in the log's
    order. True also when the log must be read: told so (``REREAD``), or a row pushed past a
    gap, whose rows in between another process committed (or the store rolled back)."""
    rows: list[Row] = []
    reread = False
    for row in batch:
        seq = row[0]
        if seq == EPHEMERAL:
            rows.append(row)
        elif seq == REREAD:
            reread = True
        elif reread or seq <= sent:
            continue  # sent already, or past the gap: the read sends it
        elif seq == sent + 1:
            rows.append(row)
            sent = seq
        else:
            reread = True
    return rows, reread


async def keep_alive(subscribers: dict[str, set[Subscriber]]) -> None:
    """Sockets that sent nothing for half of ``KEEPALIVE_SECONDS`` send a keep-alive, so no socket
    stays silent for longer than ``KEEPALIVE_SECONDS``; ends when no socket is left."""
    while subscribers:
        await asyncio.sleep(KEEPALIVE_SECONDS / 2)
        for conversation in list(subscribers.values()):
            for subscriber in conversation:
                subscriber.tick()


class Sockets:
    """The open WebSockets of every conversation's stream."""

    def __init__(self, streams: ConversationStreams, log_store: ActivityLog) -> None:
        self._streams = streams
        self._log = log_store
        self._open: set[web.WebSocketResponse] = set()

    def open_count(self) -> int:
        """Widget sockets open on this process."""
        return len(self._open)

    def admit(self, cid: str) -> None:
        """Refuse one more socket for a conversation that has all it may have."""
        if len(self._streams.sockets_of(cid)) >= SOCKETS_PER_CONVERSATION:
            raise DirectLineError(
                429,
                "TooManyRequests",
                f"at most {SOCKETS_PER_CONVERSATION} streams per conversation are open at once",
                headers={"Retry-After": "5"},
            )

    async def close(self) -> None:
        for ws in list(self._open):
            await ws.close(code=1001, message=b"server shutdown")

    async def serve(
        self, request: web.Request, cid: str, watermark: int, idle_minutes: float
    ) -> web.WebSocketResponse:
        """Replay what is after ``watermark``, then follow the conversation until the client
        goes, stops reading, or nothing passes either way for ``idle_minutes``."""
        idle_ticks = idle_minutes * 60 / (KEEPALIVE_SECONDS / 2)
        # Pings find a peer that is gone or no longer reads (a browser answers them itself).
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=64 * 1024)
        await ws.prepare(request)
        self._open.add(ws)
        subscriber = self._streams.subscribe(cid)
        transport = request.transport
        if transport is not None:
            subscriber.on_overflow = transport.abort  # unblocks a send the reader never takes
        reader = asyncio.create_task(self._read_client(ws, subscriber))
        close_code = WSCloseCode.OK
        try:
            sent = await self._replay(ws, subscriber, cid, watermark)
            if sent == watermark and watermark:
                sent = await not_past_the_end(self._log, cid, watermark)
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
                if any(seq == CLOSED for seq, _ in batch):
                    break
                rows, reread = _in_order(batch, sent)
                if rows:
                    sent = await self._send(ws, subscriber, cid, rows, sent)
                if reread:
                    sent = await self._replay(ws, subscriber, cid, sent)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the widget went away, or stopped reading and was dropped: it reconnects
        except StoreError as exc:
            # 1011: the server failed; the widget reconnects and replays from its watermark.
            log.warning("conversation %s: stream closed, the store failed: %s", cid, exc)
            close_code = WSCloseCode.INTERNAL_ERROR
        finally:
            reader.cancel()
            self._streams.unsubscribe(cid, subscriber)
            self._open.discard(ws)
            await ws.close(code=close_code)
        return ws

    async def _replay(
        self, ws: web.WebSocketResponse, subscriber: Subscriber, cid: str, watermark: int
    ) -> int:
        """Send what the log holds after ``watermark``; returns the watermark reached."""
        while True:
            rows = await self._log.activities_after(
                conversation_id=cid, watermark=watermark, limit=REPLAY_ROWS
            )
            if not rows:
                return watermark
            await self._log.flush()  # never show a row a failed commit could take back
            watermark = await self._send(ws, subscriber, cid, rows, watermark)

    async def _send(
        self,
        ws: web.WebSocketResponse,
        subscriber: Subscriber,
        cid: str,
        rows: list[Row],
        watermark: int,
    ) -> int:
        """Frames of at most about ``FRAME_BYTES`` each; returns the watermark of the last
        (ephemeral rows do not move it)."""
        for parts, reached in pack(cid, rows, watermark, FRAME_BYTES):
            await self._write(ws, subscriber, frame(parts, reached))
            watermark = reached
        return watermark

    @staticmethod
    async def _write(ws: web.WebSocketResponse, subscriber: Subscriber, text: str) -> None:
        """Send one frame, watched: one the client takes no part of for ``SEND_TICKS`` ticks
        drops the connection (the widget reconnects and replays)."""
        subscriber.sending = True
        try:
            await ws.send_str(text)
        finally:
            subscriber.sending = False
            subscriber.send_ticks = 0

    @staticmethod
    async def _read_client(ws: web.WebSocketResponse, subscriber: Subscriber) -> None:
        """Clients only send pings; reading notices the close, which then stops the writer."""
        async for message in ws:
            if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
        subscriber.push((CLOSED, {}))
