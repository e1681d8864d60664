"""Teams-shaped activities for tests, built from recorded payloads in ``tests/fixtures/teams``."""

from __future__ import annotations

import copy
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp

FIXTURES = Path(__file__).parent.parent / "fixtures" / "teams"
TENANT = "00000000-0000-0000-0000-0000000000001"
BOT = {"id": "00000000-0000-0000-0000-00000000000011", "name": "Handoff Bot"}
ALEX = {
    "id": "user-id-0",
    "name": "Alex Wilber",
    "aadObjectId": "00000000-0000-0000-0000-0000000000020",
}
ISAIAH = {
    "id": "user-id-3",
    "name": "Isaiah Langer",
    "aadObjectId": "00000000-0000-0000-0000-0000000000023",
}


@cache
def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _base(
    name: str, service_url: str, thread_id: str, user: dict[str, str], tenant: str
) -> dict[str, Any]:
    activity = copy.deepcopy(_fixture(name))
    channel = thread_id.split(";", 1)[0]
    activity.update(
        {
            "id": str(uuid.uuid4()),
            "serviceUrl": service_url,
            "from": dict(user),
            "recipient": dict(BOT),
        }
    )
    activity["conversation"].update({"id": thread_id, "tenantId": tenant})
    activity["channelData"]["tenant"] = {"id": tenant}
    activity["channelData"]["channel"] = {"id": channel}
    return activity


def thread_message(
    service_url: str,
    thread_id: str,
    user: dict[str, str],
    text: str,
    *,
    mention: bool = True,
    tenant: str = TENANT,
    mentions: tuple[dict[str, str], ...] = (),
) -> dict[str, Any]:
    activity = _base("thread_reply", service_url, thread_id, user, tenant)
    at = f"<at>{BOT['name']}</at>"
    activity["text"] = f"{at} {text}" if mention else text
    if not mention:
        activity["entities"] = [e for e in activity["entities"] if e["type"] != "mention"]
    for user in mentions:
        tag = f"<at>{user['name']}</at>"
        activity["text"] += f" {tag}"
        activity["entities"].append(
            {"type": "mention", "text": tag, "mentioned": {"id": user["id"], "name": user["name"]}}
        )
    return activity


def thread_edit(
    service_url: str,
    thread_id: str,
    user: dict[str, str],
    message_id: str,
    text: str,
    *,
    tenant: str = TENANT,
) -> dict[str, Any]:
    """Teams' messageUpdate (eventType editMessage) for a message in a thread."""
    activity = _base("thread_reply", service_url, thread_id, user, tenant)
    activity.update(type="messageUpdate", id=message_id, text=text)
    activity["channelData"]["eventType"] = "editMessage"
    activity["entities"] = []
    return activity


def thread_delete(
    service_url: str, thread_id: str, user: dict[str, str], message_id: str, *, tenant: str = TENANT
) -> dict[str, Any]:
    """Teams' messageDelete (eventType softDeleteMessage)."""
    activity = _base("thread_reply", service_url, thread_id, user, tenant)
    activity.update(type="messageDelete", id=message_id)
    activity.pop("text", None)
    activity["channelData"]["eventType"] = "softDeleteMessage"
    activity["entities"] = []
    return activity


def card_action(
    service_url: str,
    thread_id: str,
    user: dict[str, str],
    verb: str,
    handoff_id: str,
    *,
    tenant: str = TENANT,
) -> dict[str, Any]:
    activity = _base("card_action_invoke", service_url, thread_id, user, tenant)
    activity["replyToId"] = thread_id.split("messageid=", 1)[-1]
    data = {"verb": verb, "handoffId": handoff_id}
    activity["value"] = {
        "action": {"type": "Action.Execute", "title": verb, "verb": verb, "data": data}
    }
    return activity


def card_submit(
    service_url: str,
    thread_id: str,
    user: dict[str, str],
    verb: str,
    handoff_id: str,
    *,
    tenant: str = TENANT,
) -> dict[str, Any]:
    activity = _base("card_action_submit", service_url, thread_id, user, tenant)
    activity["replyToId"] = thread_id.split("messageid=", 1)[-1]
    activity["value"] = {"verb": verb, "handoffId": handoff_id}
    return activity


def task_fetch(
    service_url: str,
    thread_id: str,
    user: dict[str, str],
    data: dict[str, Any],
    *,
    tenant: str = TENANT,
) -> dict[str, Any]:
    """A card's Action.Submit with ``msteams: {type: task/fetch}``: Teams asks the bot for the
    dialog to open (the button's data, and the host's context)."""
    activity = _base("card_action_invoke", service_url, thread_id, user, tenant)
    activity["name"] = "task/fetch"
    activity["replyToId"] = thread_id.split("messageid=", 1)[-1]
    activity["value"] = {"data": {"type": "task/fetch", **data}, "context": {"theme": "default"}}
    return activity


async def send(
    session: aiohttp.ClientSession, bot_url: str, activity: dict[str, Any]
) -> tuple[int, Any]:
    async with session.post(f"{bot_url}/api/messages", json=activity) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text) if text else None
        except ValueError:
            return response.status, text
