"""Each conversation's stored, ordered stream of activities, fanned out to its open sockets; the
domain's ``VisitorGateway`` (what the bot or a specialist says to a visitor)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from adapters.directline import meta_keys
from adapters.directline.protocol import (
    CHANNEL_ID,
    EPHEMERAL,
    RECENT_CONVERSATIONS,
    activity_id,
)
from adapters.directline.sockets import Subscriber, keep_alive
from adapters.runtime.clock import iso, utc_now
from adapters.storage.contract import ActivityLog, SharedStore
from bot.locks import KeyedLocks
from bot.ports import Choice, Sender

RECENT_KEYS = 64  # per conversation: client retries and Teams edits are looked up in memory


class ConversationStreams:
    """Stored, ordered activity streams per conversation, fanned out to open sockets.

    Implements the domain's ``VisitorGateway``: what the bot or a specialist says is stored
    first (so a reconnect replays it) and then pushed to every socket of the conversation.
    What other processes sharing the store append reaches the sockets here by ``follow``: a
    notification wakes them, and they read the log from their watermarks (so nothing is sent
    twice, and a lost notification is made good by ``resync``).
    """

    def __init__(self, log_store: ActivityLog, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = log_store
        # Several processes share it: a key seen here proves a duplicate, one not seen does not.
        self._shared = log_store if isinstance(log_store, SharedStore) else None
        self._clock = clock
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._ticker: asyncio.Task[None] | None = None
        # conversation -> its latest keys (client activity ids, Teams message ids) -> activity id
        self._recent: dict[str, dict[str, str]] = {}
        self._locks = KeyedLocks()
        # Told of every activity once committed, in the log's order (the inbox), and of an
        # append that may have committed without saying so.
        self.on_committed: Callable[[str, int, dict[str, Any]], None] | None = None
        self.on_uncertain: Callable[[str], None] | None = None

    def subscribe(self, cid: str) -> Subscriber:
        subscriber = Subscriber()
        self._subscribers.setdefault(cid, set()).add(subscriber)
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(
                keep_alive(self._subscribers), name="directline-keepalive"
            )
        return subscriber

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)

    def echo(self, cid: str, activity: dict[str, Any]) -> None:
        """Show an activity on the conversation's open sockets without storing it."""
        for subscriber in self._subscribers.get(cid, ()):
            subscriber.push((EPHEMERAL, activity))

    def committed(self, cid: str, seq: int) -> None:
        """Row ``seq`` of the conversation was committed by another process sharing the store
        (``ActivityFeed``): its sockets here read the log from their watermarks (the leader's
        inbox is told apart)."""
        for subscriber in self._subscribers.get(cid, ()):
            subscriber.catch_up(seq)

    def resync(self) -> None:
        """Notifications may have been lost: every socket here reads the log from its
        watermark."""
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.catch_up()

    def connected(self) -> frozenset[str]:
        """Conversations a widget has a socket open on."""
        return frozenset(self._subscribers)

    def sockets_of(self, cid: str) -> set[Subscriber]:
        """The conversation's open sockets (their subscriptions)."""
        return self._subscribers.get(cid) or set()

    def forget(self, cids: Iterable[str]) -> None:
        """Retention deleted these conversations: drop what memory holds of them."""
        for cid in cids:
            self._recent.pop(cid, None)

    def unsubscribe(self, cid: str, subscriber: Subscriber) -> None:
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
            recent = self._recent[cid] = {key: activity_id(cid, seq) for seq, key in rows}
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
            try:
                if key and self._shared is not None:
                    # Memory knows only this process's keys: the store decides, in the append.
                    seq, new = await self._shared.append_once(
                        conversation_id=cid, activity=activity, key=key
                    )
                    if not new:
                        recent[key] = activity_id(cid, seq)
                        return recent[key], None
                else:
                    seq = await self.store.append_activity(
                        conversation_id=cid, activity=activity, key=key
                    )
                await self.store.flush()
            except Exception:
                self._recent.pop(cid, None)  # what it held may have been rolled back
                self._uncertain(cid)
                raise
            new_id = activity_id(cid, seq)
            if key:
                recent[key] = new_id
                if len(recent) > RECENT_KEYS:
                    del recent[next(iter(recent))]
            for subscriber in self._subscribers.get(cid, ()):
                subscriber.push((seq, activity))
            if self.on_committed is not None:
                self.on_committed(cid, seq, activity)
            return new_id, seq

    def _uncertain(self, cid: str) -> None:
        """An append raised, yet may have committed (a database that went away before its
        answer): whoever reads the conversation reads the log instead of waiting for a push
        (a retry of it finds it stored, and pushes nothing)."""
        for subscriber in self._subscribers.get(cid, ()):
            subscriber.catch_up()
        if self.on_uncertain is not None:
            self.on_uncertain(cid)

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
            return activity_id(cid, seq)
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
