"""A self-hosted Direct Line 3.0 channel for the website widget: its routes, and their wiring.

Speaks the protocol the official Web Chat and ``botframework-directlinejs`` use, under
``/v3/directline``: tokens, conversations, activities with watermarks, and a WebSocket stream
that replays everything after the client's watermark on (re)connect. Activities are stored
before they are acknowledged, so a restart or a reconnect loses nothing.

The parts: ``protocol`` (shapes and errors), ``access`` (CORS, tokens, stream URLs), ``limits``
(rates, the Teams backlog), ``streams`` (stored streams; the domain's visitor gateway),
``sockets`` (the WebSocket stream), ``inbox`` (handled after acknowledged) and ``dispatch`` (to
the domain).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from adapters.directline import meta_keys
from adapters.directline.access import Access
from adapters.directline.dispatch import Dispatcher, relayable
from adapters.directline.inbox import Inbox
from adapters.directline.limits import Limits
from adapters.directline.protocol import (
    MAX_BODY_BYTES,
    PREFIX,
    RECENT_CONVERSATIONS,
    DirectLineError,
    client_activity_id,
    frame,
    new_user,
    not_found,
    pack,
    posted_type,
    read_json,
    refused,
    visitor_activity,
    watermark_of,
)
from adapters.directline.sockets import Sockets, not_past_the_end
from adapters.directline.streams import ConversationStreams
from adapters.directline.tokens import TokenSigner
from adapters.ops.settings import ServiceSettings
from adapters.runtime import jsonio
from adapters.runtime.clock import iso, utc_now
from adapters.runtime.failures import clip
from adapters.web.proxies import Proxies
from bot import logcontext
from bot.usecases import HandoffService

log = logging.getLogger(__name__)

# What one page of GET /activities holds, so that no reader (a slow one, many at once) costs
# much memory: bytes, and rows read from the store.
READ_BYTES = 1024 * 1024
READ_ROWS = 100
# A visitor's activity may store this much besides its text (at most 6 bytes a character, as
# JSON escapes); a server with the widget secret MAX_BODY_BYTES, for an upstream transcript.
MAX_VISITOR_ACTIVITY_BYTES = 32 * 1024
# Seconds a conversation's open thread, as read for a post, answers for its next posts (a
# visitor in a busy chat posts many times a second: one read each would be most of a post's
# work). Only for the backlog cap, which this much staleness does not upset; a conversation
# with no thread open is read every time (so a new thread's cap holds from its first post).
THREAD_KNOWN_FOR = 1.0


class DirectLineChannel:
    """The Direct Line 3.0 HTTP and WebSocket endpoints."""

    def __init__(
        self,
        *,
        service: HandoffService[ServiceSettings],
        streams: ConversationStreams,
        signer: TokenSigner,
        widget_secret: str,
        local_mode: bool,
        clock: Callable[[], datetime] = utc_now,
        proxies: Proxies | None = None,
        teams_backlog: Callable[[str], int] | None = None,
        fence: Callable[[], bool] = lambda: True,
        leads: bool = True,
    ) -> None:
        self._service = service
        self._streams = streams
        self._log = streams.store
        self._clock = clock
        proxies = proxies or Proxies(lambda: service.settings.server.trusted_proxies)
        self.access = Access(
            widget=lambda: service.settings.widget,
            signer=signer,
            widget_secret=widget_secret,
            local_mode=local_mode,
            clock=clock,
            proxies=proxies,
        )
        self.cors = self.access.cors  # the middleware, outermost
        self._limits = Limits(
            service=service, clock=clock, proxies=proxies, teams_backlog=teams_backlog
        )
        self._sockets = Sockets(streams, streams.store)
        self._threads: dict[str, tuple[str, float]] = {}  # cid -> (open thread, read at)
        dispatcher = Dispatcher(service, clock)
        # ``leads``: handles from the start; else once ``inbox.start()`` (elected).
        self.inbox = Inbox(
            streams.store,
            dispatcher.dispatch,
            dispatcher.failed,
            clock,
            fence,
            active=leads,
            handle_run=dispatcher.dispatch_run,
            runnable=relayable,
        )
        streams.on_committed = self.inbox.appended
        streams.on_uncertain = self.inbox.reread

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

    def sockets_open(self) -> int:
        """Widget sockets open on this process."""
        return self._sockets.open_count()

    def forget(self, cids: Sequence[str]) -> None:
        """Retention deleted these conversations."""
        self._streams.forget(cids)
        self.inbox.forget(cids)
        for cid in cids:
            self._threads.pop(cid, None)

    async def close(self) -> None:
        await self._sockets.close()
        await self._streams.close()

    # ---- tokens and conversations ------------------------------------------------------------

    async def _optional_body(self, request: web.Request) -> dict[str, Any]:
        deadline = self._service.settings.limits.body_timeout_seconds
        return await read_json(request, limit=MAX_BODY_BYTES, deadline=deadline, optional=True)

    async def generate_token(self, request: web.Request) -> web.Response:
        trusted = self.access.is_widget_secret(self.access.bearer(request))
        origin = request.headers.get("Origin", "")
        if not (trusted or self.access.origin_allowed(origin)):
            raise refused(
                DirectLineError(
                    403, "Forbidden", "token requests need an allowed Origin or the widget secret"
                ),
                ("origin", origin),
                "token request refused (origin %r)",
                clip(origin),
            )
        if not trusted:
            self._limits.new_conversations(request, origin)
        user_id, user_name = new_user(await self._optional_body(request))
        conversation_id = secrets.token_urlsafe(16)
        # As Direct Line does, the conversation exists from here on: a client may open the
        # stream (GET /conversations/{id}) without ever POSTing /conversations.
        await self._service.start_conversation(
            conversation_id=conversation_id, visitor_id=user_id, now=self._clock()
        )
        log.info("conversation %s started (token generated)", conversation_id)
        return jsonio.response(self.access.issue(conversation_id, user_id, user_name))

    async def refresh_token(self, request: web.Request) -> web.Response:
        grant = self.access.grant(request)
        if not grant.conversation_id:
            raise DirectLineError(
                400, "BadArgument", "refresh a conversation's token, not the widget secret"
            )
        return jsonio.response(
            self.access.issue(grant.conversation_id, grant.user_id, grant.user_name)
        )

    async def start_conversation(self, request: web.Request) -> web.Response:
        bearer = self.access.bearer(request)
        if self.access.is_widget_secret(bearer):
            user_id, user_name = new_user(await self._optional_body(request))
            token, grant = self.access.token_for(secrets.token_urlsafe(16), user_id, user_name)
        else:
            grant = self.access.grant(request)
            token = bearer
        cid = grant.conversation_id
        # start_conversation is idempotent (a generated token already started it); the status
        # says whether this is the first POST /conversations for it, as Direct Line does.
        await self._service.start_conversation(
            conversation_id=cid, visitor_id=grant.user_id, now=self._clock()
        )
        marker = f"{meta_keys.POSTED}:{cid}"
        existed = await self._log.get_meta(key=marker) is not None
        await self._log.set_meta_once(key=marker, value=iso(self._clock()), conversation_id=cid)
        body = {**self.access.connection(request, token, grant), "referenceGrammarId": ""}
        return jsonio.response(body, status=200 if existed else 201)

    async def upload(self, request: web.Request) -> web.Response:
        self.access.conversation_grant(request)
        raise DirectLineError(415, "NotSupported", "file upload is not supported yet; send text")

    async def reconnect(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        logcontext.mark(conversation=cid)
        grant = self.access.conversation_grant(request)
        if not await self._service.conversation_exists(conversation_id=cid):
            raise not_found()
        token = self.access.bearer(request)
        if grant.trusted:
            # Called with the widget secret: answer with a token for this conversation, never
            # the secret itself (answers get logged and cached too).
            token, grant = self.access.token_for(cid, grant.user_id, grant.user_name)
        watermark = request.query.get("watermark", "")
        if watermark:
            watermark_of(request)  # refused here, not by the stream it would go into
        return jsonio.response(self.access.connection(request, token, grant, watermark))

    # ---- activities ------------------------------------------------------------------------

    async def get_activities(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        logcontext.mark(conversation=cid)
        self.access.conversation_grant(request)
        watermark = watermark_of(request)
        if not await self._service.conversation_exists(conversation_id=cid):
            raise not_found()
        self._limits.reads(cid)
        rows = await self._log.activities_after(
            conversation_id=cid, watermark=watermark, limit=READ_ROWS
        )
        if not rows:
            last = await not_past_the_end(self._log, cid, watermark)
            return jsonio.response({"activities": [], "watermark": str(last)})
        await self._log.flush()  # never show a row a failed commit could take back
        # One page of at most about READ_BYTES: the client asks again from its watermark.
        parts, last = pack(cid, rows, watermark, READ_BYTES)[0]
        return web.Response(text=frame(parts, last), content_type="application/json")

    async def post_activity(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        logcontext.mark(conversation=cid)
        grant = self.access.conversation_grant(request)
        # All of it is kept (and replayed): a browser's activity is small; an upstream agent's
        # (with the secret) may carry a transcript.
        settings = self._service.settings
        chars = settings.widget.max_message_chars
        limit = MAX_BODY_BYTES if grant.trusted else MAX_VISITOR_ACTIVITY_BYTES + 6 * chars
        deadline = settings.limits.body_timeout_seconds
        body = await read_json(request, limit=limit, deadline=deadline)
        kind = posted_type(body, chars)
        if kind == "event" and body.get("name") == "handoff.initiate" and not grant.trusted:
            # It sets the card's transcript and reason: only an upstream agent may send it.
            raise DirectLineError(
                403, "Forbidden", "handoff.initiate must be sent with the widget secret"
            )
        self._limits.posts(cid, kind)
        thread = await self._open_thread(cid)
        if thread is None:
            raise not_found("conversation not found; start it first")
        if kind == "message":
            await self._limits.teams_backlog(cid, thread)
        activity = visitor_activity(body, cid=cid, grant=grant, timestamp=iso(self._clock()))
        if kind == "typing":
            # Ephemeral: echoed to the conversation's open sockets, never stored or replayed.
            activity["id"] = f"{cid}|typing-{secrets.token_hex(4)}"
            self._streams.echo(cid, activity)
            return jsonio.response({"id": activity["id"]})
        client_id = client_activity_id(body)
        key = f"client:{client_id}" if client_id else ""
        activity_id, seq = await self._streams.append(cid, activity, key)
        if seq is None:
            log.info("conversation %s: duplicate activity %s dropped", cid, client_id)
            return jsonio.response({"id": activity_id})
        # Stored and echoed: acknowledge now; the inbox handles it in order, even after a crash.
        self.inbox.kick(cid)
        return jsonio.response({"id": activity_id})

    async def _open_thread(self, cid: str) -> str | None:
        """The conversation's open thread ("" none, None no such conversation), as read at
        most ``THREAD_KNOWN_FOR`` seconds ago (a conversation with one is not idle, so
        retention, which deletes only idle ones, cannot have deleted it meanwhile)."""
        now = time.monotonic()
        known = self._threads.get(cid)
        if known is not None and now - known[1] < THREAD_KNOWN_FOR:
            return known[0]
        thread = await self._service.open_thread(conversation_id=cid)
        if thread:
            if len(self._threads) >= RECENT_CONVERSATIONS:
                self._threads.clear()
            self._threads[cid] = (thread, now)
        else:
            self._threads.pop(cid, None)
        return thread

    # ---- the stream ------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        cid = request.match_info["cid"]
        logcontext.mark(conversation=cid)
        in_url = request.query.get("t")
        if in_url is not None:
            self.access.conversation_grant(request, in_url, stream=True)  # a stream token only
        else:
            self.access.conversation_grant(request)  # a header may carry the conversation's token
        watermark = watermark_of(request)
        if not await self._service.conversation_exists(conversation_id=cid):
            raise not_found()
        self._sockets.admit(cid)
        idle_minutes = self._service.settings.limits.websocket_idle_minutes
        return await self._sockets.serve(request, cid, watermark, idle_minutes)
