"""Teams channel references in the config: a channel id, or the link from "Copy link to
channel", which also tells the team and the tenant."""

from __future__ import annotations

import pytest

from adapters.ops.settings import ServiceSettings
from adapters.teams.links import parse_channel


@pytest.mark.parametrize(
    ("value", "channel", "team", "tenant"),
    [
        ("19:abc@thread.tacv2", "19:abc@thread.tacv2", "", ""),
        (
            "https://teams.microsoft.com/l/channel/19%3a4a95f7d8db4c4e7fae857bcebe0623e6%40thread.tacv2/Support"
            "?groupId=fbe8c0b9-0000-4000-8000-000000000001&tenantId=72f988bf-86f1-41af-91ab-2d7cd011db47",
            "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2",
            "fbe8c0b9-0000-4000-8000-000000000001",
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
        ),
        (
            "https://teams.cloud.microsoft/l/channel/19%3AQ1w2%40thread.tacv2/General",
            "19:Q1w2@thread.tacv2",
            "",
            "",
        ),
    ],
)
def test_channel_links(value: str, channel: str, team: str, tenant: str) -> None:
    ref = parse_channel(value)
    assert (ref.channel_id, ref.team_group_id, ref.tenant_id) == (channel, team, tenant)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("general", "give a channel id"),
        ("19:no-thread-suffix", "not a Teams channel id"),
        ("https://evil.example/l/channel/19%3Aa%40thread.tacv2/x", "give a channel id"),
        ("https://teams.microsoft.com/l/chat/19%3Aa%40thread.v2/0", "not a link to a channel"),
        (
            "https://teams.microsoft.com/l/channel/19%3Aa%40thread.tacv2/x?groupId=nope",
            "groupId 'nope' is not a GUID",
        ),
    ],
)
def test_bad_channel_links(value: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_channel(value)


def test_route_takes_team_and_tenant_from_the_link() -> None:
    settings = ServiceSettings.model_validate(
        {
            "routes": [
                {
                    "id": "a",
                    "channel": (
                        "https://teams.microsoft.com/l/channel/19%3Axyz%40thread.tacv2/Sales?groupId="
                        "fbe8c0b9-0000-4000-8000-000000000001&tenantId=72f988bf-86f1-41af-91ab-2d7cd011db47"
                    ),
                }
            ]
        }
    )
    route = settings.routes[0]
    assert route.channel == "19:xyz@thread.tacv2"
    assert route.team_id == "fbe8c0b9-0000-4000-8000-000000000001"
