"""A conversation's transcript for the team: as JSON, plain text or a standalone HTML page, with
internal notes (what specialists wrote in the thread and never relayed) marked as such.

    python app.py transcript ID [--format json|text|html] [--config FILE]

``ID`` is a conversation id or a handoff id (the card's footer shows it). On SQLite the command
reads the file while the service is stopped (a file is one process's); on PostgreSQL, any time.
The same renderings are
served at ``GET /api/transcripts/{id}?format=...`` (``adapters.web.app``), behind
``OPS_TOKEN``. Everything comes from the store, so any instance answers, and retention deletes a
transcript with its conversation.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.model import Conversation, Handoff, Role, Turn
from bot.ports import HandoffStore

FORMATS = ("json", "text", "html")
CONTENT_TYPES = {
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
# How each writer is introduced (a note is the team's, never seen by the visitor).
_WHO = {
    Role.VISITOR: "visitor",
    Role.BOT: "bot",
    Role.SPECIALIST: "specialist",
    Role.SYSTEM: "bot (notice)",
    Role.NOTE: "internal note",
}


@dataclass(frozen=True)
class Transcript:
    conversation: Conversation
    turns: tuple[Turn, ...]
    handoff: Handoff | None = None  # the one asked for by its id, or the conversation's open one


async def find(store: HandoffStore, some_id: str) -> Transcript | None:
    """The transcript of a conversation, by its id or one of its handoffs' (None: no such)."""
    handoff = await store.get_handoff(handoff_id=some_id)
    cid = handoff.conversation_id if handoff is not None else some_id
    conversation = await store.get_conversation(conversation_id=cid)
    if conversation is None:
        return None
    if handoff is None:
        handoff = await store.open_handoff(conversation_id=cid)
    turns = await store.turns(conversation_id=cid)
    return Transcript(conversation, tuple(turns), handoff)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _header(t: Transcript) -> list[tuple[str, str]]:
    """What the transcript is of: visitor, and the handoff's facts."""
    visitor = t.conversation.visitor
    rows = [
        ("Conversation", t.conversation.id),
        ("Visitor", visitor.display_name),
        ("Company", visitor.company),
        ("Email", visitor.email),
        ("Started", _stamp(t.conversation.created_at)),
    ]
    handoff = t.handoff
    if handoff is not None:
        rows += [
            ("Handoff", f"{handoff.id} ({handoff.state.value}, route {handoff.route_id})"),
            ("Reason", handoff.reason),
            ("Specialist", handoff.specialist.name if handoff.specialist else ""),
            ("Joined", _stamp(handoff.joined_at) if handoff.joined_at else ""),
            ("Ended", _stamp(handoff.ended_at) if handoff.ended_at else ""),
        ]
    return [(label, value) for label, value in rows if value]


def as_json(t: Transcript) -> str:
    data: dict[str, Any] = {
        "conversation": t.conversation.id,
        "about": dict(_header(t)),
        "turns": [
            {
                "at": _stamp(turn.at),
                "role": turn.role.value,
                "author": turn.author,
                "text": turn.text,
                "internal": turn.role is Role.NOTE,
                **({"fallback": True} if turn.fallback else {}),
            }
            for turn in t.turns
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def _line(turn: Turn) -> str:
    who = f"{turn.author} ({_WHO[turn.role]})"
    mark = "[INTERNAL NOTE] " if turn.role is Role.NOTE else ""
    return f"{_stamp(turn.at)}  {who}: {mark}{turn.text}"


def as_text(t: Transcript) -> str:
    head = [f"{label}: {value}" for label, value in _header(t)]
    return "\n".join([*head, "", *map(_line, t.turns)]) + "\n"


_NOTE_MARK = " <mark>internal note, not seen by the visitor</mark>"


def as_html(t: Transcript) -> str:
    """A page of its own: every value escaped, no script, no outside resource."""
    e = html.escape
    head = "".join(
        f"<tr><th>{e(label)}</th><td>{e(value)}</td></tr>" for label, value in _header(t)
    )
    rows = "".join(
        f'<li class="{e(turn.role.value)}"><time datetime="{_stamp(turn.at)}">'
        f"{_stamp(turn.at)}</time> <b>{e(turn.author)}</b> <i>({e(_WHO[turn.role])})</i>"
        f"{_NOTE_MARK if turn.role is Role.NOTE else ''}"
        f"<p>{e(turn.text)}</p></li>"
        for turn in t.turns
    )
    title = e(f"Transcript: {t.conversation.visitor.display_name}")
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<style>body{font:15px/1.4 system-ui,sans-serif;max-width:50rem;margin:2rem auto;"
        "padding:0 1rem}th{text-align:left;padding-right:1rem}ol{list-style:none;padding:0}"
        "li{margin:.8rem 0;padding:.5rem .8rem;border-left:3px solid #888}"
        "li.visitor{border-color:#2563eb}li.specialist{border-color:#16a34a}"
        "li.note{border-color:#b45309;background:#fff7ed}p{margin:.3rem 0 0;white-space:pre-wrap}"
        "time{color:#555}</style></head>"
        f"<body><h1>{title}</h1><table>{head}</table><ol>{rows}</ol></body></html>\n"
    )


def render(t: Transcript, form: str) -> str:
    if form == "json":
        return as_json(t)
    if form == "text":
        return as_text(t)
    if form == "html":
        return as_html(t)
    raise ValueError(f"unknown format {form!r}: one of {', '.join(FORMATS)}")


def lines_of(turns: Sequence[Turn]) -> list[str]:
    """The transcript's lines as text (for a desk's dialog)."""
    return [_line(turn) for turn in turns]


def main(argv: list[str]) -> int:
    """``app.py transcript ID [--format json|text|html] [--config FILE]``."""
    from adapters.ops.commands import from_store

    parser = argparse.ArgumentParser(
        prog="app.py transcript", description="A conversation's transcript, notes marked."
    )
    parser.add_argument("id", help="a conversation id or a handoff id")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--config", help="the config file (its storage section)")
    args = parser.parse_args(argv)

    found = from_store("transcript", args.config, lambda store: find(store, args.id))
    if found is None:
        print(f"transcript: no conversation or handoff {args.id!r}", file=sys.stderr)
        return 1
    sys.stdout.write(render(found, args.format))
    return 0
