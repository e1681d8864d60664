"""A throwaway PostgreSQL cluster for the suite: ``initdb`` into a temporary folder, ``pg_ctl``
on a free loopback port, trust authentication, removed at the end.

Debian's server binaries live in ``/usr/lib/postgresql/<version>/bin`` (not on ``PATH``), and
``pg_ctl`` refuses to run as root: as root, every server command runs as the ``postgres`` user
(whom Debian's package creates), in a folder that user owns.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from tests.support.processes import free_port

SUPERUSER = "postgres"
_DATABASES = itertools.count(1)


def binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (the newest Debian version first), if any."""
    found = shutil.which("pg_ctl")
    folders = [Path(found).resolve().parent] if found else []
    folders += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    return next((f for f in folders if (f / "initdb").exists() and (f / "pg_ctl").exists()), None)


def missing() -> str:
    """Why no cluster can be started here, or "" when one can."""
    if binaries() is None:
        return (
            "PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "running as root, and there is no postgres user to run PostgreSQL as"
    return ""


@dataclass
class Cluster:
    """One PostgreSQL server on loopback, with trust authentication for ``postgres``."""

    bin: Path
    root: Path  # owned by the server's user: data, sockets, log
    port: int = 0
    databases: list[str] = field(default_factory=list)
    settings: tuple[str, ...] = ()  # more server settings, "name=value"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        # From the cluster's folder: the server's user may not enter the caller's.
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}{tail}")

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
            "--no-locale", "--no-sync", "--no-instructions",
        )  # fmt: skip

    def start(self) -> None:
        """Start the server (on a new free port the first time); returns once it answers."""
        self.port = self.port or free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
            # A test server: nothing here must survive a power cut.
            " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        options += "".join(f" -c {setting}" for setting in self.settings)
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                  "-o", options)  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once (``fast``: sessions are ended, as in a real outage)."""
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    async def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"test_{os.getpid()}_{next(_DATABASES)}"
        admin = await asyncpg.connect(self.url())
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        finally:
            await admin.close()
        self.databases.append(name)
        return self.url(name)

    async def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(self.url())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        self.databases.remove(name)

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """A fresh database for one test, dropped after it (the folder stays small)."""
        url = await self.create_database()
        try:
            yield url
        finally:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self.drop_database(url)


@contextlib.contextmanager
def running_cluster(*settings: str) -> Iterator[Cluster]:
    """A new cluster, started (with these server settings, "name=value"); stopped and removed
    afterwards."""
    folder = binaries()
    assert folder is not None, missing()
    root = Path(tempfile.mkdtemp(prefix="handoff-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, SUPERUSER, SUPERUSER)
    cluster = Cluster(folder, root, settings=settings)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
