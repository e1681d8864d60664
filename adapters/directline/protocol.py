"""Direct Line 3.0 shapes: paths and activity ids, the error body, ActivitySets (the stream's
frames and the pages of GET /activities), watermarks, and what a client may post."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any, TypeVar

from aiohttp import web

from adapters.directline.tokens import Grant
from adapters.runtime import jsonio
from adapters.runtime.failures import REFUSALS
from adapters.web.bodies import BodyBrokenError, BodyTooLargeError, BodyTooSlowError, read_body
from adapters.web.ratelimit import retry_after

# One logger for the channel's refusals, whichever part refuses.
log = logging.getLogger("adapters.directline")

PREFIX = "/v3/directline"
CHANNEL_ID = "directline"
MAX_BODY_BYTES = 256 * 1024
MAX_WATERMARK_DIGITS = 18  # fits SQLite's 64-bit integers
ACCEPTED_TYPES = frozenset({"message", "typing", "event", "endOfConversation"})
# Per conversation, what memory keeps of the most recent ones at most (then it starts over).
RECENT_CONVERSATIONS = 10_000

Row = tuple[int, dict[str, Any]]  # (seq, activity): a place in a conversation's log
EPHEMERAL = -2  # in place of a seq: shown, never stored (a visitor's typing; its id is its own)

_AIOHTTP_CODES = {404: "NotFound", 405: "MethodNotAllowed", 413: "MessageSizeTooBig"}
_E = TypeVar("_E", bound=web.HTTPException)


class DirectLineError(web.HTTPException):
    """A Direct Line error response: ``{"error": {"code", "message"}}`` with a 4xx status."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status
        body = json.dumps({"error": {"code": code, "message": message}})
        super().__init__(text=body, content_type="application/json", headers=headers)


def too_many(wait: float, message: str) -> DirectLineError:
    return DirectLineError(
        429, "TooManyRequests", message, headers={"Retry-After": retry_after(wait)}
    )


def too_big(message: str) -> DirectLineError:
    return DirectLineError(413, "MessageSizeTooBig", message)


def not_found(message: str = "conversation not found") -> DirectLineError:
    return DirectLineError(404, "BadArgument", message)


def in_channel_shape(exc: web.HTTPException) -> web.HTTPException:
    """aiohttp's own errors (no such route, wrong method...) in the channel's shape."""
    if isinstance(exc, DirectLineError) or exc.status < 400:
        return exc
    shaped = DirectLineError(exc.status, _AIOHTTP_CODES.get(exc.status, "BadArgument"), exc.reason)
    allow = exc.headers.get("Allow")
    if allow:
        shaped.headers["Allow"] = allow
    return shaped


def refused(
    error: _E, key: object, message: str, *args: object, level: int = logging.WARNING
) -> _E:
    """Log why ``error`` is answered (sampled per ``key``: a flood is a few lines), and return
    it to be raised."""
    REFUSALS.log(log, level, key, message, *args)
    return error


def activity_id(conversation_id: str, seq: int) -> str:
    return f"{conversation_id}|{seq:07d}"


def pack(cid: str, rows: list[Row], watermark: int, limit: int) -> list[tuple[list[str], int]]:
    """Rows as serialized activities, in frames of at most about ``limit`` bytes (one row at
    least), each with the watermark it reaches: a large backlog never becomes one huge string."""
    frames: list[tuple[list[str], int]] = []
    parts: list[str] = []
    size = 0
    for seq, activity in rows:
        part = jsonio.dumps(
            activity if seq == EPHEMERAL else {**activity, "id": activity_id(cid, seq)}
        )
        if parts and size + len(part) > limit:
            frames.append((parts, watermark))
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 1
        if seq != EPHEMERAL:
            watermark = seq
    if parts:
        frames.append((parts, watermark))
    return frames


def frame(parts: list[str], watermark: int) -> str:
    """An ActivitySet of already serialized activities."""
    return '{"activities":[' + ",".join(parts) + '],"watermark":"' + str(watermark) + '"}'


def watermark_of(request: web.Request) -> int:
    raw = request.query.get("watermark", "") or "0"
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_WATERMARK_DIGITS:
        raise DirectLineError(400, "BadArgument", "watermark must be a number")
    return int(raw)


async def read_json(
    request: web.Request, *, limit: int, deadline: float, optional: bool = False
) -> dict[str, Any]:
    """The body, a JSON object of at most ``limit`` bytes arrived within ``deadline`` seconds
    (``{}`` for an empty one if ``optional``); any other body is refused in the channel's shape."""
    try:
        raw = await read_body(request, limit, deadline)
    except BodyTooLargeError as exc:
        raise too_big(f"the body is over {limit:,} bytes") from exc
    except BodyTooSlowError as exc:
        raise DirectLineError(408, "Timeout", "the body did not arrive in time") from exc
    except BodyBrokenError as exc:
        raise DirectLineError(400, "BadArgument", "the body could not be read") from exc
    if not raw.strip() and optional:
        return {}
    try:
        body = jsonio.loads_text(raw)
    except jsonio.NestingError as exc:
        raise DirectLineError(
            400, "BadArgument", f"the body nests deeper than {jsonio.MAX_DEPTH} levels"
        ) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        # The parser's own words name offsets and internals: the client gets a plain answer.
        raise DirectLineError(400, "BadArgument", "the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise DirectLineError(400, "BadArgument", "the body must be a JSON object")
    return body


def new_user(body: dict[str, Any]) -> tuple[str, str]:
    """The id and name a new conversation's visitor asked for (an id is made up if none)."""
    user = body.get("user") if isinstance(body.get("user"), dict) else {}
    assert isinstance(user, dict)
    user_id = str(user.get("id") or f"dl_{secrets.token_urlsafe(12)}")[:128]
    return user_id, str(user.get("name") or "")[:128]


def posted_type(body: dict[str, Any], max_chars: int) -> str:
    """The type of a posted activity that the channel takes, or why it does not."""
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in ACCEPTED_TYPES:
        raise DirectLineError(
            400,
            "BadArgument",
            f"activity type must be one of {', '.join(sorted(ACCEPTED_TYPES))}",
        )
    text = body.get("text", "")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise DirectLineError(400, "BadArgument", "text must be a string")
    if len(text) > max_chars:
        raise too_big(f"the message is {len(text)} characters; the limit is {max_chars}")
    if kind == "message" and not text.strip():
        raise DirectLineError(
            400, "BadArgument", "a message needs text (attachments are not supported yet)"
        )
    if kind == "event" and not isinstance(body.get("name"), str):
        raise DirectLineError(400, "BadArgument", "an event needs a name")
    return str(kind)


_KEPT_FIELDS = (
    "type",
    "text",
    "name",
    "value",
    "attachments",
    "locale",
    "textFormat",
    "channelData",
    "entities",
)


def client_activity_id(body: dict[str, Any]) -> str:
    """The client's own id for a posted activity ("" if none): its retries carry the same."""
    channel_data = body.get("channelData") if isinstance(body.get("channelData"), dict) else {}
    assert isinstance(channel_data, dict)
    return str(channel_data.get("clientActivityID") or body.get("id") or "")[:128]


def visitor_activity(
    body: dict[str, Any], *, cid: str, grant: Grant, timestamp: str
) -> dict[str, Any]:
    """What is stored of a posted activity: its own fields, with the sender the token names."""
    sender = body.get("from") if isinstance(body.get("from"), dict) else {}
    assert isinstance(sender, dict)
    activity: dict[str, Any] = {key: body[key] for key in _KEPT_FIELDS if key in body}
    activity.update(
        {
            "timestamp": timestamp,
            "channelId": CHANNEL_ID,
            "conversation": {"id": cid},
            "from": {
                "id": grant.user_id or str(sender.get("id") or "server")[:128],
                "name": str(sender.get("name") or grant.user_name)[:128],
                "role": "user",
            },
        }
    )
    return activity
