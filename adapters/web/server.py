"""The HTTP server around the app: connection caps, read deadlines, open-file limits, and a
graceful stop on SIGTERM.

aiohttp's ``web.run_app`` with three additions. Open connections are capped, in all and per
client address (past a cap a new connection is answered 503 and closed, before any request is
read). A request's headers must arrive within ``limits.header_timeout_seconds`` of the
connection, or of the previous answer on it (aiohttp's keep-alive deadline, which also closes a
connection that trickles its headers in). And the process may keep as many files open as the
system lets it, which the cap must stay under.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from adapters.runtime import jsonio
from adapters.runtime.failures import REFUSALS, clip
from adapters.web.proxies import Proxies
from adapters.web.ratelimit import client_key
from adapters.web.readiness import READINESS
from adapters.web.settings import ServerLimits

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 30.0  # seconds running requests get to finish on a stop
REFUSALS_LOGGED_EVERY = 10.0  # seconds: refused connections are logged as a count, not each
# Open files kept for the store, the logs and outbound calls (the connector's pool holds up to
# 100 connections per host).
FILES_KEPT = 256
_BUSY_BODY = b'{"error": {"code": "ServiceUnavailable", "message": "too many connections"}}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 5\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to the hard limit; returns the figure."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


class ConnectionCaps:
    """Counts open connections, in all and per client address, and refuses those past the
    caps (``limits.connections``, ``limits.connections_per_ip``; a trusted proxy speaks for
    many clients, so only the total applies to it). Caps are read live: a reload applies."""

    def __init__(
        self,
        limits: Callable[[], ServerLimits],
        proxies: Proxies,
        clock: Callable[[], float],
        open_files: int | None = None,
    ) -> None:
        self._limits = limits
        self._proxies = proxies
        self._clock = clock
        # Never more connections than the process may open files (the store, the log and
        # outbound calls need some too): past that, accept() itself would fail.
        self._fd_room = None if open_files is None else max(1, open_files - FILES_KEPT)
        self._per_ip: dict[str, int] = {}
        self.open = 0
        self.refused = 0
        self._unlogged = 0
        self._logged_at = float("-inf")

    def protocols(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``create_server``: each connection is counted, and one past
        a cap is answered 503 and closed before aiohttp sees it."""
        return lambda: _Counted(self, make)

    def admit(self, address: str, key: str) -> bool:
        """Count a new connection from ``address`` (``key``: what per-client caps count by),
        or say it is one too many."""
        limits = self._limits()
        cap = limits.connections
        if self._fd_room is not None:
            cap = min(cap, self._fd_room)
        if self.open >= cap or (
            not self._proxies.trusted(address)
            and self._per_ip.get(key, 0) >= limits.connections_per_ip
        ):
            return False
        self.open += 1
        self._per_ip[key] = self._per_ip.get(key, 0) + 1
        return True

    def release(self, key: str) -> None:
        self.open -= 1
        left = self._per_ip[key] - 1
        if left:
            self._per_ip[key] = left
        else:
            del self._per_ip[key]

    def refuse(self, address: str, transport: asyncio.BaseTransport) -> None:
        self.refused += 1
        self._unlogged += 1
        now = self._clock()
        if now - self._logged_at >= REFUSALS_LOGGED_EVERY:
            log.warning(
                "%d connection(s) refused: too many open (%d open, %d from %s)",
                self._unlogged,
                self.open,
                self._per_ip.get(address, 0),
                address or "?",
            )
            self._logged_at, self._unlogged = now, 0
        cast(asyncio.WriteTransport, transport).write(_BUSY)
        transport.close()


class _Quiet(RequestHandler):
    """aiohttp's connection handler, answering what is not HTTP (a bad method, an oversize
    header, a broken body) in the service's JSON error shape: never the parser's words or the
    client's bytes, and logged as a sampled line, not a traceback each time."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer is under way: only closing is left
            raise ConnectionError("the answer was already started")
        REFUSALS.log(
            log,
            logging.INFO,
            ("malformed", status, type(exc).__name__),
            "malformed request from %s answered %d: %s",
            request.remote,
            status,
            clip(exc if exc is not None else message or ""),
        )
        code, text = (
            ("ServiceError", "something went wrong; it has been logged")
            if status >= 500
            else ("BadRequest", "the request is not valid HTTP")
        )
        body = jsonio.dumps({"error": {"code": code, "message": text}})
        response = web.Response(status=status, text=body, content_type="application/json")
        response.force_close()
        return response


class _Counted(asyncio.Protocol):
    """One connection: admitted, it is aiohttp's (every call passed on); refused, it is
    answered and closed here."""

    __slots__ = ("_address", "_caps", "_inner", "_make")

    def __init__(self, caps: ConnectionCaps, make: Callable[[], asyncio.Protocol]) -> None:
        self._caps = caps
        self._make = make
        self._inner: asyncio.Protocol | None = None
        self._address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self._address = client_key(address)
        if not self._caps.admit(address, self._address):
            self._caps.refuse(self._address, transport)
            return
        self._inner = self._make()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._caps.release(self._address)
            self._inner.connection_lost(exc)
            self._inner = None


async def start(
    app: web.Application,
    host: str,
    port: int,
    *,
    limits: Callable[[], ServerLimits],
    proxies: Proxies,
    header_timeout: float,
) -> tuple[web.AppRunner, asyncio.Server, ConnectionCaps]:
    """Start serving ``app`` (its startup runs now). To stop: close the server, then
    ``runner.cleanup()``."""
    handler_options: dict[str, Any] = {
        "access_log": None,  # URLs carry tokens; requests are logged by the app where it matters
        "keepalive_timeout": header_timeout,
        # Bodies are read as sent: no client needs to compress them, and a decompression
        # bomb or a broken stream then never reaches a handler.
        "auto_decompress": False,
    }
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, **handler_options)
    try:
        await runner.setup()
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        open_files = None if soft == resource.RLIM_INFINITY else soft
        caps = ConnectionCaps(limits, proxies, time.monotonic, open_files)
        manager = runner.server
        assert manager is not None
        loop = asyncio.get_running_loop()

        def handler() -> asyncio.Protocol:
            return _Quiet(manager, loop=loop, **handler_options)

        server = await loop.create_server(
            caps.protocols(handler), host, port, backlog=1024, reuse_address=True
        )
    except BaseException:
        # What started before the failure is closed again (aiohttp cleans up the cleanup
        # contexts that started; the store's lock is released for the next start).
        try:
            await runner.cleanup()
        except Exception:
            log.exception("closing what had started failed too")
        raise
    return runner, server, caps


async def stop(runner: web.AppRunner, server: asyncio.Server) -> None:
    """Stop accepting, then let aiohttp finish what is under way and clean up the app."""
    server.close()
    await runner.cleanup()


async def _drain(app: web.Application, stopping: asyncio.Event) -> None:
    """Unready first; then, for ``server.drain_seconds``, still serving (a second signal cuts
    the wait short), so that load balancers stop sending traffic before sockets close."""
    readiness = app.get(READINESS)
    if readiness is None:
        return
    readiness.draining = True
    grace = readiness.grace()
    if grace <= 0:
        return
    log.info("draining: unready for %.1f s before stopping", grace)
    stopping.clear()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), grace)


def run(
    build: Callable[[], Awaitable[web.Application]],
    host: str,
    port: int,
    *,
    loop: asyncio.AbstractEventLoop,
    limits: Callable[[], ServerLimits],
    proxies: Proxies,
    header_timeout: float,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully (the app's shutdown hooks close
    widget sockets so visitors reconnect elsewhere; running requests finish)."""

    async def serve() -> None:
        stopping = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stopping.set)
        app = await build()
        runner, server, _caps = await start(
            app, host, port, limits=limits, proxies=proxies, header_timeout=header_timeout
        )
        try:
            await stopping.wait()
            await _drain(app, stopping)
            log.info("stopping: finishing what is under way")
        finally:
            await stop(runner, server)

    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
