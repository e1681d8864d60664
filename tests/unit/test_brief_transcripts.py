"""What a specialist must see, transcript by transcript: realistic chats (several languages,
typos, several questions in one message, a bot answer that did not settle it, small talk, a
visitor who asks for a person at once), each with what the thread's card must say the visitor
wants, what is still open and what the bot already answered; and, for chats that went on with a
specialist, what the end summary says was asked, resolved and left open.

Script lines: ``v:`` the visitor, ``b:`` a bot answer, ``b?:`` a bot fallback (it did not
understand), ``s:`` the specialist, ``n:`` an internal note in the thread, ``---`` the handoff (end
summaries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bot.model import Handoff, HandoffState, Party, Person, Role, Turn
from bot.summary import brief, end_summary

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ROLES = {"v": (Role.VISITOR, False), "b": (Role.BOT, False), "b?": (Role.BOT, True)}
ROLES["s"] = (Role.SPECIALIST, False)
ROLES["n"] = (Role.NOTE, False)


def transcript(script: str) -> tuple[list[Turn], datetime | None]:
    """The turns of a script, a minute apart, and when the handoff began (at ``---``)."""
    turns: list[Turn] = []
    handoff_at = None
    for n, line in enumerate(line.strip() for line in script.strip().splitlines()):
        at = T0 + timedelta(minutes=n)
        if line == "---":
            handoff_at = at
            continue
        who, _, text = line.partition(": ")
        role, fallback = ROLES[who]
        turns.append(Turn("c", at, role, role.value, text, fallback))
    return turns, handoff_at


@dataclass(frozen=True)
class Seen:
    """What the card shows."""

    wants: str
    open: tuple[str, ...] = ()
    answered: tuple[str, ...] = ()  # the questions the bot answered
    also: tuple[str, ...] = ()  # what else they said


CASES: list[tuple[str, str, Seen]] = [
    (
        "bot could not answer",
        """
        v: Hi
        b: Hello! How can I help?
        v: How do I export my invoices to CSV?
        b?: Sorry, I did not get that.
        v: talk to a human
        """,
        Seen("How do I export my invoices to CSV?", open=("How do I export my invoices to CSV?",)),
    ),
    (
        "answer did not settle it",
        """
        v: Where is my order #4411?
        b: You can track it here: https://shop.example/track
        v: That link doesn't work
        v: agent please
        """,
        Seen("That link doesn't work", answered=("Where is my order #4411?",)),
    ),
    (
        "a statement, then the question about it",
        """
        v: My card was charged twice
        b: I can't see duplicate charges.
        v: Why was I charged twice?
        v: agent
        """,
        Seen(
            "Why was I charged twice?",
            open=("Why was I charged twice?",),
            also=("My card was charged twice",),
        ),
    ),
    (
        "a statement, no question",
        """
        v: I was charged twice for March
        v: I want to speak to someone
        """,
        Seen("I was charged twice for March"),
    ),
    (
        "asks for a person at once",
        """
        v: human please
        """,
        Seen(""),
    ),
    (
        "greeting in front of the question",
        """
        v: Hi there, how do I reset my password?
        b: Go to Settings > Security > Reset password.
        v: I don't have access to my email anymore
        v: can I talk to a person
        """,
        Seen(
            "I don't have access to my email anymore",
            answered=("How do I reset my password?",),
        ),
    ),
    (
        "two questions, the bot answers one",
        """
        v: What does the Pro plan cost? And does it include SSO?
        b: The Pro plan costs 29 EUR per user per month.
        v: real person pls
        """,
        Seen(
            "What does the Pro plan cost? And does it include SSO?",
            open=("And does it include SSO?",),
            answered=("What does the Pro plan cost?",),
        ),
    ),
    (
        "German",
        """
        v: Hallo
        v: Wie kann ich mein Abo kündigen?
        b?: Das habe ich leider nicht verstanden.
        v: Kann ich mit einem Menschen sprechen?
        """,
        Seen("Wie kann ich mein Abo kündigen?", open=("Wie kann ich mein Abo kündigen?",)),
    ),
    (
        "French statement",
        """
        v: Bonjour, je n'arrive pas à me connecter
        b: Essayez de réinitialiser votre mot de passe.
        v: je veux parler à un humain
        """,
        Seen("Je n'arrive pas à me connecter"),
    ),
    (
        "Spanish",
        """
        v: ¿Cómo puedo cambiar mi método de pago?
        b?: Lo siento, no entendí.
        v: quiero hablar con una persona
        """,
        Seen(
            "¿Cómo puedo cambiar mi método de pago?",
            open=("¿Cómo puedo cambiar mi método de pago?",),
        ),
    ),
    (
        "typos",
        """
        v: hw do i expot invoces
        b?: Sorry?
        v: invoice export not workng
        v: human
        """,
        Seen("hw do i expot invoces", also=("invoice export not workng",)),
    ),
    (
        "asks if it is a bot first",
        """
        v: are you a bot?
        b: I'm the virtual assistant.
        v: ok. my card was declined, why?
        b?: I can't help with that yet.
        v: agent
        """,
        Seen("my card was declined, why?", open=("my card was declined, why?",)),
    ),
    (
        "thanks, then a new matter",
        """
        v: What are your opening hours?
        b: We're open 9-17 CET, Monday to Friday.
        v: thanks!
        v: Also I need a copy of the invoice for order 5512
        v: can someone help me
        """,
        Seen(
            "Also I need a copy of the invoice for order 5512",
            answered=("What are your opening hours?",),
        ),
    ),
    (
        "asks for a person right after an answer",
        """
        v: How do I cancel my subscription?
        b: Go to Settings > Plan > Cancel subscription.
        v: human
        """,
        Seen("How do I cancel my subscription?", answered=("How do I cancel my subscription?",)),
    ),
    (
        "still there? is no question",
        """
        v: My export has been stuck at 99% for an hour
        b?: Sorry, I did not understand.
        v: Hello?
        v: Still there?
        v: customer service
        """,
        Seen("My export has been stuck at 99% for an hour"),
    ),
    (
        "a question that points back",
        """
        v: My invoices will not export. How do I fix that?
        b?: Sorry, I did not get that.
        v: speak to a human
        """,
        Seen(
            "My invoices will not export. How do I fix that?",
            open=("My invoices will not export. How do I fix that?",),
        ),
    ),
    (
        "question without a question mark",
        """
        v: how can i add a second admin
        b?: I'm not sure.
        v: live agent
        """,
        Seen("how can i add a second admin", open=("how can i add a second admin",)),
    ),
    (
        "several open, the first is what they came for",
        """
        v: Why was my account suspended?
        b?: I can't answer that.
        v: When will it be back?
        b?: I can't answer that either.
        v: talk to someone
        """,
        Seen(
            "Why was my account suspended?",
            open=("Why was my account suspended?", "When will it be back?"),
        ),
    ),
    (
        "the bot answered one, another is open",
        """
        v: Do you ship to Norway?
        b: Yes, we ship to Norway in 3-5 days.
        v: How much does shipping to Norway cost?
        b?: I don't know that.
        v: representative
        """,
        Seen(
            "How much does shipping to Norway cost?",
            open=("How much does shipping to Norway cost?",),
            answered=("Do you ship to Norway?",),
        ),
    ),
    (
        "German typos and a person request in other words",
        """
        v: rechnung doppelt abgebucht!!
        b?: Das habe ich nicht verstanden.
        v: Mitarbeiter bitte
        """,
        Seen("rechnung doppelt abgebucht!!"),
    ),
    (
        "French question",
        """
        v: Salut ! Comment changer mon adresse de livraison ?
        b?: Désolé, je n'ai pas compris.
        v: parler à quelqu'un
        """,
        Seen(
            "Comment changer mon adresse de livraison ?",
            open=("Comment changer mon adresse de livraison ?",),
        ),
    ),
    (
        "Spanish greeting and statement",
        """
        v: hola
        v: mi pedido llegó roto
        v: hablar con una persona
        """,
        Seen("mi pedido llegó roto"),
    ),
    (
        "a long message is quoted short",
        """
        v: I have been trying to connect our Salesforce instance for two days now and every time I press connect the page reloads and nothing happens, what am I doing wrong?
        b?: Sorry, I did not get that.
        v: human
        """,
        Seen(
            "I have been trying to connect our Salesforce instance for two days now and every"
            " time I press connect the page reloads and nothing happens,…",
            open=(
                "I have been trying to connect our Salesforce instance for two days now and"
                " every time I press connect the page reloads and nothing happens,…",
            ),
        ),
    ),
    (
        "several messages in a row, then a person",
        """
        v: the dashboard is blank
        v: since this morning
        v: for all my team
        v: can I talk to a human
        """,
        Seen("the dashboard is blank", also=("since this morning", "for all my team")),
    ),
    (
        "the bot answers the latest of two questions",
        """
        v: How do I invite a colleague?
        v: Where do I change the language?
        b: Open Settings > Profile > Language.
        v: agent please
        """,
        Seen(
            "How do I invite a colleague?",
            open=("How do I invite a colleague?",),
            answered=("Where do I change the language?",),
        ),
    ),
    (
        "an answer matched by its words, not its place",
        """
        v: Can I pay by invoice? How long is the trial?
        b: Paying by invoice is possible on yearly plans.
        v: human please
        """,
        Seen(
            "Can I pay by invoice? How long is the trial?",
            open=("How long is the trial?",),
            answered=("Can I pay by invoice?",),
        ),
    ),
    (
        "emoji and shouting",
        """
        v: WHY IS MY ORDER LATE AGAIN 😡
        b?: I'm sorry, I didn't understand.
        v: AGENT
        """,
        Seen("WHY IS MY ORDER LATE AGAIN 😡", open=("WHY IS MY ORDER LATE AGAIN 😡",)),
    ),
    (
        "only small talk before the request",
        """
        v: hey
        v: how are you?
        b: I'm fine, thanks! How can I help?
        v: I'd like to talk to a real person
        """,
        Seen(""),
    ),
    (
        "a statement after a greeting in one message",
        """
        v: Good morning! Our SSO login fails with error 403.
        v: speak to someone
        """,
        Seen("Our SSO login fails with error 403."),
    ),
    (
        "a number and an order id",
        """
        v: refund for order 88-1203?
        b: Refunds take 5-7 business days after we receive the item.
        v: I sent it back 3 weeks ago
        v: human
        """,
        Seen("I sent it back 3 weeks ago", answered=("refund for order 88-1203?",)),
    ),
    (
        "thanks after an answer, then a person",
        """
        v: Is there a student discount?
        b: Yes, 50% with a valid student email.
        v: thx
        v: talk to an agent
        """,
        Seen("Is there a student discount?", answered=("Is there a student discount?",)),
    ),
    (
        "a person word inside a real sentence is no request",
        """
        v: The agent field on my ticket is empty, why?
        b?: Sorry, I didn't get that.
        v: human please
        """,
        Seen(
            "The agent field on my ticket is empty, why?",
            open=("The agent field on my ticket is empty, why?",),
        ),
    ),
    (
        "Dutch-speaking visitor in English words",
        """
        v: hello, i can not find the export button
        b: The export button is at the top right of the Invoices page.
        v: it is not there
        v: someone please
        """,
        Seen("I can not find the export button", also=("it is not there",)),
    ),
]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(("script", "seen"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_what_the_card_says_the_visitor_wants(script: str, seen: Seen) -> None:
    turns, _ = transcript(script)
    made = brief(turns, "Jane", "asked for a person")
    assert (made.wants, made.also) == (seen.wants, seen.also)
    assert made.open == seen.open
    assert tuple(q for q, _ in made.answered) == seen.answered


@dataclass(frozen=True)
class Ended:
    """What the end summary shows."""

    asked: tuple[str, ...]
    resolved: tuple[str, ...]
    still_open: tuple[str, ...]


ENDINGS: list[tuple[str, str, Ended]] = [
    (
        "the specialist answers what the bot could not",
        """
        v: How do I export my invoices to CSV?
        b?: Sorry, I did not get that.
        v: talk to a human
        ---
        s: Hi Jane, go to Invoices > Export and pick CSV.
        v: thanks, that worked!
        """,
        Ended(
            ("How do I export my invoices to CSV?",),
            ("How do I export my invoices to CSV?",),
            (),
        ),
    ),
    (
        "a follow-up question answered too",
        """
        v: Why was I charged twice?
        b?: I can't answer that.
        v: agent
        ---
        s: Sorry about that, I have refunded the second charge.
        v: When will I see the money?
        s: Within 5 business days.
        """,
        Ended(
            ("Why was I charged twice?", "When will I see the money?"),
            ("Why was I charged twice?", "When will I see the money?"),
            (),
        ),
    ),
    (
        "the visitor leaves with a question open",
        """
        v: Can I move my subscription to another company?
        b?: I'm not sure.
        v: human please
        ---
        s: Let me check that for you.
        v: And can I keep my data?
        """,
        Ended(
            ("Can I move my subscription to another company?", "And can I keep my data?"),
            ("Can I move my subscription to another company?",),
            ("And can I keep my data?",),
        ),
    ),
    (
        "no question as such: what they came about",
        """
        v: my dashboard is blank since this morning
        v: speak to someone
        ---
        s: We had an outage; it is fixed now.
        v: ok, works again
        """,
        Ended(("my dashboard is blank since this morning",), (), ()),
    ),
    (
        "German",
        """
        v: Wie kann ich mein Abo kündigen?
        b?: Das habe ich leider nicht verstanden.
        v: mit einem Menschen sprechen
        ---
        s: Unter Einstellungen > Abo > Kündigen.
        v: Danke!
        """,
        Ended(
            ("Wie kann ich mein Abo kündigen?",),
            ("Wie kann ich mein Abo kündigen?",),
            (),
        ),
    ),
    (
        "an internal note answers nothing",
        """
        v: Why is my export empty?
        b?: Sorry?
        v: agent
        ---
        n: note: looks like the date filter bug, ticket 4411
        v: hello??
        """,
        Ended(("Why is my export empty?",), (), ("Why is my export empty?",)),
    ),
    (
        "nobody answered before the end",
        """
        v: Where is my refund?
        b?: Sorry?
        v: agent
        ---
        v: hello??
        """,
        Ended(("Where is my refund?",), (), ("Where is my refund?",)),
    ),
]


@pytest.mark.parametrize(("script", "ended"), [c[1:] for c in ENDINGS], ids=[c[0] for c in ENDINGS])
def test_what_the_end_summary_says(script: str, ended: Ended) -> None:
    turns, handoff_at = transcript(script)
    assert handoff_at is not None
    handoff = Handoff(
        "h",
        "c",
        "support",
        HandoffState.ENDED,
        handoff_at,
        "asked",
        specialist=Person("a", "Alex"),
        joined_at=handoff_at + timedelta(seconds=30),
        ended_at=turns[-1].at + timedelta(minutes=1),
        ended_by=Party.SPECIALIST,
    )
    made = end_summary(handoff, turns, "Jane", turns[-1].at)
    assert (made.asked, made.resolved, made.still_open) == (
        ended.asked,
        ended.resolved,
        ended.still_open,
    )
