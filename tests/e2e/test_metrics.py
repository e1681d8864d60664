"""``GET /metrics`` after a real handoff: a scrape, as Prometheus makes one, shows each counter
and histogram moved by what happened, and nothing else; a scrape without the token is refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BotFactory, RunningBot
from tests.support.auth import ProductionFactory
from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import Teams, joined, summary_in
from tests.support.standin import Standin

DASHBOARD = Path(__file__).parents[2] / "infra" / "grafana" / "handoff-dashboard.json"


async def scrape(http: aiohttp.ClientSession, bot: RunningBot, **headers: str) -> dict[str, float]:
    """Every sample of a scrape: ``name{label="value",...}`` -> value (labels sorted)."""
    async with http.get(f"{bot.url}/metrics", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        text = await r.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue  # when a series was first seen: not a figure
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What changed between two scrapes (histogram buckets left out: their count says it)."""
    return {
        name: after[name] - before.get(name, 0.0)
        for name in after
        if after[name] != before.get(name, 0.0) and "_bucket" not in name
    }


async def test_a_handoff_moves_each_metric_by_what_happened(
    bot: RunningBot,
    visitor: DirectLineClient,
    standin: Standin,
    teams: Teams,
    http: aiohttp.ClientSession,
) -> None:
    before = await scrape(http, bot)
    assert before["handoff_leader"] == 1
    assert before['handoff_messages_relayed_total{direction="visitor_to_teams"}'] == 0

    handoff = await joined(visitor, teams)
    standin.failures.append((429, {"Retry-After": "0"}))  # Teams throttles the next post once
    await visitor.say("My invoices will not export")
    await visitor.say("Since Monday")
    await standin.wait_text_in(handoff.thread_id, "Since Monday")
    await teams.write(handoff.thread_id, "Looking into it now")
    await visitor.wait_text("Looking into it now")
    await teams.write(handoff.thread_id, "/end")
    await visitor.wait_text("has ended the chat")
    await summary_in(standin, handoff.thread_id)

    after = await scrape(http, bot)
    change = moved(before, after)
    route = 'route="support"'
    assert change.pop(f"handoff_started_total{{{route}}}") == 1
    assert change.pop(f'handoff_finished_total{{outcome="handled",{route}}}') == 1
    assert change.pop(f"handoff_time_to_join_seconds_count{{{route}}}") == 1
    assert change.pop(f"handoff_time_to_join_seconds_sum{{{route}}}") >= 0
    assert change.pop(f"handoff_handle_seconds_count{{{route}}}") == 1
    assert change.pop(f"handoff_handle_seconds_sum{{{route}}}") >= 0
    assert change.pop('handoff_messages_relayed_total{direction="visitor_to_teams"}') == 2
    assert change.pop('handoff_messages_relayed_total{direction="teams_to_visitor"}') == 1
    assert change.pop('handoff_teams_requests_total{outcome="throttled"}') == 1
    assert change.pop("handoff_teams_retries_total") == 1
    # Posts and card updates that reached Teams: the two messages (maybe as one post), the
    # card's updates (joined, ended), the summary.
    sent = change.pop('handoff_teams_requests_total{outcome="sent"}')
    assert sent >= 4
    assert change.pop("handoff_teams_request_seconds_count") == sent + 1
    assert change.pop("handoff_teams_request_seconds_sum") > 0
    assert change.pop("handoff_websockets_open", 1) == 1  # the visitor's socket, if opened since
    assert change == {}, change  # nothing else moved (no timeout, no reload, no refusal)
    assert after["handoff_outbox_depth"] == 0
    assert after["handoff_inbox_lag"] == 0


async def test_with_a_token_a_scrape_must_send_it(
    start_bot: BotFactory, http: aiohttp.ClientSession
) -> None:
    bot = await start_bot(env={"METRICS_TOKEN": "s3cret-scrape"})
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-scrape"}):
        async with http.get(f"{bot.url}/metrics", headers=headers) as r:
            assert r.status == 401
            body = await r.text()
            assert "METRICS_TOKEN" in body and "s3cret" not in body
    samples = await scrape(http, bot, Authorization="Bearer s3cret-scrape")
    assert samples["handoff_leader"] == 1


async def test_a_bot_with_credentials_and_no_token_keeps_its_metrics_to_itself(
    start_production: ProductionFactory, http: aiohttp.ClientSession
) -> None:
    production = await start_production()
    async with http.get(f"{production.url}/metrics") as r:
        assert r.status == 404
        assert "set METRICS_TOKEN" in await r.text()


async def test_the_grafana_dashboard_asks_only_for_what_a_scrape_has(
    bot: RunningBot, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{bot.url}/metrics") as r:
        families = {f.name for f in text_string_to_metric_families(await r.text())}
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    asked = {
        name
        for p in panels
        for target in p["targets"]
        for name in re.findall(r"\bhandoff_[a-z_]+", target["expr"])
    }
    # A family is listed before any of its series is (a route's come with its first handoff).
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    known = {family + suffix for family in families for suffix in suffixes}
    assert asked and asked <= known, asked - known
    cells = [
        (x, y)
        for p in panels
        for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
        for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells)), "panels overlap"
