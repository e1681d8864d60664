"""Rules see facts cut to the bounds their cost was checked for; small facts pass untouched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest

from bot.cel.bounds import CHARS, ITEMS, STRING, VALUES, bounded
from bot.config import Settings
from bot.model import Conversation, Role, Turn, Visitor, merge_context
from bot.rules.routing import facts_for

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def count(value: Any) -> tuple[int, int, int]:
    """Values, characters (strings and keys) and depth of a value."""
    if isinstance(value, dict):
        parts = [count(v) for v in value.values()]
        chars = sum(len(k) for k in value)
    elif isinstance(value, list | tuple):
        parts = [count(v) for v in value]
        chars = 0
    else:
        return 1, len(value) if isinstance(value, str | bytes) else 0, 0
    return (
        1 + sum(p[0] for p in parts),
        chars + sum(p[1] for p in parts),
        1 + max((p[2] for p in parts), default=0),
    )


def deep(levels: int, leaf: Any = "leaf") -> Any:
    value: Any = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


CUT = [
    ("s" * (STRING + 10), "s" * STRING),
    (b"b" * (STRING + 1), b"b" * STRING),
    (list(range(ITEMS + 50)), list(range(ITEMS))),
    ({f"k{n}": n for n in range(ITEMS + 1)}, {f"k{n}": n for n in range(ITEMS)}),
    ({"k" * (STRING + 1): 1, "ok": 2}, {"ok": 2}),  # an overlong key drops its entry
    ((1, 2, "x" * (STRING + 1)), (1, 2, "x" * STRING)),
    (MappingProxyType({"a": "x" * (STRING + 1)}), {"a": "x" * STRING}),
    (deep(10), deep(6, {})),  # a map six levels down holds nothing
    ({"a": [[0] * 100] * 100}, {"a": [[0] * 100] * 5}),  # 512 values one level down
]


@pytest.mark.parametrize(("value", "expected"), CUT)
def test_values_are_cut_keeping_what_comes_first(value: Any, expected: Any) -> None:
    assert bounded(value) == expected


def test_depth_and_totals_are_bounded() -> None:
    huge = {f"k{a}": [{f"m{b}": ["x" * 5000] * 200 for b in range(200)}] * 200 for a in range(200)}
    values, chars, depth = count(bounded(huge))
    assert values <= VALUES[0] and chars <= CHARS[0] and depth < len(VALUES)
    for name, item in bounded(huge).items():
        item_values, item_chars, _ = count(item)
        assert item_values <= VALUES[1] and item_chars + len(name) <= CHARS[1]


SMALL = [
    {"domain": "D1", "seats": 40, "tags": ["vip", "beta"], "account": {"tier": "gold"}},
    {},
    {"a": None, "b": 1.5, "c": True, "d": [[1], {"e": "f"}]},
]


@pytest.mark.parametrize("value", SMALL)
def test_small_facts_are_the_same_objects(value: Any) -> None:
    assert bounded(value) is value


def test_merged_visitor_fields_are_within_the_bounds() -> None:
    """facts_for trusts merge_context to cut the visitor's own fields (it checks the id)."""
    context = {
        "name": "n" * 9000,
        "page": {"url": "u" * 9000, "title": "t" * 9000, "referrer": "r" * 9000},
        **{f"x{n}": "v" * 9000 for n in range(500)},
    }
    fields = merge_context(Visitor(id="v"), context).fields()
    assert bounded(fields) is fields


def test_facts_for_cuts_what_the_visitor_sends() -> None:
    settings = Settings()
    context = {
        "tags": [{"deep": deep(20)}] + ["t" * 9000] * 300,
        "account": {f"k{n}": n for n in range(500)},
        "blob": "b" * 100_000,
    }
    conversation = Conversation(
        "c1", Visitor(id="v" * 9000), NOW, context=MappingProxyType(context)
    )
    turns = [Turn("c1", NOW - timedelta(seconds=1), Role.VISITOR, "V", "m" * 28_000)]
    data = facts_for(settings, conversation, turns, NOW, {"extra": list(range(1000))}).data
    assert len(data["context"]["blob"]) == STRING
    assert data["context"]["extra"] == list(range(ITEMS))
    assert len(data["visitor"]["tags"]) <= ITEMS
    assert all(len(tag) <= STRING for tag in data["visitor"]["tags"])
    assert len(data["visitor"]["account"]) == ITEMS
    assert len(data["visitor"]["id"]) == STRING
    assert len(data["conversation"]["text"]) == STRING
    assert count(data["context"])[0] <= VALUES[0]
