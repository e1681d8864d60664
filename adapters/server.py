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
from typing import Any

from aiohttp import web

from adapters.proxies import Proxies
from bot.config import LimitsSettings

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 30.0  # seconds running requests get to finish on a stop
REFUSALS_LOGGED_EVERY = 10.0  # seconds: refused connections are logged as a count, not each
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
        self, limits: Callable[[], LimitsSettings], proxies: Proxies, clock: Callable[[], float]
    ) -> None:
        self._limits = limits
        self._proxies = proxies
        self._clock = clock
        self._open: dict[object, str] = {}  # handler -> client address
        self._per_ip: dict[str, int] = {}
        self.refused = 0
        self._unlogged = 0
        self._logged_at = float("-inf")

    @property
    def open(self) -> int:
        return len(self._open)

    def install(self, server: web.Server) -> None:
        """Stand between aiohttp's server and its connections (its own bookkeeping hooks)."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            if self._over(address):
                self._refuse(address, transport)
                return
            self._open[handler] = address
            self._per_ip[address] = self._per_ip.get(address, 0) + 1

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            address = self._open.pop(handler, None)
            if address is not None:
                left = self._per_ip[address] - 1
                if left:
                    self._per_ip[address] = left
                else:
                    del self._per_ip[address]
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _over(self, address: str) -> bool:
        limits = self._limits()
        if len(self._open) >= limits.connections:
            return True
        if self._proxies.trusted(address):
            return False
        return self._per_ip.get(address, 0) >= limits.connections_per_ip

    def _refuse(self, address: str, transport: asyncio.Transport) -> None:
        self.refused += 1
        self._unlogged += 1
        now = self._clock()
        if now - self._logged_at >= REFUSALS_LOGGED_EVERY:
            log.warning(
                "%d connection(s) refused: too many open (%d open, %d from %s)",
                self._unlogged,
                len(self._open),
                self._per_ip.get(address, 0),
                address or "?",
            )
            self._logged_at, self._unlogged = now, 0
        transport.write(_BUSY)
        transport.close()


async def start(
    app: web.Application,
    host: str,
    port: int,
    *,
    limits: Callable[[], LimitsSettings],
    proxies: Proxies,
    header_timeout: float,
) -> tuple[web.AppRunner, web.TCPSite, ConnectionCaps]:
    """Start serving ``app`` (its startup runs now); stop with ``runner.cleanup()``."""
    runner = web.AppRunner(
        app,
        access_log=None,  # URLs carry tokens; requests are logged by the app where it matters
        keepalive_timeout=header_timeout,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    caps = ConnectionCaps(limits, proxies, time.monotonic)
    assert runner.server is not None
    caps.install(runner.server)
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, site, caps


def run(
    build: Callable[[], Awaitable[web.Application]],
    host: str,
    port: int,
    *,
    loop: asyncio.AbstractEventLoop,
    limits: Callable[[], LimitsSettings],
    proxies: Proxies,
    header_timeout: float,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully (the app's shutdown hooks close
    widget sockets so visitors reconnect elsewhere; running requests finish)."""

    async def serve() -> None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        app = await build()
        runner, _site, _caps = await start(
            app, host, port, limits=limits, proxies=proxies, header_timeout=header_timeout
        )
        try:
            await stop.wait()
            log.info("stopping: finishing what is under way")
        finally:
            await runner.cleanup()

    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
