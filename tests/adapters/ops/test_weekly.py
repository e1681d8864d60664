"""The weekly report card: due at the configured hour in its zone, posted once per week across
restarts and instances (a late start catches up within a day), and really posted by a running
bot into its channel through the Bot Connector."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.ops.weekly import DAYS, WeeklyReport, last_due, post_if_due
from adapters.storage.memory import MemoryStore
from bot.model import Handoff, HandoffState, Party, Person
from tests.conftest import BotFactory
from tests.support.scenarios import card_of, card_text
from tests.support.standin import Standin

BERLIN = ZoneInfo("Europe/Berlin")
WEEKLY = WeeklyReport(
    channel="19:leads@thread.tacv2", day="mon", time="09:00", timezone="Europe/Berlin"
)
MONDAY_9 = datetime(2026, 12, 7, 9, 0, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (MONDAY_9, MONDAY_9),
        (MONDAY_9 - timedelta(minutes=1), MONDAY_9 - timedelta(days=7)),
        (MONDAY_9 + timedelta(days=3), MONDAY_9),
        (datetime(2026, 12, 7, 7, 30, tzinfo=UTC), MONDAY_9 - timedelta(days=7)),  # 08:30 there
        # Across the change to summer time: still 09:00 on the wall clock.
        (datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN), datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN)),
    ],
)
def test_the_report_is_due_at_the_hour_in_its_zone(now: datetime, due: datetime) -> None:
    assert last_due(WEEKLY, now) == due


async def test_posted_once_a_week_and_caught_up_within_a_day() -> None:
    store = MemoryStore()
    start = MONDAY_9 - timedelta(days=3)
    handled = Handoff("h1", "c1", "billing", HandoffState.QUEUED, start, "asked")
    joined = start + timedelta(seconds=45)
    await store.save_handoff(
        handoff=replace(
            handled, state=HandoffState.ENDED, specialist=Person("a", "Alex"), joined_at=joined,
            ended_at=joined + timedelta(minutes=12), ended_by=Party.SPECIALIST,
        )
    )  # fmt: skip
    await store.save_handoff(
        handoff=Handoff("h2", "c2", "billing", HandoffState.EXPIRED, start, "asked")
    )
    posts: list[tuple[str, dict[str, Any], str]] = []

    async def post(channel: str, card: dict[str, Any], text: str) -> None:
        posts.append((channel, card, text))

    assert await post_if_due(
        WEEKLY, store, post, MONDAY_9 + timedelta(minutes=1), {"billing": "Billing"}
    )
    assert not await post_if_due(WEEKLY, store, post, MONDAY_9 + timedelta(hours=2))  # once
    channel, card, text = posts[0]
    assert channel == "19:leads@thread.tacv2" and text == "Handoffs last week: 2"
    shown = str(card)
    for fact in (
        "All routes",
        "Billing",
        "45s median",
        "12m 00s median",
        "handled 1, expired 1",
        "1 (50%)",
    ):
        assert fact in shown, fact
    # Down over the next Monday's hour, back 20 hours later: posted then; 30 hours: skipped.
    store2 = MemoryStore()
    assert await post_if_due(WEEKLY, store2, post, MONDAY_9 + timedelta(days=7, hours=20))
    assert not await post_if_due(WEEKLY, store2, post, MONDAY_9 + timedelta(days=14, hours=30))
    assert len(posts) == 2


async def test_a_running_bot_posts_the_report_into_its_channel(
    start_bot: BotFactory, standin: Standin
) -> None:
    now = datetime.now(UTC) - timedelta(minutes=2)  # due two minutes ago, in UTC
    leads = "19:leads@thread.tacv2"
    weekly = {
        "channel": leads,
        "day": DAYS[now.weekday()],
        "time": f"{now:%H:%M}",
        "timezone": "UTC",
    }
    await start_bot(reports={"weekly": weekly})
    thread = await standin.wait_for(
        lambda: [c for c in standin.threads if c.body["channelData"]["channel"]["id"] == leads]
    )
    card = card_of(thread[0])
    assert card["type"] == "AdaptiveCard"
    assert "Handoffs last week" in card_text(card)
