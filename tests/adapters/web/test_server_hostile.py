"""What is not HTTP, or not an honest body, gets a plain 4xx in the service's JSON shape: never
a 5xx, never the parser's words or the client's own bytes, and no traceback in the log."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from tests.conftest import RunningBot

LOCAL = b"Origin: http://localhost\r\n"
RAW = {
    "long-header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 10_000 + b"\r\n\r\n",
    "bad-method": b"G\x00T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad-version": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    "bad-chunk": b"POST /v3/directline/tokens/generate HTTP/1.1\r\nHost: x\r\n"
    + LOCAL
    + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    "length-and-chunked": b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: "
    b"application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "negative-length": b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "huge-length": b"POST /v3/directline/tokens/generate HTTP/1.1\r\nHost: x\r\n"
    + LOCAL
    + b"Content-Length: 99999999999999999999\r\n\r\n",
    "long-path": b"GET /" + b"a" * 9_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "gzip-garbage": b"POST /v3/directline/tokens/generate HTTP/1.1\r\nHost: x\r\n"
    + LOCAL
    + b"Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
    "deflate-garbage-teams": b"POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: "
    b"application/json\r\nContent-Encoding: deflate\r\nContent-Length: 4\r\n\r\nabcd",
    "gzip-to-healthz": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: 4\r\n\r\nabcd",
    "many-headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: a\r\n" % i for i in range(200))
    + b"\r\n",
}


def _exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(data)
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
                head, found, body = answer.partition(b"\r\n\r\n")
                length = [
                    line
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if found and length and len(body) >= int(length[0].split(b":")[1]):
                    break  # the whole answer (the connection may stay open for more)
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


@pytest.mark.parametrize("name", list(RAW))
async def test_malformed_requests_get_a_plain_4xx(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    caplog.set_level(logging.INFO)
    answer = await asyncio.to_thread(_exchange, bot.url, RAW[name])
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert 400 <= status < 500, answer[:300]
    for leak in (b"Traceback", b"encountered", b"aaaa", b"\x00", b"Error", b"zz", b"abcd"):
        assert leak not in body, (leak, body[:300])
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


async def test_a_client_that_leaves_mid_body_is_not_a_server_error(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    def leave() -> None:
        host, port = bot.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(
                b"POST /v3/directline/tokens/generate HTTP/1.1\r\nHost: x\r\n"
                + LOCAL
                + b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"user": '
            )

    for _ in range(5):
        await asyncio.to_thread(leave)
    await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records
    ]
