"""Bad or foreign input on /api/messages: a clear 4xx or a polite reply; nothing changes."""

from __future__ import annotations

import aiohttp
import pytest

from adapters.web.app import SERVICE
from bot.errors import StoreError
from tests.conftest import CHANNEL, RunningBot
from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import Teams, handed_off, joined
from tests.support.standin import Standin
from tests.support.teams import ALEX, card_action, send, thread_message


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{oops", "application/json", 400),
        (b'{"type": "message", "value": NaN}', "application/json", 400),
        (b"[]", "application/json", 400),
        (b'{"no": "type"}', "application/json", 400),
        (b'{"type": "message"}', "application/json", 400),
        (b"hello", "text/plain", 415),
    ],
    ids=["malformed", "nan", "array", "no-type", "no-conversation", "not-json"],
)
async def test_malformed_activities(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    standin: Standin,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    async with http.post(
        f"{bot.url}/api/messages", data=body, headers={"Content-Type": content_type}
    ) as r:
        assert r.status == status
        text = await r.text()
    assert "Traceback" not in text and "error" in text
    assert standin.calls == []


async def test_other_tenant_is_refused(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    handoff = await handed_off(visitor, standin)
    status, _ = await teams.click(
        handoff, "handoff.join", tenant="99999999-aaaa-bbbb-cccc-000000000000"
    )
    assert status == 403
    assert standin.of("PUT") == []
    assert not any("has joined" in t for t in visitor.texts())


async def test_message_in_unknown_thread(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    thread = f"{CHANNEL};messageid=424242"
    # Ordinary channel chatter the bot can read (RSC) is ignored silently.
    status, _ = await send(
        http, bot.url, thread_message(standin.url, thread, ALEX, "lunch?", mention=False)
    )
    assert status in (200, 201)
    assert standin.calls == []
    # Mentioning the bot there gets a polite explanation in that thread.
    await send(http, bot.url, thread_message(standin.url, thread, ALEX, "hello?"))
    reply = await standin.wait_for(lambda: standin.posts_to(thread))
    assert "only relay messages in handoff threads" in reply[0].body["text"]


async def test_unknown_handoff_and_unknown_verb(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    thread = f"{CHANNEL};messageid=1"
    status, body = await send(
        http, bot.url, card_action(standin.url, thread, ALEX, "handoff.join", "nope")
    )
    assert status == 200 and body["type"] == "application/vnd.microsoft.activity.message"
    assert "not known" in body["value"]
    status, body = await send(
        http, bot.url, card_action(standin.url, thread, ALEX, "launch.rocket", "nope")
    )
    assert status == 200 and body["statusCode"] == 400


async def test_duplicate_thread_message_relayed_once(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    thread_id, _, _ = await joined(visitor, teams)
    reply = thread_message(standin.url, thread_id, ALEX, "only once please")
    await teams.send(reply)
    await teams.send(reply)  # Teams retried the same delivery
    await visitor.wait_text("only once please")
    await visitor.say("sync")  # a round trip, so a second relay would have arrived by now
    await standin.wait_text_in(thread_id, "sync")
    assert sum(t == "only once please" for t in visitor.texts()) == 1


async def test_connector_clients_are_built_once_not_per_turn(
    bot: RunningBot, visitor: DirectLineClient, teams: Teams
) -> None:
    from adapters.web.app import TEAMS

    thread_id, _, _ = await joined(visitor, teams)
    for n in range(20):
        await teams.write(thread_id, f"reply {n}")
    await visitor.wait_text("reply 19")
    # One ConnectorClient and one UserTokenClient for 21 turns (botbuilder alone builds 42).
    assert bot.app[TEAMS].clients.built == 2


@pytest.mark.parametrize(
    ("error", "status"),
    [(RuntimeError("a bug"), 201), (StoreError("disk full"), 503)],
    ids=["bug-logged-not-redelivered", "not-stored-so-redelivered"],
)
async def test_a_failing_thread_message_is_redelivered_only_if_nothing_was_kept(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    standin: Standin,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    status: int,
) -> None:
    """A bug would only fail again on Teams' redelivery (repeating what ran before it); a store
    that could not commit kept nothing, so the redelivery is the retry."""

    async def failing(**_: object) -> None:
        raise error

    monkeypatch.setattr(bot.app[SERVICE], "thread_message", failing)
    reply = thread_message(standin.url, "19:x@thread.tacv2;messageid=1", ALEX, "hello")
    got, _ = await send(http, bot.url, reply)
    assert got == status
    assert str(error) in caplog.text
