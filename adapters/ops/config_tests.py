"""Config tests: ops keep, next to the config, what it must do for sample visitors, and
``python app.py check`` runs them (``config/handoff.tests.yaml`` beside ``config/handoff.yaml``;
for ``FILE.yaml``, ``FILE.tests.yaml``). A rule edit that sends finance visitors to the wrong
team then fails the ops repository's CI, with the test's ``file:line``.

    tests:
      - name: a finance visitor who asks for a person reaches billing in hours
        at: 2026-12-07T10:00:00+01:00          # with its UTC offset
        visitor: {name: Jane, company: Fabrikam, locale: de-DE, timezone: Europe/Berlin}
        context: {domain: FINANCE_DOMAIN}      # what the page or an upstream agent sends
        messages: ["I need a refund", "can I talk to a person?"]
        category: ""                           # as a widget's handoff.request names one
        expect:
          escalation: true                     # the last message hands off (false: the bot answers)
          reason: person                       # ...and why, in part
          route: billing                       # the route chosen ("" or null: none is offered)
          in_hours: true                       # a thread opens now (false: out of hours)
          handoff_route: billing               # where it opens (another, after a fallback)
          texts:                               # what the visitor is told (key: words in it)
            queued: Billing

Only what ``expect`` names is checked. Each test runs the rules exactly as the service does
(``adapters.ops.explain.decide``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from adapters.ops.config_file import line_of, load_model
from adapters.ops.explain import Decision, decide
from bot.config import ConfigModel, Settings
from bot.texts import Texts

TEXT_KEYS = frozenset(Texts.model_fields) - {"locales"}


class Expect(ConfigModel):
    """What a test expects; what is left out is not checked."""

    escalation: bool | None = None
    reason: str | None = None
    route: str | None = Field(default=None)
    in_hours: bool | None = None
    handoff_route: str | None = None
    texts: dict[str, str] = Field(default_factory=dict)


class Case(ConfigModel):
    """One sample visitor, at one time."""

    name: str = Field(min_length=1)
    at: datetime
    visitor: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    messages: list[str] = Field(default_factory=list)
    category: str = ""
    expect: Expect

    @field_validator("at")
    @classmethod
    def _has_offset(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs its UTC offset, e.g. 2026-12-07T10:00:00+01:00")
        return value


class ConfigTests(ConfigModel):
    """The file: a list of tests."""

    tests: list[Case] = Field(default_factory=list)


def tests_file(config: Path) -> Path:
    """Where the tests of ``config`` are kept: ``handoff.yaml`` -> ``handoff.tests.yaml``."""
    return config.with_name(f"{config.stem}.tests{config.suffix or '.yaml'}")


def failures(case: Case, decision: Decision, settings: Settings) -> list[str]:
    """What the decision got wrong, one line each (none: the test passes)."""
    want, found = case.expect, []
    escalated = decision.trigger is not None
    if want.escalation is not None and want.escalation != escalated:
        got = f"it does ({decision.trigger.reason})" if decision.trigger else "the bot answers"
        verb = "to hand off" if want.escalation else "the bot to answer"
        found.append(f"expected {verb} on \u201c{decision.last_message}\u201d; {got}")
    if want.reason is not None:
        reason = decision.trigger.reason if decision.trigger else ""
        if want.reason.casefold() not in reason.casefold():
            found.append(
                f"expected a reason with \u201c{want.reason}\u201d; got \u201c{reason}\u201d"
            )
    route = decision.choice.route.id if decision.choice.route else ""
    if want.route is not None and want.route != route:
        found.append(
            f"expected route {want.route or '(none)'}; got {route or '(none)'}"
            f" ({decision.choice.why})"
        )
    opens = decision.open_now.route if decision.open_now else None
    if want.in_hours is not None and want.in_hours != (opens is not None):
        closed = decision.open_now.closed_route if decision.open_now else None
        got = (
            (f"{closed.id} is closed" if closed else "no route is offered")
            if opens is None
            else f"a thread opens in route {opens.id}"
        )
        found.append(f"expected {'in' if want.in_hours else 'out of'} hours; {got}")
    if want.handoff_route is not None and want.handoff_route != (opens.id if opens else ""):
        found.append(
            f"expected the thread in route {want.handoff_route or '(none)'};"
            f" got {opens.id if opens else '(none: no thread opens)'}"
        )
    for key, words in want.texts.items():
        if key not in TEXT_KEYS:
            found.append(f"texts.{key}: no such text")
        elif key not in decision.said:
            said = ", ".join(decision.said) or "nothing"
            found.append(f"expected the visitor to be told {key}; they are told {said}")
        elif words.casefold() not in decision.said[key].casefold():
            said = decision.said[key]
            found.append(f"expected {key} to say \u201c{words}\u201d; it says \u201c{said}\u201d")
    return found


def run(settings: Settings, path: Path) -> tuple[int, list[str]]:
    """Run the tests in ``path`` against ``settings``: (how many ran, ``file:line: ...`` for
    each failure). A file that does not parse is one failure per problem."""
    from bot.errors import ConfigError

    try:
        suite, root = load_model(path, ConfigTests)
    except ConfigError as exc:
        return 0, list(exc.problems)
    problems = []
    for index, case in enumerate(suite.tests):
        data: Mapping[str, Any] = {
            "visitor": case.visitor,
            "context": case.context,
            "messages": case.messages,
        }
        decision = decide(settings, data, case.at, case.category)
        line = line_of(root, ("tests", index))
        for failure in failures(case, decision, settings):
            problems.append(f"{path}:{line}: test \u201c{case.name}\u201d: {failure}")
    return len(suite.tests), problems
