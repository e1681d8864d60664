"""``LOG_FORMAT=json``: ``python app.py`` as ops run it writes one JSON object a line, each
about the conversation, handoff and thread it concerns, and what people write never reaches
the log at INFO; a format it does not know stops it at once with what to set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import ProcessFactory, VisitorFactory, one_route_config
from tests.support.scenarios import Teams, joined, summary_in
from tests.support.standin import Standin

ROOT = Path(__file__).parents[2]
# What the visitor and the specialist write: none of it may be in the log.
SECRETS_OF_THE_CHAT = ("Kumquat-7731", "my IBAN is DE89370400440532013000", "Zebra-Orchid")


async def test_json_lines_carry_the_ids_and_no_message_text(
    tmp_path: Path,
    standin: Standin,
    start_process: ProcessFactory,
    start_visitor: VisitorFactory,
    http: aiohttp.ClientSession,
) -> None:
    bot = await start_process(
        one_route_config(tmp_path, standin), env={"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    )
    visitor = await start_visitor(bot)
    teams = Teams(http, bot.url, standin)
    handoff = await joined(visitor, teams)
    await visitor.say(f"order {SECRETS_OF_THE_CHAT[0]}, {SECRETS_OF_THE_CHAT[1]}")
    await standin.wait_text_in(handoff.thread_id, SECRETS_OF_THE_CHAT[0])
    await teams.write(handoff.thread_id, f"Checking {SECRETS_OF_THE_CHAT[2]}")
    await visitor.wait_text(SECRETS_OF_THE_CHAT[2])
    await teams.write(handoff.thread_id, "/end")
    await summary_in(standin, handoff.thread_id)
    bot.stop()

    text = bot.log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines, text
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert line["time"].endswith("+00:00")
    for secret in SECRETS_OF_THE_CHAT:
        assert secret not in text
    about = [line for line in lines if line.get("handoff") == handoff.handoff_id]
    assert about, "no line names the handoff"
    assert all(line["conversation"] == visitor.conversation_id for line in about)
    assert any(line.get("thread") == handoff.thread_id for line in about)
    assert any("joined" in line["message"] for line in about)


def test_an_unknown_log_format_stops_the_service_with_what_to_set(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "app.py", "--port", "0"],
        cwd=ROOT,
        env={"LOG_FORMAT": "xml", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "LOG_FORMAT='xml' is not one of text, json" in done.stderr
