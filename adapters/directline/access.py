"""Who may use the channel: allowed origins (CORS), the bearer (a conversation's token or the
widget secret), and the tokens and stream URLs it issues."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from adapters.directline.protocol import PREFIX, DirectLineError, in_channel_shape, refused
from adapters.directline.settings import WidgetSettings
from adapters.directline.tokens import Grant, TokenError, TokenSigner
from adapters.runtime.failures import clip
from adapters.web.proxies import Proxies, is_loopback

# Stream URLs carry a token that only opens that conversation's stream, for this long (a client
# asks for a fresh stream URL on every reconnect).
STREAM_TOKEN_SECONDS = 300
SECRET_GRANT_SECONDS = 3600  # what the widget secret is taken for, each time it is shown

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_loopback_origin(origin: str) -> bool:
    return is_loopback(urlsplit(origin).hostname or "")


class Access:
    """Checks what a request may do and issues what lets a client in."""

    def __init__(
        self,
        *,
        widget: Callable[[], WidgetSettings],
        signer: TokenSigner,
        widget_secret: str,
        local_mode: bool,
        clock: Callable[[], datetime],
        proxies: Proxies,
    ) -> None:
        self._widget = widget  # read on every use: a reload changes origins and lifetimes
        self._signer = signer
        self._widget_secret = widget_secret
        self._local = local_mode
        self._clock = clock
        self._proxies = proxies

    # ---- CORS ------------------------------------------------------------------------------

    def origin_allowed(self, origin: str) -> bool:
        if not origin:
            return False
        allowed = self._widget().allowed_origins
        if origin.rstrip("/") in (o.rstrip("/") for o in allowed) or "*" in allowed:
            return True
        return self._local and _is_loopback_origin(origin)

    @web.middleware
    async def cors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
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
                shaped = in_channel_shape(exc)
                # The path names the conversation; the body says why (never a secret).
                response = refused(
                    shaped,
                    ("refused", request.method, shaped.status, shaped.text),
                    "%s %s refused: %d %s",
                    request.method,
                    clip(request.path),
                    shaped.status,
                    shaped.text,
                    level=logging.INFO,
                )
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

    # ---- the bearer --------------------------------------------------------------------------

    def bearer(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return ""
        if not value.isascii():
            raise DirectLineError(403, "BadToken", "the token is not valid (not ASCII)")
        return value.strip()

    def is_widget_secret(self, value: str) -> bool:
        return bool(self._widget_secret) and hmac.compare_digest(
            value.encode(), self._widget_secret.encode()
        )

    def grant(
        self, request: web.Request, token: str | None = None, *, stream: bool = False
    ) -> Grant:
        token = token if token is not None else self.bearer(request)
        if not token:
            raise DirectLineError(401, "Unauthorized", "send 'Authorization: Bearer <token>'")
        if self.is_widget_secret(token):
            if stream:
                raise DirectLineError(403, "BadToken", "the secret does not go in a stream URL")
            # Direct Line lets the secret do anything a token can, for any conversation.
            cid = request.match_info.get("cid", "")
            expires = int(self._clock().timestamp()) + SECRET_GRANT_SECONDS
            return Grant(cid, "", "", expires, trusted=True)
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

    def conversation_grant(
        self, request: web.Request, token: str | None = None, *, stream: bool = False
    ) -> Grant:
        """The grant of a request on ``/conversations/{cid}``, which must be for that one."""
        grant = self.grant(request, token, stream=stream)
        if grant.conversation_id != request.match_info["cid"]:
            raise refused(
                DirectLineError(403, "Forbidden", "the token is not valid for this conversation"),
                ("foreign token", grant.conversation_id),
                "token for %s used on conversation %s",
                grant.conversation_id,
                clip(request.match_info["cid"]),
            )
        return grant

    # ---- what is issued ----------------------------------------------------------------------

    def token_for(self, conversation_id: str, user_id: str, user_name: str) -> tuple[str, Grant]:
        """A new token of the conversation, and what it grants."""
        expires = int(self._clock().timestamp()) + self._widget().token_ttl_seconds
        grant = Grant(conversation_id, user_id, user_name, expires)
        return self._signer.issue(grant), grant

    def issue(self, conversation_id: str, user_id: str, user_name: str) -> dict[str, Any]:
        """The answer of ``/tokens/generate`` and ``/tokens/refresh``."""
        ttl = self._widget().token_ttl_seconds
        token, _ = self.token_for(conversation_id, user_id, user_name)
        return {"conversationId": conversation_id, "token": token, "expires_in": ttl}

    def connection(
        self, request: web.Request, token: str, grant: Grant, watermark: str = ""
    ) -> dict[str, Any]:
        """What a client connects to its conversation with: its token, and a stream URL."""
        return {
            "conversationId": grant.conversation_id,
            "token": token,
            "expires_in": max(0, grant.expires - int(self._clock().timestamp())),
            "streamUrl": self._stream_url(request, grant, watermark),
        }

    def _stream_url(self, request: web.Request, grant: Grant, watermark: str) -> str:
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
