"""Meta keys the Direct Line channel keeps per conversation (``{prefix}:{cid}`` or
``{prefix}:{cid}:{more}``); retention deletes them with their conversation."""

from __future__ import annotations

POSTED = "dl.posted"  # POST /conversations was answered for it (201 once, then 200)
REF = "dl.ref"  # a Teams message id relayed before keys were stored with activities
# "{seq}:{n}": the inbox was handling activity seq when the process went down, n times so far
ATTEMPT = "dl.attempt"
QUARANTINED = "dl.quarantined"  # {prefix}:{cid}:{seq}: an activity set aside, and why
CONVERSATION_META = (POSTED, REF, ATTEMPT, QUARANTINED)


def conversation_of(key: str) -> str:
    """The conversation a meta key names, or "" for any other key."""
    prefix, _, rest = key.partition(":")
    return rest.split(":", 1)[0] if prefix in CONVERSATION_META else ""
