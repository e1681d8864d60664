"""Hostile bodies on /api/messages, in local and production mode: a fixed 4xx, never a 5xx,
never exception text, nothing sent, and oversize bodies refused before they are read."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from adapters.teams.endpoint import MAX_BODY_BYTES
from adapters.web.app import SERVICE
from bot.errors import StoreError
from tests.conftest import CHANNEL, RunningBot
from tests.support.auth import ProductionFactory
from tests.support.standin import Standin
from tests.support.teams import ALEX, card_action, send, thread_message

THREAD = f"{CHANNEL};messageid=1"
# Every error message /api/messages may answer with: fixed texts, nothing from an exception.
MESSAGES = {
    "send the activity as application/json",
    f"the activity is over {MAX_BODY_BYTES} bytes",
    "the body is not valid JSON",
    "the body must be an activity object with a type",
    "the activity needs conversation and serviceUrl",
    "the activity does not match the Bot Framework schema",
    "unauthorized",
    "this bot serves Microsoft Teams only",
    "this bot serves one tenant only",
}


def _activity(**fields: Any) -> bytes:
    """A conversationUpdate that would reach botbuilder's turn, changed by ``fields``."""
    body = {
        "type": "conversationUpdate",
        "id": "1",
        "channelId": "msteams",
        "serviceUrl": "https://smba.example/",
        "conversation": {"id": "19:x@thread.tacv2"},
        "channelData": {"tenant": {"id": "00000000-0000-0000-0000-0000000000001"}},
        **fields,
    }
    return json.dumps(body).encode()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# name -> (body, content type)
HOSTILE: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "application/json"),
    "whitespace": (b"  \n ", "application/json"),
    "malformed": (b'{"type": "message",', "application/json"),
    "null": (b"null", "application/json"),
    "array": (b"[{}]", "application/json"),
    "string": (b'"message"', "application/json"),
    "number": (b"1e999999", "application/json"),
    "huge-int": (b"9" * 5000, "application/json"),
    "not-utf8": (b'{"type": "\xff\xfe"}', "application/json"),
    "utf16": ('{"type": "message"}'.encode("utf-16"), "application/json"),
    "nan": (b'{"type": NaN}', "application/json"),
    "type-number": (b'{"type": 1}', "application/json"),
    "type-null": (b'{"type": null}', "application/json"),
    "type-list": (b'{"type": ["message"]}', "application/json"),
    "no-conversation": (b'{"type": "message", "serviceUrl": "https://x"}', "application/json"),
    "conversation-string": (
        b'{"type": "message", "conversation": "c", "serviceUrl": "https://x"}',
        "application/json",
    ),
    "service-url-number": (
        b'{"type": "message", "conversation": {"id": "c"}, "serviceUrl": 1}',
        "application/json",
    ),
    "service-url-unparsable": (_activity(serviceUrl="http://[::1"), "application/json"),
    "deep-2000": (_nested(2000), "application/json"),
    "deep-1000": (_nested(1000), "application/json"),
    "deep-200-in-activity": (
        b'{"type": "message", "value": ' + _nested(200) + b"}",
        "application/json",
    ),
    "nan-then-deep": (b'{"type": NaN, "v": ' + _nested(3000) + b"}", "application/json"),
    "surrogate-then-deep": (
        b'{"type": "\\ud800", "v": ' + _nested(3000) + b"}",
        "application/json",
    ),
    "bad-timestamp": (_activity(timestamp="yesterday"), "application/json"),
    "members-not-a-list": (_activity(membersAdded="everyone"), "application/json"),
    "members-of-numbers": (_activity(membersAdded=[1, 2]), "application/json"),
    "recipient-a-list": (_activity(recipient=["bot"]), "application/json"),
    "text-plain": (b'{"type": "message"}', "text/plain"),
    "form": (b"type=message", "application/x-www-form-urlencoded"),
}


@pytest.fixture
async def production_url(start_production: ProductionFactory) -> str:
    return (await start_production()).url


async def _post(
    http: aiohttp.ClientSession, url: str, body: bytes, content_type: str, authorization: str
) -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    if authorization:
        headers["Authorization"] = authorization
    async with http.post(f"{url}/api/messages", data=body, headers=headers) as response:
        return response.status, await response.text()


def _assert_fixed_4xx_or_accepted(status: int, text: str) -> None:
    assert status < 500, text
    if status >= 400:
        assert json.loads(text)["error"]["message"] in MESSAGES, text
    else:
        assert "error" not in text and "Traceback" not in text, text


def _assert_nothing_happened(standin: Standin, caplog: pytest.LogCaptureFixture) -> None:
    assert standin.calls == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    # Whatever was logged about it is one bounded line.
    for record in caplog.records:
        line = record.getMessage()
        assert "\n" not in line and len(line) < 1500, line[:300]


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_local_mode_hostile_bodies_get_a_fixed_4xx_and_change_nothing(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    standin: Standin,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    body, content_type = HOSTILE[case]
    with caplog.at_level(logging.INFO):
        status, text = await _post(http, bot.url, body, content_type, "")
    _assert_fixed_4xx_or_accepted(status, text)
    _assert_nothing_happened(standin, caplog)


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("authorization", ["", "Bearer not-a-jwt"], ids=["no-token", "bad-token"])
async def test_production_hostile_bodies_get_a_fixed_4xx_and_change_nothing(
    http: aiohttp.ClientSession,
    production_url: str,
    standin: Standin,
    caplog: pytest.LogCaptureFixture,
    case: str,
    authorization: str,
) -> None:
    body, content_type = HOSTILE[case]
    with caplog.at_level(logging.INFO):
        status, text = await _post(http, production_url, body, content_type, authorization)
    assert status >= 400
    _assert_fixed_4xx_or_accepted(status, text)
    _assert_nothing_happened(standin, caplog)


async def test_refusals_log_their_cause_without_answering_it(
    http: aiohttp.ClientSession, bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    status, text = await _post(http, bot.url, b'{"type": "message",', "application/json", "")
    assert (status, json.loads(text)) == (400, {"error": {"message": "the body is not valid JSON"}})
    assert "not valid JSON" in caplog.text and "line 1" in caplog.text
    status, text = await _post(
        http, bot.url, _activity(timestamp="yesterday"), "application/json", ""
    )
    assert status == 400
    assert json.loads(text)["error"]["message"] == (
        "the activity does not match the Bot Framework schema"
    )
    assert "yesterday" in caplog.text  # msrest's reason, in the log only


async def test_local_mode_ignores_an_authorization_header(
    http: aiohttp.ClientSession, bot: RunningBot, standin: Standin
) -> None:
    """Auth is off in local mode: a token changes nothing (botbuilder would otherwise fetch
    Microsoft's signing keys with blocking I/O on the event loop to check it)."""
    chatter = json.dumps(thread_message(standin.url, THREAD, ALEX, "lunch?", mention=False))
    status, text = await _post(
        http, bot.url, chatter.encode(), "application/json", "Bearer not-a-jwt"
    )
    assert status in (200, 201), text


async def test_a_storage_fault_in_a_card_action_is_a_5xx_for_teams_to_retry(
    http: aiohttp.ClientSession,
    bot: RunningBot,
    standin: Standin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not botbuilder's 501 (an invoke without an answer): nothing was kept, like a message."""

    async def failing(**_: object) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(bot.app[SERVICE], "desk_action", failing)
    status, _ = await send(
        http, bot.url, card_action(standin.url, THREAD, ALEX, "handoff.join", "abc")
    )
    assert status in (500, 503)


# ---- oversize --------------------------------------------------------------------------------


@pytest.fixture
async def raw_socket(
    bot: RunningBot,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    address = urlsplit(bot.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    yield reader, writer
    writer.close()


async def _status(reader: asyncio.StreamReader) -> tuple[int, str]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, (await asyncio.wait_for(reader.readexactly(length), 5)).decode()


async def test_an_oversize_content_length_is_refused_before_the_body_is_read(
    raw_socket: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    reader, writer = raw_socket
    writer.write(
        b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        + b'{"type": "message"'
    )
    await writer.drain()
    # Answered at once, though almost all of the body is still to come.
    status, text = await _status(reader)
    assert status == 413
    assert json.loads(text)["error"]["message"] == f"the activity is over {MAX_BODY_BYTES} bytes"


async def test_a_chunked_body_stops_being_read_past_the_limit(
    raw_socket: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    reader, writer = raw_socket
    writer.write(
        b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"[" * 65536
    for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await writer.drain()
    # Never finished (no last chunk): refused as soon as it is over the limit.
    status, text = await _status(reader)
    assert status == 413
    assert json.loads(text)["error"]["message"] == f"the activity is over {MAX_BODY_BYTES} bytes"
