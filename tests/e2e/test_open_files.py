"""Slow or idle clients cannot exhaust file descriptors: the connection cap stays under the
process's open-files limit, so a flood of connections is answered 503 instead of breaking
accept() (and every other file the process opens) for everyone."""

from __future__ import annotations

import asyncio
import resource
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ProcessFactory

pytestmark = pytest.mark.e2e
OPEN_FILES = 400


def _low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


async def test_a_connection_flood_stays_under_the_open_files_limit(
    tmp_path: Path, start_process: ProcessFactory
) -> None:
    config = tmp_path / "handoff.yaml"
    config.write_text(
        f"storage:\n  sqlite_path: {tmp_path / 'handoff.db'}\n"
        "limits:\n  connections_per_ip: 100000\n"
    )
    bot = await start_process(config, preexec_fn=_low_limit)
    held: list[socket.socket] = []
    try:
        assert "at most 144 connections are taken" in bot.log.read_text()

        def flood() -> int:
            busy = 0
            for _ in range(OPEN_FILES):
                conn = socket.create_connection(("127.0.0.1", bot.port), timeout=5)
                held.append(conn)
                conn.settimeout(0.05)  # all of them well within the header deadline
                try:
                    if conn.recv(64).startswith(b"HTTP/1.1 503"):
                        busy += 1
                except TimeoutError:
                    pass  # accepted, waiting for a request
            return busy

        busy = await asyncio.to_thread(flood)
        assert busy >= OPEN_FILES - 144 - 5, busy
        for conn in held:
            conn.close()
        held.clear()
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as http, http.get(f"{bot.url}/healthz") as r:
            assert r.status == 200
        assert "Too many open files" not in bot.log.read_text()
    finally:
        for conn in held:
            conn.close()
