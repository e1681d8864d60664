"""The rules and facts that CEL evaluation is tested on: the common shapes, the shapes only
CEL evaluates, facts of every kind (missing, other types, values CEL cannot hold), and the
straightforward evaluation they are held to."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import cel

from bot.cel.facts import celsafe

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def reference(rule: str, data: dict[str, Any]) -> bool:
    """What a rule gives with every fact converted for CEL and CEL evaluating it."""
    try:
        context = cel.Context(dict(data))
    except (ValueError, TypeError, OverflowError):
        context = cel.Context(celsafe(dict(data)))
    try:
        return cel.compile(rule).execute(context) is True
    except Exception:
        return False


def data_with(context: dict[str, Any], tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "visitor": {
            "id": "v",
            "name": "",
            "email": "",
            "company": "Fabrikam",
            "locale": "de-AT",
            "timezone": "",
            "user_agent": "",
            "page": {"url": "https://x.example/pricing", "title": "", "referrer": ""},
            "extra": {"plan": "x"},
            "tags": tags if tags is not None else ["vip", "beta"],
            "account": {"tier": "gold"},
        },
        "conversation": {
            "turns": 2,
            "messages": 3,
            "duration": 120,
            "text": "I want a refund",
            "intents": ["question"],
            "fallbacks": 0,
        },
        "context": context,
        "now": NOW,
    }


class Named:
    """A key CEL cannot hold, that reads like another key once the facts become text."""

    def __str__(self) -> str:
        return "b"


CONTEXTS: list[dict[str, Any]] = [
    {},
    {"domain": "D1"},
    {"domain": "D2", "seats": 250, "plan": "basic"},
    {"domain": 5},
    {"domain": None},
    {"domain": ["D1"]},
    {"domain": {"x": 1}},
    {"domain": True},
    {"seats": 40},
    {"seats": "250"},
    {"seats": 40.0},
    {"seats": True},
    {"seats": 2**70},  # CEL takes it as a double
    {"seats": 2**63 + 5},  # a CEL uint
    {"seats": -(2**63)},
    {"tags": ["vip"], "plan": "P1"},
    {"tags": ["vip", 3]},
    {"tags": "vip"},
    {"tags": {"vip": 1}},
    {"tags": ("vip",)},
    {"a": "str"},
    {"a": {"b": "x"}},
    {"a": {"b": "x"}, "odd": object()},  # plain itself, but the whole becomes text
    {"a": {1: "x", "b": "x"}},  # not plain: CEL sees int keys (or text, with odd below)
    {"a": {1: "x", "b": "y"}, "odd": object()},
    {"a": {1.5: "x", "b": "y"}},  # a key CEL cannot hold: text
    {"a": {"b": "x", Named(): "y"}},  # ... and then "b" is "y"
    {"a": {Named(): "y"}},  # ... and has "b"
    {"a": MappingProxyType({"b": "x"})},
    {"domain": "D1", "odd": object()},  # CEL cannot hold it: text
    {"account": {"tier": "gold"}, "plan": "P1", "seats": 101},
    {"domain": "d1", "plan": "basic", "seats": 100},
]

LEAVES = [
    'context.domain == "D1"',
    '"D1" == context.domain',
    'context.domain != "D1"',
    '"D1" != context.domain',
    'context.domain in ["D1", "D2"]',
    "context.domain in ['D3']",
    '"vip" in visitor.tags',
    '"vip" in context.tags',
    "context.seats > 100",
    "100 < context.seats",
    "context.seats >= 40",
    "context.seats <= 40",
    "context.seats == 40",
    "context.seats != 40",
    '"250" == context.seats',
    'visitor.locale.startsWith("de")',
    'visitor.page.url.endsWith("/pricing")',
    'conversation.text.contains("refund")',
    'context.domain.contains("1")',
    'context.a.b == "x"',
    'context.a.b.c == "x"',
    'context.plan == "P1"',
    'visitor.account.tier == "gold"',
    'context.account.tier == "gold"',
    "conversation.turns >= 2",
    'visitor.extra.plan == "x"',
    'visitor.company != ""',
    "has(context.domain)",
    "has(context.a.b)",
    "has(context.a.b.c)",
    "has(visitor.account.tier)",
    '"question" in conversation.intents',
    'visitor.locale.startsWith("en")',
]

COMPOUND = [
    '!(context.domain == "D1")',
    '!!(context.domain == "D1")',
    '!(context.missing == "x")',
    'context.domain == "D1" || context.missing == "x"',
    'context.missing == "x" || context.domain == "D1"',
    'context.missing == "x" && context.domain == "D2"',
    'context.domain == "D2" && context.missing == "x"',
    '(context.domain == "D1" || context.seats > 5) && !(context.plan != "basic")',
    'context.plan == "P1" && context.seats > 100 || "vip" in visitor.tags',
    'context.domain == "FINANCE_DOMAIN" || conversation.text.contains("refund")',
    '(context.a.b == "x") && (context.seats > 1 || context.domain in ["D1"])',
    'has(context.seats) && context.seats > 100 && "question" in conversation.intents',
    '!has(context.domain) || context.domain == "D1"',
    '!visitor.locale.startsWith("de") && !!has(context.plan)',
]

CEL_ONLY = [
    "size(visitor.tags) > 1",
    "has(visitor.extra.plan) == true",
    'context.domain + "." == "D1."',
    "visitor.company.size() > 3",
    '"company" in visitor',
    "size(visitor) > 3",
    "size(context) > 1",
    "now.getHours() >= 10",
    'visitor["company"] == "Fabrikam"',
    "context.domain",
    "!context.missing",
    'context.seats > 40u || context.domain == "D1"',
    "context.seats > 1.5",
    'context.a[1] == "x"',
]

RULES = LEAVES + COMPOUND + CEL_ONLY


def random_rules(count: int, seed: int = 7) -> list[str]:
    """Random ``&&``/``||``/``!`` combinations of the leaves, as ops might write them."""
    rng = random.Random(seed)

    def tree(depth: int) -> str:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(LEAVES)
        kind = rng.choice(["&&", "||", "!", "&&", "||"])
        if kind == "!":
            return f"!({tree(depth - 1)})"
        left, right = tree(depth - 1), tree(depth - 1)
        return f"({left}) {kind} {right}" if rng.random() < 0.5 else f"{left} {kind} {right}"

    return [tree(3) for _ in range(count)]


ALL_RULES = RULES + random_rules(150)
