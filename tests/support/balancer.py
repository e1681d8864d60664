"""A small round-robin TCP load balancer on loopback, for several app instances behind one URL.

Like a layer-4 balancer: each new connection goes to the next backend in turn (HTTP keep-alive
and WebSockets stay on the backend they reached); a backend that refuses the connection (down,
restarting) is skipped, so clients see what they would see behind a real balancer with health
checks: a stopped instance takes no new connections, the others take them. ``drop(i)`` cuts the
open connections to backend ``i`` (a network partition, or what a killed process leaves).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence

PIPE_BYTES = 65536


class Balancer:
    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self._turn = itertools.cycle(range(len(self.backends)))
        self._open: dict[int, set[asyncio.StreamWriter]] = {i: set() for i in range(len(backends))}
        self.connections = [0] * len(self.backends)  # accepted, per backend
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for index in self._open:
            self.drop(index)
        if self._server is not None:
            await self._server.wait_closed()

    def drop(self, index: int) -> None:
        """Cut every open connection to backend ``index``."""
        for writer in list(self._open[index]):
            writer.transport.abort()

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            index = next(self._turn)
            host, port = self.backends[index]
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
            except (OSError, TimeoutError):
                continue
            return index, reader, writer
        return None

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        picked = await self._connect()
        if picked is None:  # every backend is down: as a balancer with none healthy
            client_w.transport.abort()
            return
        index, backend_r, backend_w = picked
        self.connections[index] += 1
        self._open[index].update((client_w, backend_w))
        try:
            await asyncio.gather(_pipe(client_r, backend_w), _pipe(backend_r, client_w))
        finally:
            self._open[index].difference_update((client_w, backend_w))
            for writer in (client_w, backend_w):
                writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(PIPE_BYTES):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


@contextlib.asynccontextmanager
async def balancing(backends: Sequence[tuple[str, int]]) -> AsyncIterator[Balancer]:
    balancer = Balancer(backends)
    await balancer.start()
    try:
        yield balancer
    finally:
        await balancer.close()
