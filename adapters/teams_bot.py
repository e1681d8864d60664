"""Inbound Teams traffic: ``POST /api/messages`` through botbuilder's ``CloudAdapter``.

The handler converts Teams activities (thread replies, card invokes, Action.Submit fallbacks)
into domain calls; nothing botbuilder-shaped goes past this module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount

from adapters.auth import BotCredentials
from adapters.clock import utc_now
from adapters.teams_connector import CARD_TYPE, BotConnector
from adapters.teams_text import plain_text
from bot.cards import END_VERB, JOIN_VERB
from bot.errors import GatewayError
from bot.model import Person
from bot.ports import HandoffStore
from bot.service import HandoffService, ThreadOutcome

log = logging.getLogger(__name__)

CARD_VERBS = frozenset({JOIN_VERB, END_VERB})
MAX_BODY_BYTES = 1024 * 1024


class _SdkSettings:
    """The attribute names ``ConfigurationBotFrameworkAuthentication`` reads."""

    def __init__(self, credentials: BotCredentials) -> None:
        self.APP_ID = credentials.app_id
        self.APP_PASSWORD = credentials.password
        # botbuilder turns inbound auth off only for MultiTenant with no app id.
        self.APP_TYPE = "MultiTenant" if credentials.local_mode else credentials.app_type
        self.APP_TENANTID = credentials.tenant_id


def _person(account: ChannelAccount | None) -> Person:
    if account is None:
        return Person("unknown", "Someone")
    return Person(account.aad_object_id or account.id or "unknown", account.name or "A team member")


def _tenant_of(body: dict[str, Any]) -> str:
    channel_data = body.get("channelData") if isinstance(body.get("channelData"), dict) else {}
    tenant = channel_data.get("tenant") if isinstance(channel_data, dict) else None
    if isinstance(tenant, dict) and tenant.get("id"):
        return str(tenant["id"])
    conversation = body.get("conversation") if isinstance(body.get("conversation"), dict) else {}
    return str(conversation.get("tenantId", "")) if isinstance(conversation, dict) else ""


class TeamsHandoffBot(ActivityHandler):
    """Teams activities in, domain calls out."""

    def __init__(
        self,
        *,
        service: HandoffService,
        connector: BotConnector,
        store: HandoffStore,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__()
        self._service = service
        self._connector = connector
        self._store = store
        self._clock = clock
        self._in_flight: set[str] = set()

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        # Teams redelivers when a turn fails or times out: a delivery counts as handled only once
        # it was handled, and a copy arriving meanwhile is dropped.
        key = f"teams:{activity.conversation.id if activity.conversation else ''}:{activity.id}"
        if activity.id and (key in self._in_flight or await self._store.seen(key=key)):
            log.info("duplicate Teams activity %s dropped", activity.id)
            return
        self._in_flight.add(key)
        try:
            await self._handle_message(turn_context, activity)
            if activity.id:
                await self._store.remember(key=key, now=self._clock())
        finally:
            self._in_flight.discard(key)

    async def _handle_message(self, turn_context: TurnContext, activity: Activity) -> None:
        now = self._clock()
        value = activity.value if isinstance(activity.value, dict) else {}
        if value.get("verb") in CARD_VERBS and not (activity.text or "").strip():
            await self._submit(activity, value, now)
            return
        thread_id = activity.conversation.id if activity.conversation else ""
        bot_name = activity.recipient.name if activity.recipient else ""
        text = plain_text(activity.text or "", drop_mentions_of=bot_name)
        mentioned = (
            bool(bot_name) and f"<at>{bot_name.casefold()}</at>" in (activity.text or "").casefold()
        )
        if ";messageid=" not in thread_id:
            if mentioned or activity.conversation.conversation_type == "personal":
                await turn_context.send_activity(self._service.settings.texts.unknown_thread)
            return
        person = _person(activity.from_property)
        if not text:
            return
        result = await self._service.thread_message(
            thread_id=thread_id, person=person, text=text, now=now
        )
        if result.outcome is ThreadOutcome.UNKNOWN:
            log.info("message in unknown thread %s from %s", thread_id, person.id)
            if not mentioned:
                return
        if result.reply:
            await self._reply(thread_id, result.reply)

    async def _reply(self, thread_id: str, text: str) -> None:
        try:
            await self._connector.post_text(thread_id=thread_id, text=text)
        except GatewayError as exc:
            log.error("could not reply in thread %s: %s", thread_id, exc)

    async def _submit(self, activity: Activity, value: dict[str, Any], now: datetime) -> None:
        """Action.Submit fallback from hosts without Universal Actions."""
        result = await self._service.card_action(
            verb=str(value["verb"]),
            handoff_id=str(value.get("handoffId", "")),
            person=_person(activity.from_property),
            thread_id=activity.conversation.id if activity.conversation else "",
            now=now,
        )
        if result.notice and activity.conversation:
            await self._reply(activity.conversation.id, result.notice)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return await super().on_invoke_activity(turn_context)
        value = activity.value if isinstance(activity.value, dict) else {}
        action = value.get("action") if isinstance(value.get("action"), dict) else {}
        data = action.get("data") if isinstance(action.get("data"), dict) else {}
        verb = str(action.get("verb") or data.get("verb") or "")
        handoff_id = str(data.get("handoffId") or "")
        if verb not in CARD_VERBS or not handoff_id:
            log.warning("card action without a known verb/handoff id: %r", action)
            return _invoke_error("BadRequest", "This card action is not one I know.")
        result = await self._service.card_action(
            verb=verb,
            handoff_id=handoff_id,
            person=_person(activity.from_property),
            thread_id=activity.conversation.id if activity.conversation else "",
            now=self._clock(),
        )
        if result.card is None:
            return _invoke_message(result.notice)
        return InvokeResponse(
            status=200, body={"statusCode": 200, "type": CARD_TYPE, "value": result.card}
        )


def _invoke_message(text: str) -> InvokeResponse:
    """Universal Actions: a short message shown to the clicker instead of a card."""
    body = {"statusCode": 200, "type": "application/vnd.microsoft.activity.message", "value": text}
    return InvokeResponse(status=200, body=body)


def _invoke_error(code: str, message: str) -> InvokeResponse:
    body = {
        "statusCode": 400,
        "type": "application/vnd.microsoft.error",
        "value": {"code": code, "message": message},
    }
    return InvokeResponse(status=200, body=body)


class TeamsEndpoint:
    """``POST /api/messages``: parse, check tenant, authenticate, run the turn."""

    def __init__(
        self,
        *,
        credentials: BotCredentials,
        bot: TeamsHandoffBot,
        tenant_id: Callable[[], str],
        local_mode: bool,
    ) -> None:
        self._adapter = CloudAdapter(
            ConfigurationBotFrameworkAuthentication(_SdkSettings(credentials))
        )
        self._adapter.on_turn_error = self._on_turn_error
        self._bot = bot
        self._tenant_id = tenant_id
        self._local_mode = local_mode

    async def _on_turn_error(self, turn_context: TurnContext, error: Exception) -> None:
        conversation = turn_context.activity.conversation
        log.error(
            "turn failed in conversation %s: %s",
            conversation.id if conversation else "?",
            error,
            exc_info=error,
        )

    async def handle(self, request: web.Request) -> web.Response:
        if "json" not in request.content_type:
            return _error(415, "send the activity as application/json")
        raw = await request.read()
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, f"the activity is over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, f"the body is not valid JSON: {exc}")
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            return _error(400, "the body must be an activity object with a type")
        if not self._local_mode and body.get("channelId") != "msteams":
            # Production serves Teams only (local mode also takes the Emulator's channel).
            return _error(403, "this bot serves Microsoft Teams only")
        tenant = self._tenant_id()
        if tenant and body.get("channelId") == "msteams" and _tenant_of(body) != tenant:
            log.warning("activity %s from tenant %r refused", body.get("id"), _tenant_of(body))
            return _error(403, "this bot serves one tenant only")
        try:
            activity = Activity().deserialize(body)
        except Exception as exc:  # msrest raises several types for shape errors
            return _error(400, f"the activity does not deserialize: {exc}")
        if not activity.conversation or not activity.service_url:
            return _error(400, "the activity needs conversation and serviceUrl")
        auth_header = request.headers.get("Authorization", "")
        try:
            response = await self._adapter.process_activity(
                auth_header, activity, self._bot.on_turn
            )
        except PermissionError:
            return _error(401, "unauthorized")
        if response is not None:
            return web.json_response(response.body, status=response.status)
        if activity.type == ActivityTypes.invoke:
            return web.Response(status=200)
        return web.Response(status=201)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status)
