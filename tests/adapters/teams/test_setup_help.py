"""Setup help: added to a team or asked "@bot setup", the bot posts the ids ops need for a route."""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any

import aiohttp
import pytest

from adapters.ops.config_file import parse_settings
from adapters.teams.inbound import TeamsHandoffBot
from adapters.teams.setup import ChannelInfo, setup_text
from tests.conftest import CHANNEL, RunningBot
from tests.support.standin import Call, Standin
from tests.support.teams import ALEX, BOT, FIXTURES, TENANT, send, thread_message

TEAM = "19:handoff-team@thread.tacv2"
GROUP = "00000000-0000-0000-0000-000000000031"


def fixture(name: str, service_url: str) -> dict[str, Any]:
    activity = json.loads((FIXTURES / f"{name}.json").read_text())
    activity.update({"id": str(uuid.uuid4()), "serviceUrl": service_url})
    return activity


def personal_message(service_url: str, text: str) -> dict[str, Any]:
    activity = thread_message(service_url, "a:1personal-chat-id", ALEX, text, mention=False)
    activity["conversation"] = {
        "conversationType": "personal",
        "tenantId": TENANT,
        "id": "a:1personal-chat-id",
    }
    activity["channelData"] = {"tenant": {"id": TENANT}}
    return activity


def replies_in(standin: Standin, conversation_id: str) -> list[Call]:
    prefix = f"/v3/conversations/{conversation_id}/activities"
    return [c for c in standin.calls if c.method == "POST" and c.path.startswith(prefix)]


def snippet(text: str) -> str:
    blocks = re.findall(r"```yaml\n(.*?)\n```", text, flags=re.DOTALL)
    assert len(blocks) == 1, text
    return str(blocks[0])


async def settle(http: aiohttp.ClientSession, bot: RunningBot, standin: Standin) -> None:
    """A round trip that replies, so anything sent before it has reached the stand-in."""
    marker = f"19:marker-{uuid.uuid4().hex}@thread.tacv2;messageid=1"
    await send(http, bot.url, thread_message(standin.url, marker, ALEX, "hello?"))
    await standin.wait_for(lambda: replies_in(standin, marker))


async def test_install_in_a_channel_posts_ids_and_a_route_snippet(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    status, _ = await send(http, bot.url, fixture("installation_update_channel", standin.url))
    assert status in (200, 201)
    channel = "19:handoff-demo@thread.tacv2"
    [reply] = await standin.wait_for(lambda: replies_in(standin, channel))
    body = reply.body
    assert body["type"] == "message" and body["textFormat"] == "markdown"
    text = body["text"]
    for shown in (channel, "Handoff Demo", TEAM, "Handoff Team", GROUP, TENANT, standin.url):
        assert shown in text
    # The snippet is a config the service accepts as is, pointing at this channel.
    settings = parse_settings(snippet(text), "snippet.yaml")
    assert settings.teams.service_url == standin.url
    assert settings.teams.tenant_id == TENANT
    [route] = settings.routes
    assert (route.id, route.name, route.channel) == ("handoff-demo", "Handoff Demo", channel)


async def test_added_to_a_team_greets_once(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    # Teams announces an install twice: conversationUpdate (bot in membersAdded) and
    # installationUpdate. One post is enough.
    added = fixture("conversation_update_team", standin.url)
    status, _ = await send(http, bot.url, added)
    assert status in (200, 201)
    channel = "19:handoff-support@thread.tacv2"
    [reply] = await standin.wait_for(lambda: replies_in(standin, channel))
    text = reply.body["text"]
    assert "Customer support" in text and "Contoso Support" in text and GROUP in text
    route = parse_settings(snippet(text), "snippet.yaml").routes[0]
    assert (route.id, route.channel) == ("customer-support", channel)

    installed = fixture("installation_update_channel", standin.url)
    installed["conversation"]["id"] = channel
    installed["channelData"]["team"] = copy.deepcopy(added["channelData"]["team"])
    await send(http, bot.url, installed)
    await send(http, bot.url, {**added, "id": str(uuid.uuid4())})
    await settle(http, bot, standin)
    assert len(replies_in(standin, channel)) == 1


async def test_someone_else_joining_the_team_is_not_greeted(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    activity = fixture("conversation_update_team", standin.url)
    activity["membersAdded"] = [{"id": ALEX["id"], "aadObjectId": ALEX["aadObjectId"]}]
    status, _ = await send(http, bot.url, activity)
    assert status in (200, 201)
    await settle(http, bot, standin)
    assert replies_in(standin, "19:handoff-support@thread.tacv2") == []


async def test_an_app_upgrade_is_not_an_install(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    activity = fixture("installation_update_channel", standin.url)
    activity["action"] = "add-upgrade"
    status, _ = await send(http, bot.url, activity)
    assert status in (200, 201)
    await settle(http, bot, standin)
    assert replies_in(standin, "19:handoff-demo@thread.tacv2") == []


async def test_installed_in_a_personal_chat_says_nothing(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    activity = fixture("installation_update_channel", standin.url)
    activity["conversation"] = {"conversationType": "personal", "tenantId": TENANT, "id": "a:1x"}
    activity["channelData"] = {"tenant": {"id": TENANT}}
    status, _ = await send(http, bot.url, activity)
    assert status in (200, 201)
    await settle(http, bot, standin)
    assert replies_in(standin, "a:1x") == []


@pytest.mark.parametrize("command", ["setup", "Setup", " /setup ", "setup!"])
async def test_setup_mention_in_a_channel_thread(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin, command: str
) -> None:
    thread = f"{CHANNEL};messageid=1795507532777"
    status, _ = await send(http, bot.url, thread_message(standin.url, thread, ALEX, command))
    assert status in (200, 201)
    [reply] = await standin.wait_for(lambda: replies_in(standin, thread))
    text = reply.body["text"]
    for shown in (CHANNEL, TEAM, TENANT, standin.url):
        assert shown in text
    assert f"{thread}" not in text  # the channel's id, not the thread's
    # The channel is already a route in the running config: the answer says so.
    assert "route `support` already" in text
    route = parse_settings(snippet(text), "snippet.yaml").routes[0]
    assert route.channel == CHANNEL


async def test_setup_uses_names_learned_from_earlier_events(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    # Messages carry ids only; the install event named the channel and the team.
    await send(http, bot.url, fixture("installation_update_channel", standin.url))
    channel = "19:handoff-demo@thread.tacv2"
    await standin.wait_for(lambda: replies_in(standin, channel))
    thread = f"{channel};messageid=77"
    activity = thread_message(standin.url, thread, ALEX, "setup")
    activity["channelData"]["team"] = {"id": TEAM}
    await send(http, bot.url, activity)
    [reply] = await standin.wait_for(lambda: replies_in(standin, thread))
    text = reply.body["text"]
    assert "**Handoff Demo**" in text and "**Handoff Team**" in text
    route = parse_settings(snippet(text), "snippet.yaml").routes[0]
    assert (route.id, route.name) == ("handoff-demo", "Handoff Demo")


async def test_setup_in_the_general_channel_names_it(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    # The General channel has the team's id and no name of its own.
    thread = f"{TEAM};messageid=42"
    activity = thread_message(standin.url, thread, ALEX, "setup")
    activity["channelData"]["team"] = {"id": TEAM, "name": "Contoso Support"}
    await send(http, bot.url, activity)
    [reply] = await standin.wait_for(lambda: replies_in(standin, thread))
    route = parse_settings(snippet(reply.body["text"]), "snippet.yaml").routes[0]
    assert (route.id, route.name, route.channel) == ("general", "General", TEAM)


async def test_setup_in_a_personal_chat_explains_how(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    status, _ = await send(http, bot.url, personal_message(standin.url, "setup"))
    assert status in (200, 201)
    [reply] = await standin.wait_for(lambda: replies_in(standin, "a:1personal-chat-id"))
    text = reply.body["text"]
    assert "team channel" in text and f"@{BOT['name']} setup" in text
    assert "```" not in text


@pytest.mark.parametrize(
    ("text", "mention"),
    [("setup", False), ("lunch?", False), ("setup the printer please", False)],
    ids=["setup-without-mention", "chatter", "setup-in-a-sentence"],
)
async def test_ordinary_channel_messages_get_no_reply(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin, text: str, mention: bool
) -> None:
    thread = f"{CHANNEL};messageid=424242"
    status, _ = await send(
        http, bot.url, thread_message(standin.url, thread, ALEX, text, mention=mention)
    )
    assert status in (200, 201)
    await settle(http, bot, standin)
    assert replies_in(standin, thread) == []


async def test_mentioned_with_other_words_keeps_the_usual_answer(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    thread = f"{CHANNEL};messageid=424243"
    await send(http, bot.url, thread_message(standin.url, thread, ALEX, "setup the printer"))
    [reply] = await standin.wait_for(lambda: replies_in(standin, thread))
    assert "only relay messages in handoff threads" in reply.body["text"]


@pytest.mark.parametrize(
    "name",
    [
        "Sales ```\nrm -rf",
        "line\u2028sep\x85",
        'Quotes "and" \\ backslashes: #1',
        "*Bold* _team_ [link](x)",
        "Ünïcode 🎉",
    ],
)
def test_snippet_stays_valid_whatever_the_channel_is_called(name: str) -> None:
    info = ChannelInfo(
        channel_id="19:x@thread.tacv2",
        channel_name=name,
        team_id=TEAM,
        team_name="T",
        aad_group_id="",
        tenant_id=TENANT,
        service_url="https://smba.trafficmanager.net/emea",
    )
    text = setup_text(info)
    assert text.count("```") == 2  # the name cannot close the code block early
    [route] = parse_settings(snippet(text), "snippet.yaml").routes
    assert route.name == name and route.channel == "19:x@thread.tacv2"


async def test_service_url_is_remembered_per_tenant() -> None:
    seen: list[tuple[str, str]] = []
    # Observing an activity reaches no domain code, so the bot needs no service or store here.
    teams_bot = TeamsHandoffBot(
        service=None,  # type: ignore[arg-type]
        connector=None,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        on_service_url=lambda tenant, url: seen.append((tenant, url)),
    )

    def event(tenant: str, url: str) -> dict[str, Any]:
        return {
            "type": "event",
            "name": "noop",
            "serviceUrl": url,
            "channelId": "msteams",
            "conversation": {"id": "19:c@thread.tacv2", "tenantId": tenant},
            "channelData": {"tenant": {"id": tenant}},
        }

    assert teams_bot.service_url_for(TENANT) is None
    teams_bot.observe(event(TENANT, "https://smba.trafficmanager.net/emea/"))
    teams_bot.observe(event(TENANT, "https://smba.trafficmanager.net/emea/"))
    teams_bot.observe(event("other-tenant", "https://smba.trafficmanager.net/amer/"))
    assert teams_bot.service_url_for(TENANT) == "https://smba.trafficmanager.net/emea"
    assert teams_bot.service_url_for("other-tenant") == "https://smba.trafficmanager.net/amer"
    # Teams moved the tenant: the newest URL wins and is reported once more.
    teams_bot.observe(event(TENANT, "https://smba.trafficmanager.net/uk/"))
    assert teams_bot.service_url_for(TENANT) == "https://smba.trafficmanager.net/uk"
    assert seen == [
        (TENANT, "https://smba.trafficmanager.net/emea"),
        ("other-tenant", "https://smba.trafficmanager.net/amer"),
        (TENANT, "https://smba.trafficmanager.net/uk"),
    ]
