"""The ``teams`` section: which thread replies are internal notes."""

from __future__ import annotations

import pytest

from adapters.teams.settings import TeamsSettings


@pytest.mark.parametrize(
    ("prefixes", "text", "note"),
    [
        (None, "// she is on the legacy plan", True),
        (None, "Note: check the refund first", True),
        (None, "  //after spaces", True),
        (None, "a reply // with a comment", False),
        (None, "notes are not notes:", False),
        (None, "/end", False),
        (["FYI"], "fyi: internal", True),
        (["FYI"], "// no longer a note", False),
    ],
)
def test_a_reply_starting_with_a_prefix_is_a_note(
    prefixes: list[str] | None, text: str, note: bool
) -> None:
    teams = TeamsSettings() if prefixes is None else TeamsSettings(note_prefixes=prefixes)
    assert teams.is_note(text) is note
