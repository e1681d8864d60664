"""Abuse is bounded: rates per client, site and conversation, a capped Teams backlog, capped
connections, read deadlines, and sockets that are dropped when abandoned. Each refusal is a
429 (or 503/408) with Retry-After where it applies, in the channel's error shape. Loops here are
bounded in count and time; all traffic is on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

import aiohttp
import pytest

from adapters.web.app import DIRECTLINE
from tests.conftest import BotFactory, RunningBot
from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import Teams, handed_off
from tests.support.standin import Standin


async def _generate(
    http: aiohttp.ClientSession, bot: RunningBot, headers: dict[str, str]
) -> tuple[int, dict[str, Any], str]:
    async with http.post(f"{bot.directline}/tokens/generate", headers=headers) as r:
        return r.status, await r.json(), r.headers.get("Retry-After", "")


async def test_new_conversations_are_limited_per_client_address(
    http: aiohttp.ClientSession, start_bot: BotFactory
) -> None:
    bot = await start_bot(limits={"conversations_per_ip": {"per_minute": 6, "burst": 3}})
    answers = [await _generate(http, bot, {"Origin": bot.url}) for _ in range(6)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429, 429, 429]
    status, body, retry_after = answers[-1]
    assert body["error"]["code"] == "TooManyRequests"
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 10
    # A website's own server, with the secret, speaks for many visitors: not counted.
    bot2 = await start_bot(
        env={"DIRECTLINE_SECRET": "s3cret"},
        limits={"conversations_per_ip": {"per_minute": 6, "burst": 1}},
    )
    for _ in range(5):
        assert (await _generate(http, bot2, {"Authorization": "Bearer s3cret"}))[0] == 200


async def test_new_conversations_are_limited_per_website(
    http: aiohttp.ClientSession, start_bot: BotFactory
) -> None:
    bot = await start_bot(
        limits={
            "conversations_per_ip": None,
            "conversations_per_origin": {"per_minute": 60, "burst": 2},
        },
        widget={"allowed_origins": ["https://shop.example", "https://other.example"]},
    )
    shop = [await _generate(http, bot, {"Origin": "https://shop.example"}) for _ in range(3)]
    assert [s for s, _, _ in shop] == [200, 200, 429]
    # Another site has its own budget.
    assert (await _generate(http, bot, {"Origin": "https://other.example"}))[0] == 200


async def test_a_conversation_posting_too_fast_gets_429(
    http: aiohttp.ClientSession,
    start_bot: BotFactory,
    visitor_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await start_bot(limits={"messages_per_conversation": {"per_minute": 60, "burst": 5}})
    visitor = visitor_factory(bot)
    await visitor.start()
    caplog.set_level(logging.INFO)
    statuses = [(await visitor.post({"type": "message", "text": f"m{n}"}))[0] for n in range(60)]
    assert statuses[:5] == [200] * 5 and statuses.count(429) >= 50
    # A flood of refusals is a few log lines, not one each.
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert 1 <= len(refusals) <= 4, [r.getMessage() for r in refusals]
    status, body = await visitor.post({"type": "message", "text": "more"})
    assert status == 429 and body["error"]["code"] == "TooManyRequests"
    # Typing has a budget of its own, and is refused past it too.
    typing = [(await visitor.post({"type": "typing"}))[0] for _ in range(15)]
    assert typing[0] == 200 and typing[-1] == 429
    await visitor.disconnect()


async def test_a_visitor_faster_than_teams_is_told_to_slow_down_and_nothing_is_lost(
    http: aiohttp.ClientSession,
    start_bot: BotFactory,
    visitor_factory: Any,
    standin: Standin,
) -> None:
    bot = await start_bot(limits={"messages_per_conversation": None, "teams_backlog": 5})
    visitor: DirectLineClient = visitor_factory(bot)
    await visitor.start()
    handoff = await handed_off(visitor, standin)
    await Teams(http, bot.url, standin).click(handoff, "handoff.join")
    await visitor.wait_for(lambda: "accepted" in visitor.statuses())
    standin.gate = asyncio.Event()  # Teams stops answering: the thread's queue fills
    accepted: list[str] = []
    refused: list[tuple[dict[str, Any], str]] = []
    for n in range(40):
        text = f"line {n}"
        async with http.post(
            f"{visitor.base}/conversations/{visitor.conversation_id}/activities",
            json={"type": "message", "text": text},
            headers={"Authorization": f"Bearer {visitor.token}"},
        ) as r:
            if r.status == 200:
                accepted.append(text)
            else:
                assert r.status == 429
                refused.append((await r.json(), r.headers["Retry-After"]))
        await asyncio.sleep(0.01)  # let the inbox queue each for Teams
    assert refused and len(accepted) < 12, (len(accepted), len(refused))
    body, retry_after = refused[0]
    assert "faster than I can pass them on" in body["error"]["message"]
    assert int(retry_after) >= 1
    # Told once on the conversation, not once per refusal.
    await visitor.wait_text("faster than I can pass them on")
    assert sum("faster than" in t for t in visitor.texts()) == 1
    standin.gate.set()
    standin.gate = None
    # Everything acknowledged reaches the thread; once it drained, the visitor may write again.
    await standin.wait_for(
        lambda: all(any(t in r for r in standin.texts_in(handoff.thread_id)) for t in accepted),
        timeout=30,
    )
    for _ in range(100):
        status, _ = await visitor.post({"type": "message", "text": "after the queue drained"})
        if status == 200:
            break
        await asyncio.sleep(0.2)
    assert status == 200
    await visitor.disconnect()


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


async def test_connections_are_capped_per_client_address(start_bot: BotFactory) -> None:
    bot = await start_bot(limits={"connections_per_ip": 4})
    held = [await asyncio.to_thread(_connect, bot.url) for _ in range(4)]
    try:
        extra = await asyncio.to_thread(_connect, bot.url)
        answer = await asyncio.to_thread(extra.recv, 4096)
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After" in answer
        assert await asyncio.to_thread(extra.recv, 4096) == b""  # and closed
        extra.close()
        held.pop().close()
        await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http, http.get(f"{bot.url}/healthz") as r:
            assert r.status == 200
    finally:
        for s in held:
            s.close()


async def test_headers_that_trickle_in_are_cut_off(start_bot: BotFactory) -> None:
    """Slowloris: a byte of headers now and then keeps no connection open for long."""
    bot = await start_bot(limits={"header_timeout_seconds": 1})

    def trickle() -> bool:
        """Send a header a byte at a time; True once the server has closed the connection."""
        conn = _connect(bot.url)
        conn.settimeout(0.2)
        started = time.monotonic()
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
                try:
                    conn.sendall(bytes([byte]))
                    if conn.recv(1) == b"":
                        return True
                except TimeoutError:
                    pass
                except OSError:
                    return True
                if time.monotonic() - started > 10:
                    return False
            return False
        finally:
            conn.close()

    assert await asyncio.to_thread(trickle), "the trickling connection stayed open"


@pytest.mark.parametrize("endpoint", ["directline", "teams"])
async def test_a_body_that_never_arrives_gets_408(
    start_bot: BotFactory, visitor_factory: Any, endpoint: str
) -> None:
    bot = await start_bot(limits={"body_timeout_seconds": 0.5})
    visitor: DirectLineClient = visitor_factory(bot)
    await visitor.start()
    conn = await asyncio.to_thread(_connect, bot.url)
    path = (
        f"/v3/directline/conversations/{visitor.conversation_id}/activities"
        if endpoint == "directline"
        else "/api/messages"  # before authentication: anyone can try this
    )
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {visitor.token}\r\n"
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"type": '
    )
    conn.sendall(head.encode())
    answer = await asyncio.to_thread(conn.recv, 4096)
    conn.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    await visitor.disconnect()


async def test_an_idle_socket_is_closed_and_a_silent_peer_dropped(
    start_bot: BotFactory, visitor_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapters.directline.sockets.KEEPALIVE_SECONDS", 0.2)
    monkeypatch.setattr("adapters.directline.sockets.HEARTBEAT_SECONDS", 0.4)
    bot = await start_bot(limits={"websocket_idle_minutes": 1 / 60})  # one second
    visitor: DirectLineClient = visitor_factory(bot)
    await visitor.start()
    channel = bot.app[DIRECTLINE]
    async with aiohttp.ClientSession() as http:
        # Idle: nothing either way for the limit; the socket is closed with "idle".
        ws = await http.ws_connect(visitor.stream_url)
        message = await asyncio.wait_for(_until_closed(ws), 10)
        assert message.extra == "idle"
        # A peer that answers no ping (gone, or no longer reading) is dropped by the heartbeat.
        await visitor.disconnect()
        async with http.get(
            f"{visitor.base}/conversations/{visitor.conversation_id}",
            headers={"Authorization": f"Bearer {visitor.token}"},
        ) as r:
            url = (await r.json())["streamUrl"]
        silent = await http.ws_connect(url, autoping=False)
        for _ in range(300):  # up to 15 s: a loaded machine (the whole suite) is slower
            if visitor.conversation_id not in channel.connected():
                break
            await asyncio.sleep(0.05)
        assert visitor.conversation_id not in channel.connected()
        await silent.close()


async def _until_closed(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    while True:
        message = await ws.receive()
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return message


async def test_what_a_visitor_may_store_and_what_one_answer_holds_are_bounded(
    http: aiohttp.ClientSession,
    start_bot: BotFactory,
    visitor_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A browser's activity is small (a big one is refused, not kept and replayed to every
    reconnect); a long history comes in pages and frames of bounded size, in order."""
    monkeypatch.setattr("adapters.directline.sockets.FRAME_BYTES", 4_000)
    monkeypatch.setattr("adapters.directline.channel.READ_BYTES", 4_000)
    bot = await start_bot(limits={"messages_per_conversation": None})
    visitor: DirectLineClient = visitor_factory(bot)
    await visitor.start()
    status, body = await visitor.post(
        {"type": "event", "name": "x", "value": {"blob": "v" * 100_000}}
    )
    assert status == 413 and body["error"]["code"] == "MessageSizeTooBig"
    for n in range(30):
        assert (
            await visitor.post(
                {"type": "event", "name": "note", "value": {"n": n, "pad": "p" * 900}}
            )
        )[0] == 200
    # Paged: each page about READ_BYTES, and following the watermark gives everything once.
    seen: list[int] = []
    watermark = "0"
    for _ in range(40):
        async with http.get(
            f"{visitor.base}/conversations/{visitor.conversation_id}/activities",
            params={"watermark": watermark},
            headers={"Authorization": f"Bearer {visitor.token}"},
        ) as r:
            assert r.status == 200
            raw = await r.read()
            page = await r.json()
        if not page["activities"]:
            break
        assert len(raw) < 4_000 + 2_000
        seen += [a["value"]["n"] for a in page["activities"] if a.get("name") == "note"]
        watermark = page["watermark"]
    assert seen == list(range(30))
    # Replayed on a new socket: several bounded frames, nothing twice, in order.
    frames: list[int] = []
    replayed: list[int] = []
    async with http.ws_connect(visitor.stream_url.split("&watermark")[0]) as ws:
        while len(replayed) < 30:
            message = await asyncio.wait_for(ws.receive(), 10)
            if not message.data:
                continue
            frames.append(len(message.data))
            replayed += [
                a["value"]["n"] for a in message.json()["activities"] if a.get("name") == "note"
            ]
    assert replayed == list(range(30)) and len(frames) > 3 and max(frames) < 4_000 + 2_000
    await visitor.disconnect()


async def test_a_conversation_has_a_few_streams_at_most(
    http: aiohttp.ClientSession, bot: RunningBot, visitor: DirectLineClient
) -> None:
    from adapters.directline.sockets import SOCKETS_PER_CONVERSATION

    sockets = []
    try:
        while len(sockets) < SOCKETS_PER_CONVERSATION - 1:  # the visitor holds one already
            sockets.append(await http.ws_connect(visitor.stream_url))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(visitor.stream_url)
        assert refused.value.status == 429
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_visitor_cannot_bury_the_channel_in_threads(
    http: aiohttp.ClientSession, start_bot: BotFactory, visitor_factory: Any, standin: Standin
) -> None:
    """Asking for a person and cancelling, again and again: each opens a Teams thread, so a
    conversation may start only so many handoffs an hour; then the bot says why not."""
    bot = await start_bot(limits={"handoffs_per_conversation_per_hour": 3})
    visitor: DirectLineClient = visitor_factory(bot)
    await visitor.start()
    await visitor.wait_text("virtual assistant")
    for _ in range(5):
        await visitor.event("handoff.request", {"category": "billing"})
        await visitor.event("handoff.end")
    await visitor.wait_text("asked the team for you several times")
    await asyncio.sleep(0.2)
    assert len(standin.threads) == 3
    await visitor.disconnect()


async def test_a_socket_that_takes_no_frame_is_dropped_even_when_nothing_more_comes(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    visitor: DirectLineClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that keeps its connection but reads nothing: once a frame stops going out, the
    socket is dropped after a few keep-alive ticks (not only when a thousand rows pile up)."""
    import base64
    import os
    from urllib.parse import urlsplit

    monkeypatch.setattr("adapters.directline.sockets.KEEPALIVE_SECONDS", 0.2)
    monkeypatch.setattr("adapters.directline.sockets.MAX_PENDING_ROWS", 1_000_000)
    bot.without_rate_limits()
    channel = bot.app[DIRECTLINE]
    where = urlsplit(visitor.stream_url)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(raw, (where.hostname, where.port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(
        raw,
        (
            f"GET {where.path}?{where.query} HTTP/1.1\r\nHost: {where.netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode(),
    )
    try:
        await visitor.disconnect()  # only the reader that reads nothing is left
        for _ in range(3_000):  # enough echoes to fill every buffer on the way
            if visitor.conversation_id not in channel.connected():
                break
            await visitor.post({"type": "message", "text": "z" * 3_900})
        for _ in range(300):  # up to 15 s: a loaded machine (the whole suite) is slower
            if visitor.conversation_id not in channel.connected():
                break
            await asyncio.sleep(0.05)
        assert visitor.conversation_id not in channel.connected()
    finally:
        raw.close()
