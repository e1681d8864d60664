"""The "setup" answer: the ids ops need for a route, and a ready config snippet."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from adapters.teams.text import safe_markdown
from adapters.teams.wire import field, mapping, string, tenant_of

log = logging.getLogger(__name__)

SETUP_COMMANDS = frozenset({"setup", "/setup"})
# Being added to a team arrives twice (conversationUpdate and installationUpdate): greet once.
GREETING_WINDOW = timedelta(minutes=10)


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
        data = mapping(activity, "channelData")
        conversation = mapping(activity, "conversation")
        conversation_id = string(conversation, "id")
        channel_id = field(data, "channel", "id") or conversation_id.split(";messageid=", 1)[0]
        team_id = field(data, "team", "id")
        name = field(data, "channel", "name")
        if not name and conversation and ";messageid=" not in conversation_id:
            name = string(conversation, "name")  # the channel's name, on install/conversationUpdate
        if not name and channel_id and channel_id == team_id:
            name = "General"  # the team's first channel has the team's id and no name
        return cls(
            channel_id=channel_id,
            channel_name=name,
            team_id=team_id,
            team_name=field(data, "team", "name"),
            aad_group_id=field(data, "team", "aadGroupId"),
            tenant_id=tenant_of(activity),
            service_url=string(activity, "serviceUrl").rstrip("/"),
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
