"""Ops change behaviour by editing YAML: hot reload (good and bad edits mid-handoff), SIGHUP, explain."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import ChatFactory, ProcessFactory, one_route_yaml
from tests.support.processes import ROOT, eventually
from tests.support.scenarios import Teams, joined
from tests.support.standin import Standin


def config_text(standin: Standin, db: Path, answer: str, extra: str = "") -> str:
    """One route to the stand-in, and the bot's answer to a question about the price."""
    answers = f"bot:\n  answers:\n    - match: [price]\n      answer: {answer}\n"
    return one_route_yaml(standin.url, db, extra=answers + extra)


async def test_reload_good_then_bad_edit_while_a_handoff_is_active(
    start_chat: ChatFactory,
    standin: Standin,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    caplog,
) -> None:
    caplog.set_level(logging.INFO, logger="adapters.ops.reload")
    config = tmp_path / "handoff.yaml"
    config.write_text(config_text(standin, tmp_path / "h.db", "Ten euros."))
    bot, visitor = await start_chat(config=config)
    teams = Teams(http, bot.url, standin)
    thread_id, _, _ = await joined(visitor, teams)

    # A good edit: new texts apply to what happens next.
    config.write_text(
        config_text(
            standin,
            tmp_path / "h.db",
            "Twelve euros.",
            "texts:\n  ended_by_specialist: '{specialist} wrapped up. Bye!'\n",
        )
    )
    await eventually(lambda: "reloaded (file changed)" in caplog.text)

    # A bad edit: rejected with file:line: key, the last good config stays, nothing is disturbed.
    config.write_text(config_text(standin, tmp_path / "h.db", "Nine euros.") + "routez: []\n")
    await eventually(lambda: f"{config}:14: routez: unknown key" in caplog.text)
    assert "the last good config stays in force" in caplog.text

    await visitor.say("still with me?")
    await standin.wait_text_in(thread_id, "still with me?")
    await teams.write(thread_id, "Yes!")
    await visitor.wait_text("Yes!")
    await teams.write(thread_id, "/end")
    await visitor.wait_text("Alex Wilber wrapped up. Bye!")  # the good edit's text
    await visitor.say("what is the price?")
    await visitor.wait_text("Twelve euros.")  # not the bad edit's
    await visitor.disconnect()


async def test_sighup_reloads(
    standin: Standin, tmp_path: Path, start_process: ProcessFactory
) -> None:
    config = tmp_path / "handoff.yaml"
    config.write_text(config_text(standin, tmp_path / "h.db", "Ten euros."))
    process = await start_process(config)
    config.write_text(config_text(standin, tmp_path / "h.db", "Eleven euros."))
    assert process.process is not None
    process.process.send_signal(signal.SIGHUP)
    await eventually(lambda: "reloaded on SIGHUP" in process.log.read_text())
    assert process.process.poll() is None


EXPLAIN_CONFIG = """\
routes:
  - id: finance
    name: Finance
    channel: "19:fin@thread.tacv2"
    trigger: 'context.domain == "FINANCE_DOMAIN"'
    hours:
      timezone: Europe/Berlin
      weekly: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"]}
    out_of_hours: message
  - id: vip
    channel: "19:vip@thread.tacv2"
    pretrigger: '"vip" in visitor.tags'
    trigger: 'true'
  - id: support
    channel: "19:support@thread.tacv2"
"""


def run_explain(tmp_path: Path, visitor: dict, at: str) -> list[str]:
    config = tmp_path / "explain.yaml"
    config.write_text(EXPLAIN_CONFIG)
    source = tmp_path / "visitor.json"
    source.write_text(json.dumps(visitor))
    run = subprocess.run(
        [sys.executable, "app.py", "explain", str(source), "--config", str(config), "--at", at],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_explain_open_route(tmp_path: Path) -> None:
    lines = run_explain(
        tmp_path,
        {
            "visitor": {"name": "Jane", "company": "Fabrikam"},
            "context": {"domain": "FINANCE_DOMAIN"},
            "messages": ["I need a refund, can I talk to a person?"],
        },
        "2026-11-24T10:00:00+01:00",
    )
    assert lines == [
        "visitor:    Jane (Fabrikam)",
        "at:         2026-11-24T10:00:00+01:00",
        "escalation: the visitor asked for a person [phrase]",
        "  route finance        always offered       trigger true",
        "  route vip            pretrigger false     trigger true",
        "  route support        always offered       default route",
        'route:      finance \u2014 trigger of route finance: context.domain == "FINANCE_DOMAIN"',
        "work hours: open (Europe/Berlin)",
        "result:     a thread opens in 19:fin@thread.tacv2 (route finance)",
    ]


def test_explain_closed_route(tmp_path: Path) -> None:
    lines = run_explain(
        tmp_path,
        {
            "visitor": {"timezone": "Europe/London"},
            "context": {"domain": "FINANCE_DOMAIN", "tags": ["vip"]},
        },
        "2026-11-26T10:00:00+01:00",
    )  # Thursday
    assert lines[2:5] == [
        "  route finance        always offered       trigger true",
        "  route vip            pretrigger true      trigger true",
        "  route support        always offered       default route",
    ]
    assert lines[6].startswith("work hours: finance is closed; back on Monday at 08:00")
    assert lines[7:] == [
        "out of hours: message",
        "result:     no handoff now; the bot tells the visitor and keeps helping",
    ]


def test_explain_bad_input(tmp_path: Path) -> None:
    source = tmp_path / "visitor.json"
    source.write_text("[1, 2]")
    run = subprocess.run(
        [sys.executable, "app.py", "explain", str(source)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "must hold a JSON object" in run.stderr
