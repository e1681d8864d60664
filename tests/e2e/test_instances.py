"""Several instances on one PostgreSQL database: what reaches one instance from Teams appears on
the visitor's socket held by another."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import VisitorFactory, one_route_config
from tests.support.processes import BotProcess, free_port
from tests.support.scenarios import Teams, handed_off
from tests.support.standin import Standin

pytestmark = pytest.mark.e2e

Instances = Callable[[int], Awaitable[list[BotProcess]]]


@pytest.fixture
async def instances(
    standin: Standin, tmp_path: Path, postgres_url: str
) -> AsyncIterator[Instances]:
    """``python app.py`` processes, each on its own port, all on one PostgreSQL database."""
    started: list[BotProcess] = []

    async def start(count: int) -> list[BotProcess]:
        config = one_route_config(tmp_path, standin)
        processes = [
            BotProcess(
                config,
                free_port(),
                tmp_path / f"bot-{len(started) + n}.log",
                env={"DATABASE_URL": postgres_url},
            )
            for n in range(count)
        ]
        started.extend(processes)
        for process in processes:
            process.spawn()
        for process in processes:
            await process.ready()
        return processes

    yield start
    for process in started:
        process.stop()


async def test_a_specialist_on_one_instance_reaches_the_visitor_on_another(
    instances: Instances,
    standin: Standin,
    http: aiohttp.ClientSession,
    start_visitor: VisitorFactory,
) -> None:
    a, b = await instances(2)
    visitor = await start_visitor(a)
    await visitor.say("hello")
    await visitor.wait_text("How can I help")
    handoff = await handed_off(visitor, standin)

    # Teams reaches instance B: the join and the reply, appended there, show on A's socket.
    teams_b = Teams(http, b.url, standin)
    status, _ = await teams_b.click(handoff, "handoff.join")
    assert status == 200
    await visitor.wait_text("has joined")
    status, _ = await teams_b.write(handoff.thread_id, "Hello Jane, Alex here.")
    assert status in (200, 201)
    reply = await visitor.wait_text("Hello Jane, Alex here.")
    assert reply["from"]["name"] == "Alex Wilber"
    ids = [activity["id"] for activity in visitor.activities]
    assert len(ids) == len(set(ids)), "an activity reached the socket twice"
    # The visitor's answer, posted to A, reaches the thread.
    await visitor.say("Thanks Alex!")
    await standin.wait_text_in(handoff.thread_id, "Thanks Alex!")
