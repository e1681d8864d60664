"""CEL routing, escalation triggers and per-locale texts, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from bot.cel import Facts
from bot.config import Escalation, Settings
from bot.model import Conversation, Page, Role, Turn, Visitor
from bot.rules.escalation import detect, fallback_trigger, is_negative, same_question
from bot.rules.routing import availability, choose_route, facts_for
from bot.texts import Texts

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday

SETTINGS = Settings.model_validate(
    {
        "routes": [
            {
                "id": "finance",
                "name": "Finance",
                "channel": "19:fin@thread.tacv2",
                "domain": "FINANCE_DOMAIN",
                "trigger": 'context.domain == "FINANCE_DOMAIN" || conversation.text.contains("refund")',
            },
            {
                "id": "vip",
                "channel": "19:vip@thread.tacv2",
                "pretrigger": '"vip" in visitor.tags',
                "trigger": 'visitor.account.tier == "gold"',
            },
            {
                "id": "german",
                "channel": "19:de@thread.tacv2",
                "trigger": 'visitor.locale.startsWith("de")',
                "categories": ["deutsch"],
            },
            {"id": "support", "channel": "19:support@thread.tacv2"},
        ],
    }
)


def facts(
    context: dict[str, Any] | None = None,
    text: str = "hello",
    locale: str = "en-GB",
    company: str = "Fabrikam",
) -> Facts:
    conversation = Conversation(
        "c1",
        Visitor(id="v", company=company, locale=locale, page=Page(url="https://x.example/pricing")),
        NOW,
        context=MappingProxyType(context or {}),
    )
    turns = [Turn("c1", NOW - timedelta(minutes=2), Role.VISITOR, "V", text)]
    return facts_for(SETTINGS, conversation, turns, NOW)


@pytest.mark.parametrize(
    ("case", "kwargs", "category", "route", "why"),
    [
        (
            "context domain",
            {"context": {"domain": "FINANCE_DOMAIN"}},
            "",
            "finance",
            "trigger of route finance",
        ),
        (
            "words in the text",
            {"text": "I want a refund"},
            "",
            "finance",
            "trigger of route finance",
        ),
        (
            "pretrigger hides vip",
            {"context": {"account": {"tier": "gold"}}},
            "",
            "support",
            "default route",
        ),
        (
            "vip offered and triggered",
            {"context": {"tags": ["vip"], "account": {"tier": "gold"}}},
            "",
            "vip",
            "trigger of route vip",
        ),
        (
            "first match wins",
            {"context": {"domain": "FINANCE_DOMAIN"}, "locale": "de-DE"},
            "",
            "finance",
            "trigger of route finance",
        ),
        ("locale", {"locale": "de-AT"}, "", "german", "trigger of route german"),
        (
            "category beats triggers",
            {"context": {"domain": "FINANCE_DOMAIN"}},
            "deutsch",
            "german",
            "category",
        ),
        ("category of a route not offered", {}, "vip", "support", "default route"),
        ("missing field is no match", {"context": {"other": 1}}, "", "support", "default route"),
        ("default catches the rest", {}, "", "support", "default route"),
    ],
)
def test_choose_route(
    case: str, kwargs: dict[str, Any], category: str, route: str, why: str
) -> None:
    choice = choose_route(SETTINGS.routes, facts(**kwargs), category)
    assert choice.route is not None and choice.route.id == route
    assert choice.why.startswith(why)


def test_no_route_when_the_default_is_not_offered() -> None:
    settings = Settings.model_validate(
        {
            "routes": [
                {
                    "id": "only",
                    "channel": "19:a@thread.tacv2",
                    "pretrigger": 'visitor.company == "Contoso"',
                }
            ]
        }
    )
    assert choose_route(settings.routes, facts()).route is None


def test_rule_facts_shape() -> None:
    data = facts({"domain": "X", "tags": ["a"]}, text="Is it broken?").data
    assert data["conversation"]["turns"] == 1 and data["conversation"]["duration"] == 120
    assert data["conversation"]["intents"] == ["question"]
    assert data["visitor"]["page"]["url"] == "https://x.example/pricing"
    assert data["visitor"]["tags"] == ["a"] and data["context"]["domain"] == "X"


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ("context.domain ==", "CEL: Failed to parse expression"),
        (
            "customer.tier == 1",
            "CEL: unknown variable customer (use visitor, conversation, context, now)",
        ),
        ("  ", "the rule is empty"),
    ],
)
def test_bad_rules_are_config_errors(rule: str, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate(
            {
                "routes": [
                    {"id": "a", "channel": "19:a@thread.tacv2", "trigger": rule},
                    {"id": "b", "channel": "19:b@thread.tacv2"},
                ]
            }
        )
    assert error in str(caught.value)


def test_every_route_with_a_trigger_means_no_default() -> None:
    with pytest.raises(ValidationError, match="no default route"):
        Settings.model_validate(
            {"routes": [{"id": "a", "channel": "19:a@thread.tacv2", "trigger": "true"}]}
        )


HOURS = {"timezone": "Europe/Berlin", "weekly": {"mon": ["09:00-17:00"]}}  # closed on Tuesday NOW


@pytest.mark.parametrize(
    ("behaviour", "route", "outcome"),
    [
        ("continue", None, "continue"),
        ("message", None, "message"),
        ("fallback_route", "open", "fallback_route"),
    ],
)
def test_out_of_hours(behaviour: str, route: str | None, outcome: str) -> None:
    closed = {
        "id": "closed",
        "channel": "19:c@thread.tacv2",
        "hours": HOURS,
        "out_of_hours": behaviour,
        "trigger": "true",
    }
    if behaviour == "fallback_route":
        closed["fallback_route"] = "open"
    settings = Settings.model_validate(
        {"routes": [closed, {"id": "open", "channel": "19:o@thread.tacv2"}]}
    )
    result = availability(settings.routes[0], settings.routes, NOW)
    assert (result.route.id if result.route else None) == route
    assert result.behaviour == outcome
    assert (
        result.back == datetime(2026, 11, 30, 9, 0, tzinfo=result.back.tzinfo)
        if result.back
        else True
    )


@pytest.mark.parametrize(
    ("route", "error"),
    [
        ({"out_of_hours": "fallback_route"}, "needs `fallback_route: <route id>`"),
        ({"fallback_route": "nowhere"}, "fallback_route 'nowhere' is not a route id"),
        (
            {"out_of_hours": "sometimes"},
            "Input should be 'continue', 'message' or 'fallback_route'",
        ),
    ],
)
def test_bad_out_of_hours(route: dict[str, str], error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"routes": [{"id": "a", "channel": "19:a@thread.tacv2", **route}]})
    assert error in str(caught.value)


def turns(*lines: tuple[Role, str] | str, fallback: bool = False) -> list[Turn]:
    out = []
    for n, line in enumerate(lines):
        role, text = line if isinstance(line, tuple) else (Role.VISITOR, line)
        out.append(Turn("c", NOW + timedelta(seconds=n), role, role.value, text, fallback))
    return out


ESC = Escalation()


@pytest.mark.parametrize(
    ("case", "lines", "kind"),
    [
        ("explicit", ["hi", "can I talk to a human?"], "phrase"),
        ("two upset messages", ["this is useless", "still not working, ridiculous"], "frustration"),
        ("one upset message", ["hi", "this is useless"], None),
        (
            "same statement thrice",
            ["I need my invoices", "I need my invoices", "I need my invoices"],
            None,
        ),  # only repeated questions count
        (
            "same question thrice, asked",
            [
                "how do I export invoices?",
                "how can I export invoices?",
                "How do I export invoices?",
            ],
            None,
        ),
        (
            "same question three times",
            [
                "how do I export invoices?",
                "How do I export invoices?",
                "how do I export invoices??",
            ],
            "frustration",
        ),
        ("ordinary", ["what does it cost?"], None),
    ],
)
def test_detect(case: str, lines: list[str], kind: str | None) -> None:
    trigger = detect(ESC, lines[-1], turns(*lines), facts())
    assert (trigger.kind if trigger else None) == kind


def test_triggers_switch_off() -> None:
    off = Escalation.model_validate(
        {"phrases": {"enabled": False}, "frustration": {"enabled": False}}
    )
    assert (
        detect(off, "human please", turns("this is useless", "human please, useless"), facts())
        is None
    )
    assert fallback_trigger(off, 10) is None


def test_extra_phrases_and_words() -> None:
    esc = Escalation.model_validate(
        {
            "phrases": {"extra": ["escalate"]},
            "frustration": {"extra_negative_words": ["meh"], "negative_in_row": 1},
        }
    )
    assert detect(esc, "please escalate", turns("please escalate"), facts()).kind == "phrase"
    assert detect(esc, "meh", turns("meh"), facts()).kind == "frustration"


def test_context_rules() -> None:
    esc = Escalation.model_validate(
        {"rules": [{"name": "big account", "when": "context.seats > 100"}]}
    )
    trigger = detect(esc, "hello", turns("hello"), facts({"seats": 250}))
    assert trigger is not None and trigger.reason == "rule \u201cbig account\u201d matched"
    assert detect(esc, "hello", turns("hello"), facts({"seats": 5})) is None


@pytest.mark.parametrize(("so_far", "fires"), [(0, False), (1, False), (2, True), (5, True)])
def test_fallbacks_in_a_row(so_far: int, fires: bool) -> None:
    assert (fallback_trigger(ESC, so_far) is not None) is fires


@pytest.mark.parametrize(
    ("text", "negative"),
    [
        ("This is USELESS!", True),
        ("das ist nutzlos", True),
        ("useful, thanks", False),
        ("not bad", False),
    ],
)
def test_is_negative(text: str, negative: bool) -> None:
    assert is_negative(text) is negative


def test_same_question() -> None:
    assert same_question("How do I export invoices?", "how do i export my invoices")
    assert not same_question("How do I export invoices?", "How do I delete my account?")


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("de-AT", "Alex ist da."),
        ("de", "Alex ist da."),
        ("fr-CA", "Alex est l\u00e0 (CA)."),
        ("fr-FR", "Alex est l\u00e0."),
        ("es", "Alex has joined."),
        ("", "Alex has joined."),
    ],
)
def test_texts_by_locale(locale: str, expected: str) -> None:
    texts = Texts.model_validate(
        {
            "joined": "{specialist} has joined.",
            "locales": {
                "de": {"joined": "{specialist} ist da."},
                "fr": {"joined": "{specialist} est l\u00e0."},
                "fr_CA": {"joined": "{specialist} est l\u00e0 (CA)."},
            },
        }
    )
    assert texts.render("joined", {"specialist": "Alex"}, locale) == expected


def test_untranslated_keys_fall_back_to_the_default() -> None:
    texts = Texts.model_validate({"locales": {"de": {"joined": "da"}}})
    assert texts.render("hello", {}, "de") == "Hello! How can I help you today?"
