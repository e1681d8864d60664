"""Teams activities in, domain calls out: one handler per kind (messages, edits and deletions,
card invokes and their Action.Submit fallback, installs), replies through the paced queue."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext
from botbuilder.schema import (
    ChannelAccount,
)

from adapters.ops.settings import ServiceSettings
from adapters.runtime.clock import utc_now
from adapters.runtime.failures import REFUSALS, clip
from adapters.storage.contract import SharedStore
from adapters.teams.cards import TRANSCRIPT_VERB, VERBS, thread_card, transcript_card
from adapters.teams.connector import CARD_TYPE
from adapters.teams.sdk import raw_activity
from adapters.teams.setup import SETUP_COMMANDS, SETUP_ELSEWHERE_TEXT, ChannelInfo, setup_text
from adapters.teams.text import plain_text
from adapters.teams.wire import MAX_ID, MAX_NAME, field, mapping, mentions_of, person_of, string
from bot.errors import GatewayError, StoreError
from bot.ports import HandoffStore
from bot.usecases import HandoffService, ThreadOutcome

log = logging.getLogger(__name__)

MAX_DIALOG_TITLE = 80  # characters of a dialog's title

MAX_BODY_BYTES = 1024 * 1024
MAX_CONNECTOR_CLIENTS = 64  # one per service URL and audience; Teams uses a handful
GREETING_WINDOW = timedelta(minutes=10)
NAMES_KEPT = 10_000  # team and channel names, and greetings, remembered (then started over)
# A Teams delivery claimed by a process that went down is handled by the next copy after this
# (Teams redelivers a turn that failed or timed out, within minutes).
CLAIM_LEASE = timedelta(seconds=30)
MESSAGE_TYPES = frozenset({"message", "messageUpdate", "messageDelete"})


class ThreadPoster(Protocol):
    """Where the bot's own short replies in a thread go (the connector or its delivery queue)."""

    async def post_text(self, *, thread_id: str, text: str, markdown: bool = False) -> object: ...


class TeamsHandoffBot(ActivityHandler):  # type: ignore[misc]  # botbuilder is untyped
    """Teams activities in, domain calls out.

    Messages (thread replies, their edits and deletions, "setup", personal chats) are handled
    straight from the activity's JSON: they are most of the traffic, and botbuilder's turn
    (msrest deserialization, a TurnContext, the middleware pipeline) costs more than the relay
    itself. Everything else (installs, card invokes) goes through botbuilder's ActivityHandler.
    Replies go out through the paced delivery queue, never through a TurnContext."""

    def __init__(
        self,
        *,
        service: HandoffService[ServiceSettings],
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
        self._shared = store if isinstance(store, SharedStore) else None
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
            await self._introduce(raw_activity(turn_context))

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        if turn_context.activity.action == "add":  # not "add-upgrade": a new app version
            await self._introduce(raw_activity(turn_context))

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
        await self._setup_help(field(activity, "conversation", "id"), info)

    async def _setup_help(self, conversation_id: str, info: ChannelInfo) -> None:
        info = self._named(info)
        routes = [r.id for r in self._service.settings.routes if r.channel == info.channel_id]
        text = setup_text(info, routes[0] if routes else "")
        log.info("setup help posted in %s (team %s)", info.channel_id, info.team_id)
        await self._reply(conversation_id, text, markdown=True)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        activity = turn_context.activity
        if activity.name == "task/fetch":
            return await self._transcript_dialog(turn_context)
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
        action = mapping(activity.value, "action")
        data = mapping(action, "data")
        verb = str(action.get("verb") or data.get("verb") or "")
        handoff_id = str(data.get("handoffId") or "")
        if verb not in VERBS or not handoff_id or len(handoff_id) > MAX_ID:
            log.warning("card action without a known verb/handoff id: %s", clip(action))
            return _invoke_error("BadRequest", "This card action is not one I know.")
        raw = raw_activity(turn_context)
        result = await self._service.desk_action(
            action=VERBS[verb],
            handoff_id=handoff_id,
            person=person_of(mapping(raw, "from")),
            thread_id=field(raw, "conversation", "id"),
            now=self._clock(),
        )
        if result.view is None:
            return _invoke_message(result.notice)
        card = thread_card(result.view)
        return InvokeResponse(
            status=200, body={"statusCode": 200, "type": CARD_TYPE, "value": card}
        )

    async def _transcript_dialog(self, turn_context: TurnContext) -> InvokeResponse:
        """The card's Transcript button (a dialog, ``task/fetch``): the handoff's transcript as
        a card, for a click from the handoff's own thread only."""
        data = mapping(turn_context.activity.value, "data")
        handoff_id = str(data.get("handoffId") or "")
        if data.get("verb") != TRANSCRIPT_VERB or not handoff_id or len(handoff_id) > MAX_ID:
            return _dialog_message("This button is not one I know.")
        raw = raw_activity(turn_context)
        view = await self._service.transcript(
            handoff_id=handoff_id, thread_id=field(raw, "conversation", "id")
        )
        if view is None:
            return _dialog_message("This conversation's transcript is no longer kept.")
        dialog = {
            "title": view.title[:MAX_DIALOG_TITLE],
            "height": "large",
            "width": "large",
            "card": {"contentType": CARD_TYPE, "content": transcript_card(view)},
        }
        return InvokeResponse(status=200, body={"task": {"type": "continue", "value": dialog}})

    # ---- messages, straight from the JSON ----------------------------------------------------

    async def on_message(self, activity: dict[str, Any]) -> None:
        """A ``message``, ``messageUpdate`` or ``messageDelete`` activity."""
        kind = activity.get("type")
        if kind != "message":
            await self._changed(activity, deleted=kind == "messageDelete")
            return
        # Teams redelivers when a turn fails or times out: a delivery counts as handled only once
        # it was handled, and a copy arriving meanwhile is dropped.
        activity_id = string(activity, "id")
        thread_id = field(activity, "conversation", "id")
        key = f"teams:{thread_id}:{activity_id}"
        if activity_id and (key in self._in_flight or not await self._claim(key)):
            log.info("duplicate Teams activity %s dropped", activity_id)
            return
        self._in_flight.add(key)
        try:
            await self._handle_message(activity)
            if activity_id:
                await self._store.remember(key=key, now=self._clock())
        except BaseException:
            if activity_id and self._shared is not None:
                with contextlib.suppress(StoreError):  # else its claim runs out
                    await self._shared.release(key=key)
            raise
        finally:
            self._in_flight.discard(key)

    async def _claim(self, key: str) -> bool:
        """Whether this delivery is new (False: handled already). Several processes sharing
        the store: claimed there. A copy that reaches another instance while one handles it
        is refused with a ``StoreError`` (a 503: Teams redelivers later, when it is either
        done, and dropped, or its claim ran out, its handler having gone down, and handled)."""
        if self._shared is None:
            return not await self._store.seen(key=key)
        claim = await self._shared.claim(key=key, now=self._clock(), lease=CLAIM_LEASE)
        if claim == "taken":
            raise StoreError("another instance is handling this activity; deliver it again later")
        return claim == "mine"

    async def _handle_message(self, activity: dict[str, Any]) -> None:
        now = self._clock()
        value = mapping(activity, "value")
        raw_text = string(activity, "text")
        if value.get("verb") in VERBS and not raw_text.strip():
            await self._submit(activity, value, now)
            return
        conversation = mapping(activity, "conversation")
        thread_id = string(conversation, "id")
        bot_name = field(activity, "recipient", "name")
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
        person = person_of(mapping(activity, "from"))
        if not text:
            return
        result = await self._service.thread_message(
            thread_id=thread_id,
            person=person,
            text=text,
            now=now,
            message_id=string(activity, "id"),
            mentions=mentions_of(activity),
            note=self._service.settings.teams.is_note(text),
        )
        if result.outcome is ThreadOutcome.UNKNOWN:
            log.info("message in unknown thread %s from %s", thread_id, person.id)
            if not mentioned:
                return
        if result.reply:
            await self._reply(thread_id, result.reply)

    async def _changed(self, activity: dict[str, Any], *, deleted: bool) -> None:
        """A thread message was edited, deleted or undeleted: a relayed one follows suit."""
        thread_id = field(activity, "conversation", "id")
        message_id = string(activity, "id")
        if ";messageid=" not in thread_id or not message_id:
            return
        bot_name = field(activity, "recipient", "name")
        text = None if deleted else plain_text(string(activity, "text"), drop_mentions_of=bot_name)
        await self._service.thread_message_changed(
            thread_id=thread_id,
            person=person_of(mapping(activity, "from")),
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
        thread_id = field(activity, "conversation", "id")
        result = await self._service.desk_action(
            action=VERBS[str(value["verb"])],
            handoff_id=str(value.get("handoffId", "")),
            person=person_of(mapping(activity, "from")),
            thread_id=thread_id,
            now=now,
        )
        if result.notice and thread_id:
            await self._reply(thread_id, result.notice)


def _dialog_message(text: str) -> InvokeResponse:
    """A dialog that shows only a short message."""
    return InvokeResponse(status=200, body={"task": {"type": "message", "value": text}})


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
