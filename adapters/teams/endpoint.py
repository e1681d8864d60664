"""``POST /api/messages``: read, parse, authenticate (botbuilder), check channel and tenant, and
hand the activity to its handler. Nothing botbuilder-shaped goes past the teams edge."""

from __future__ import annotations

import logging
from collections.abc import Callable

import jwt
from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    ActivityTypes,
)
from botframework.connector.auth import AuthenticateRequestResult

from adapters.runtime import jsonio
from adapters.runtime.failures import clip
from adapters.teams.auth import BotCredentials
from adapters.teams.inbound import MESSAGE_TYPES, TeamsHandoffBot
from adapters.teams.sdk import (
    RAW_ACTIVITY,
    ReusedClients,
    SdkSettings,
    SigningKeys,
    SigningKeysUnavailableError,
    for_auth,
)
from adapters.teams.wire import field, overlong_id, string, tenant_of
from adapters.web.bodies import BodyBrokenError, BodyTooLargeError, BodyTooSlowError, read_body
from bot.errors import StoreError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_CONNECTOR_CLIENTS = 64  # one per service URL and audience; Teams uses a handful


class TeamsEndpoint:
    """``POST /api/messages``: parse, authenticate, check channel and tenant, run the turn."""

    def __init__(
        self,
        *,
        credentials: BotCredentials,
        bot: TeamsHandoffBot,
        tenant_id: Callable[[], str],
        body_timeout: Callable[[], float] = lambda: 30.0,
        local_mode: bool,
    ) -> None:
        self._auth = ConfigurationBotFrameworkAuthentication(SdkSettings(credentials))
        self.clients = ReusedClients(self._auth)
        self._adapter = CloudAdapter(self.clients)
        self._adapter.on_turn_error = self._on_turn_error
        self._bot = bot
        self._tenant_id = tenant_id
        self._body_timeout = body_timeout  # seconds a body may take to arrive (live setting)
        self._local_mode = local_mode
        self._issuer = credentials.token_issuer
        if not local_mode:
            SigningKeys(credentials.openid_metadata_url).install()
            if credentials.custom_issuer:
                log.warning(
                    "inbound tokens are checked against %s (issuer %s), not the Bot Framework's",
                    credentials.openid_metadata_url,
                    credentials.token_issuer,
                )

    async def _on_turn_error(self, turn_context: TurnContext, error: Exception) -> None:
        if isinstance(error, StoreError):
            # Nothing was kept: a 5xx as for a message, not botbuilder's 501 for no answer.
            raise error
        conversation = turn_context.activity.conversation
        log.error(
            "turn failed in conversation %s: %s",
            conversation.id if conversation else "?",
            error,
            exc_info=error,
        )

    async def _authenticate(self, activity: Activity, header: str) -> AuthenticateRequestResult:
        if self._local_mode:
            # Auth is off: a header would only make botbuilder fetch Microsoft's keys with
            # blocking I/O on the event loop before failing or passing to no effect.
            return await self._auth.authenticate_request(activity, "")
        # Only Bot Framework channel tokens reach botbuilder: its Emulator and skill paths
        # would fetch other keys with blocking I/O on the event loop, and Teams sends
        # neither. botbuilder then checks signature, expiry, audience, issuer, serviceurl.
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            raise PermissionError("no Bearer token")
        claims = jwt.decode(token, options={"verify_signature": False})
        issuer = claims.get("iss")
        if issuer != self._issuer:
            raise PermissionError(f"token issuer {issuer!r} is not {self._issuer!r}")
        # PyJWT checks exp only when present, and botbuilder does not require it: a token
        # without one would be good forever.
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise PermissionError("token has no exp claim")
        return await self._auth.authenticate_request(activity, header)

    async def handle(self, request: web.Request) -> web.Response:
        if "json" not in request.content_type:
            return _error(415, "send the activity as application/json")
        try:
            raw = await read_body(request, MAX_BODY_BYTES, self._body_timeout())
        except BodyTooLargeError:
            response = _error(413, f"the activity is over {MAX_BODY_BYTES} bytes")
            response.force_close()  # the rest of the body is not read
            return response
        except BodyTooSlowError:
            response = _error(408, "the activity did not arrive in time")
            response.force_close()
            return response
        except BodyBrokenError:
            response = _error(400, "the activity could not be read")
            response.force_close()
            return response
        try:
            body = jsonio.loads_text(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("activity refused, not valid JSON: %s", clip(exc))
            return _error(400, "the body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            return _error(400, "the body must be an activity object with a type")
        conversation_id = field(body, "conversation", "id")
        if not conversation_id or not string(body, "serviceUrl"):
            return _error(400, "the activity needs conversation and serviceUrl")
        too_long = overlong_id(body)
        if too_long:
            # Teams' ids are short: a long one is an attack on memory or on the logs.
            return _error(400, f"{too_long} is too long")
        try:
            header = request.headers.get("Authorization", "")
            auth = await self._authenticate(for_auth(body), header)
        except SigningKeysUnavailableError as exc:
            log.error("activity %s not checked: %s", clip(body.get("id")), exc)
            return _error(503, "the Bot Framework signing keys are unavailable; try again")
        except Exception as exc:  # PyJWT, botbuilder and PermissionError all mean the same
            log.warning(
                "activity %s in conversation %s refused: %s: %s",
                clip(body.get("id")),
                clip(conversation_id),
                type(exc).__name__,
                clip(exc),
            )
            return _error(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
        if not self._local_mode and body.get("channelId") != "msteams":
            # Production serves Teams only (local mode also takes the Emulator's channel).
            return _error(403, "this bot serves Microsoft Teams only")
        tenant = self._tenant_id()
        if tenant and body.get("channelId") == "msteams" and tenant_of(body) != tenant:
            log.warning(
                "activity %s from tenant %s refused",
                clip(body.get("id")),
                clip(tenant_of(body)),
            )
            return _error(403, "this bot serves one tenant only")
        # Local mode authenticates nothing: what it is told must not move where the bot sends.
        self._bot.observe(body, authenticated=not self._local_mode)
        if body["type"] in MESSAGE_TYPES:
            try:
                await self._bot.on_message(body)
            except StoreError:
                raise  # nothing was kept: a 500, and Teams' redelivery is the retry
            except Exception:
                # A bug: redelivering would only repeat whatever ran before it. Log it whole.
                log.exception(
                    "%s %s in %s failed",
                    clip(body["type"]),
                    clip(body.get("id")),
                    clip(conversation_id),
                )
            return web.Response(status=201)
        try:
            activity = Activity().deserialize(body)
        except Exception as exc:  # msrest raises several types for shape errors
            log.warning("activity %s refused: %s", clip(body.get("id")), clip(exc))
            return _error(400, "the activity does not match the Bot Framework schema")

        async def turn(turn_context: TurnContext) -> None:
            turn_context.turn_state[RAW_ACTIVITY] = body
            await self._bot.on_turn(turn_context)

        response = await self._adapter.process_activity(self.clients.reuse(auth), activity, turn)
        if response is not None:
            return jsonio.response(response.body, status=response.status)
        if activity.type == ActivityTypes.invoke:
            return web.Response(status=200)
        return web.Response(status=201)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return jsonio.response({"error": {"message": message}}, status=status, headers=headers)
