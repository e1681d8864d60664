"""Bad input on the widget channel: a clear 4xx, nothing changed, never a 5xx."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from adapters.runtime.clock import utc_now
from tests.conftest import BotFactory, RunningBot
from tests.support.directline_client import DirectLineClient


async def request(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    token: str = "",
    data: Any = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    all_headers = {"Authorization": f"Bearer {token}"} if token else {}
    all_headers.update(headers or {})
    async with http.request(method, url, data=data, json=json, headers=all_headers) as r:
        body = (
            await r.json(content_type=None)
            if r.content_type == "application/json"
            else await r.text()
        )
        return r.status, body


def activities_url(visitor: DirectLineClient) -> str:
    return f"{visitor.base}/conversations/{visitor.conversation_id}/activities"


async def post_raw(
    http: aiohttp.ClientSession, visitor: DirectLineClient, payload: Any
) -> tuple[int, Any]:
    """POST bytes (or a byte stream) as the visitor's activity, exactly as given."""
    return await request(
        http,
        "POST",
        activities_url(visitor),
        token=visitor.token,
        data=payload,
        headers={"Content-Type": "application/json"},
    )


async def stored(http: aiohttp.ClientSession, visitor: DirectLineClient) -> int:
    status, body = await request(http, "GET", activities_url(visitor), token=visitor.token)
    assert status == 200
    return len(body["activities"])


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"{not json", 400, "BadArgument"),
        (b"[1, 2]", 400, "BadArgument"),
        (b'{"type": "rocket"}', 400, "BadArgument"),
        (b'{"type": ["message"], "text": "hi"}', 400, "BadArgument"),
        (b'{"type": {"x": 1}, "text": "hi"}', 400, "BadArgument"),
        (b'{"type": "message", "text": 42}', 400, "BadArgument"),
        (b'{"type": "message", "text": "   "}', 400, "BadArgument"),
        (b'{"type": "event"}', 400, "BadArgument"),
        (b'{"type": "message", "text": "' + b"x" * 4001 + b'"}', 413, "MessageSizeTooBig"),
        (b'{"type": "message", "text": "' + b"x" * 300_000 + b'"}', 413, "MessageSizeTooBig"),
    ],
    ids=[
        "malformed",
        "array",
        "unknown-type",
        "type-a-list",
        "type-an-object",
        "text-not-string",
        "blank",
        "event-without-name",
        "over-4000-chars",
        "over-256KiB",
    ],
)
async def test_bad_activities_are_refused_and_change_nothing(
    http: aiohttp.ClientSession, visitor: DirectLineClient, payload: bytes, status: int, code: str
) -> None:
    before = await stored(http, visitor)
    got, body = await post_raw(http, visitor, payload)
    assert got == status
    assert body["error"]["code"] == code
    assert "Traceback" not in str(body)
    assert await stored(http, visitor) == before


DEEP = b'{"type": "message", "text": "hi", "value": ' + b"[" * 5000 + b"]" * 5000 + b"}"
HOSTILE_BODIES = [
    b"{not json",
    b"",
    b"null",
    b"\xff\xfe{}",
    b'{"type": "message", "text": "\xc3\x28"}',
    b'{"type": "message", "text": NaN}',
    b'{"type": "message", "text": "hi", "value": ' + b"9" * 5000 + b"}",
    b'{"type": "message", "text": "hi", "value": ' + b"[" * 129 + b"]" * 129 + b"}",
    b'{"type": "message", "text": "hi", "value": ' + b"[" * 1100 + b"]" * 1100 + b"}",
    DEEP,
    b'{"type": "message", "text": "hi", "from": ' + b'{"a":' * 2000 + b"1" + b"}" * 2000 + b"}",
    b'{"user": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'"' + b"\\u" * 10 + b'"',
]


@pytest.mark.parametrize("payload", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
@pytest.mark.parametrize("where", ["tokens/generate", "conversations", "activities"])
async def test_hostile_bodies_get_a_plain_4xx_everywhere(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    visitor: DirectLineClient,
    payload: bytes,
    where: str,
) -> None:
    """Malformed, deeply nested or oversize bodies: a 4xx in the channel's shape whose message
    carries none of the parser's internals, and nothing stored."""
    before = await stored(http, visitor)
    if where == "activities":
        url, headers = activities_url(visitor), {"Authorization": f"Bearer {visitor.token}"}
    else:
        # With the widget secret, these endpoints read a body (the user's id and name).
        url, headers = f"{visitor.base}/{where}", {"Origin": bot.url}
    status, body = await request(
        http, "POST", url, data=payload, headers={**headers, "Content-Type": "application/json"}
    )
    assert 400 <= status < 500 or (status == 200 and where != "activities"), (status, body)
    if status >= 400:
        message = body["error"]["message"]
        for internal in ("line 1", "column", "char ", "Traceback", "Error", "orjson"):
            assert internal not in message, message
    assert await stored(http, visitor) == before


async def test_another_visitors_conversation_is_forbidden(
    http: aiohttp.ClientSession, bot: RunningBot, visitor_factory: Any, visitor: DirectLineClient
) -> None:
    other = visitor_factory(bot)
    await other.start()
    for method, url in (
        ("GET", activities_url(visitor)),
        ("POST", activities_url(visitor)),
        ("GET", f"{visitor.base}/conversations/{visitor.conversation_id}"),
    ):
        status, body = await request(
            http, method, url, token=other.token, json={"type": "message", "text": "hi"}
        )
        assert status == 403, (method, url)
        assert body["error"]["code"] == "Forbidden"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        # The other visitor's stream URL, pointed at this conversation.
        await http.ws_connect(
            other.stream_url.replace(other.conversation_id, visitor.conversation_id)
        )
    assert refused.value.status == 403
    await other.disconnect()


async def test_missing_forged_and_expired_tokens(
    http: aiohttp.ClientSession, start_bot: BotFactory, visitor_factory: Any
) -> None:
    offset = timedelta()
    bot = await start_bot(clock=lambda: utc_now() + offset)
    visitor = visitor_factory(bot)
    await visitor.start()
    url = activities_url(visitor)
    assert (await request(http, "GET", url))[0] == 401
    forged = visitor.token[:-4] + ("AAAA" if not visitor.token.endswith("AAAA") else "BBBB")
    status, body = await request(http, "GET", url, token=forged)
    assert status == 403 and body["error"]["code"] == "BadToken"
    offset = timedelta(hours=2)
    status, body = await request(http, "GET", url, token=visitor.token)
    assert status == 403 and body["error"]["code"] == "TokenExpired"
    status, _ = await request(
        http, "GET", f"{visitor.base}/conversations/{visitor.conversation_id}", token=visitor.token
    )
    assert status == 403
    await visitor.disconnect()


async def test_refresh_gives_a_working_token(
    http: aiohttp.ClientSession, visitor: DirectLineClient
) -> None:
    status, body = await request(
        http, "POST", f"{visitor.base}/tokens/refresh", token=visitor.token
    )
    assert status == 200 and body["conversationId"] == visitor.conversation_id
    status, _ = await request(http, "GET", activities_url(visitor), token=body["token"])
    assert status == 200


async def test_unknown_conversation_is_404(
    http: aiohttp.ClientSession, start_bot: BotFactory
) -> None:
    bot = await start_bot(env={"DIRECTLINE_SECRET": "s3cret-widget"})
    url = f"{bot.directline}/conversations/never-started"
    assert (await request(http, "GET", url, token="s3cret-widget"))[0] == 404
    status, _ = await request(
        http,
        "POST",
        f"{url}/activities",
        token="s3cret-widget",
        json={"type": "message", "text": "hi"},
    )
    assert status == 404


async def test_non_ascii_tokens_are_refused_not_crashing(
    http: aiohttp.ClientSession, start_bot: BotFactory
) -> None:
    for env in ({"DIRECTLINE_SECRET": "s3cret-widget"}, {}):
        bot = await start_bot(env=env)
        for method, path, token in (
            ("POST", "/tokens/refresh", "dl1.abc.\u00e9"),
            ("POST", "/tokens/generate", "\u00e9t\u00e9"),
            ("POST", "/conversations", "dl1.\u00ff.x"),
            ("GET", "/conversations/c1/activities", "dl1.abc.\u00ff"),
            ("POST", "/conversations/c1/activities", "\u00e9"),
        ):
            async with http.request(
                method,
                f"{bot.directline}{path}",
                headers={"Authorization": f"Bearer {token}".encode().decode("latin-1")},
            ) as r:
                assert r.status == 403, (path, env)


async def test_stream_works_straight_after_token_generate(
    http: aiohttp.ClientSession, bot: RunningBot
) -> None:
    """Web Chat given a generated token + conversationId opens the stream without POSTing first."""
    status, body = await request(
        http, "POST", f"{bot.directline}/tokens/generate", headers={"Origin": bot.url}
    )
    token, cid = body["token"], body["conversationId"]
    status, body = await request(
        http, "GET", f"{bot.directline}/conversations/{cid}?watermark=", token=token
    )
    assert status == 200
    async with http.ws_connect(body["streamUrl"]) as ws:
        frame = await ws.receive_json(timeout=5)
    assert "virtual assistant" in frame["activities"][0]["text"]
    # The first POST /conversations for it still answers 201, later ones 200.
    assert (await request(http, "POST", f"{bot.directline}/conversations", token=token))[0] == 201
    assert (await request(http, "POST", f"{bot.directline}/conversations", token=token))[0] == 200


async def test_secret_works_on_every_call(
    http: aiohttp.ClientSession, start_bot: BotFactory, visitor_factory: Any
) -> None:
    bot = await start_bot(env={"DIRECTLINE_SECRET": "s3cret-widget"})
    visitor = visitor_factory(bot)
    await visitor.start()
    url = activities_url(visitor)
    status, body = await request(
        http,
        "POST",
        url,
        token="s3cret-widget",
        json={"type": "message", "text": "from the server", "from": {"id": "crm"}},
    )
    assert status == 200
    echo = await visitor.wait_for(
        lambda: next((a for a in visitor.activities if a["id"] == body["id"]), None)
    )
    assert echo["from"] == {"id": "crm", "name": "", "role": "user"}
    assert (await request(http, "GET", url, token="s3cret-widget"))[0] == 200
    stream = visitor.stream_url.replace(visitor.token, "s3cret-widget")
    async with http.ws_connect(stream) as ws:
        assert (await ws.receive_json(timeout=5))["activities"]
    await visitor.disconnect()


async def test_visitors_cannot_send_handoff_initiate(
    http: aiohttp.ClientSession, visitor: DirectLineClient, standin: Any
) -> None:
    status, body = await visitor.post(
        {"type": "event", "name": "handoff.initiate", "value": {"reason": "trust me"}}
    )
    assert status == 403 and "widget secret" in body["error"]["message"]
    assert standin.threads == []


async def test_upload_is_refused_clearly(
    http: aiohttp.ClientSession, visitor: DirectLineClient
) -> None:
    status, body = await request(
        http,
        "POST",
        f"{visitor.base}/conversations/{visitor.conversation_id}/upload",
        token=visitor.token,
        data=b"file",
    )
    assert status == 415 and body["error"]["code"] == "NotSupported"


@pytest.mark.parametrize("watermark", ["abc", "\u00b2", "1" * 20, "9" * 5000, "-1"])
async def test_bad_watermark_is_400(
    http: aiohttp.ClientSession, visitor: DirectLineClient, watermark: str
) -> None:
    conversation = f"{visitor.base}/conversations/{visitor.conversation_id}"
    for url in (activities_url(visitor), conversation, f"{conversation}/stream"):
        status, body = await request(
            http, "GET", f"{url}?watermark={watermark}", token=visitor.token
        )
        assert status == 400 and "watermark" in body["error"]["message"], url


async def test_token_needs_an_allowed_origin_or_the_secret(
    http: aiohttp.ClientSession, start_bot: BotFactory
) -> None:
    bot = await start_bot(
        env={"DIRECTLINE_SECRET": "s3cret-widget"},
        widget={"allowed_origins": ["https://www.contoso.example"]},
    )
    url = f"{bot.directline}/tokens/generate"
    assert (await request(http, "POST", url, headers={"Origin": "https://evil.example"}))[0] == 403
    assert (await request(http, "POST", url))[0] == 403
    status, _ = await request(http, "POST", url, headers={"Origin": "https://www.contoso.example"})
    assert status == 200
    assert (await request(http, "POST", url, token="s3cret-widget"))[0] == 200
    # CORS: the allowed site may call from the browser, with a preflight.
    async with http.options(
        url,
        headers={"Origin": "https://www.contoso.example", "Access-Control-Request-Method": "POST"},
    ) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == "https://www.contoso.example"
    # A refused origin gets no CORS header, and no cache may hand that answer to another origin.
    async with http.post(url, headers={"Origin": "https://evil.example"}) as r:
        assert "Access-Control-Allow-Origin" not in r.headers
        assert r.headers["Vary"] == "Origin"
    # The widget secret can start a conversation directly (server-to-server use).
    status, body = await request(
        http, "POST", f"{bot.directline}/conversations", token="s3cret-widget"
    )
    assert status == 201 and body["streamUrl"].startswith("ws://")


async def test_duplicate_delivery_is_processed_once(
    http: aiohttp.ClientSession, visitor: DirectLineClient
) -> None:
    activity = {
        "type": "message",
        "text": "what does it cost?",
        "channelData": {"clientActivityID": "dup-1"},
    }
    first = await visitor.post(dict(activity))
    second = await visitor.post(dict(activity))
    assert first == second
    await visitor.wait_text("29 EUR")
    status, body = await request(http, "GET", activities_url(visitor), token=visitor.token)
    assert sum(a.get("text") == "what does it cost?" for a in body["activities"]) == 1
    assert sum("29 EUR" in (a.get("text") or "") for a in body["activities"]) == 1


async def test_echo_carries_id_client_id_and_timestamp(visitor: DirectLineClient) -> None:
    status, body = await visitor.post(
        {"type": "message", "text": "ping", "channelData": {"clientActivityID": "c-42"}}
    )
    echo = await visitor.wait_for(
        lambda: next((a for a in visitor.activities if a["id"] == body["id"]), None)
    )
    assert echo["channelData"]["clientActivityID"] == "c-42"
    assert echo["from"]["role"] == "user" and echo["timestamp"].endswith("Z")


async def test_typing_is_echoed_but_never_stored(
    http: aiohttp.ClientSession, visitor: DirectLineClient
) -> None:
    """Echoed like every posted activity (Direct Line), without moving the watermark: a
    reconnect never replays it."""
    await visitor.wait_text("virtual assistant")
    before, watermark = await stored(http, visitor), visitor.watermark
    status, body = await visitor.post({"type": "typing", "channelData": {"clientActivityID": "t1"}})
    assert status == 200 and body["id"]
    echo = await visitor.wait_for(
        lambda: next((a for a in visitor.activities if a["id"] == body["id"]), None)
    )
    assert echo["type"] == "typing" and echo["from"]["role"] == "user"
    assert echo["channelData"]["clientActivityID"] == "t1" and echo["timestamp"]
    assert visitor.watermark == watermark
    assert await stored(http, visitor) == before
    # What comes next carries the watermark on as before.
    said = await visitor.say("hello")
    await visitor.wait_for(lambda: any(a["id"] == said for a in visitor.activities))
    assert int(visitor.watermark) == int(watermark) + 1


async def test_idle_sockets_get_keepalives_and_busy_ones_do_not(
    http: aiohttp.ClientSession, bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Direct Line sends an empty frame on a quiet socket now and then, so proxies keep it."""
    monkeypatch.setattr("adapters.directline.sockets.KEEPALIVE_SECONDS", 0.5)

    async def open_stream() -> tuple[str, str, aiohttp.ClientWebSocketResponse]:
        _, body = await request(
            http, "POST", f"{bot.directline}/tokens/generate", headers={"Origin": bot.url}
        )
        token = body["token"]
        _, body = await request(http, "POST", f"{bot.directline}/conversations", token=token)
        ws = await http.ws_connect(body["streamUrl"])
        await ws.receive_json(timeout=5)  # the greeting
        return token, body["conversationId"], ws

    _, _, quiet = await open_stream()
    token, cid, busy = await open_stream()
    frames: list[str] = []
    url = f"{bot.directline}/conversations/{cid}/activities"
    for _ in range(16):  # about 1 s of talking on the busy socket, spanning two ticks
        await request(
            http,
            "POST",
            url,
            token=token,
            json={"type": "event", "name": "ping", "from": {"id": "v"}},
        )
        while True:
            msg = await busy.receive(timeout=5)
            frames.append(msg.data)
            if msg.data:
                break
        await asyncio.sleep(0.05)
    quiet_frames = [(await quiet.receive(timeout=5)).data for _ in range(2)]
    assert quiet_frames == ["", ""]
    assert "" not in frames  # never idle for a whole period
    await quiet.close()
    await busy.close()


async def test_what_the_standard_library_accepts_is_still_accepted(
    http: aiohttp.ClientSession, visitor: DirectLineClient
) -> None:
    """Half an emoji (a lone surrogate escape, as a truncating client sends it) and NaN: taken,
    the half emoji as U+FFFD (UTF-8, the store and Teams cannot hold it), and answered."""
    body = b'{"type": "message", "text": "cut \\ud83d", "value": {"score": NaN}}'
    status, answer = await post_raw(http, visitor, body)
    assert status == 200, answer
    echo = await visitor.wait_for(
        lambda: next((a for a in visitor.activities if a["id"] == answer["id"]), None)
    )
    assert echo["text"] == "cut \ufffd"
    # Handled like any message (it used to fail in the inbox, unseen by anyone).
    await visitor.wait_text("not sure I can answer")


async def test_a_chunked_body_over_the_limit_is_refused(
    http: aiohttp.ClientSession, visitor: DirectLineClient
) -> None:
    """No Content-Length to go by: the limit holds all the same."""
    before = await stored(http, visitor)

    async def chunks() -> Any:
        yield b'{"type": "event", "name": "visitor.context", "value": {"junk": "'
        for _ in range(300):
            yield b"x" * 1024
        yield b'"}}'

    status, body = await post_raw(http, visitor, chunks())
    assert status == 413 and body["error"]["code"] == "MessageSizeTooBig"
    assert await stored(http, visitor) == before


async def test_a_half_emoji_client_id_is_taken_once(
    http: aiohttp.ClientSession, visitor: DirectLineClient
) -> None:
    body = b'{"type": "message", "text": "hi", "channelData": {"clientActivityID": "x\\ud83d"}}'
    answers = [await post_raw(http, visitor, body) for _ in range(2)]
    assert [status for status, _ in answers] == [200, 200]
    assert answers[0][1]["id"] == answers[1][1]["id"]  # the retry is the same activity


async def test_the_secret_cannot_be_refreshed_into_a_token(
    http: aiohttp.ClientSession, start_bot: BotFactory
) -> None:
    bot = await start_bot(env={"DIRECTLINE_SECRET": "s3cret-widget"})
    status, body = await request(
        http, "POST", f"{bot.directline}/tokens/refresh", token="s3cret-widget"
    )
    assert status == 400 and body["error"]["code"] == "BadArgument"


async def test_a_token_that_is_not_even_utf8_is_refused(start_bot: BotFactory) -> None:
    """Raw bytes in Authorization (no client library sends them, a scanner does)."""
    from urllib.parse import urlsplit

    for env in ({"DIRECTLINE_SECRET": "s3cret-widget"}, {}):
        bot = await start_bot(env=env)
        where = urlsplit(bot.url)
        for path in ("/tokens/refresh", "/conversations/c1/activities"):
            reader, writer = await asyncio.open_connection(where.hostname, where.port)
            writer.write(
                f"POST /v3/directline{path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n".encode()
                + b"Authorization: Bearer dl1.abc.\xff\xfe\r\nConnection: close\r\n\r\n"
            )
            status_line = await reader.readline()
            writer.close()
            assert status_line.split()[1] == b"403", (path, env, status_line)


async def test_a_socket_that_stops_reading_is_dropped_not_buffered(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    visitor: DirectLineClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A widget whose reader froze (or a client that never reads): once its socket is full,
    rows wait in memory only up to a bound; then the socket is dropped, and the widget would
    reconnect and replay from its watermark."""
    import base64
    import os
    import socket
    from urllib.parse import urlsplit

    from adapters.web.app import DIRECTLINE

    monkeypatch.setattr("adapters.directline.sockets.MAX_PENDING_ROWS", 20)
    bot.without_rate_limits()
    where = urlsplit(visitor.stream_url)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (where.hostname, where.port))
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET {where.path}?{where.query} HTTP/1.1\r\nHost: {where.netloc}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await asyncio.get_running_loop().sock_sendall(raw, handshake.encode())
    channel = bot.app[DIRECTLINE]
    try:
        await visitor.disconnect()  # only the frozen socket is left on the conversation
        text = "y" * 3900
        for _ in range(2000):  # ~8 MB of echoes: more than any socket buffer holds
            await visitor.say(text)
            if visitor.conversation_id not in channel.connected():
                break
        for _ in range(300):  # the last write's timeout may still be running out
            if visitor.conversation_id not in channel.connected():
                break
            await asyncio.sleep(0.05)
        assert visitor.conversation_id not in channel.connected()
    finally:
        raw.close()


async def test_unknown_paths_and_methods_answer_in_the_channels_shape(
    http: aiohttp.ClientSession, bot: RunningBot
) -> None:
    for method, path, status in (
        ("GET", "/no/such/thing", 404),
        ("DELETE", "/tokens/generate", 405),
        ("PUT", "/conversations", 405),
    ):
        got, body = await request(http, method, f"{bot.directline}{path}")
        assert got == status, path
        assert set(body["error"]) == {"code", "message"}, body


async def test_a_watermark_past_the_end_does_not_hide_what_comes_next(
    http: aiohttp.ClientSession, visitor: DirectLineClient
) -> None:
    """One the client kept from a conversation deleted and started again, or made up."""
    await visitor.wait_text("virtual assistant")
    status, body = await request(
        http, "GET", activities_url(visitor) + "?watermark=999", token=visitor.token
    )
    assert status == 200 and body["activities"] == [] and int(body["watermark"]) < 999
    await visitor.disconnect()
    await visitor.connect(watermark="999")
    said = await visitor.say("still there?")
    echo = await visitor.wait_for(lambda: [a for a in visitor.activities if a["id"] == said])
    assert echo
