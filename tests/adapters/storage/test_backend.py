"""Which store the service runs on: SQLite by default, PostgreSQL by DATABASE_URL (or
storage.backend); the service on PostgreSQL over real HTTP, through a database outage."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from adapters.storage.backend import Backend, choose
from adapters.storage.postgres import PostgresStore
from adapters.storage.settings import StorageSettings
from adapters.web.app import STORE
from bot.errors import StoreError
from tests.conftest import BotFactory
from tests.support.directline_client import DirectLineClient
from tests.support.postgres import Cluster
from tests.support.processes import ROOT, free_port

SECRET_URL = "postgresql://handoff:s3cret-pw@db.example:5432/handoff"


@pytest.mark.parametrize(
    ("backend", "env", "chosen"),
    [
        ("sqlite", {}, "SQLite data/handoff.db"),
        ("sqlite", {"DATABASE_URL": SECRET_URL}, "PostgreSQL postgresql://handoff@db.example:5432/handoff"),
        ("postgres", {"DATABASE_URL": f" {SECRET_URL}\n"}, "PostgreSQL postgresql://handoff@db.example:5432/handoff"),
        ("sqlite", {"DATABASE_URL": ""}, "SQLite data/handoff.db"),
    ],
)  # fmt: skip
def test_database_url_chooses_postgresql(backend: str, env: dict[str, str], chosen: str) -> None:
    picked = choose(StorageSettings.model_validate({"backend": backend}), env)
    assert str(picked) == chosen
    assert "s3cret-pw" not in repr(picked)


@pytest.mark.parametrize(
    ("backend", "env", "said"),
    [
        ("postgres", {}, "storage.backend is postgres, but DATABASE_URL is not set"),
        ("sqlite", {"DATABASE_URL": "mysql://u:s3cret-pw@h/db"}, "must be a postgresql:// URL"),
    ],
)
def test_postgresql_without_a_usable_url_is_one_clear_line(
    backend: str, env: dict[str, str], said: str
) -> None:
    with pytest.raises(StoreError, match=said) as caught:
        choose(StorageSettings.model_validate({"backend": backend}), env)
    assert "\n" not in str(caught.value) and "s3cret-pw" not in str(caught.value)


def test_a_backend_keeps_its_url_to_itself() -> None:
    assert "s3cret-pw" not in repr(Backend("postgres", url=SECRET_URL))


@pytest.mark.parametrize(
    ("config", "env", "said"),
    [
        ("storage:\n  backend: postgres\n", {}, "DATABASE_URL is not set"),
        (
            "",
            {"DATABASE_URL": f"postgresql://handoff:s3cret-pw@127.0.0.1:{free_port()}/handoff"},
            "cannot open the PostgreSQL store at postgresql://handoff@127.0.0.1:",
        ),
    ],
    ids=["no-url", "unreachable"],
)
def test_the_service_does_not_start_without_its_database(
    tmp_path: Path, config: str, env: dict[str, str], said: str
) -> None:
    path = tmp_path / "handoff.yaml"
    path.write_text(config)
    done = subprocess.run(
        [sys.executable, "app.py", "--config", str(path), "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HANDOFF_EVENT_LOOP": "asyncio", **env},
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("storage:")]
    assert len(lines) == 1 and said in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout


async def _post(visitor: DirectLineClient, text: str) -> int:
    status, _, retry_after = await visitor.send(text)
    if status == 503:
        assert retry_after.isdigit()
    return status


async def test_the_service_on_postgresql_answers_503_while_the_database_is_down_and_recovers(
    start_bot: BotFactory,
    postgres: Cluster,
    postgres_url: str,
    http: aiohttp.ClientSession,
) -> None:
    bot = await start_bot(env={"DATABASE_URL": postgres_url})
    assert isinstance(bot.app[STORE], PostgresStore)
    visitor = DirectLineClient(http, bot.directline, origin=bot.url)
    await visitor.start()
    await visitor.wait_text("virtual assistant")
    assert await _post(visitor, "before") == 200
    await asyncio.to_thread(postgres.stop)
    try:
        assert await _post(visitor, "while down") == 503
        async with http.get(f"{bot.url}/healthz") as r:
            health = await r.json()
            assert r.status == 200 and "PostgreSQL" in health["store"]  # alive, not ready
    finally:
        await asyncio.to_thread(postgres.start)
    for _ in range(100):  # no restart: within seconds of the database coming back
        async with http.get(f"{bot.url}/healthz") as r:
            if (await r.json())["store"] == "ok":
                break
        await asyncio.sleep(0.1)
    assert await _post(visitor, "after") == 200
    kept = [a["text"] for a in await visitor.history() if a.get("from", {}).get("role") == "user"]
    assert kept == ["before", "after"]
    await visitor.disconnect()
