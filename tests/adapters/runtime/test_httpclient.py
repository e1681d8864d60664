"""The connector's HTTP client against real servers on 127.0.0.1: framing, keep-alive, limits,
deadlines, TLS and servers that misbehave. Every test runs on asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme
from aiohttp import web

from adapters.runtime.httpclient import ConnectFailed, HttpClient, RequestFailed

pytestmark = pytest.mark.both_loops


class Server:
    """An aiohttp app that counts the connections its requests came on."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.peers: list[object] = []  # the transport of each request
        self.url = ""

    def connections(self) -> int:
        return len({id(p) for p in self.peers})

    def route(
        self,
        method: str,
        path: str,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> None:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.peers.append(request.transport)
            return await handler(request)

        self.app.router.add_route(method, path, counted)


@contextlib.asynccontextmanager
async def serving(
    server: Server, *, tls: ssl.SSLContext | None = None, keepalive: float = 75.0
) -> AsyncIterator[str]:
    runner = web.AppRunner(server.app, keepalive_timeout=keepalive)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield server.url
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A server that writes whatever ``answer`` writes, for responses aiohttp would not send."""
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


async def echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "path": request.raw_path,
            "body": (await request.read()).decode(),
            "headers": dict(request.headers),
        },
        status=201,
    )


def stalling_server() -> tuple[Server, asyncio.Event]:
    """A server whose ``POST /s`` answers only once the event is set."""
    server = Server()
    release = asyncio.Event()

    async def stalls(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    server.route("POST", "/s", stalls)
    return server, release


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    made = HttpClient(timeout=5)
    yield made
    await made.close()


async def test_posts_bytes_and_headers_and_reads_the_json_answer(client: HttpClient) -> None:
    server = Server()
    server.route("POST", "/v3/conversations/{cid}/activities", echo)
    async with serving(server) as url:
        response = await client.request(
            "POST",
            f"{url}/v3/conversations/19%3Aa%40thread.tacv2%3Bmessageid%3D1/activities?x=1",
            b'{"text": "h\xc3\xa9"}',
            {"Content-Type": "application/json", "Authorization": "Bearer tok"},
        )
    assert response.status == 201
    assert response.headers["content-type"].startswith("application/json")
    seen = json.loads(response.text())
    assert seen["path"] == "/v3/conversations/19%3Aa%40thread.tacv2%3Bmessageid%3D1/activities?x=1"
    assert seen["body"] == '{"text": "hé"}'
    assert seen["headers"]["Authorization"] == "Bearer tok"
    assert seen["headers"]["Host"] == url.removeprefix("http://")


async def test_reuses_one_connection_for_requests_in_turn(client: HttpClient) -> None:
    server = Server()
    server.route("PUT", "/a", echo)
    async with serving(server) as url:
        for _ in range(20):
            assert (await client.request("PUT", f"{url}/a", b"{}")).status == 201
    assert server.connections() == 1


async def test_keeps_to_the_limit_per_host_under_concurrency() -> None:
    server = Server()
    busy = 0
    most = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0.01)
        busy -= 1
        return web.json_response({})

    server.route("POST", "/slow", slow)
    limited = HttpClient(limit_per_host=3, timeout=10)
    try:
        async with serving(server) as url:
            answers = await asyncio.gather(
                *(limited.request("POST", f"{url}/slow", b"{}") for _ in range(30))
            )
    finally:
        await limited.close()
    assert [a.status for a in answers] == [200] * 30
    assert most == 3
    assert server.connections() == 3


async def test_reads_a_chunked_answer(client: HttpClient) -> None:
    server = Server()

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b'{"id": ', b'"12', b'3"}'):
            await response.write(part)
        await response.write_eof()
        return response

    server.route("POST", "/c", chunked)
    async with serving(server) as url:
        first = await client.request("POST", f"{url}/c", b"{}")
        second = await client.request("POST", f"{url}/c", b"{}")
    assert json.loads(first.body) == json.loads(second.body) == {"id": "123"}
    assert server.connections() == 1


async def test_an_answer_ended_by_the_close_of_the_connection(client: HttpClient) -> None:
    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"id": "7"}')
        await writer.drain()
        writer.close()

    async with raw_server(http10) as url:
        response = await client.request("POST", f"{url}/x", b"{}")
        again = await client.request("POST", f"{url}/x", b"{}")  # on a new connection
    assert response.status == again.status == 200
    assert json.loads(response.body) == {"id": "7"}


async def test_connection_close_is_honoured(client: HttpClient) -> None:
    server = Server()

    async def closing(request: web.Request) -> web.Response:
        return web.json_response({}, headers={"Connection": "close"})

    server.route("POST", "/once", closing)
    async with serving(server) as url:
        for _ in range(3):
            assert (await client.request("POST", f"{url}/once", b"{}")).status == 200
    assert server.connections() == 3


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    client: HttpClient,
) -> None:
    server = Server()
    server.route("POST", "/a", echo)
    async with serving(server, keepalive=0.1) as url:
        assert (await client.request("POST", f"{url}/a", b"{}")).status == 201
        await asyncio.sleep(0.4)  # the server closed it meanwhile
        assert (await client.request("POST", f"{url}/a", b"{}")).status == 201
    assert server.connections() == 2


async def test_idle_connections_past_keepalive_are_dropped() -> None:
    server = Server()
    server.route("POST", "/a", echo)
    short = HttpClient(keepalive=0.05)
    try:
        async with serving(server) as url:
            await short.request("POST", f"{url}/a", b"{}")
            await asyncio.sleep(0.15)
            await short.request("POST", f"{url}/a", b"{}")
    finally:
        await short.close()
    assert server.connections() == 2


async def test_no_answer_in_time_is_a_timeout_and_the_connection_is_dropped() -> None:
    server = Server()
    release = asyncio.Event()
    calls = 0

    async def stalls_once(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await release.wait()
            return web.json_response({"late": True})
        return web.json_response({"late": False})

    server.route("POST", "/s", stalls_once)
    hasty = HttpClient(timeout=0.2)
    try:
        async with serving(server) as url:
            with pytest.raises(TimeoutError):
                await hasty.request("POST", f"{url}/s", b"{}")
            release.set()
            # The late answer must not be read as the answer to the next request.
            response = await hasty.request("POST", f"{url}/s", b"{}")
    finally:
        await hasty.close()
    assert json.loads(response.body) == {"late": False}


async def test_a_cancelled_request_does_not_leave_its_answer_behind(client: HttpClient) -> None:
    server = Server()
    calls = 0

    async def numbered(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1 if calls == 1 else 0)
        return web.json_response({"n": calls})

    server.route("POST", "/n", numbered)
    async with serving(server) as url:
        task = asyncio.create_task(client.request("POST", f"{url}/n", b"{}"))
        await asyncio.sleep(0.03)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        response = await client.request("POST", f"{url}/n", b"{}")
    assert json.loads(response.body) == {"n": 2}


async def test_refused_connection_means_never_sent(client: HttpClient) -> None:
    async with raw_server(read_request) as url:  # a port that is surely free afterwards
        pass
    with pytest.raises(ConnectFailed):
        await client.request("POST", f"{url}/x", b"{}")


async def test_closed_without_an_answer_means_maybe_sent(client: HttpClient) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    async with raw_server(hang_up) as url:
        with pytest.raises(RequestFailed, match="closed the connection"):
            await client.request("POST", f"{url}/x", b"{}")


async def test_a_malformed_answer_is_a_clear_error(client: HttpClient) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client hangs up, as it must
        writer.close()

    async with raw_server(garbage) as url:
        with pytest.raises(RequestFailed, match="malformed"):
            await client.request("POST", f"{url}/x", b"{}")


async def test_bad_urls_and_header_injection_are_refused(client: HttpClient) -> None:
    with pytest.raises(ValueError, match="not an http"):
        await client.request("POST", "ftp://example.com/x", b"")
    with pytest.raises(ValueError, match="line break"):
        await client.request("POST", "http://127.0.0.1:9/x", b"", {"X-A": "1\r\nX-B: 2"})


async def test_tls_with_a_trusted_certificate_and_refused_without() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    server = Server()
    server.route("POST", "/t", echo)
    good = HttpClient(ssl_context=trusting)
    strict = HttpClient()  # the system's CAs, which do not know this one
    try:
        async with serving(server, tls=server_tls) as url:
            assert url.startswith("https://")
            first = await good.request("POST", f"{url}/t", b'{"a": 1}')
            second = await good.request("POST", f"{url}/t", b"{}")
            with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
                await strict.request("POST", f"{url}/t", b"{}")
    finally:
        await good.close()
        await strict.close()
    assert first.status == second.status == 201
    assert json.loads(first.body)["body"] == '{"a": 1}'
    assert server.connections() == 1


async def test_a_closed_client_refuses_new_requests() -> None:
    closed = HttpClient()
    await closed.close()
    with pytest.raises(ConnectFailed, match="closed"):
        await closed.request("POST", "http://127.0.0.1:9/x", b"")


async def test_nothing_of_an_earlier_answer_stands_for_a_lost_one(client: HttpClient) -> None:
    """A 204 left on a kept-alive connection must not become the answer to a request the server
    then hangs up on (that would report a lost message as delivered)."""
    served = 0

    async def once_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await read_request(reader)
        served += 1
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        await read_request(reader)
        writer.close()

    async with raw_server(once_then_hang_up) as url:
        assert (await client.request("POST", f"{url}/x", b"{}")).status == 204
        with pytest.raises(RequestFailed):
            await client.request("POST", f"{url}/x", b"{}")
    assert served == 1


async def test_interim_answers_are_skipped(client: HttpClient) -> None:
    async def early_hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for text in (b"first", b"second"):
            await read_request(reader)
            writer.write(
                b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text)
            )
            await writer.drain()
        writer.close()

    async with raw_server(early_hints) as url:
        first = await client.request("POST", f"{url}/x", b"{}")
        second = await client.request("POST", f"{url}/x", b"{}")
    assert (first.status, first.body) == (201, b"first")
    assert (second.status, second.body) == (201, b"second")


async def test_waiting_for_a_free_connection_past_the_deadline_means_never_sent() -> None:
    server, release = stalling_server()
    one = HttpClient(limit_per_host=1, timeout=5)
    try:
        async with serving(server) as url:
            busy = asyncio.create_task(one.request("POST", f"{url}/s", b"{}"))
            await asyncio.sleep(0.05)
            with pytest.raises(ConnectFailed, match="no connection free"):
                await one.request("POST", f"{url}/s", b"{}", timeout=0.2)
            release.set()
            assert (await busy).status == 200
    finally:
        await one.close()


async def test_waiters_get_connections_in_arrival_order() -> None:
    server = Server()
    order: list[str] = []

    async def named(request: web.Request) -> web.Response:
        order.append((await request.read()).decode())
        await asyncio.sleep(0.005)
        return web.json_response({})

    server.route("POST", "/n", named)
    one = HttpClient(limit_per_host=1, timeout=5)
    try:
        async with serving(server) as url:
            tasks = []
            for n in range(10):
                tasks.append(asyncio.create_task(one.request("POST", f"{url}/n", str(n).encode())))
                await asyncio.sleep(0)
            await asyncio.gather(*tasks)
    finally:
        await one.close()
    assert order == [str(n) for n in range(10)]
    assert server.connections() == 1


async def test_closing_the_client_fails_queued_requests_cleanly() -> None:
    server, release = stalling_server()
    one = HttpClient(limit_per_host=1, timeout=5)
    async with serving(server) as url:
        busy = asyncio.create_task(one.request("POST", f"{url}/s", b"{}"))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(one.request("POST", f"{url}/s", b"{}"))
        await asyncio.sleep(0.01)
        await one.close()
        with pytest.raises(ConnectFailed, match="closed"):
            await queued
        assert not queued.cancelled()
        release.set()
        assert (await busy).status == 200
