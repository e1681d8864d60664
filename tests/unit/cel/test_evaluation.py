"""Rule evaluation shortcuts give exactly what plain CEL gives, and caches follow the config.

The reference is the straightforward evaluation: all facts handed to CEL (as text when CEL
cannot hold some value), every rule through CEL, errors as no match.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import pytest

from bot.cel import DEFER, ERROR, Facts, FirstMatch, RuleSet, compiled
from bot.cel.check import reads
from bot.cel.fast_path import Shape, shape
from bot.cel.lexer import CelSyntaxError
from bot.cel.parser import CelTooDeepError, parse
from bot.config import Escalation, Route, Settings
from bot.model import Conversation, Page, Role, Turn, Visitor
from bot.rules.escalation import detect
from bot.rules.routing import RouteChoice, choose_route, facts_for, rule_set
from tests.unit.cel.tables import (
    ALL_RULES,
    CEL_ONLY,
    COMPOUND,
    CONTEXTS,
    LEAVES,
    NOW,
    data_with,
    reference,
)


def shape_of(rule: str) -> Shape | None:
    """The rule's common shape (None: left to CEL, also when the checks refuse its text)."""
    try:
        return shape(parse(rule), rule)
    except (CelSyntaxError, CelTooDeepError):
        return None


BOOK = RuleSet(ALL_RULES)


@pytest.mark.parametrize("context", CONTEXTS, ids=range(len(CONTEXTS)))
def test_every_rule_gives_what_cel_gives(context: dict[str, Any]) -> None:
    data = data_with(context)
    expected = {rule: reference(rule, data) for rule in ALL_RULES}
    # With the configuration's rule set (CEL gets only the facts the rules read), without
    # one, and with one that covers none of the rules (CEL gets all the facts).
    for rules in (BOOK, None, RuleSet([])):
        facts = Facts(data, rules)
        got = {rule: facts.matches(rule) for rule in ALL_RULES}
        assert got == expected
        assert {rule: facts.matches(rule) for rule in ALL_RULES} == expected  # remembered
    # Each rule alone (CEL gets the least).
    assert {rule: Facts(data, RuleSet([rule])).matches(rule) for rule in ALL_RULES} == expected


def test_facts_without_a_variable() -> None:
    data = data_with({"domain": "D1"})
    del data["context"]
    for rules in (BOOK, None):
        facts = Facts(data, rules)
        assert {rule: facts.matches(rule) for rule in ALL_RULES} == {
            rule: reference(rule, data) for rule in ALL_RULES
        }


def test_the_common_shapes_are_evaluated_in_python() -> None:
    for rule in LEAVES + COMPOUND:
        assert compiled(rule).python is not None, rule
    for rule in CEL_ONLY:
        assert compiled(rule).python is None, rule
    # CEL's "!" binds tighter than "==": left to CEL, as are escapes and other literals.
    unsupported = (
        '!context.x == "a"',
        'context.domain == "D\\u0031"',
        'context.x == r"a"',
        '!visitor.locale.startsWith("de") == true',
        "has(context)",
    )
    for rule in unsupported:
        assert shape_of(rule) is None, rule


def test_python_answers_without_cel_for_plain_facts() -> None:
    facts = Facts(data_with({"domain": "D1", "seats": 250}), BOOK)
    rule = compiled('context.domain == "D1" && context.seats > 100')
    assert rule.python is not None and rule.python(facts) is True
    assert compiled('context.missing == "x"').python(facts) is ERROR  # type: ignore[misc]
    assert compiled('context.domain.b == "x"').python(facts) is DEFER  # type: ignore[misc]
    for rule_text in ('context.domain == "D1"', 'context.seats > 100 || "x" in visitor.tags'):
        assert facts.matches(rule_text)
    assert facts._full is None and facts._partial is None  # nothing went to CEL


def test_cel_gets_only_what_the_rules_read() -> None:
    book = RuleSet(["size(visitor.company) > 3", "has(context.domain)"])
    assert dict(book.needs) == {"visitor": {"company"}, "context": {"domain"}}
    facts = Facts(data_with({"domain": "D1", "seats": 2}), book)
    assert facts.matches("size(visitor.company) > 3") and facts.matches("has(context.domain)")
    assert facts._partial is not False and facts._full is None
    # A rule the set does not know (another field) gets all the facts.
    assert facts.matches("size(context) == 2") and facts._full is not None


@pytest.mark.parametrize(
    ("rule", "needs"),
    [
        ('visitor.company != ""', {"visitor": {"company"}}),
        ("visitor.page.url.size() > 0", {"visitor": {"page"}}),
        ('context.a == "x" && context . b == "y"', {"context": {"a", "b"}}),
        ("size(visitor) > 0", {"visitor": None}),
        ("visitor.size() > 0", {"visitor": None}),
        ('visitor["company"] == "x"', {"visitor": None}),
        ('"company" in visitor', {"visitor": None}),
        ("visitor.all(k, k != 'x')", {"visitor": None}),
        # Read from the checked tree: a name inside a string, a field or a macro's own
        # variable is not a variable the rule reads.
        ('context.note == "visitor.email"', {"context": {"note"}}),
        ('context.visitor == "x"', {"context": {"visitor"}}),
        ('context.tags.exists(visitor, visitor == "x")', {"context": {"tags"}}),
        ("context.tags.exists(t, t == visitor.email)", {"context": {"tags"}, "visitor": {"email"}}),
        ("now.getHours() > 9", {"now": None}),
        ("conversation.turns > 1 && true", {"conversation": {"turns"}}),
    ],
)
def test_what_a_rule_reads(rule: str, needs: dict[str, Any]) -> None:
    assert dict(reads(parse(rule))) == needs


def test_facts_data_is_what_cel_sees() -> None:
    odd = object()
    assert Facts(data_with({"odd": odd, "n": 2**70})).data["context"] == {
        "odd": str(odd),
        "n": str(2**70),
    }
    plain = data_with({"seats": 5, "big": 2**70})
    assert Facts(plain).data == plain


@pytest.mark.parametrize("context", CONTEXTS, ids=range(len(CONTEXTS)))
def test_first_match_is_the_first_true_rule(context: dict[str, Any]) -> None:
    rng = random.Random(3)
    rules: list[str | None] = [
        'context.domain == "D2"',
        None,
        "size(context) > 5",
        'context.domain in ["D1", "D9"]',
        'context.a.b == "x"',
        '"D1" == context.domain',
        'context.plan == "P1" && context.seats > 100',
        'context.domain == "d1"',
        None,
        "context.seats > 100",
        'context.domain == "D1"',
    ]
    rules += [rng.choice(ALL_RULES) for _ in range(30)]
    first = FirstMatch(rules)
    data = data_with(context)
    truth = [rule is not None and reference(rule, data) for rule in rules]
    for allowed in [None, *([rng.random() < 0.6 for _ in rules] for _ in range(5))]:
        expected = next(
            (n for n, true in enumerate(truth) if true and (allowed is None or allowed[n])),
            None,
        )
        assert first.first(Facts(data, BOOK), allowed) == expected


def naive_choice(routes: list[Route], true: Callable[[str], bool], category: str) -> RouteChoice:
    """choose_route as it was: every pretrigger, then triggers in order, through CEL."""
    offered = [r for r in routes if r.pretrigger is None or true(r.pretrigger)]
    ids = tuple(r.id for r in offered)
    wanted = category.strip().casefold()
    if wanted:
        for route in offered:
            if route.id == wanted or wanted in (c.casefold() for c in route.categories):
                return RouteChoice(route, f"category \u201c{category}\u201d", ids)
    for route in offered:
        if route.trigger is not None and true(route.trigger):
            return RouteChoice(route, f"trigger of route {route.id}: {route.trigger}", ids)
    default = next((r for r in offered if r.trigger is None), None)
    if default is None:
        return RouteChoice(None, "no route is offered to this visitor", ids)
    return RouteChoice(default, f"default route {default.id}", ids)


def random_settings(rng: random.Random, count: int) -> Settings:
    routes: list[dict[str, Any]] = []
    for n in range(count):
        route: dict[str, Any] = {"id": f"r{n}", "channel": f"19:r{n}@thread.tacv2"}
        if rng.random() < 0.5:
            route["pretrigger"] = rng.choice(ALL_RULES)
        if rng.random() < 0.8:
            route["trigger"] = rng.choice(ALL_RULES)
        if rng.random() < 0.2:
            route["categories"] = ["billing"]
        routes.append(route)
    routes.append({"id": "last", "channel": "19:last@thread.tacv2", "pretrigger": "false"})
    if rng.random() < 0.5:
        routes.append({"id": "default", "channel": "19:default@thread.tacv2"})
    return Settings.model_validate({"routes": routes})


def test_choose_route_chooses_as_before() -> None:
    rng = random.Random(11)
    datas = [data_with(context, tags) for context in CONTEXTS for tags in ([], ["vip"])]
    truth: dict[tuple[str, int], bool] = {}
    for _ in range(25):
        settings = random_settings(rng, rng.randint(1, 25))
        for n, data in enumerate(datas):

            def true(rule: str, n: int = n, data: dict[str, Any] = data) -> bool:
                if (rule, n) not in truth:
                    truth[rule, n] = reference(rule, data)
                return truth[rule, n]

            for category in ("", "billing", "r0"):
                facts = Facts(data, rule_set(settings))
                expected = naive_choice(settings.routes, true, category)
                assert choose_route(settings.routes, facts, category) == expected


def test_detect_fires_the_first_matching_rule() -> None:
    rules = [
        {"name": "a", "when": 'context.domain == "D2"'},
        {"name": "b", "when": "size(context) > 2"},
        {"name": "c", "when": 'context.domain in ["D1"]'},
        {"name": "d", "when": 'context.plan == "P1" || context.seats > 100'},
    ]
    esc = Escalation.model_validate({"rules": rules, "frustration": {"enabled": False}})
    turns = [Turn("c", NOW, Role.VISITOR, "v", "hello")]
    for context in CONTEXTS:
        data = data_with(context)
        expected = next((r["name"] for r in rules if reference(r["when"], data)), None)
        trigger = detect(esc, "hello", turns, Facts(data, BOOK))
        assert (trigger.reason if trigger else None) == (
            f"rule \u201c{expected}\u201d matched" if expected else None
        )


# ---- caches follow the configuration --------------------------------------------------------


def conversation(context: dict[str, Any]) -> Conversation:
    visitor = Visitor(id="v", company="Fabrikam", page=Page(url="https://x.example/"))
    return Conversation("c", visitor, NOW, context=MappingProxyType(context))


def settings_with(triggers: list[str], rules: list[str] | None = None) -> Settings:
    routes: list[dict[str, Any]] = [
        {"id": f"r{n}", "channel": f"19:r{n}@thread.tacv2", "trigger": trigger}
        for n, trigger in enumerate(triggers)
    ]
    routes.append({"id": "default", "channel": "19:d@thread.tacv2"})
    escalation = {"rules": [{"name": f"e{n}", "when": w} for n, w in enumerate(rules or [])]}
    return Settings.model_validate({"routes": routes, "escalation": escalation})


def test_rules_are_compiled_once() -> None:
    one = settings_with(['context.domain == "D1"'])
    two = settings_with(['context.domain == "D1"'])
    assert compiled(one.routes[0].trigger or "") is compiled(two.routes[0].trigger or "")
    assert compiled('  context.domain == "D1"  ') is compiled('context.domain == "D1"')


def test_a_changed_configuration_is_compiled_anew() -> None:
    turns = [Turn("c", NOW, Role.VISITOR, "v", "hello")]
    facts_of = lambda s: facts_for(s, conversation({"domain": "D1"}), turns, NOW)  # noqa: E731
    before = settings_with(['context.domain == "D1"', 'context.domain == "D2"'])
    assert choose_route(before.routes, facts_of(before)).route.id == "r0"  # type: ignore[union-attr]
    assert rule_set(before) is rule_set(before)
    after = settings_with(['context.domain == "D2"', "size(context.domain) == 2"])
    assert choose_route(after.routes, facts_of(after)).route.id == "r1"  # type: ignore[union-attr]
    assert rule_set(after) is not rule_set(before)
    assert dict(rule_set(after).needs) == {"context": {"domain"}}

    # The same list changed in place (not done by the bot, but not wrong either).
    routes = list(before.routes)
    assert choose_route(routes, facts_of(before)).route.id == "r0"  # type: ignore[union-attr]
    routes[0] = after.routes[0]  # context.domain == "D2"
    assert choose_route(routes, facts_of(before)).route.id == "default"  # type: ignore[union-attr]
    routes.insert(1, before.routes[0])
    assert choose_route(routes, facts_of(before)).route.id == "r0"  # type: ignore[union-attr]

    esc_before = settings_with([], ['context.domain == "D1"']).escalation
    esc_after = settings_with([], ['context.domain == "D2"']).escalation
    facts = facts_of(before)
    assert detect(esc_before, "hello", turns, facts) is not None
    assert detect(esc_after, "hello", turns, facts) is None


def test_facts_for_still_builds_the_documented_facts() -> None:
    settings = settings_with(['context.domain == "D1"'])
    turns = [
        Turn("c", NOW - timedelta(seconds=30), Role.VISITOR, "v", "hi"),
        Turn("c", NOW, Role.VISITOR, "v", "can I talk to a human?"),
    ]
    facts = facts_for(settings, conversation({"domain": "D1", "tags": ["a"]}), turns, NOW)
    data = facts.data
    assert data["conversation"] == {
        "turns": 2,
        "messages": 2,
        "duration": 30,
        "text": "can I talk to a human?",
        "intents": ["handoff_request", "question"],
        "fallbacks": 0,
    }
    assert data["visitor"]["tags"] == ["a"] and data["context"]["domain"] == "D1"
    assert data["now"] == NOW
