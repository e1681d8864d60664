"""Real processes for end-to-end tests: the bot as ops run it, and the Agents Playground."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from adapters.web.server import SHUTDOWN_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "e2e" / "node"
PLAYGROUND_BIN = NODE_DIR / "node_modules" / ".bin" / "agentsplayground"
PLAYGROUND_CHANNEL = "19:handoff-support@thread.tacv2"
PLAYGROUND_TENANT = "00000000-0000-0000-0000-0000000000001"


ROOT = Path(__file__).resolve().parents[2]


def run_app(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python app.py ARGS`` from the repository's root, as ops run its commands."""
    return subprocess.run(
        [sys.executable, "app.py", *args],
        cwd=ROOT,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_http(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(timeout / 0.1)):
            if process.poll() is not None:
                raise AssertionError(f"{process.args} exited:\n{log.read_text()[-3000:]}")
            try:
                async with session.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


class BotProcess:
    """``python app.py`` as a real process, as ops run it (``args``: more of its options;
    ``env``: more environment; ``preexec_fn``: run in the child before it starts)."""

    def __init__(
        self,
        config: Path,
        port: int,
        log: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        preexec_fn: Callable[[], Any] | None = None,
    ) -> None:
        self.config, self.port, self.log = config, port, log
        self.args, self.env, self.preexec_fn = list(args), dict(env or {}), preexec_fn
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it to answer."""
        command = [sys.executable, "app.py", "--config", str(self.config), "--port", str(self.port)]
        # Neither credentials nor a database of the developer's own reach the process.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("Microsoft") and k != "DATABASE_URL"
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*command, *self.args],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**env, **self.env},
                preexec_fn=self.preexec_fn,
            )
        return self.process

    async def ready(self) -> None:
        """Wait until it answers ``/healthz`` (failing with its log if it exits first)."""
        assert self.process is not None
        await wait_http(f"{self.url}/healthz", self.process, self.log)

    async def start(self) -> None:
        self.spawn()
        await self.ready()

    async def exited(self, within: float) -> int | None:
        """Its exit code if it exits within ``within`` seconds, else None."""
        assert self.process is not None
        for _ in range(int(within / 0.05)):
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        return self.process.poll()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then wait as long as a graceful stop may take (the in-flight work finishes:
        the inbox drains what was acknowledged, a send under way completes)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(SHUTDOWN_TIMEOUT + 10)
            except subprocess.TimeoutExpired:
                self.process.kill()  # fail, but leave no process behind
                self.process.wait(10)
                raise


class PlaygroundProcess:
    """The Microsoft 365 Agents Playground in its own folder (its team/channel come from the yml)."""

    def __init__(self, workdir: Path, port: int, bot_url: str) -> None:
        self.workdir, self.port, self.bot_url = workdir, port, bot_url
        self.log = workdir / "playground.out"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(
            NODE_DIR / ".m365agentsplayground.yml", self.workdir / ".m365agentsplayground.yml"
        )
        env = {
            **os.environ,
            "TEAMSAPPTESTER_BROWSER": "none",
            "TEAMSAPPTESTER_PORT": str(self.port),
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(PLAYGROUND_BIN),
                    "-e",
                    f"{self.bot_url}/api/messages",
                    "-c",
                    "msteams",
                    "--disable-telemetry",
                ],
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        await wait_http(self.url, self.process, self.log, timeout=90)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def eventually(predicate: object, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` until it is truthy (for conditions no event announces, like logs)."""
    assert callable(predicate)
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")
