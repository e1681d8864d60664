"""Which route a handoff takes, whether it is open, and what rules see."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.cel import Facts, FirstMatch, RuleSet
from bot.cel.bounds import STRING, bounded
from bot.config import DEFAULT_PHRASES, OutOfHours, Route, Settings
from bot.model import Conversation, Role, Turn
from bot.rules.escalation import escalation_plan, intents

# Per configuration (Settings are immutable; a reload makes new ones), a few kept.
_KEEP = 8
_RULE_SETS: dict[int, tuple[Settings, RuleSet]] = {}


def rule_set(settings: Settings) -> RuleSet:
    """The configuration's rules together: route pretriggers and triggers, escalation rules.

    Only tells which facts CEL is given; a rule it does not know gets all of them.
    """
    kept = _RULE_SETS.get(id(settings))
    if kept is not None and kept[0] is settings:
        return kept[1]
    rules = [rule for route in settings.routes for rule in (route.pretrigger, route.trigger)]
    rules += [rule.when for rule in settings.escalation.rules]
    made = RuleSet(rule for rule in rules if rule is not None)
    if len(_RULE_SETS) >= _KEEP:
        _RULE_SETS.pop(next(iter(_RULE_SETS)))
    _RULE_SETS[id(settings)] = (settings, made)
    return made


def prepare(settings: Settings) -> None:
    """Build what rules need of a configuration (its rule set, its route plan, its escalation
    rules) now: a reload calls this in its worker thread, so the first message after it does
    not pay for a large configuration on the event loop."""
    rule_set(settings)
    _plan(settings.routes)
    escalation_plan(settings.escalation)


def facts_for(
    settings: Settings,
    conversation: Conversation,
    turns: Sequence[Turn],
    now: datetime,
    context: Mapping[str, Any] | None = None,
) -> Facts:
    """The documented rule variables: ``visitor``, ``conversation``, ``context``, ``now``.

    Each is cut to ``bot.cel.bounds`` (lists, maps and strings kept up to a size), the sizes
    the rules' cost was checked for at load: a visitor's context cannot make a rule slow.
    ``context`` is cut as one variable, and the visitor's ``tags`` and ``account`` come from
    it; the visitor's other fields are cut when the context is merged (``merge_context``:
    500 or 2,000 characters, 20 extras), all but the id, cut here like the latest message.
    """
    visitor = conversation.visitor
    raw = dict(conversation.context)
    if context:
        raw.update(context)
    raw = bounded(raw)
    said = [t for t in turns if t.role is Role.VISITOR]
    text = said[-1].text if said else ""
    escalation = settings.escalation
    phrases = (*DEFAULT_PHRASES, *escalation.phrases.extra)
    tags = raw.get("tags")
    account = raw.get("account")
    own = visitor.fields()
    if len(visitor.id) > STRING:
        own["id"] = visitor.id[:STRING]
    return Facts(
        {
            "visitor": {
                **own,
                "tags": [str(t)[:STRING] for t in tags] if isinstance(tags, list) else [],
                "account": dict(account) if isinstance(account, Mapping) else {},
            },
            "conversation": {
                "turns": len(said),
                "messages": len(turns),
                "duration": int((now - turns[0].at).total_seconds()) if turns else 0,
                "text": text[:STRING],
                "intents": intents(text, phrases, escalation.frustration.extra_negative_words),
                "fallbacks": conversation.fallbacks_in_row,
            },
            "context": raw,
            "now": now,
        },
        rule_set(settings),
    )


@dataclass(frozen=True)
class RouteChoice:
    """The route a handoff takes (None: none is offered) and why."""

    route: Route | None
    why: str
    offered: tuple[str, ...]


class _RoutePlan:
    """A list of routes, compiled: distinct pretriggers, and the triggers as a FirstMatch."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        self.ids = tuple(r.id for r in routes)
        pretriggers = list(dict.fromkeys(r.pretrigger for r in routes if r.pretrigger is not None))
        self.pretriggers = tuple(pretriggers)
        self.gate = tuple(
            -1 if r.pretrigger is None else pretriggers.index(r.pretrigger) for r in routes
        )
        self.triggers = FirstMatch([r.trigger for r in routes])
        self.default = next((r for r in routes if r.trigger is None), None)


_PLANS: dict[int, _RoutePlan] = {}


def _plan(routes: Sequence[Route]) -> _RoutePlan:
    snapshot = tuple(routes)
    plan = _PLANS.get(id(routes))
    if plan is not None and plan.routes == snapshot:  # the same route objects, in order
        return plan
    plan = _RoutePlan(snapshot)
    if len(_PLANS) >= _KEEP:
        _PLANS.pop(next(iter(_PLANS)))
    _PLANS[id(routes)] = plan
    return plan


def choose_route(routes: Sequence[Route], facts: Facts, category: str = "") -> RouteChoice:
    """Among offered routes: a named category, else the first true trigger, else the default."""
    plan = _plan(routes)
    passed = facts.matches_all(plan.pretriggers)
    allowed: list[bool] | None = None
    if all(passed):
        offered: Sequence[Route] = plan.routes
        ids = plan.ids
    else:
        allowed = [gate < 0 or passed[gate] for gate in plan.gate]
        offered = [r for r, ok in zip(plan.routes, allowed, strict=True) if ok]
        ids = tuple(r.id for r in offered)
    wanted = category.strip().casefold()
    if wanted:
        for route in offered:
            if route.id == wanted or wanted in (c.casefold() for c in route.categories):
                return RouteChoice(route, f"category \u201c{category}\u201d", ids)
    position = plan.triggers.first(facts, allowed)
    if position is not None:
        route = plan.routes[position]
        return RouteChoice(route, f"trigger of route {route.id}: {route.trigger}", ids)
    default = (
        plan.default if allowed is None else next((r for r in offered if r.trigger is None), None)
    )
    if default is None:
        return RouteChoice(None, "no route is offered to this visitor", ids)
    return RouteChoice(default, f"default route {default.id}", ids)


@dataclass(frozen=True)
class Availability:
    """Whether a handoff can go ahead now, on which route, or what to do instead."""

    route: Route | None  # None: no handoff now
    behaviour: OutOfHours | None  # set when the chosen route is closed
    closed_route: Route | None = None
    back: datetime | None = None  # when the closed route opens again


def availability(route: Route, routes: Sequence[Route], now: datetime) -> Availability:
    """Apply the route's work hours and its ``out_of_hours`` behaviour."""
    if route.hours is None or route.hours.is_open(now):
        return Availability(route, None)
    back = route.hours.next_open(now)
    if route.out_of_hours is OutOfHours.FALLBACK_ROUTE:
        fallback = next((r for r in routes if r.id == route.fallback_route), None)
        if fallback is not None and (fallback.hours is None or fallback.hours.is_open(now)):
            return Availability(fallback, OutOfHours.FALLBACK_ROUTE, route, back)
        return Availability(None, OutOfHours.MESSAGE, route, back)
    return Availability(None, route.out_of_hours, route, back)
