"""CEL macros pass ``check`` and give the right answer on a message's facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from bot.cel import compile_rule
from bot.config import Settings
from bot.model import Conversation, Page, Role, Turn, Visitor
from bot.rules.routing import choose_route, facts_for

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CONTEXT = {
    "tags": ["vip-gold", "beta"],
    "items": [{"sku": "a", "price": 80}, {"sku": "b", "price": 120}],
    "roles": ["admin", "editor"],
    "seats": {"used": 4, "paid": 5},
}


def settings_with(rule: str) -> Settings:
    """What ``check`` validates: a route whose trigger is the rule."""
    return Settings.model_validate(
        {
            "routes": [
                {"id": "rule", "channel": "19:rule@thread.tacv2", "trigger": rule},
                {"id": "default", "channel": "19:default@thread.tacv2"},
            ]
        }
    )


def route_for(rule: str, context: dict[str, Any]) -> str:
    settings = settings_with(rule)
    conversation = Conversation(
        "c1",
        Visitor(id="v", company="Fabrikam", page=Page(url="https://x.example/")),
        NOW,
        context=MappingProxyType(context),
    )
    turns = [Turn("c1", NOW - timedelta(minutes=1), Role.VISITOR, "V", "hello there")]
    facts = facts_for(settings, conversation, turns, NOW)
    route = choose_route(settings.routes, facts).route
    assert route is not None
    return route.id


MACROS = [
    ('context.tags.exists(t, t.startsWith("vip"))', True),
    ('context.tags.exists(t, t.startsWith("staff"))', False),
    ('visitor.tags.exists(t, t == "beta")', True),
    ("context.items.exists(i, i.price > 100)", True),
    ("context.items.all(i, i.price > 50)", True),
    ("context.items.all(i, i.price > 100)", False),
    ("context.roles.all(r, r != 'guest')", True),
    ("context.tags.exists_one(t, t.size() > 3)", False),  # both are
    ('context.tags.exists_one(t, t.startsWith("vip"))', True),
    ("context.items.map(i, i.price).exists(p, p == 120)", True),
    ("context.items.map(i, i.price > 100, i.sku) == ['b']", True),
    ("context.items.map(i, i.price < 100, i.sku) == ['b']", False),
    ("visitor.tags.filter(t, t.startsWith('vip')).size() == 1", True),
    ("size(context.roles.filter(r, r.endsWith('or'))) == 2", False),
    ("context.seats.exists(k, k == 'paid')", True),  # a map ranges over its keys
    ("context.seats.all(k, context.seats[k] > 3)", True),
    ("has(context.seats.paid) && context.seats.used < context.seats.paid", True),
    ("[1, 2, 3].filter(x, x > 1).map(x, x * 10) == [20, 30]", True),
    ("context.missing.exists(t, t == 'x')", False),  # an error is no match
]


@pytest.mark.parametrize(("rule", "matches"), MACROS)
def test_macros_pass_check_and_evaluate(rule: str, matches: bool) -> None:
    assert route_for(rule, CONTEXT) == ("rule" if matches else "default")


def test_macros_see_what_cel_sees() -> None:
    rule = compile_rule("context.tags.exists(t, t.startsWith('vip'))")
    settings = settings_with(rule)
    conversation = Conversation("c1", Visitor(id="v"), NOW, context=MappingProxyType(CONTEXT))
    facts = facts_for(settings, conversation, [], NOW)
    assert facts.matches(rule) is True


UNKNOWN = [
    (
        "[1].exists(x, x > 0) && x",
        "CEL: unknown variable x (use visitor, conversation, context, now)",
    ),
    ("customer.tags.exists(t, t == 1)", "CEL: unknown variable customer"),
    ("context.tags.exists(t, u == 1)", "CEL: unknown variable u"),
    ("context.tags.exists(t, t, 1)", "CEL: unknown variable t"),  # not a macro: three arguments
]


@pytest.mark.parametrize(("rule", "message"), UNKNOWN)
def test_unbound_names_are_still_unknown_variables(rule: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings_with(rule)
    assert message in str(caught.value)
