"""The cost estimate refuses rules that would be slow, and is an upper bound for those it passes.

Costs are steps (about 60 ns each). The adversarial facts below are as large as the bounds
allow, in the shapes that cost the extension most (maps copy slowest).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import cel
import pytest

from bot.cel import compile_rule
from bot.cel.cost import COST_LIMIT, CelTooCostlyError, check, estimate
from bot.cel.parser import parse
from bot.config import Settings
from bot.model import Conversation, Role, Turn, Visitor
from bot.rules.routing import facts_for

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

REALISTIC = [
    'context.domain == "FINANCE_DOMAIN" || conversation.text.contains("refund")',
    'visitor.company != ""',
    'has(context.seats) && context.seats > 100 && "question" in conversation.intents',
    'context.tags.exists(t, t.startsWith("vip"))',
    'visitor.account.plan in ["gold", "platinum"]',
    "context.items.exists(i, i.price > 100)",
    'context.roles.all(r, r != "guest")',
    'visitor.tags.exists(t, t in ["a", "b"])',
    'context.tags.exists_one(t, t == "vip")',
    'context.orders.filter(o, o.status == "open").size() > 0',
    "context.items.map(i, i.price).exists(p, p > 100)",
    'visitor.tags.map(t, t.startsWith("v"), t).size() > 1',
    'conversation.text.matches("(?i)refund|money back")',
    'conversation.text.matches("\\\\w+@\\\\w+")',
    'visitor.email.matches("^[^@]+@(contoso|fabrikam)\\\\.com$")',
    "now.getHours() > 9 && now.getDayOfWeek() < 6",
    "size(string(context)) > 0",
]


@pytest.mark.parametrize("rule", REALISTIC)
def test_realistic_rules_pass(rule: str) -> None:
    assert compile_rule(rule) == rule
    assert estimate(parse(rule), rule) <= COST_LIMIT


# Each would take seconds (or crash the process) with a visitor's context at the bounds.
BOMBS = [
    (
        "context.a.map(x, context.a).map(y, y.map(z, z)).size() > 0",
        "`context.a.map(x, context.a)` may take up to",
        "map() over up to 100 items",
    ),
    (
        "context.a.map(x, context.a.map(y, [x, y])).size() > 0",
        "`context.a.map(y, [x, y])`",
        "copying the list it builds at every step",
    ),
    (
        "context.a.map(x, x + x + x + x).size() > 0",  # concatenation inside the body
        "`context.a.map(x, x + x + x + x)`",
        "map() over up to 100 items",
    ),
    (
        "(context.a + context.a + context.a + context.a).map(x, x).size() > 0",  # a built range
        "`context.a + context.a + context.a + context.a).map(x, x)`",
        "map() over up to 400 items",
    ),
    (
        "[context, context, context, context, context, context].map(x, x).size() > 0",
        "`[context, context, context, context, context, context].ma...`",  # shortened
        "map() over up to 6 items",
    ),
    (
        "context.a.exists(x, context.b.exists(y, context.c.exists(z, x == y && y == z)))",
        "`context.b.exists(y, context.c.exists(z, x == y && y == z))`",
        "exists() over up to 100 items",
    ),
    (
        "context.a.filter(x, true).filter(y, true).map(z, [z, z, z, z]).size() > 0",
        "`context.a.filter(x, true).filter(y, true)`",
        "copying the list it builds",
    ),
    (
        'conversation.text.matches("[a-z]{4096}")',  # compiles for 0.17 s, every message
        '`conversation.text.matches("[a-z]{4096}")`',
        "matches() compiles its pattern at every evaluation",
    ),
    (
        'conversation.text.matches("\\\\w{100}")',
        '`conversation.text.matches("\\\\w{100}")`',
        "matches() compiles its pattern",
    ),
    (
        "conversation.text.matches(context.pattern)",
        "`conversation.text.matches(context.pattern)`",
        "a pattern that is not a string literal",
    ),
    (
        "[context, context, context, context, context, context]",
        "`[context, context, context, context, context, context]` may take up to",
        "returns a large value",
    ),
]


@pytest.mark.parametrize(("rule", "part", "why"), BOMBS)
def test_costly_rules_are_refused_naming_the_part(rule: str, part: str, why: str) -> None:
    with pytest.raises(CelTooCostlyError) as caught:
        check(parse(rule), rule)
    message = str(caught.value)
    assert message.startswith(f"too expensive to evaluate: {part}"), message
    assert why in message
    assert f"more than the {COST_LIMIT:,} allowed" in message


def test_the_message_reaches_ops() -> None:
    rule = "context.a.map(x, x + x + x + x).size() > 0"
    with pytest.raises(ValueError, match=r"^CEL: too expensive to evaluate: `context\.a\.map"):
        compile_rule(rule)


def adversarial(kind: str) -> dict[str, Any]:
    """A context as large as the bounds allow, in a shape that is slow to copy."""

    def wide() -> list[Any]:  # a hundred maps of short strings
        return [
            {
                "price": 101,
                "status": "open",
                "sku": "s" * 16,
                **{f"k{n}": "v" * 16 for n in range(6)},
            }
            for _ in range(100)
        ]

    def heavy() -> list[Any]:  # few items, each as large as an item may be
        return [
            {"price": {f"p{n}": list(range(3)) for n in range(7)}, "status": list(range(90))}
        ] * 4

    def long() -> list[Any]:
        return ["vip" + "x" * 4093 for _ in range(100)]

    make = {"wide": wide, "heavy": heavy, "long": long}[kind]
    return {name: make() for name in ("a", "b", "tags", "items", "orders", "roles", "vip", "c")} | {
        "domain": "d" * 5000,
        "seats": 500,
        "account": {"plan": "gold" * 2000},
    }


def facts_at_the_bounds(rule: str, kind: str) -> Any:
    settings = Settings.model_validate(
        {
            "routes": [
                {"id": "r", "channel": "19:r@thread.tacv2", "trigger": rule},
                {"id": "d", "channel": "19:d@thread.tacv2"},
            ]
        }
    )
    visitor = Visitor(id="v" * 10_000, company="c" * 500, email="e" * 500)
    context = adversarial(kind)
    conversation = Conversation("c1", visitor, NOW, context=MappingProxyType(context))
    turns = [Turn("c1", NOW - timedelta(seconds=5), Role.VISITOR, "V", "x@y " * 7000)]
    return facts_for(settings, conversation, turns, NOW, {"tags": context["tags"]})


def slowest(run: Any, times: int = 3) -> float:
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("kind", ["wide", "heavy", "long"])
def test_passed_rules_stay_fast_on_facts_at_the_bounds(kind: str) -> None:
    """The estimate is an upper bound: the heaviest passing rules run in milliseconds.

    300,000 steps at ~60 ns are 18 ms; 150 ms leaves room for a loaded machine.
    """
    for rule in REALISTIC:
        facts = facts_at_the_bounds(rule, kind)
        context = facts._context()  # converting the facts is not the rule's cost
        program = cel.compile(rule)
        assert slowest(lambda program=program, context=context: _run(program, context)) < 0.15, rule


def _run(program: Any, context: Any) -> None:
    try:
        program.execute(context)
    except Exception:  # an error is a quick "no match": only the time matters
        pass


def test_a_refused_rule_really_is_slow() -> None:
    """Not a hypothetical: on facts at the bounds, one refused rule costs what hundreds of
    ordinary rules do (compared on the same facts, in the same run, not against a clock: this
    machine's speed varies)."""
    rule = "(context.a + context.a + context.a + context.a).map(x, x).size() > 0"
    with pytest.raises(CelTooCostlyError):
        check(parse(rule), rule)
    facts = facts_at_the_bounds("true", "wide")
    context = facts._context()
    ordinary = cel.compile("context.a.size() > 0 && 'vip' in context.tags")
    quick = min(slowest(lambda: ordinary.execute(context), times=1) for _ in range(5))
    assert slowest(lambda: cel.compile(rule).execute(context), times=1) > 100 * quick
