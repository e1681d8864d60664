"""A rule reaches the CEL extension only when it is short, shallow, known and cheap."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.cel import MAX_RULE_CHARS, compile_rule
from bot.config import Settings

LONG_LIST = "context.company in [" + ", ".join(f'"company {n}"' for n in range(150)) + "]"

REFUSED = [
    ("x" * (MAX_RULE_CHARS + 1), "CEL: the rule is 4,097 characters long, more than the 4,096"),
    ("+".join(["1"] * 20_000) + " > 0", "CEL: the rule is 40,003 characters long"),
    ("+".join(["1"] * 40) + " > 0", "CEL: the rule nests more than 32 levels deep"),
    ("context" + ".a" * 40 + " == 1", "CEL: the rule nests more than 32 levels deep"),
    ("(" * 40 + "true" + ")" * 40, "CEL: the rule nests more than 32 levels deep"),
    ("context.domain ==", "CEL: Failed to parse expression"),  # the extension's own words
    ("context.domain = 'x'", "CEL: Failed to parse expression"),
    ("x.map(.y, 1)", "CEL: syntax error at 1:7: map(): the first argument must be a name"),
    (
        "customer.tier == 1",
        "CEL: unknown variable customer (use visitor, conversation, context, now)",
    ),
    (
        "context.a.map(x, x + x + x + x).size() > 0",
        "CEL: too expensive to evaluate: `context.a.map(x, x + x + x + x)` may take up to",
    ),
    ("  ", "the rule is empty"),
    # The extension compiles these, then fails on every message: the rule would never match.
    (
        'visitor.name.lowerAscii() == "jane"',
        "CEL: unknown function lowerAscii() (the CEL runtime has:",
    ),
    ('now.getHours("Europe/Berlin") >= 9', "CEL: getHours() takes 0 argument(s), not 1"),
    ('matches(visitor.email, "@contoso")', "CEL: matches() is called on a value: x.matches(...)"),
    ("context.n.int() > 1", "CEL: int() is called as a function: int(x)"),
    # Known functions, but arguments the runtime has no overload for, or a broken regex.
    ("timestamp(1700000000) < now", "CEL: `timestamp(1700000000)` cannot work: the CEL runtime"),
    ("int(now) > 0", "CEL: `int(now)` cannot work: the CEL runtime has no int()"),
    ('visitor.name.matches("[a-")', 'CEL: `visitor.name.matches("[a-")` cannot work:'),
    ("conversation.turns > 1/0", "CEL: `1/0` cannot work:"),
    ('timestamp("2020-13-45T00:00:00Z") < now', 'CEL: `timestamp("2020-13-45T00:00:00Z")`'),
]


@pytest.mark.parametrize(("rule", "message"), REFUSED)
def test_refused_with_the_reason(rule: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        compile_rule(rule)
    assert str(caught.value).startswith(message)


SHALLOW = [
    LONG_LIST,
    " || ".join(f'context.domain == "D{n}"' for n in range(100)),  # balanced by CEL
    "+".join(["1"] * 30) + " > 0",
    "context" + ".a" * 30 + " == 1",
]


@pytest.mark.parametrize("rule", SHALLOW)
def test_long_but_shallow_rules_pass(rule: str) -> None:
    assert len(rule) <= MAX_RULE_CHARS
    assert compile_rule(rule) == rule


def test_problems_reach_check_with_the_key_path() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate(
            {
                "routes": [{"id": "a", "channel": "19:a@thread.tacv2"}],
                "escalation": {"rules": [{"name": "r", "when": "+".join(["1"] * 40) + " > 0"}]},
            }
        )
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [("escalation", "rules", 0, "when")]
    assert "nests more than 32 levels deep" in errors[0]["msg"]
