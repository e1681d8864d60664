"""A specialist hands over to a colleague; edits and deletions of relayed messages follow."""

from __future__ import annotations

from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import Teams, card_updates, joined
from tests.support.standin import Standin
from tests.support.teams import ALEX, ISAIAH, thread_delete, thread_edit, thread_message


async def test_transfer_to_a_colleague(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    thread_id, root, _ = await joined(visitor, teams)
    # Only the joined specialist can hand over, and only to someone they mention.
    await teams.write(thread_id, "/transfer", by=ISAIAH, mentions=(ALEX,))
    await teams.write(thread_id, "/transfer")
    await standin.wait_text_in(thread_id, "mention your colleague")
    await teams.write(thread_id, "/transfer", mentions=(ISAIAH,))
    await visitor.wait_text("Isaiah Langer has taken over your conversation")
    await standin.wait_text_in(thread_id, "Isaiah Langer now has this conversation")
    assert await card_updates(standin, root, showing="Isaiah Langer joined")
    # Isaiah now talks to the visitor; Alex's messages are internal notes.
    await teams.write(thread_id, "Hi, Isaiah here.", by=ISAIAH)
    reply = await visitor.wait_text("Isaiah here")
    assert reply["from"]["name"] == "Isaiah Langer"
    await teams.write(thread_id, "bye from Alex")
    await visitor.say("thanks")
    await standin.wait_text_in(thread_id, "thanks")
    assert not any("bye from Alex" in t for t in visitor.texts())
    assert not any("Only" in t for t in visitor.texts())


async def test_edits_and_deletions_reach_the_widget(
    visitor: DirectLineClient, standin: Standin, teams: Teams
) -> None:
    thread_id, _, _ = await joined(visitor, teams)
    message = thread_message(standin.url, thread_id, ALEX, "Your refund is 40 EUR")
    await teams.send(message)
    original = await visitor.wait_text("Your refund is 40 EUR")

    await teams.send(
        thread_edit(standin.url, thread_id, ALEX, message["id"], "Your refund is 45 EUR")
    )
    update = await visitor.wait_type("messageUpdate")
    assert update["replyToId"] == original["id"] and update["text"] == "Your refund is 45 EUR"
    assert update["from"]["name"] == "Alex Wilber"

    await teams.send(thread_delete(standin.url, thread_id, ALEX, message["id"]))
    deleted = await visitor.wait_type("messageDelete")
    assert deleted["replyToId"] == original["id"]

    # Notes and unknown messages have nothing to edit in the widget.
    note = thread_message(standin.url, thread_id, ALEX, "// internal")
    await teams.send(note)
    await teams.send(thread_edit(standin.url, thread_id, ALEX, note["id"], "// still internal"))
    await teams.write(thread_id, "sync")
    await visitor.wait_text("sync")
    assert sum(a["type"] == "messageUpdate" for a in visitor.activities) == 1
