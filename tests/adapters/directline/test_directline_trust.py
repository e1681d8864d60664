"""Secrets and trust on the widget channel: no secret in any URL (stream URLs carry a brief
token that opens one stream only), and X-Forwarded-* believed only from configured proxies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from adapters.directline.access import STREAM_TOKEN_SECONDS
from adapters.runtime.clock import utc_now
from tests.conftest import BotFactory, RunningBot
from tests.support.directline_client import DirectLineClient

SECRET = "widget-s3cret-value"


def _stream_token(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


async def test_stream_urls_carry_no_conversation_token_and_no_secret(
    http: aiohttp.ClientSession, start_bot: BotFactory
) -> None:
    bot = await start_bot(env={"DIRECTLINE_SECRET": SECRET})
    headers = {"Authorization": f"Bearer {SECRET}"}
    async with http.post(f"{bot.directline}/conversations", headers=headers) as r:
        started = await r.json()
    assert SECRET not in started["streamUrl"]
    assert started["token"] not in started["streamUrl"]
    cid = started["conversationId"]
    # Reconnecting with the secret (an upstream agent does): still no secret in the URL.
    async with http.get(f"{bot.directline}/conversations/{cid}", headers=headers) as r:
        resumed = await r.json()
    assert r.status == 200 and SECRET not in resumed["streamUrl"]
    assert SECRET not in str(resumed)  # not even as the answer's token
    ws = await http.ws_connect(resumed["streamUrl"])
    await ws.close()


async def test_a_stream_token_opens_the_stream_and_nothing_else(
    http: aiohttp.ClientSession, bot: RunningBot, visitor: DirectLineClient
) -> None:
    stream = _stream_token(visitor.stream_url)
    url = f"{visitor.base}/conversations/{visitor.conversation_id}/activities"
    for method in ("GET", "POST"):
        async with http.request(
            method,
            url,
            json={"type": "message", "text": "hi"},
            headers={"Authorization": f"Bearer {stream}"},
        ) as r:
            assert r.status == 403, method
            assert (await r.json())["error"]["code"] == "BadToken"
    async with http.post(
        f"{visitor.base}/tokens/refresh", headers={"Authorization": f"Bearer {stream}"}
    ) as r:
        assert r.status == 403


@pytest.mark.parametrize("what", ["conversation-token", "secret"])
async def test_long_lived_credentials_are_refused_in_a_stream_url(
    http: aiohttp.ClientSession, start_bot: BotFactory, visitor_factory: Any, what: str
) -> None:
    bot = await start_bot(env={"DIRECTLINE_SECRET": SECRET})
    visitor: DirectLineClient = visitor_factory(bot)
    await visitor.start()
    secret = visitor.token if what == "conversation-token" else SECRET
    url = f"{visitor.stream_url.split('?')[0]}?t={secret}"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url)
    assert refused.value.status == 403
    # In a header (never written down by proxies), the conversation's token still opens it.
    ws = await http.ws_connect(
        visitor.stream_url.split("?")[0], headers={"Authorization": f"Bearer {visitor.token}"}
    )
    await ws.close()
    await visitor.disconnect()


async def test_a_stream_token_expires_quickly(
    http: aiohttp.ClientSession, start_bot: BotFactory, visitor_factory: Any
) -> None:
    offset = timedelta()
    bot = await start_bot(clock=lambda: utc_now() + offset)
    visitor: DirectLineClient = visitor_factory(bot)
    await visitor.start()
    await visitor.disconnect()
    offset = timedelta(seconds=STREAM_TOKEN_SECONDS + 1)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(visitor.stream_url)
    assert refused.value.status == 403
    # The conversation's token (good for an hour) gets a fresh stream URL, as on a reconnect.
    await visitor.connect(watermark="1")
    await visitor.disconnect()


FORWARDED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "chat.example.com",
}


async def _start(http: aiohttp.ClientSession, bot: RunningBot, forwarded_for: str) -> str:
    """A conversation from a client behind ``forwarded_for``; its stream URL."""
    headers = {**FORWARDED, "X-Forwarded-For": forwarded_for, "Origin": bot.url}
    async with http.post(f"{bot.directline}/tokens/generate", headers=headers) as r:
        if r.status != 200:
            return str(r.status)
        token = (await r.json())["token"]
    async with http.post(
        f"{bot.directline}/conversations",
        headers={**headers, "Authorization": f"Bearer {token}"},
    ) as r:
        return str((await r.json())["streamUrl"])


async def test_forwarded_headers_are_ignored_from_anyone_but_a_trusted_proxy(
    http: aiohttp.ClientSession, start_bot: BotFactory
) -> None:
    limits = {"conversations_per_ip": {"per_minute": 6, "burst": 2}}
    bot = await start_bot(limits=limits)
    url = await _start(http, bot, "203.0.113.7")
    assert url.startswith(f"ws://{bot.url.removeprefix('http://')}/"), url
    # A made-up X-Forwarded-For does not buy a fresh budget: the peer is what counts.
    assert (await _start(http, bot, "198.51.100.1")).startswith("ws://")
    assert await _start(http, bot, "198.51.100.2") == "429"


async def test_a_trusted_proxy_speaks_for_its_clients(
    http: aiohttp.ClientSession, start_bot: BotFactory
) -> None:
    limits = {"conversations_per_ip": {"per_minute": 6, "burst": 1}}
    bot = await start_bot(limits=limits, server={"trusted_proxies": ["127.0.0.0/8"]})
    url = await _start(http, bot, "203.0.113.7")
    assert url.startswith("wss://chat.example.com/v3/directline/conversations/"), url
    # Each client behind the proxy has its own budget; the proxy's own hops are skipped.
    assert (await _start(http, bot, "198.51.100.1, 127.0.0.5")).startswith("wss://")
    assert await _start(http, bot, "198.51.100.1") == "429"
    assert await _start(http, bot, "203.0.113.7") == "429"
