"""Reading Teams activities as they come over the wire (JSON objects): fields, people,
mentions, tenants, and the bounds on ids that Teams never exceeds."""

from __future__ import annotations

import logging
from typing import Any

from bot.model import Person

log = logging.getLogger(__name__)


def mapping(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def string(data: Any, key: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else ""


def person_of(account: dict[str, Any]) -> Person:
    """A Teams user; the Teams user id is the identity (it is also what @mentions carry)."""
    if not account:
        return Person("unknown", "Someone")
    return Person(
        string(account, "id") or string(account, "aadObjectId") or "unknown",
        string(account, "name")[:MAX_NAME] or "A team member",
    )


def mentions_of(activity: dict[str, Any]) -> list[Person]:
    """People @mentioned in a message, not counting the bot."""
    bot_id = field(activity, "recipient", "id")
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


def tenant_of(body: dict[str, Any]) -> str:
    return field(body, "channelData", "tenant", "id") or field(body, "conversation", "tenantId")


def field(data: Any, *path: str) -> str:
    """``channelData["team"]["id"]`` & co. as a string, "" when any step is missing."""
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return str(data) if isinstance(data, str | int) and data != "" else ""


# The longest id (conversation, activity, user, tenant, channel) and name Teams sends, with room.
MAX_ID = 512
MAX_NAME = 256
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


def overlong_id(body: dict[str, Any]) -> str:
    """The first id of the activity longer than ``MAX_ID``, as a key path ("" if none)."""
    for path in _ID_FIELDS:
        value: Any = body
        for key in path:
            value = value.get(key) if type(value) is dict else None
        if type(value) is str and len(value) > MAX_ID:
            return ".".join(path)
    return ""
