"""``python app.py report`` against a store filled by a scripted week: every figure is what the
week's handoffs make it, in each format; bad arguments get a clear error and exit 2."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.storage.sqlite.store import SqliteStore
from bot.model import Handoff, HandoffState, Party, Person
from tests.support.processes import run_app

UNTIL = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # a Monday: the week before it
ALEX = Person("a", "Alex")


def _handoff(n: int, route: str, day: int, hour: int, **changes: object) -> Handoff:
    created = UNTIL - timedelta(days=7 - day) + timedelta(hours=hour)
    return replace(
        Handoff(f"h{n}", f"c{n}", route, HandoffState.QUEUED, created, "asked"), **changes
    )


def _handled(n: int, route: str, day: int, hour: int, join: int, handle: int) -> Handoff:
    h = _handoff(n, route, day, hour)
    joined = h.created_at + timedelta(seconds=join)
    return replace(
        h,
        state=HandoffState.ENDED,
        specialist=ALEX,
        joined_at=joined,
        ended_at=joined + timedelta(seconds=handle),
        ended_by=Party.SPECIALIST,
    )


# The week: billing has 5 (4 joined: time to join 30, 60, 90, 600 s), support 4, sales none.
WEEK = [
    _handled(1, "billing", 0, 9, join=30, handle=300),
    _handled(2, "billing", 1, 9, join=60, handle=600),
    _handled(3, "billing", 2, 14, join=90, handle=900),
    _handled(4, "billing", 3, 9, join=600, handle=1200),
    _handoff(5, "billing", 4, 10, state=HandoffState.EXPIRED, timed_out_at=UNTIL),
    _handled(6, "support", 0, 9, join=120, handle=60),
    _handoff(7, "support", 5, 22, state=HandoffState.ENDED, ended_by=Party.VISITOR),
    _handoff(8, "support", 6, 23, state=HandoffState.FAILED, failure="403"),
    _handoff(9, "support", 6, 23),  # still open
    # Outside the week: before it, and at its end (the end is not in it).
    _handled(10, "billing", -1, 9, join=1, handle=1),
    _handoff(11, "support", 7, 0),
]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    db = tmp_path / "handoff.db"

    async def fill() -> None:  # as the service would have left it
        store = SqliteStore(db)
        for handoff in WEEK:
            await store.save_handoff(handoff=handoff)
        await store.flush()
        await store.close()

    asyncio.run(fill())
    path = tmp_path / "handoff.yaml"
    path.write_text(
        "routes:\n"
        '  - {id: billing, name: Billing, channel: "19:b@thread.tacv2"}\n'
        '  - {id: support, name: Support, channel: "19:s@thread.tacv2"}\n'
        f"storage:\n  sqlite_path: {db}\n"
    )
    return path


def report(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_app("report", "--config", str(config), "--until", UNTIL.isoformat(), *args)


def test_the_json_report_has_each_figure_of_the_week(config: Path) -> None:
    done = report(config, "--since", "7d", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["since"] == "2026-11-23T00:00:00+00:00"
    billing, support = data["routes"]
    assert billing["route"] == "billing" and support["route"] == "support"
    assert billing["handoffs"] == 5 and billing["joined"] == 4
    assert billing["share_joined"] == 0.8
    assert billing["time_to_join_p50_seconds"] == 60  # 30, 60, 90, 600: nearest rank
    assert billing["time_to_join_p90_seconds"] == 600
    assert billing["handle_time_p50_seconds"] == 600
    assert billing["outcomes"] == {
        "handled": 4,
        "cancelled": 0,
        "declined": 0,
        "abandoned": 0,
        "expired": 1,
        "failed": 0,
        "open": 0,
    }
    assert billing["busiest_hours"][0] == {"hour": 9, "handoffs": 3}
    assert support["handoffs"] == 4
    assert support["outcomes"]["cancelled"] == 1
    assert support["outcomes"]["failed"] == 1
    assert support["outcomes"]["open"] == 1
    assert support["busiest_hours"][0] == {"hour": 23, "handoffs": 2}
    everything = data["all"]
    assert everything["handoffs"] == 9 and everything["joined"] == 5
    assert everything["time_to_join_p50_seconds"] == 90  # 30, 60, 90, 120, 600


def test_routes_time_zone_and_the_other_formats(config: Path) -> None:
    done = report(config, "--route", "support", "--timezone", "Asia/Tokyo", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["route"] for r in rows] == ["support", "all"]
    assert rows[0]["handoffs"] == "4" and rows[1]["handoffs"] == "4"
    assert rows[0]["busiest_hours"].startswith("08:00=2")  # 23:00 UTC is 08:00 in Tokyo
    assert rows[0]["time_to_join_p90_seconds"] == "120.0"
    md = report(config)
    assert md.returncode == 0, md.stderr
    lines = md.stdout.splitlines()
    assert lines[0] == "# Handoffs 2026-11-23 00:00 to 2026-11-30 00:00 UTC"
    billing = next(line for line in lines if line.startswith("| billing |"))
    assert "| 5 | 4 (80%) | 1m 00s / 10m 00s | 10m 00s / 20m 00s |" in billing


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--since", "last week"], "neither a span (7d, 24h, 2w, 90m) nor a date or time"),
        (["--timezone", "Mars/Olympus"], "no time zone 'Mars/Olympus'"),
        (["--since", "2026-12-01"], "--since must be before --until"),
    ],
)
def test_bad_arguments_say_what_is_wrong(config: Path, args: list[str], error: str) -> None:
    done = report(config, *args)
    assert done.returncode == 2
    assert error in done.stderr
    assert done.stdout == ""
