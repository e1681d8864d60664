"""A lean HTTP/1.1 client for the Bot Connector: a keep-alive pool, bytes in, bytes out.

Every message relayed to Teams is one POST, so the client is on the relay's hot path. aiohttp's
client spends about 70 us of CPU per request here (URL objects, cookie jar, tracing hooks,
timeout contexts, stream readers); this one spends about 10, which is most of the difference
between the visitor -> Teams relay and the floor (bench/README). It does what the connector
needs and no more: HTTP/1.1 over TCP or TLS (certificates verified), keep-alive with a limit per
host, a deadline per request, and responses framed by Content-Length, chunked encoding or the
close of the connection. No redirects, cookies, proxies or compression (the connector uses none).
Responses are parsed by httptools (llhttp, the parser of Node.js and of aiohttp itself).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

USER_AGENT = "teams-handoff"


class HttpClientError(Exception):
    """The request failed without a complete response."""


class ConnectFailed(HttpClientError):
    """No connection could be made: the request never left."""


class RequestFailed(HttpClientError):
    """The request was (or may have been) sent, but no complete response came back."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int
    host_header: str


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    __slots__ = (
        "transport",
        "_parser",
        "waiter",
        "_status",
        "_headers",
        "_body",
        "_framed",
        "closed",
        "idle_since",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[HttpResponse] | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._framed = True  # False: the body ends when the server closes the connection
        self.closed = False
        self.idle_since = 0.0

    # ---- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except Exception as exc:  # httptools' parse errors, an upgrade, a callback's error
            self._fail(RequestFailed(f"malformed HTTP response: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        if self._status and not self._framed and exc is None:
            self._finish()  # an unframed body ends with a clean close (not with a reset)
        else:
            self._fail(RequestFailed(f"the server closed the connection: {exc or 'EOF'}"))

    # ---- httptools callbacks ---------------------------------------------------------------

    def eof_received(self) -> bool | None:
        self.closed = True  # the server is done with this connection: never reuse it
        return None

    def on_message_begin(self) -> None:
        self._status = 0
        self._headers = {}
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = self._headers.get(key)
        self._headers[key] = text if known is None else f"{known}, {text}"

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._framed = (
            "content-length" in self._headers
            or "chunked" in self._headers.get("transfer-encoding", "").lower()
        )

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200 and self._status != 101:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        if not self._parser.should_keep_alive():
            self.close()
        self._finish()

    # ---- the client's side -----------------------------------------------------------------

    def send(self, data: bytes, waiter: asyncio.Future[HttpResponse]) -> None:
        assert self.transport is not None
        self.waiter = waiter
        self._status = 0  # nothing of the previous answer may stand for this one
        self._framed = True
        if self.closed or self.transport.is_closing():
            # Closed by the server between the pool and here: nothing was written.
            self._fail(ConnectFailed("the connection closed before the request was sent"))
            return
        self.transport.write(data)

    def _finish(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None:
            self.close()  # an answer nobody asked for (a 408 on an idle connection)
        elif not waiter.done():
            waiter.set_result(HttpResponse(self._status, self._headers, b"".join(self._body)))

    def _fail(self, error: Exception) -> None:
        self.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpClient:
    """Pooled keep-alive connections per origin; ``request`` returns the whole response."""

    def __init__(
        self,
        *,
        limit_per_host: int = 100,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        keepalive: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limit = limit_per_host
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._ssl = ssl_context
        self._origins: dict[str, _Origin] = {}
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._open: dict[_Origin, int] = {}  # connections open or being opened, per origin
        self._queued: dict[_Origin, collections.deque[asyncio.Future[_Connection | None]]] = {}
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - one deadline, errors classified
    ) -> HttpResponse:
        """Send one request (``timeout``: this one's deadline, else the client's). Raises
        ``ConnectFailed`` (never sent), ``RequestFailed`` (sent, or maybe sent, and no complete
        response) or ``TimeoutError`` (no response in time)."""
        if self._closed:
            raise ConnectFailed("the HTTP client is closed")
        origin, target = self._split(url)
        head = [f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
        for name, value in (headers or {}).items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"a line break in the {name!r} header")
            head.append(f"{name}: {value}\r\n")
        head.append(f"User-Agent: {USER_AGENT}\r\nContent-Length: {len(body)}\r\n\r\n")
        data = "".join(head).encode("latin-1") + body

        loop = asyncio.get_running_loop()
        allowed = self._timeout if timeout is None else timeout
        deadline = loop.time() + allowed
        connection = await self._acquire(origin, deadline)
        waiter: asyncio.Future[HttpResponse] = loop.create_future()
        timer = loop.call_later(
            max(0.0, deadline - loop.time()),
            _expire,
            waiter,
            f"{method} {url}: no response in {allowed:g} s",
        )
        try:
            connection.send(data, waiter)
            return await waiter
        except BaseException:
            connection.close()  # its state is unknown: never reuse it
            raise
        finally:
            timer.cancel()
            self._release(origin, connection)

    def _split(self, url: str) -> tuple[_Origin, str]:
        scheme_host, sep, rest = url.partition("://")
        slash = rest.find("/")
        authority = rest if slash < 0 else rest[:slash]
        key = f"{scheme_host}://{authority}"
        origin = self._origins.get(key)
        if origin is None:
            parts = urlsplit(key)
            if parts.scheme not in ("http", "https") or not parts.hostname or not sep:
                raise ValueError(f"not an http(s) URL: {url!r}")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            origin = self._origins[key] = _Origin(parts.scheme, parts.hostname, port, authority)
        target = "/" if slash < 0 else rest[slash:]
        return origin, target.partition("#")[0]

    async def _acquire(self, origin: _Origin, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        queued = self._queued.get(origin)
        if not queued:  # nobody waits ahead of this request
            idle = self._idle.get(origin)
            now = loop.time()
            while idle:
                connection = idle.pop()  # the most recently used: the least likely to be closed
                if not connection.closed and now - connection.idle_since < self._keepalive:
                    return connection
                connection.close()
                self._dropped(origin)
            if self._open.get(origin, 0) < self._limit:
                self._open[origin] = self._open.get(origin, 0) + 1
                return await self._connect(origin, deadline)
        # At the limit: wait in line for a connection (or a free slot) handed over on release.
        turn: asyncio.Future[_Connection | None] = loop.create_future()
        self._queued.setdefault(origin, collections.deque()).append(turn)
        try:
            async with asyncio.timeout_at(deadline):
                handed = await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._pass_on(origin, turn.result())  # handed over as time ran out
            turn.cancel()
            if isinstance(exc, TimeoutError):
                raise ConnectFailed(
                    f"{origin.host}:{origin.port}: no connection free in time"
                ) from exc
            raise
        if handed is None:
            return await self._connect(origin, deadline)  # the slot is ours: counted already
        return handed

    async def _connect(self, origin: _Origin, deadline: float) -> _Connection:
        """Open a connection in a slot already counted in ``_open``."""
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if origin.scheme == "https":
            tls = self._ssl or _default_tls()
        try:
            wait = min(self._connect_timeout, max(0.0, deadline - loop.time()))
            async with asyncio.timeout(wait):
                _transport, connection = await loop.create_connection(
                    _Connection,
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls else None,
                )
        except TimeoutError as exc:
            self._dropped(origin)
            raise ConnectFailed(f"{origin.host}:{origin.port}: connect timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            self._dropped(origin)
            raise ConnectFailed(f"{origin.host}:{origin.port}: {exc}") from exc
        except BaseException:
            self._dropped(origin)
            raise
        return connection

    def _release(self, origin: _Origin, connection: _Connection) -> None:
        if connection.closed or connection.waiter is not None or self._closed:
            connection.close()
            self._dropped(origin)
            return
        self._pass_on(origin, connection)

    def _pass_on(self, origin: _Origin, connection: _Connection | None) -> None:
        """Give a connection (or, with None, its slot) to the first request waiting, if any."""
        queued = self._queued.get(origin)
        while queued:
            turn = queued.popleft()
            if not turn.done():
                turn.set_result(connection)
                return
        if connection is None:
            self._open[origin] -= 1
        else:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(origin, []).append(connection)

    def _dropped(self, origin: _Origin) -> None:
        """A connection closed: its slot goes to the first request waiting, or is freed."""
        self._pass_on(origin, None)

    async def close(self) -> None:
        """Close every idle connection; requests in flight finish, then close theirs."""
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
            idle.clear()
        for queued in self._queued.values():
            while queued:
                turn = queued.popleft()
                if not turn.done():
                    turn.set_exception(ConnectFailed("the HTTP client is closed"))
        await asyncio.sleep(0)  # let the transports close


def _expire(waiter: asyncio.Future[HttpResponse], message: str) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(message))


_TLS: ssl.SSLContext | None = None


def _default_tls() -> ssl.SSLContext:
    """The system's trusted CAs, hostnames checked (made once: building one reads the CAs)."""
    global _TLS
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return _TLS
