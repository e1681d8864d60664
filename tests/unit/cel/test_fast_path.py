"""The fast path gives what real CEL gives, and it can be switched off (a differential test).

Every rule of a table and of a seeded generator is evaluated, against facts of a table and of
a seeded generator, by the Python fast path and by CEL itself (all the facts handed over, as
text when CEL cannot hold some value). Where the fast path answers, CEL must answer the same:
true and false alike, and an error (a missing field, say) exactly where CEL raises one.
Where it defers, CEL decides. Switched off, every answer comes from CEL, and is the same.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import cel
import pytest

from bot.cel import (
    DEFER,
    ERROR,
    Facts,
    FirstMatch,
    RuleSet,
    compile_rule,
    compiled,
    fast_path_enabled,
    set_fast_path,
)
from bot.cel.facts import celsafe
from tests.unit.cel.tables import ALL_RULES, CONTEXTS, Named, data_with

RAISED = "raised"
_PROGRAMS: dict[str, Any] = {}


def real_cel(rules: list[str], data: dict[str, Any]) -> dict[str, object]:
    """What CEL gives for each rule: its value, or RAISED when evaluating fails."""
    try:
        context = cel.Context(dict(data))
    except (ValueError, TypeError, OverflowError):
        context = cel.Context(celsafe(dict(data)))
    got: dict[str, object] = {}
    for rule in rules:
        program = _PROGRAMS.get(rule) or _PROGRAMS.setdefault(rule, cel.compile(rule))
        try:
            got[rule] = program.execute(context)
        except Exception:
            got[rule] = RAISED
    return got


@pytest.fixture
def fast_path_off() -> Iterator[None]:
    before = set_fast_path(False)
    try:
        yield
    finally:
        set_fast_path(before)


# ---- a seeded generator of rules and facts --------------------------------------------------

PATHS = [
    "context.domain",
    "context.seats",
    "context.plan",
    "context.tags",
    "context.a.b",
    "context.a.b.c",
    "context.missing",
    "visitor.tags",
    "visitor.locale",
    "visitor.account.tier",
    "conversation.turns",
    "conversation.text",
    "conversation.intents",
]
STRINGS = ['"D1"', '"D2"', '""', '"vip"', "'x'", '"250"', '"refund"', '"de"', '"gold"']
INTS = ["0", "1", "40", "100", "250", "9223372036854775807"]


def random_rule(rng: random.Random, depth: int = 3) -> str:
    """A rule of the common shapes (with now and then one that only CEL evaluates)."""
    if depth > 0 and rng.random() < 0.55:
        kind = rng.choice(["&&", "||", "!", "()"])
        if kind == "!":
            return f"!({random_rule(rng, depth - 1)})"
        if kind == "()":
            return f"({random_rule(rng, depth - 1)})"
        return f"{random_rule(rng, depth - 1)} {kind} {random_rule(rng, depth - 1)}"
    path = rng.choice(PATHS)
    leaf = rng.randrange(9)
    if leaf == 0:
        op, literal = rng.choice(["==", "!="]), rng.choice(STRINGS + INTS)
        return f"{path} {op} {literal}" if rng.random() < 0.5 else f"{literal} {op} {path}"
    if leaf == 1:
        op, literal = rng.choice(["<", "<=", ">", ">="]), rng.choice(INTS)
        return f"{path} {op} {literal}" if rng.random() < 0.5 else f"{literal} {op} {path}"
    if leaf == 2:
        items = ", ".join(rng.sample(STRINGS, rng.randint(1, 3)))
        return f"{path} in [{items}]"
    if leaf == 3:
        return f"{rng.choice(STRINGS)} in {path}"
    if leaf == 4:
        method = rng.choice(["startsWith", "endsWith", "contains"])
        return f"{path}.{method}({rng.choice(STRINGS)})"
    if leaf == 5:
        return f"has({path})"
    if leaf == 6:  # shapes the fast path leaves to CEL
        return rng.choice([f"size({path}) > 1", f"{path} == 40u", f"{path} > 1.5", f"!{path}"])
    return f"{path} == {rng.choice(STRINGS)}"


ODD_VALUES: list[Any] = [
    "D1",
    "d1",
    "",
    "vip",
    "250",
    "refund please",
    "de-AT",
    40,
    250,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**63 + 5,  # a CEL uint
    2**70,  # a CEL double
    40.0,
    True,
    None,
    ["vip", "beta"],
    [],
    ["vip", 3],
    ("vip",),
    {"b": "x"},
    {"b": {"c": "x"}},
    {1: "x", "b": "x"},
    {"b": "x", Named(): "y"},
    MappingProxyType({"b": "x"}),
    object(),  # CEL cannot hold it: all the facts become text
]


def random_facts(rng: random.Random) -> dict[str, Any]:
    """Facts shaped as ``facts_for`` builds them, with fields missing or of any type."""
    context = {
        name: rng.choice(ODD_VALUES)
        for name in ("domain", "seats", "plan", "tags", "a")
        if rng.random() < 0.7
    }
    data = data_with(context, tags=rng.choice([None, [], ["vip"], ["beta", "vip"]]))
    if rng.random() < 0.2:
        data["visitor"]["locale"] = rng.choice(ODD_VALUES)
    if rng.random() < 0.2:
        data["conversation"]["turns"] = rng.choice(ODD_VALUES)
    if rng.random() < 0.1:
        del data[rng.choice(["context", "visitor"])]
    return data


RNG = random.Random(20261124)
RANDOM_RULES = [random_rule(RNG) for _ in range(300)]
RANDOM_FACTS = [random_facts(RNG) for _ in range(60)]
RULES = list(dict.fromkeys(ALL_RULES + RANDOM_RULES))
FACTS = [data_with(context) for context in CONTEXTS] + RANDOM_FACTS
BOOK = RuleSet(RULES)
_TRUTH: dict[int, dict[str, object]] = {}


def truth(n: int) -> dict[str, object]:
    """What CEL gives for every rule against ``FACTS[n]`` (worked out once)."""
    if n not in _TRUTH:
        _TRUTH[n] = real_cel(RULES, FACTS[n])
    return _TRUTH[n]


# ---- the fast path against CEL ---------------------------------------------------------------


def test_the_generated_rules_are_valid_and_mostly_fast() -> None:
    for rule in RULES:
        compile_rule(rule)
    fast = sum(compiled(rule).python is not None for rule in RULES)
    assert fast > len(RULES) * 0.6  # the generator exercises the fast path, not only CEL


def test_the_fast_path_answers_what_cel_answers() -> None:
    seen: dict[object, int] = {True: 0, False: 0, ERROR: 0, DEFER: 0}
    wrong = []
    for n, data in enumerate(FACTS):
        facts = Facts(data, BOOK)
        for rule in RULES:
            python = compiled(rule).python
            if python is None:
                continue
            outcome = python(facts)
            seen[outcome] += 1
            if outcome is DEFER:
                continue
            got = truth(n)[rule]
            expected = RAISED if outcome is ERROR else outcome
            if got is not expected:
                wrong.append((n, rule, outcome, got))
    assert wrong == []
    # Every kind of answer was put to the test, errors (missing fields) included.
    assert min(seen.values()) > 100, seen


@pytest.mark.parametrize("on", [True, False], ids=["fast path", "CEL only"])
def test_matches_is_what_cel_gives_either_way(on: bool) -> None:
    before = set_fast_path(on)
    try:
        for n, data in enumerate(FACTS):
            expected = {rule: truth(n)[rule] is True for rule in RULES}
            for rules in (BOOK, None):
                facts = Facts(data, rules)
                assert {rule: facts.matches(rule) for rule in RULES} == expected
    finally:
        set_fast_path(before)


def test_first_match_is_the_same_either_way() -> None:
    rng = random.Random(5)
    lists = [[rng.choice([None, *RULES]) for _ in range(25)] for _ in range(20)]
    for rules in lists:
        first = FirstMatch(rules)
        for n, data in enumerate(FACTS):
            true = [rule is not None and truth(n)[rule] is True for rule in rules]
            expected = next((k for k, it in enumerate(true) if it), None)
            assert first.first(Facts(data, BOOK)) == expected
            before = set_fast_path(False)
            try:
                assert first.first(Facts(data, BOOK)) == expected
            finally:
                set_fast_path(before)


# ---- the switch ------------------------------------------------------------------------------


def test_the_fast_path_is_on_by_default() -> None:
    assert fast_path_enabled()
    facts = Facts(data_with({"domain": "D1"}), BOOK)
    assert facts.matches('context.domain == "D1"')
    assert facts._full is None and facts._partial is None  # nothing went to CEL


@pytest.mark.usefixtures("fast_path_off")
def test_switched_off_every_rule_goes_to_cel() -> None:
    assert not fast_path_enabled()
    rule = 'context.domain == "D1"'
    assert compiled(rule).python is not None  # compiled for the fast path, not used
    facts = Facts(data_with({"domain": "D1"}), BOOK)
    assert facts.matches(rule) and facts._partial not in (None, False)
    first = FirstMatch(['context.domain == "D2"', rule])
    facts = Facts(data_with({"domain": "D1"}), RuleSet([]))
    assert first.first(facts) == 1 and facts._full is not None


def test_set_fast_path_returns_what_it_replaces() -> None:
    assert set_fast_path(False) is True
    try:
        assert set_fast_path(False) is False
    finally:
        assert set_fast_path(True) is False
    assert fast_path_enabled()
