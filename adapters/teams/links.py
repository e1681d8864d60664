"""Teams channel references: a channel id, or the link from "Copy link to channel"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

_CHANNEL_ID = re.compile(r"^19:[^\s/?#;]+@thread\.(tacv2|skype)$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TEAMS_HOSTS = (
    "teams.microsoft.com",
    "teams.cloud.microsoft",
    "teams.live.com",
    "gov.teams.microsoft.us",
    "dod.teams.microsoft.us",
)


@dataclass(frozen=True)
class ChannelRef:
    """A channel id, plus the team (Entra group) and tenant when the link carried them."""

    channel_id: str
    team_group_id: str = ""
    tenant_id: str = ""


def parse_channel(value: str) -> ChannelRef:
    """Decode ``19:...@thread.tacv2`` or a Teams channel link; raise ValueError saying why not."""
    text = value.strip()
    if text.startswith("19:"):
        if not _CHANNEL_ID.match(text):
            raise ValueError(f"{text!r} is not a Teams channel id like 19:abc@thread.tacv2")
        return ChannelRef(text)
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname or not parts.hostname.endswith(_TEAMS_HOSTS):
        raise ValueError(
            "give a channel id (19:...@thread.tacv2) or the link from the channel's "
            "'Copy link to channel' (https://teams.microsoft.com/l/channel/...)"
        )
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 3 or segments[:2] != ["l", "channel"]:
        raise ValueError(f"{text!r} is a Teams link, but not a link to a channel (/l/channel/...)")
    channel_id = unquote(segments[2])
    if not _CHANNEL_ID.match(channel_id):
        raise ValueError(f"the link names {channel_id!r}, which is not a Teams channel id")
    query = parse_qs(parts.query)
    group = (query.get("groupId") or [""])[0]
    tenant = (query.get("tenantId") or [""])[0]
    for name, guid in (("groupId", group), ("tenantId", tenant)):
        if guid and not _GUID.match(guid):
            raise ValueError(f"the link's {name} {guid!r} is not a GUID")
    return ChannelRef(channel_id, group, tenant)
