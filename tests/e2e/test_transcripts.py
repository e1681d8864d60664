"""A conversation's transcript for the team, after a real handoff: over HTTP (HTML, text, JSON,
by handoff or conversation id, behind OPS_TOKEN) and from the command line on the same store;
internal notes are in it, marked, and nothing a visitor typed becomes markup."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import BotFactory, one_route_config
from tests.support.auth import ProductionFactory
from tests.support.directline_client import DirectLineClient
from tests.support.processes import ROOT
from tests.support.scenarios import Handoff, Teams, card_of, card_text, joined, summary_in
from tests.support.standin import Standin
from tests.support.teams import ALEX, task_fetch

SCRIPT = '<script>alert("x")</script> & <b>bold</b>'


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``app.py transcript ARGS``."""
    return subprocess.run(
        [sys.executable, "app.py", "transcript", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def a_handled_handoff(visitor: DirectLineClient, teams: Teams, standin: Standin) -> Handoff:
    handoff = await joined(visitor, teams)
    await visitor.say(SCRIPT)
    await standin.wait_text_in(handoff.thread_id, "alert")
    await teams.write(handoff.thread_id, "note: refund approved by finance, tell her tomorrow")
    await teams.write(handoff.thread_id, "I have sent the export to your email")
    await visitor.wait_text("sent the export")
    await teams.write(handoff.thread_id, "/end")
    await summary_in(standin, handoff.thread_id)
    return handoff


async def test_the_team_reads_a_transcript_over_http_with_its_notes_marked(
    start_bot: BotFactory, standin: Standin, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    db = tmp_path / "handoff.db"
    bot = await start_bot(db=db, env={"OPS_TOKEN": "ops-s3cret"})
    visitor = DirectLineClient(http, f"{bot.url}/v3/directline", origin=bot.url)
    await visitor.start()
    teams = Teams(http, bot.url, standin)
    handoff = await a_handled_handoff(visitor, teams, standin)
    auth = {"Authorization": "Bearer ops-s3cret"}
    url = f"{bot.url}/api/transcripts/{handoff.handoff_id}"

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        async with http.get(url, headers=headers) as r:
            assert r.status == 401
            assert "OPS_TOKEN" in await r.text()

    async with http.get(url, headers=auth) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert r.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        page = await r.text()
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "How do I export my invoices?" in page
    assert "internal note, not seen by the visitor" in page
    assert "refund approved by finance" in page

    async with http.get(url, params={"format": "json"}, headers=auth) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/json"
        data = await r.json()
    notes = [t for t in data["turns"] if t["internal"]]
    assert [t["text"] for t in notes] == ["note: refund approved by finance, tell her tomorrow"]
    assert notes[0]["role"] == "note" and notes[0]["author"] == "Alex Wilber"
    said = [t["text"] for t in data["turns"] if t["role"] == "visitor"]
    assert SCRIPT in said
    assert data["about"]["Specialist"] == "Alex Wilber"
    assert data["conversation"] == visitor.conversation_id

    by_conversation = f"{bot.url}/api/transcripts/{visitor.conversation_id}"
    async with http.get(by_conversation, params={"format": "text"}, headers=auth) as r:
        assert r.status == 200
        text = await r.text()
    assert "Alex Wilber (internal note): [INTERNAL NOTE] note: refund approved" in text
    assert "Alex Wilber (specialist): I have sent the export to your email" in text

    for params, status in (({"format": "pdf"}, 400), ({}, 404)):
        target = url if params else f"{bot.url}/api/transcripts/no-such-id"
        async with http.get(target, params=params, headers=auth) as r:
            assert r.status == status, await r.text()

    # The same transcript from the command line, on the same store (a SQLite file is one
    # process's: the service stopped first; on PostgreSQL it may run meanwhile).
    await bot.stop()
    config = one_route_config(tmp_path, standin, db)
    done = await asyncio.to_thread(cli, handoff.handoff_id, "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "[INTERNAL NOTE] note: refund approved" in done.stdout
    assert done.stdout.splitlines()[0] == f"Conversation: {visitor.conversation_id}"
    missing = await asyncio.to_thread(cli, "nope", "--config", str(config))
    assert missing.returncode == 1 and "no conversation or handoff 'nope'" in missing.stderr
    as_json = await asyncio.to_thread(
        cli, visitor.conversation_id, "--format", "json", "--config", str(config)
    )
    assert json.loads(as_json.stdout)["about"]["Visitor"] == "Jane Doe"


async def test_a_bot_with_credentials_and_no_token_serves_no_transcript(
    start_production: ProductionFactory, http: aiohttp.ClientSession
) -> None:
    production = await start_production()
    async with http.get(f"{production.url}/api/transcripts/anything") as r:
        assert r.status == 404
        assert "set OPS_TOKEN" in await r.text()


async def test_the_cards_transcript_button_opens_it_in_a_dialog_for_its_own_thread(
    visitor: DirectLineClient, teams: Teams, standin: Standin
) -> None:
    handoff = await a_handled_handoff(visitor, teams, standin)
    root = card_of(standin.threads[-1])
    (button,) = [a for a in root["actions"] if a["title"] == "Transcript"]
    assert button["type"] == "Action.Submit"
    assert button["data"]["msteams"] == {"type": "task/fetch"}
    data = {k: v for k, v in button["data"].items() if k != "msteams"}

    status, body = await teams.send(task_fetch(standin.url, handoff.thread_id, ALEX, data))
    assert status == 200 and body["task"]["type"] == "continue", body
    dialog = body["task"]["value"]
    assert dialog["title"] == "Transcript: Jane Doe"
    card = dialog["card"]["content"]
    shown = card_text(card)
    assert "How do I export my invoices?" in shown and SCRIPT.replace('"', '\\"') in shown
    assert "internal note" in shown and "refund approved by finance" in shown
    assert "{{DATE(" in shown  # each line's time, in the reader's own zone
    assert all(
        block["type"] != "TextBlock" or "alert" not in block["text"] for block in card["body"]
    )  # what the visitor wrote is never markdown

    # The same button's data sent from another thread shows nothing of this conversation.
    other = handoff.thread_id.replace("messageid=", "messageid=9")
    status, body = await teams.send(task_fetch(standin.url, other, ALEX, data))
    assert status == 200 and body["task"]["type"] == "message"
    assert "Jane" not in json.dumps(body)
    status, body = await teams.send(
        task_fetch(standin.url, handoff.thread_id, ALEX, {"verb": "something.else"})
    )
    assert status == 200 and body["task"] == {
        "type": "message",
        "value": "This button is not one I know.",
    }
