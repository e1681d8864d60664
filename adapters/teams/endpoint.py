"""Inbound Teams traffic: ``POST /api/messages`` through botbuilder's ``CloudAdapter``.

The handler converts Teams activities (thread replies, card invokes, Action.Submit fallbacks)
into domain calls; nothing botbuilder-shaped goes past this module. It also answers "setup"
(and being added to a team) with the ids ops need for a route, and remembers each tenant's
service URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp
import jwt
from aiohttp import web
from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    CallerIdConstants,
    ChannelAccount,
)
from botframework.connector.auth import AuthenticateRequestResult, AuthenticationConstants
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from jwt.algorithms import RSAAlgorithm

from adapters.runtime import jsonio
from adapters.runtime.clock import utc_now
from adapters.runtime.failures import REFUSALS, clip
from adapters.teams.auth import BotCredentials
from adapters.teams.connector import CARD_TYPE
from adapters.teams.text import plain_text, safe_markdown
from adapters.web.bodies import BodyBrokenError, BodyTooLargeError, BodyTooSlowError, read_body
from bot.cards import END_VERB, JOIN_VERB
from bot.errors import GatewayError, StoreError
from bot.model import Person
from bot.ports import HandoffStore
from bot.service import HandoffService, ThreadOutcome

log = logging.getLogger(__name__)

CARD_VERBS = frozenset({JOIN_VERB, END_VERB})
MAX_BODY_BYTES = 1024 * 1024
MAX_CONNECTOR_CLIENTS = 64  # one per service URL and audience; Teams uses a handful


SETUP_COMMANDS = frozenset({"setup", "/setup"})
# Being added to a team arrives twice (conversationUpdate and installationUpdate): greet once.
GREETING_WINDOW = timedelta(minutes=10)


class ThreadPoster(Protocol):
    """Where the bot's own short replies in a thread go (the connector or its delivery queue)."""

    async def post_text(self, *, thread_id: str, text: str, markdown: bool = False) -> object: ...


class SigningKeysUnavailableError(GatewayError):
    """The Bot Framework's OpenID metadata or signing keys could not be fetched."""


class _SdkSettings:
    """The attribute names ``ConfigurationBotFrameworkAuthentication`` reads."""

    def __init__(self, credentials: BotCredentials) -> None:
        self.APP_ID = credentials.app_id
        self.APP_PASSWORD = credentials.password
        # botbuilder turns inbound auth off only for MultiTenant with no app id.
        self.APP_TYPE = "MultiTenant" if credentials.local_mode else credentials.app_type
        self.APP_TENANTID = credentials.tenant_id
        if credentials.local_mode:
            return
        # Setting any TO_BOT_FROM_CHANNEL_* key switches botbuilder to its "parameterized"
        # authentication, which reads every key below and has no defaults of its own: all are
        # given, as Microsoft's public-cloud values, so production and the tests run one path.
        self.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = credentials.openid_metadata_url
        self.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = credentials.token_issuer
        constants = AuthenticationConstants
        self.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = (
            constants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
        )
        self.TO_CHANNEL_FROM_BOT_LOGIN_URL = constants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX
        self.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = constants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        self.OAUTH_URL = constants.OAUTH_URL
        self.CALLER_ID = CallerIdConstants.public_azure_channel
        self.VALIDATE_AUTHORITY = True


@dataclass(frozen=True)
class _SigningKey:
    """What botbuilder's ``JwtTokenExtractor`` reads from a key (``_OpenIdConfig``'s shape)."""

    public_key: Any
    endorsements: list[str]


class SigningKeys:
    """The Bot Framework's token signing keys, fetched without blocking the event loop.

    botbuilder's own key cache fetches with ``requests`` (no timeout) on the event loop, and a
    key id it does not know raises ``IndexError`` instead of refetching, so a key rotation goes
    unseen for up to a day. This object takes its place in ``JwtTokenExtractor``'s class-level
    cache for the channel metadata URL and answers the same ``get(key_id)``.
    """

    MAX_AGE = 24 * 3600.0
    # A token with an unknown key id refetches at most this often (keys rotate rarely).
    UNKNOWN_KEY_REFETCH = 3600.0
    TIMEOUT = aiohttp.ClientTimeout(total=10)

    def __init__(self, metadata_url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.metadata_url = metadata_url
        self._clock = clock
        self._keys: dict[str, _SigningKey] = {}
        self._fetched_at: float | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def install(self) -> None:
        """Be the key cache botbuilder uses for this metadata URL."""
        JwtTokenExtractor.metadataCache[self.metadata_url] = self

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self._clock() - self._fetched_at

    async def get(self, key_id: str | None) -> _SigningKey:
        if self._age() > self.MAX_AGE:
            await self._refresh()
        key = self._keys.get(key_id or "")
        if key is None and self._age() > self.UNKNOWN_KEY_REFETCH:
            await self._refresh()
            key = self._keys.get(key_id or "")
        if key is None:
            raise PermissionError(f"token signed with an unknown key {key_id!r}")
        return key

    async def _refresh(self) -> None:
        # Concurrent first requests share one fetch.
        task = self._refreshing
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._refreshing = asyncio.ensure_future(self._fetch())
        await asyncio.shield(task)

    async def _fetch(self) -> None:
        try:
            async with aiohttp.ClientSession(timeout=self.TIMEOUT) as session:
                async with session.get(self.metadata_url) as response:
                    response.raise_for_status()
                    jwks_uri = (await response.json(content_type=None))["jwks_uri"]
                async with session.get(jwks_uri) as response:
                    response.raise_for_status()
                    entries = (await response.json(content_type=None))["keys"]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            raise SigningKeysUnavailableError(
                f"signing keys from {self.metadata_url}: {type(exc).__name__} {exc}"
            ) from exc
        keys: dict[str, _SigningKey] = {}
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            try:
                public_key = RSAAlgorithm.from_jwk(json.dumps(entry))
            except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
                log.warning("signing key %r skipped: %s", entry.get("kid"), exc)
                continue
            keys[str(entry.get("kid", ""))] = _SigningKey(
                public_key, list(entry.get("endorsements") or [])
            )
        self._keys = keys
        self._fetched_at = self._clock()
        log.info("%d Bot Framework signing key(s) fetched from %s", len(keys), self.metadata_url)


def _dict(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _str(data: Any, key: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def _person(account: dict[str, Any]) -> Person:
    """A Teams user; the Teams user id is the identity (it is also what @mentions carry)."""
    if not account:
        return Person("unknown", "Someone")
    return Person(
        _str(account, "id") or _str(account, "aadObjectId") or "unknown",
        _str(account, "name")[:MAX_NAME] or "A team member",
    )


def _mentions(activity: dict[str, Any]) -> list[Person]:
    """People @mentioned in a message, not counting the bot."""
    bot_id = _field(activity, "recipient", "id")
    people = []
    entities = activity.get("entities")
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict) or str(entity.get("type") or "").lower() != "mention":
            continue
        mentioned = entity.get("mentioned")
        if not isinstance(mentioned, dict) or not mentioned.get("id") or mentioned["id"] == bot_id:
            continue
        # Users only: channel, team and tag mentions carry an identity type or a 19: id.
        if mentioned.get("conversationIdentityType") or str(mentioned["id"]).startswith("19:"):
            continue
        name = str(mentioned.get("name") or "a colleague")[:MAX_NAME]
        people.append(Person(str(mentioned["id"])[:MAX_ID], name))
    return people


def _tenant_of(body: dict[str, Any]) -> str:
    return _field(body, "channelData", "tenant", "id") or _field(body, "conversation", "tenantId")


def _field(data: Any, *path: str) -> str:
    """``channelData["team"]["id"]`` & co. as a string, "" when any step is missing."""
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return str(data) if isinstance(data, str | int) and data != "" else ""


@dataclass(frozen=True)
class ChannelInfo:
    """Where an activity came from, as ops need it for a route."""

    channel_id: str
    channel_name: str
    team_id: str
    team_name: str
    aad_group_id: str
    tenant_id: str
    service_url: str

    @classmethod
    def of(cls, activity: dict[str, Any]) -> ChannelInfo:
        """From the activity as it came over the wire (a JSON object)."""
        data = _dict(activity, "channelData")
        conversation = _dict(activity, "conversation")
        conversation_id = _str(conversation, "id")
        channel_id = _field(data, "channel", "id") or conversation_id.split(";messageid=", 1)[0]
        team_id = _field(data, "team", "id")
        name = _field(data, "channel", "name")
        if not name and conversation and ";messageid=" not in conversation_id:
            name = _str(conversation, "name")  # the channel's name, on install/conversationUpdate
        if not name and channel_id and channel_id == team_id:
            name = "General"  # the team's first channel has the team's id and no name
        return cls(
            channel_id=channel_id,
            channel_name=name,
            team_id=team_id,
            team_name=_field(data, "team", "name"),
            aad_group_id=_field(data, "team", "aadGroupId"),
            tenant_id=_tenant_of(activity),
            service_url=_str(activity, "serviceUrl").rstrip("/"),
        )

    @property
    def in_team(self) -> bool:
        return bool(self.team_id)

    @property
    def route_id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", (self.channel_name or self.team_name).casefold())
        return slug.strip("-")[:64].strip("-") or "support"


def _yaml_str(value: str) -> str:
    """A YAML double-quoted scalar that cannot close the surrounding markdown code block."""
    quoted = json.dumps(value, ensure_ascii=False).replace("`", "\\u0060")
    # YAML reads U+0085, U+2028 & co. as line breaks: escape what is not printable.
    return "".join(
        ch if ch.isprintable() else f"\\U{ord(ch):08x}" if ord(ch) > 0xFFFF else f"\\u{ord(ch):04x}"
        for ch in quoted
    )


def _code(value: str) -> str:
    return f"`{value.replace('`', '')}`"


def setup_text(info: ChannelInfo, route_of_channel: str = "") -> str:
    """The "setup" answer: this channel's ids and a ready config snippet, as Teams markdown."""
    channel = f"**{safe_markdown(info.channel_name)}** " if info.channel_name else ""
    team = f"**{safe_markdown(info.team_name)}** " if info.team_name else ""
    group = f" (Microsoft 365 group {_code(info.aad_group_id)})" if info.aad_group_id else ""
    lines = [
        "**Handoff setup** for this channel",
        "",
        f"- Channel: {channel}{_code(info.channel_id)}",
        f"- Team: {team}{_code(info.team_id)}{group}",
        f"- Tenant: {_code(info.tenant_id)}",
        f"- Service URL: {_code(info.service_url)}",
        "",
    ]
    if route_of_channel:
        lines += [f"Handoffs of route {_code(route_of_channel)} already come here.", ""]
    lines += [
        "To send handoffs to this channel, add this to `config/handoff.yaml`:",
        "",
        "```yaml",
        "teams:",
        f"  service_url: {_yaml_str(info.service_url)}",
        f"  tenant_id: {_yaml_str(info.tenant_id)}",
        "routes:",
        f"  - id: {info.route_id}",
        f"    name: {_yaml_str(info.channel_name or info.team_name or 'Support')}",
        f"    channel: {_yaml_str(info.channel_id)}",
        "```",
    ]
    return "\n".join(lines)


SETUP_ELSEWHERE_TEXT = (
    "Handoffs go to a **team channel**. Add me to the team (Apps > Manage apps, or "
    '"Add to a team"), then post `@{bot} setup` in the channel that should receive '
    "handoffs: I reply there with the channel, team and tenant ids, the service URL and a "
    "ready snippet for `config/handoff.yaml`."
)


RAW_ACTIVITY = "handoff.raw_activity"  # turn_state key: the activity's JSON as received
MESSAGE_TYPES = frozenset({"message", "messageUpdate", "messageDelete"})


def _raw(turn_context: TurnContext) -> dict[str, Any]:
    raw = turn_context.turn_state.get(RAW_ACTIVITY)
    return raw if isinstance(raw, dict) else {}


class TeamsHandoffBot(ActivityHandler):
    """Teams activities in, domain calls out.

    Messages (thread replies, their edits and deletions, "setup", personal chats) are handled
    straight from the activity's JSON: they are most of the traffic, and botbuilder's turn
    (msrest deserialization, a TurnContext, the middleware pipeline) costs more than the relay
    itself. Everything else (installs, card invokes) goes through botbuilder's ActivityHandler.
    Replies go out through the paced delivery queue, never through a TurnContext."""

    def __init__(
        self,
        *,
        service: HandoffService,
        connector: ThreadPoster,
        store: HandoffStore,
        clock: Callable[[], datetime] = utc_now,
        on_service_url: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__()
        self._service = service
        self._connector = connector
        self._store = store
        self._clock = clock
        self._in_flight: set[str] = set()
        # tenant id -> the serviceUrl its latest activity came from (Teams may move a tenant).
        self._service_urls: dict[str, str] = {}
        self._on_service_url = on_service_url
        # team (or channel) id -> when the bot last introduced itself there.
        self._greeted: dict[str, datetime] = {}
        # team/channel id -> display name, from the events that carry one (messages do not).
        self._names: dict[str, str] = {}

    def service_url_for(self, tenant_id: str) -> str | None:
        """The service URL the tenant's latest activity came from; None before the first one."""
        return self._service_urls.get(tenant_id)

    def observe(self, activity: dict[str, Any], *, authenticated: bool = True) -> None:
        """Every accepted activity: learn channel names and, when it was authenticated (not in
        local mode), the tenant's service URL: nothing unauthenticated moves where we send."""
        info = ChannelInfo.of(activity)
        self._remember_names(info)
        if authenticated:
            self._remember_service_url(info)

    def _remember_names(self, info: ChannelInfo) -> None:
        for key, name in ((info.channel_id, info.channel_name), (info.team_id, info.team_name)):
            if key and name and self._names.get(key) != name:
                if len(self._names) >= NAMES_KEPT:
                    self._names.clear()  # names come back with the next event that has them
                self._names[key] = name[:MAX_NAME]

    def _named(self, info: ChannelInfo) -> ChannelInfo:
        return replace(
            info,
            channel_name=info.channel_name or self._names.get(info.channel_id, ""),
            team_name=info.team_name or self._names.get(info.team_id, ""),
        )

    def _remember_service_url(self, info: ChannelInfo) -> None:
        # Reached only after authentication: in production botbuilder has checked that the
        # token's serviceurl claim matches the activity's, so this URL is Microsoft's word.
        if not info.tenant_id or not info.service_url:
            return
        if self._service_urls.get(info.tenant_id) == info.service_url:
            return
        self._service_urls[info.tenant_id] = info.service_url
        log.info("tenant %s uses service URL %s", info.tenant_id, info.service_url)
        if self._on_service_url is not None:
            self._on_service_url(info.tenant_id, info.service_url)

    # ---- botbuilder's turn: installs and card invokes ----------------------------------------

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if bot_id and any(member.id == bot_id for member in members_added):
            await self._introduce(_raw(turn_context))

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        if turn_context.activity.action == "add":  # not "add-upgrade": a new app version
            await self._introduce(_raw(turn_context))

    async def _introduce(self, activity: dict[str, Any]) -> None:
        """Added to a team: post the setup help once in the channel it was added to."""
        info = ChannelInfo.of(activity)
        if not info.in_team:
            return  # a personal or group chat: nothing to set up there
        now = self._clock()
        key = info.team_id
        last = self._greeted.get(key)
        if last is not None and now - last < GREETING_WINDOW:
            return
        if len(self._greeted) >= NAMES_KEPT:
            self._greeted = {k: t for k, t in self._greeted.items() if now - t < GREETING_WINDOW}
        self._greeted[key] = now
        await self._setup_help(_field(activity, "conversation", "id"), info)

    async def _setup_help(self, conversation_id: str, info: ChannelInfo) -> None:
        info = self._named(info)
        routes = [r.id for r in self._service.settings.routes if r.channel == info.channel_id]
        text = setup_text(info, routes[0] if routes else "")
        log.info("setup help posted in %s (team %s)", info.channel_id, info.team_id)
        await self._reply(conversation_id, text, markdown=True)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            # Nothing else is ours (sign-in, message extensions, task modules): botbuilder's own
            # handling of some of them fails with a traceback; the answer is the same 501.
            REFUSALS.log(
                log,
                logging.INFO,
                ("invoke", activity.name),
                "invoke %s not handled",
                clip(activity.name),
            )
            return InvokeResponse(status=501)
        value = activity.value if isinstance(activity.value, dict) else {}
        action = value.get("action") if isinstance(value.get("action"), dict) else {}
        data = action.get("data") if isinstance(action.get("data"), dict) else {}
        verb = str(action.get("verb") or data.get("verb") or "")
        handoff_id = str(data.get("handoffId") or "")
        if verb not in CARD_VERBS or not handoff_id or len(handoff_id) > MAX_ID:
            log.warning("card action without a known verb/handoff id: %s", clip(action))
            return _invoke_error("BadRequest", "This card action is not one I know.")
        raw = _raw(turn_context)
        result = await self._service.card_action(
            verb=verb,
            handoff_id=handoff_id,
            person=_person(_dict(raw, "from")),
            thread_id=_field(raw, "conversation", "id"),
            now=self._clock(),
        )
        if result.card is None:
            return _invoke_message(result.notice)
        return InvokeResponse(
            status=200, body={"statusCode": 200, "type": CARD_TYPE, "value": result.card}
        )

    # ---- messages, straight from the JSON ----------------------------------------------------

    async def on_message(self, activity: dict[str, Any]) -> None:
        """A ``message``, ``messageUpdate`` or ``messageDelete`` activity."""
        kind = activity.get("type")
        if kind != "message":
            await self._changed(activity, deleted=kind == "messageDelete")
            return
        # Teams redelivers when a turn fails or times out: a delivery counts as handled only once
        # it was handled, and a copy arriving meanwhile is dropped.
        activity_id = _str(activity, "id")
        thread_id = _field(activity, "conversation", "id")
        key = f"teams:{thread_id}:{activity_id}"
        if activity_id and (key in self._in_flight or await self._store.seen(key=key)):
            log.info("duplicate Teams activity %s dropped", activity_id)
            return
        self._in_flight.add(key)
        try:
            await self._handle_message(activity)
            if activity_id:
                await self._store.remember(key=key, now=self._clock())
        finally:
            self._in_flight.discard(key)

    async def _handle_message(self, activity: dict[str, Any]) -> None:
        now = self._clock()
        value = _dict(activity, "value")
        raw_text = _str(activity, "text")
        if value.get("verb") in CARD_VERBS and not raw_text.strip():
            await self._submit(activity, value, now)
            return
        conversation = _dict(activity, "conversation")
        thread_id = _str(conversation, "id")
        bot_name = _field(activity, "recipient", "name")
        text = plain_text(raw_text, drop_mentions_of=bot_name)
        mentioned = bool(bot_name) and f"<at>{bot_name.casefold()}</at>" in raw_text.casefold()
        personal = conversation.get("conversationType") == "personal"
        if text.casefold().rstrip(".!?") in SETUP_COMMANDS and (mentioned or personal):
            info = ChannelInfo.of(activity)
            if info.in_team:
                await self._setup_help(thread_id, info)
            else:
                text = SETUP_ELSEWHERE_TEXT.format(bot=bot_name or "bot")
                await self._reply(thread_id, text, markdown=True)
            return
        if ";messageid=" not in thread_id:
            if mentioned or personal:
                await self._reply(thread_id, self._service.settings.texts.unknown_thread)
            return
        person = _person(_dict(activity, "from"))
        if not text:
            return
        result = await self._service.thread_message(
            thread_id=thread_id,
            person=person,
            text=text,
            now=now,
            message_id=_str(activity, "id"),
            mentions=_mentions(activity),
        )
        if result.outcome is ThreadOutcome.UNKNOWN:
            log.info("message in unknown thread %s from %s", thread_id, person.id)
            if not mentioned:
                return
        if result.reply:
            await self._reply(thread_id, result.reply)

    async def _changed(self, activity: dict[str, Any], *, deleted: bool) -> None:
        """A thread message was edited, deleted or undeleted: a relayed one follows suit."""
        thread_id = _field(activity, "conversation", "id")
        message_id = _str(activity, "id")
        if ";messageid=" not in thread_id or not message_id:
            return
        bot_name = _field(activity, "recipient", "name")
        text = None if deleted else plain_text(_str(activity, "text"), drop_mentions_of=bot_name)
        await self._service.thread_message_changed(
            thread_id=thread_id,
            person=_person(_dict(activity, "from")),
            message_id=message_id,
            text=text,
        )

    async def _reply(self, conversation_id: str, text: str, *, markdown: bool = False) -> None:
        try:
            await self._connector.post_text(thread_id=conversation_id, text=text, markdown=markdown)
        except GatewayError as exc:
            log.error("could not reply in %s: %s", conversation_id, exc)

    async def _submit(self, activity: dict[str, Any], value: dict[str, Any], now: datetime) -> None:
        """Action.Submit fallback from hosts without Universal Actions."""
        thread_id = _field(activity, "conversation", "id")
        result = await self._service.card_action(
            verb=str(value["verb"]),
            handoff_id=str(value.get("handoffId", "")),
            person=_person(_dict(activity, "from")),
            thread_id=thread_id,
            now=now,
        )
        if result.notice and thread_id:
            await self._reply(thread_id, result.notice)


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


class _ReusedClients:
    """botbuilder's CloudAdapter builds a new ConnectorClient and a new UserTokenClient on every
    turn (about 4 ms of CPU each in msrest's retry-policy setup, see DESIGN.md). Both are
    reusable for the same app, service URL and audience, so each is built once."""

    def __init__(self, auth: Any) -> None:
        self._auth = auth
        self._connectors: dict[tuple[str, str], Any] = {}
        self._token_clients: dict[str, Any] = {}
        self.built = 0  # clients actually constructed (for tests and diagnostics)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._auth, name)

    async def create_user_token_client(self, claims_identity: Any) -> Any:
        claims = getattr(claims_identity, "claims", None) or {}
        key = str(claims.get("aud") or claims.get("appid") or "")
        if key not in self._token_clients:
            self.built += 1
            self._token_clients[key] = await self._auth.create_user_token_client(claims_identity)
        return self._token_clients[key]

    def reuse(self, result: AuthenticateRequestResult) -> AuthenticateRequestResult:
        """Swap the result's per-turn connector factory for one that hands out cached clients."""
        if result.connector_factory is not None:
            result.connector_factory = _CachedConnectorFactory(self, result.connector_factory)
        return result


class _CachedConnectorFactory:
    def __init__(self, owner: _ReusedClients, inner: Any) -> None:
        self._owner = owner
        self._inner = inner

    async def create(self, service_url: str, audience: str) -> Any:
        key = (service_url, audience or "")
        cache = self._owner._connectors
        if key not in cache:
            if len(cache) >= MAX_CONNECTOR_CLIENTS:
                cache.clear()  # local mode takes any serviceUrl: keep the cache bounded
            self._owner.built += 1
            cache[key] = await self._inner.create(service_url, audience)
        return cache[key]


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
        self._auth = ConfigurationBotFrameworkAuthentication(_SdkSettings(credentials))
        self.clients = _ReusedClients(self._auth)
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
        conversation_id = _field(body, "conversation", "id")
        if not conversation_id or not _str(body, "serviceUrl"):
            return _error(400, "the activity needs conversation and serviceUrl")
        too_long = _too_long(body)
        if too_long:
            # Teams' ids are short: a long one is an attack on memory or on the logs.
            return _error(400, f"{too_long} is too long")
        try:
            header = request.headers.get("Authorization", "")
            auth = await self._authenticate(_for_auth(body), header)
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
        if tenant and body.get("channelId") == "msteams" and _tenant_of(body) != tenant:
            log.warning(
                "activity %s from tenant %s refused",
                clip(body.get("id")),
                clip(_tenant_of(body)),
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


def _for_auth(body: dict[str, Any]) -> Activity:
    """What botbuilder's authentication reads of an activity (channel and service URL), without
    deserializing all of it."""
    return Activity(channel_id=_str(body, "channelId"), service_url=_str(body, "serviceUrl"))


# The longest id (conversation, activity, user, tenant, channel) and name Teams sends, with room.
MAX_ID = 512
MAX_NAME = 256
NAMES_KEPT = 10_000  # team and channel names, and greetings, remembered (then started over)
_ID_FIELDS = (
    ("id",),
    ("replyToId",),
    ("serviceUrl",),
    ("conversation", "id"),
    ("from", "id"),
    ("from", "aadObjectId"),
    ("recipient", "id"),
    ("channelData", "tenant", "id"),
    ("channelData", "team", "id"),
    ("channelData", "channel", "id"),
)


def _too_long(body: dict[str, Any]) -> str:
    """The first id of the activity longer than ``MAX_ID``, as a key path ("" if none)."""
    for path in _ID_FIELDS:
        value: Any = body
        for key in path:
            value = value.get(key) if type(value) is dict else None
        if type(value) is str and len(value) > MAX_ID:
            return ".".join(path)
    return ""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return jsonio.response({"error": {"message": message}}, status=status, headers=headers)
