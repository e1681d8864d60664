"""Handing a stored visitor activity to the domain: messages, the visitor's context, handoff
requests and ends, an upstream agent's ``handoff.initiate`` with its transcript."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from adapters.ops.settings import ServiceSettings
from bot.errors import HandoffError, StaleWriteError, StoreError, UnknownConversationError
from bot.model import Role
from bot.usecases import HandoffService, UpstreamTurn

log = logging.getLogger(__name__)


class Dispatcher:
    """What the inbox does with each visitor activity, in order."""

    def __init__(
        self, service: HandoffService[ServiceSettings], clock: Callable[[], datetime]
    ) -> None:
        self._service = service
        self._clock = clock

    async def failed(self, cid: str) -> None:
        """An activity of the conversation was quarantined: the visitor hears so."""
        await self._service.message_failed(conversation_id=cid, now=self._clock())

    async def dispatch(self, cid: str, activity: dict[str, Any]) -> None:
        """Hand one stored visitor activity to the domain."""
        service = self._service
        kind = str(activity.get("type", ""))
        now = self._clock()
        name = activity.get("name", "")
        value = activity.get("value")
        with _outcome(cid, kind):
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

    async def dispatch_run(self, cid: str, activities: list[dict[str, Any]]) -> None:
        """Hand the domain several stored visitor messages in a row, each ``relayable``."""
        texts = [str(activity.get("text") or "") for activity in activities]
        with _outcome(cid, "message"):
            await self._service.visitor_messages(
                conversation_id=cid, texts=texts, now=self._clock()
            )


def relayable(activity: dict[str, Any]) -> bool:
    """A visitor's plain message: one of a row of them may be handled with the others."""
    return activity.get("type") == "message" and _chosen_route(activity.get("value")) is None


@contextlib.contextmanager
def _outcome(cid: str, kind: str) -> Iterator[None]:
    """What the domain's refusals mean for the inbox: a store failure is tried again (nothing
    was saved); the rest is logged and the activity counts as handled."""
    try:
        yield
    except UnknownConversationError:
        log.warning("conversation %s: activity for an unknown conversation", cid)
    except HandoffError as exc:
        if isinstance(exc, StoreError) and not isinstance(exc, StaleWriteError):
            raise  # not saved: the inbox handles it again
        log.exception("conversation %s: could not handle a %s activity", cid, kind)


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
