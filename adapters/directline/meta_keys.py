"""Meta keys the Direct Line channel keeps per conversation (``{prefix}:{cid}`` or
``{prefix}:{cid}:{more}``); each is filed under its
conversation (``set_meta(conversation_id=...)``), so retention deletes it with the conversation."""

from __future__ import annotations

POSTED = "dl.posted"  # POST /conversations was answered for it (201 once, then 200)
REF = "dl.ref"  # a Teams message id relayed before keys were stored with activities
# "{seq}:{n}": the inbox was handling activity seq when the process went down, n times so far
ATTEMPT = "dl.attempt"
QUARANTINED = "dl.quarantined"  # {prefix}:{cid}:{seq}: an activity set aside, and why
