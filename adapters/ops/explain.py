"""``python app.py explain``: what would happen to this visitor at this time, rule by rule."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from adapters.ops.config_file import load_settings
from bot.cel.facts import Facts
from bot.config import OutOfHours, Settings
from bot.errors import ConfigError
from bot.hours import back_at
from bot.model import Conversation, Role, Turn, Visitor, merge_context
from bot.rules.escalation import Trigger, detect
from bot.rules.routing import Availability, RouteChoice, availability, choose_route, facts_for

USAGE = """python app.py explain [--config FILE] [--at ISO-TIME] [--category C] VISITOR.json

VISITOR.json (or - for stdin) holds what the widget or an upstream agent would send:
  {"visitor": {"name": "Jane", "company": "Fabrikam", "locale": "de-DE",
               "timezone": "Europe/Berlin", "page": {"url": "https://..."}},
   "context": {"domain": "FINANCE_DOMAIN", "tags": ["vip"]},
   "messages": ["Hi", "I need a refund, can I talk to a person?"]}
"""


def _read(source: str) -> dict[str, Any]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the visitor file must hold a JSON object")  # noqa: TRY004 - bad input, not a bug
    return data


def _moment(text: str | None) -> datetime:
    at = datetime.fromisoformat(text) if text else datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("--at needs a UTC offset, e.g. 2026-12-24T10:00:00+01:00")
    return at


@dataclass(frozen=True)
class Decision:
    """What the service would do for this visitor at this time (as ``Opening.start`` does)."""

    visitor: Visitor
    at: datetime
    facts: Facts
    last_message: str  # "" when there is none
    trigger: Trigger | None  # the escalation the last message fires
    choice: RouteChoice
    open_now: Availability | None  # None when no route is offered
    said: dict[str, str]  # text key -> what the visitor is told


def decide(
    settings: Settings, data: Mapping[str, Any], at: datetime, category: str = ""
) -> Decision:
    """Run the rules on what the widget or an upstream agent would send."""
    visitor_data = data.get("visitor") if isinstance(data.get("visitor"), Mapping) else {}
    context = data.get("context") if isinstance(data.get("context"), Mapping) else {}
    messages = [str(m) for m in data.get("messages", []) if str(m).strip()]
    visitor = merge_context(Visitor(id="explain"), visitor_data or {})
    conversation = Conversation(
        "explain", visitor, at, context=MappingProxyType(dict(context or {}))
    )
    turns = [
        Turn("explain", at - timedelta(seconds=len(messages) - n), Role.VISITOR, "visitor", m)
        for n, m in enumerate(messages)
    ]
    facts = facts_for(settings, conversation, turns, at)
    last = messages[-1] if messages else ""
    trigger = detect(settings.escalation, last, turns, facts) if last else None
    choice = choose_route(settings.routes, facts, category)
    open_now = availability(choice.route, settings.routes, at) if choice.route else None

    def say(key: str, **values: str) -> dict[str, str]:
        values = {"bot": settings.bot.name, "visitor": visitor.name, **values}
        return {key: settings.texts.render(key, values, visitor.locale)}

    if open_now is None:
        said = say("no_route")
    elif open_now.route is None:
        closed = open_now.closed_route or choice.route
        title = closed.title if closed else ""
        if open_now.behaviour is OutOfHours.MESSAGE and open_now.back is not None:
            said = say(
                "out_of_hours_back", route=title, back=back_at(open_now.back, at, visitor.timezone)
            )
        else:
            said = say("out_of_hours", route=title)
    else:
        said = say("queued", route=open_now.route.title)
    return Decision(visitor, at, facts, last, trigger, choice, open_now, said)


def explain(
    settings: Settings, data: dict[str, Any], at: datetime, category: str = ""
) -> list[str]:
    """The decision, as lines for a terminal."""
    d = decide(settings, data, at, category)
    visitor, facts = d.visitor, d.facts
    lines = [
        f"visitor:    {visitor.display_name}"
        + (f" ({visitor.company})" if visitor.company else "")
        + (f", locale {visitor.locale}" if visitor.locale else "")
        + (f", time zone {visitor.timezone}" if visitor.timezone else ""),
        f"at:         {at.isoformat()}",
    ]
    if d.last_message:
        lines.append(
            f"escalation: {d.trigger.reason} [{d.trigger.kind}]"
            if d.trigger
            else f"escalation: none for \u201c{d.last_message}\u201d (the bot would answer)"
        )
    for route in settings.routes:
        offered = route.pretrigger is None or facts.matches(route.pretrigger)
        triggered = route.trigger is not None and facts.matches(route.trigger)
        pre = (
            "always offered"
            if route.pretrigger is None
            else f"pretrigger {'true' if offered else 'false'}"
        )
        trig = (
            "default route"
            if route.trigger is None
            else f"trigger {'true' if triggered else 'false'}"
        )
        lines.append(f"  route {route.id:<14} {pre:<20} {trig}")
    choice, result = d.choice, d.open_now
    if choice.route is None or result is None:
        lines.append(f"route:      none ({choice.why}): the bot keeps helping")
        return lines
    lines.append(f"route:      {choice.route.id} \u2014 {choice.why}")
    closed = result.closed_route
    if closed is None:
        hours = (
            "always open" if choice.route.hours is None else f"open ({choice.route.hours.timezone})"
        )
        lines.append(f"work hours: {hours}")
    else:
        back = back_at(result.back, at, visitor.timezone) if result.back else "not scheduled"
        lines.append(f"work hours: {closed.id} is closed; back {back}")
        lines.append(f"out of hours: {closed.out_of_hours.value}")
    if result.route is None:
        lines.append("result:     no handoff now; the bot tells the visitor and keeps helping")
    else:
        lines.append(
            f"result:     a thread opens in {result.route.channel} (route {result.route.id})"
        )
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python app.py explain", usage=USAGE)
    parser.add_argument("visitor", help="visitor/context JSON file, or - for stdin")
    parser.add_argument("--config", type=Path, default=Path("config/handoff.yaml"))
    parser.add_argument("--at", help="ISO time, e.g. 2026-12-24T10:00:00+01:00 (default: now)")
    parser.add_argument("--category", default="", help="as a widget handoff.request would send")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config) if args.config.exists() else Settings()
        at = _moment(args.at)
        data = _read(args.visitor)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"explain: {exc}", file=sys.stderr)
        return 2
    print("\n".join(explain(settings, data, at, args.category)))
    return 0
