"""The bot's Adaptive Cards, checked by Microsoft's own parser (npm ``adaptivecards`` 3.0.6).

Every card the bot can post is built from the domain's views (``bot.views``) by the renderers in
``adapters.teams.cards`` and fed, in one
Node process, to ``tests/e2e/node/validate-cards.mjs``, which reports every parse event and
``validateProperties()`` failure the official library raises. A canary batch of broken cards
proves the check can fail. Without Node or ``npm ci`` in ``tests/e2e/node`` the tests skip,
except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.ops.report import Report, build
from adapters.ops.weekly import report_card
from adapters.teams.cards import Card, summary_card, thread_card, transcript_card
from bot.config import Route
from bot.model import (
    Conversation,
    Handoff,
    HandoffState,
    Page,
    Party,
    Person,
    Role,
    Turn,
    Visitor,
    merge_context,
)
from bot.summary import end_summary
from bot.views import ThreadView, summary_view, thread_view, transcript_view

NODE_DIR = Path(__file__).resolve().parents[2] / "e2e" / "node"
SCRIPT = "validate-cards.mjs"
IN_CI = os.environ.get("CI") == "true"

T0 = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
ROUTE = Route(
    id="support",
    name="Customer support",
    description="Orders, billing and your account",
    channel="19:support@thread.tacv2",
)
SPECIALIST = Person(id="29:1-specialist", name="Sam Specialist")

LINK = "[click](http://evil.example)"
SCRIPT_TAG = "<script>alert(1)</script>"
BOLD = "**bold**"
HOSTILE = (LINK, SCRIPT_TAG, BOLD)


# --- building the cards ---------------------------------------------------------------------


def full_visitor() -> Visitor:
    return Visitor(
        id="visitor-1",
        name="Ada Lovelace",
        email="ada@example.com",
        company="Analytical Engines Ltd",
        page=Page(
            url="https://example.com/pricing?plan=pro",
            title="Pricing",
            referrer="https://www.search.example/?q=engines",
        ),
        locale="en-GB",
        timezone="Europe/London",
        user_agent="Mozilla/5.0 (X11; Linux x86_64)",
        extra={"plan": "Pro", "seats": 12, "trial": True, "score": 4.5, "nested": {"x": 1}},
    )


def hostile_visitor() -> Visitor:
    return Visitor(
        id="visitor-evil",
        name=f"{BOLD} Mallory",
        email=f"{LINK}@example.com",
        company=SCRIPT_TAG,
        page=Page(url=f"https://example.com/{LINK}", title=f"{BOLD} {SCRIPT_TAG}", referrer=LINK),
        locale=BOLD,
        timezone=SCRIPT_TAG,
        extra={"note": f"{LINK} {SCRIPT_TAG} {BOLD}", "account_id": LINK},
    )


def handoff(state: HandoffState, *, handoff_id: str = "h-1") -> Handoff:
    base = Handoff(
        id=handoff_id,
        conversation_id="c-1",
        route_id=ROUTE.id,
        state=state,
        created_at=T0,
        reason="the visitor asked for a person",
        thread_id="19:support@thread.tacv2;messageid=1",
        root_activity_id="1",
    )
    joined = replace(base, specialist=SPECIALIST, joined_at=T0 + timedelta(minutes=2))
    match state:
        case HandoffState.QUEUED:
            return base
        case HandoffState.JOINED:
            return joined
        case HandoffState.ENDED:
            return replace(
                joined,
                state=state,
                ended_at=T0 + timedelta(minutes=27, seconds=5),
                ended_by=Party.SPECIALIST,
                ended_by_name=SPECIALIST.name,
            )
        case HandoffState.FAILED:
            return replace(base, failure="Teams rejected the post (403)")
        case HandoffState.EXPIRED:
            return replace(
                base, timed_out_at=T0 + timedelta(minutes=10), ended_at=T0 + timedelta(minutes=10)
            )
    raise AssertionError(state)


def turns(visitor: Visitor, *texts: tuple[Role, str]) -> list[Turn]:
    return [
        Turn("c-1", T0 - timedelta(minutes=5) + timedelta(minutes=i), role, visitor.display_name, t)
        for i, (role, t) in enumerate(texts)
    ]


def transcript(visitor: Visitor, question: str) -> list[Turn]:
    """Before the handoff: one question the bot could not answer."""
    return turns(
        visitor,
        (Role.VISITOR, "Hello"),
        (Role.BOT, "Hi! How can I help?"),
        (Role.VISITOR, question),
        (Role.BOT, "Sorry, I don't know that one."),
    )


def view(state: HandoffState, visitor: Visitor, question: str, notice: str = "") -> ThreadView:
    history = [*transcript(visitor, question)]
    history[-1] = replace(history[-1], fallback=True)
    return thread_view(
        handoff=handoff(state), route=ROUTE, visitor=visitor, turns=history, notice=notice
    )


def summary_for(visitor: Visitor, *, open_question: bool, question: str) -> Card:
    ended = handoff(HandoffState.ENDED)
    during = [
        Turn("c-1", T0 + timedelta(minutes=3), Role.VISITOR, visitor.display_name, question),
        Turn("c-1", T0 + timedelta(minutes=4), Role.SPECIALIST, SPECIALIST.name, "Yes, it can."),
    ]
    if open_question:
        during.append(
            Turn(
                "c-1",
                T0 + timedelta(minutes=5),
                Role.VISITOR,
                visitor.display_name,
                "And can you send me an invoice?",
            )
        )
    summary = end_summary(ended, during, visitor.display_name, T0 + timedelta(hours=1))
    assert bool(summary.still_open) is open_question
    return summary_card(summary_view(summary))


def bot_cards() -> dict[str, Card]:
    """Every card shape the bot posts, by name."""
    question = "Can the engine compute Bernoulli numbers?"
    evil_question = f"Can you open {LINK} {SCRIPT_TAG} {BOLD}?"
    cards: dict[str, Card] = {}
    for state in HandoffState:
        cards[f"thread-{state.value}"] = thread_card(view(state, full_visitor(), question))
    cards["thread-queued-notice"] = thread_card(
        view(
            HandoffState.QUEUED,
            full_visitor(),
            question,
            notice="No specialist is available right now; we will reply by email.",
        )
    )
    bare = Visitor(id="visitor-bare")
    cards["thread-bare-visitor"] = thread_card(
        thread_view(handoff=handoff(HandoffState.QUEUED), route=ROUTE, visitor=bare, turns=[])
    )
    cards["summary-open-questions"] = summary_for(
        full_visitor(), open_question=True, question=question
    )
    cards["summary-no-open-questions"] = summary_for(
        full_visitor(), open_question=False, question=question
    )
    cards["transcript"] = transcript_card(
        transcript_view(
            conversation=Conversation("c-1", full_visitor(), T0),
            turns=[
                Turn("c-1", T0, Role.VISITOR, "Ada Lovelace", question),
                Turn("c-1", T0, Role.BOT, "Ava", "I am not sure.", fallback=True),
                Turn("c-1", T0, Role.SPECIALIST, SPECIALIST.name, "Here is how."),
                Turn("c-1", T0, Role.NOTE, SPECIALIST.name, "note: refund approved"),
            ],
        )
    )
    cards["report-weekly"] = report_card(weekly_report(), {"support": "Customer support"})
    cards["report-empty-week"] = report_card(build([], T0 - timedelta(days=7), T0, ZoneInfo("UTC")))
    cards.update(hostile_cards(evil_question))
    return cards


def weekly_report() -> Report:
    """A week with a handled, an expired and an open handoff, on two routes."""
    start = T0 - timedelta(days=2)
    joined = replace(
        handoff(HandoffState.ENDED, handoff_id="w-1"),
        created_at=start,
        joined_at=start + timedelta(seconds=40),
        ended_at=start + timedelta(minutes=9),
    )
    expired = replace(handoff(HandoffState.EXPIRED, handoff_id="w-2"), created_at=start)
    waiting = replace(
        handoff(HandoffState.QUEUED, handoff_id="w-3"), route_id="sales", created_at=start
    )
    return build([joined, expired, waiting], T0 - timedelta(days=7), T0, ZoneInfo("Europe/Berlin"))


def hostile_cards(evil_question: str) -> dict[str, Card]:
    cards: dict[str, Card] = {}
    for state in HandoffState:
        cards[f"hostile-thread-{state.value}"] = thread_card(
            view(state, hostile_visitor(), evil_question)
        )
    cards["hostile-summary"] = summary_for(
        hostile_visitor(), open_question=True, question=evil_question
    )
    evil = hostile_visitor()
    cards["hostile-transcript"] = transcript_card(
        transcript_view(
            conversation=Conversation("c-1", evil, T0),
            turns=[
                Turn("c-1", T0, Role.VISITOR, evil.display_name, evil_question),
                Turn("c-1", T0, Role.NOTE, evil.display_name, evil_question),
            ],
        )
    )
    return cards


CARDS = bot_cards()
HOSTILE_NAMES = sorted(name for name in CARDS if name.startswith("hostile-"))


# --- walking the cards ----------------------------------------------------------------------


def strings(node: Any, owner: str = "", key: str = "") -> Iterator[tuple[str, str, str]]:
    """Every string in a card, with the ``type`` of the object holding it and its key."""
    if isinstance(node, dict):
        kind = str(node.get("type", owner))
        for k, v in node.items():
            yield from strings(v, kind, k)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item, owner, key)
    elif isinstance(node, str):
        yield owner, key, node


def hostile_placements(card: Card) -> list[tuple[str, str, str]]:
    return [
        (owner, key, text)
        for owner, key, text in strings(card)
        if any(marker in text for marker in HOSTILE)
    ]


# --- running the official parser ------------------------------------------------------------


def require_node() -> str:
    """The node binary; skip (or, under CI=true, fail) when the tooling is not installed."""
    node = shutil.which("node")
    problem = ""
    if node is None:
        problem = "node is not on PATH"
    elif not (NODE_DIR / "node_modules" / "adaptivecards").is_dir():
        problem = f"{NODE_DIR}/node_modules is missing (run `npm ci` in {NODE_DIR})"
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but {problem}: the official Adaptive Cards check cannot run")
        pytest.skip(problem)
    assert node is not None
    return node


def validate(cards: dict[str, Card]) -> tuple[int, dict[str, Any], str]:
    """Run the official parser over named cards in one process: (exit code, report, stderr)."""
    node = require_node()
    batch = [{"name": name, "card": card} for name, card in cards.items()]
    done = subprocess.run(
        [node, SCRIPT],
        input=json.dumps(batch),
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 1), f"{SCRIPT} crashed ({done.returncode}):\n{done.stderr}"
    return done.returncode, json.loads(done.stdout), done.stderr


@functools.cache
def bot_cards_report() -> tuple[int, dict[str, dict[str, Any]]]:
    code, report, _ = validate(CARDS)
    return code, {result["name"]: result for result in report["results"]}


# --- tests ----------------------------------------------------------------------------------


def test_every_state_and_variant_is_covered() -> None:
    assert {f"thread-{s.value}" for s in HandoffState} <= CARDS.keys()
    assert "Open questions" in json.dumps(CARDS["thread-queued"])
    assert "Open questions" not in json.dumps(CARDS["thread-bare-visitor"])

    def verbs(name: str) -> list[str]:
        return [a.get("verb") or a["data"]["verb"] for a in CARDS[name]["actions"]]

    assert verbs("thread-queued") == ["handoff.join", "handoff.end", "handoff.transcript"]
    assert verbs("thread-joined") == ["handoff.end", "handoff.transcript"]
    assert verbs("thread-ended") == verbs("thread-failed") == ["handoff.transcript"]
    assert "internal note" in json.dumps(CARDS["transcript"])


@pytest.mark.parametrize("name", sorted(CARDS))
def test_official_parser_accepts_card(name: str) -> None:
    require_node()
    code, results = bot_cards_report()
    assert set(results) == set(CARDS), "the validator did not report on every card"
    result = results[name]
    assert not result["errors"] and not result["warnings"], (
        f"adaptivecards 3.0.6 rejects card {name!r}:\n{json.dumps(result, indent=2)}\n"
        f"card:\n{json.dumps(CARDS[name], indent=2, ensure_ascii=False)}"
    )
    if all(not r["errors"] and not r["warnings"] for r in results.values()):
        assert code == 0


def test_official_parser_reports_broken_cards() -> None:
    """The check can fail: each kind of breakage is reported, and the script exits 1."""
    good = CARDS["thread-queued"]
    unknown_element = {**good, "body": [*good["body"], {"type": "FancyChart", "data": []}]}
    bad_value = {
        **good,
        "body": [{"type": "TextBlock", "text": "x", "color": "Purple"}, *good["body"]],
    }
    too_new = {**good, "version": "1.7"}
    code, report, _ = validate(
        {
            "unknown-element": unknown_element,
            "bad-value": bad_value,
            "too-new": too_new,
            "control": good,
        }
    )
    results = {r["name"]: r for r in report["results"]}
    assert code == 1, json.dumps(report, indent=2)

    def events(name: str) -> list[str]:
        return [e["event"] for e in results[name]["errors"]]

    assert events("unknown-element") == ["UnknownElementType"], results["unknown-element"]
    assert "FancyChart" in results["unknown-element"]["errors"][0]["message"]
    assert events("bad-value") == ["InvalidPropertyValue"], results["bad-value"]
    assert "Purple" in results["bad-value"]["errors"][0]["message"]
    assert events("too-new") == ["UnsupportedCardVersion"], results["too-new"]
    assert results["control"] == {"name": "control", "errors": [], "warnings": []}


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_visitor_text_only_in_text_runs(name: str) -> None:
    """Visitor text is never markdown: it may appear only as a ``TextRun``'s ``text``."""
    placed = hostile_placements(CARDS[name])
    assert placed, "the hostile visitor text did not reach the card at all"
    wrong = [p for p in placed if p[:2] != ("TextRun", "text")]
    assert not wrong, f"visitor text outside a TextRun in {name}: {wrong}"
    # Every field we filled with hostile text shows up (none silently dropped).
    joined = " ".join(text for _, _, text in placed)
    for marker in HOSTILE:
        assert marker in joined


def test_visitor_context_keys_are_not_markdown() -> None:
    """Hostile context keys are dropped; hostile values under plain keys stay verbatim."""
    visitor = merge_context(
        Visitor(id="v"), {LINK: "yes", f"{BOLD}_{SCRIPT_TAG}": "1", "plan": LINK}
    )
    assert list(visitor.extra) == ["plan"]
    card = thread_card(
        thread_view(handoff=handoff(HandoffState.QUEUED), route=ROUTE, visitor=visitor, turns=[])
    )
    placed = hostile_placements(card)
    assert placed
    wrong = [p for p in placed if p[:2] != ("TextRun", "text")]
    assert not wrong, f"visitor-controlled text outside a TextRun: {wrong}"
