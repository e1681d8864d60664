"""How fast a client may go: new conversations per address and per website, posts and typing
and reads per conversation, and no more messages than the Teams thread takes. Each refusal is a
429 with Retry-After, logged sampled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from aiohttp import web

from adapters.directline.protocol import RECENT_CONVERSATIONS, refused, too_many
from adapters.ops.settings import ServiceSettings
from adapters.runtime.failures import clip
from adapters.web.proxies import Proxies
from adapters.web.ratelimit import TokenBuckets, client_key
from adapters.web.settings import Rate
from bot.usecases import HandoffService

READ_RATE = Rate(per_minute=120, burst=30)  # GET /activities per conversation (polling: 60/min)
TYPING_RATE = Rate(per_minute=60, burst=10)  # per conversation; typing is shown, never stored
TEAMS_PER_SECOND = 2.0  # what one Teams thread takes, sustained (60 in 30 s)
SLOW_DOWN_AGAIN = timedelta(minutes=1)  # a visitor told to slow down is told again after this


class Limits:
    """The channel's rate limits and the Teams backlog cap."""

    def __init__(
        self,
        *,
        service: HandoffService[ServiceSettings],
        clock: Callable[[], datetime],
        proxies: Proxies,
        teams_backlog: Callable[[str], int] | None,
    ) -> None:
        self._service = service
        self._clock = clock
        self._proxies = proxies
        # thread id -> messages waiting for it (the Teams delivery queue)
        self._teams_backlog = teams_backlog
        self._buckets = TokenBuckets()
        self._told_to_slow_down: dict[str, datetime] = {}  # conversation -> when

    def new_conversations(self, request: web.Request, origin: str) -> None:
        """Conversations started by browsers, per client address and per website (a site's
        own server, with the secret, speaks for many visitors and is not counted)."""
        limits = self._service.settings.limits
        client = self._proxies.client(request)
        wait = self._buckets.take(f"ip:{client_key(client)}", limits.conversations_per_ip)
        if not wait:
            wait = self._buckets.take(f"origin:{origin}", limits.conversations_per_origin)
        if wait:
            raise refused(
                too_many(wait, "too many new conversations; try again shortly"),
                ("new conversations", client, origin),
                "new conversations refused for %s (origin %r): too many",
                client,
                clip(origin),
            )

    def posts(self, cid: str, kind: str) -> None:
        if kind == "typing":
            wait = self._buckets.take(f"typing:{cid}", TYPING_RATE)
        else:
            rate = self._service.settings.limits.messages_per_conversation
            wait = self._buckets.take(f"conversation:{cid}", rate)
        if wait:
            raise refused(
                too_many(wait, "too many messages at once; wait a moment"),
                ("posts", cid, kind),
                "conversation %s: a %s refused, too many",
                clip(cid),
                kind,
                level=logging.INFO,
            )

    def reads(self, cid: str) -> None:
        wait = self._buckets.take(f"reads:{cid}", READ_RATE)
        if wait:
            raise too_many(wait, "too many reads; use the stream, or poll less often")

    async def teams_backlog(self, cid: str, thread: str) -> None:
        """A visitor who writes faster than Teams takes messages (those relayed to ``thread``,
        the conversation's open one, if any) is asked to slow down (once a spell, on the
        stream) and refused until the thread's queue drains: never accepted and then left to
        wait for minutes, or dropped."""
        if self._teams_backlog is None or not thread:
            return
        waiting, cap = self._teams_backlog(thread), self._service.settings.limits.teams_backlog
        if waiting < cap:
            return
        now = self._clock()
        told = self._told_to_slow_down.get(cid)
        tell = told is None or now - told > SLOW_DOWN_AGAIN
        text = await self._service.too_fast(conversation_id=cid, now=now, tell=tell)
        if tell:
            if len(self._told_to_slow_down) >= RECENT_CONVERSATIONS:
                self._told_to_slow_down.clear()
            self._told_to_slow_down[cid] = now
        raise refused(
            too_many((waiting - cap + 1) / TEAMS_PER_SECOND, text),
            ("backlog", cid),
            "conversation %s: %d message(s) wait for Teams; refused",
            cid,
            waiting,
        )
