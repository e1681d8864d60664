"""Direct Line tokens: HMAC-signed, bound to one conversation and one user, stateless to check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass


class TokenError(Exception):
    """The token is missing, malformed, forged or expired."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class Grant:
    """What a valid token allows: this user in this conversation until ``expires``."""

    conversation_id: str
    user_id: str
    user_name: str
    expires: int
    # A server holding the widget secret (an upstream agent), not a browser.
    trusted: bool = False
    # Only opens the conversation's stream, briefly: what goes in a stream URL, where a
    # conversation token or the secret would be written down by proxies and browsers.
    stream: bool = False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_CHECKED_KEPT = 10_000


class TokenSigner:
    """Signs and checks tokens with one secret key."""

    PREFIX = "dl1"

    def __init__(self, key: bytes) -> None:
        self._key = key
        # Tokens whose signature and fields were checked: a widget sends the same token with
        # every activity until it refreshes it. Expiry is still checked on every use.
        self._checked: dict[str, Grant] = {}

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, grant: Grant) -> str:
        payload = _b64(
            json.dumps(
                {
                    "c": grant.conversation_id,
                    "u": grant.user_id,
                    "n": grant.user_name,
                    "e": grant.expires,
                    **({"k": "stream"} if grant.stream else {}),
                },
                separators=(",", ":"),
            ).encode()
        )
        return f"{self.PREFIX}.{payload}.{self._mac(payload)}"

    def check(self, token: str, now: float) -> Grant:
        grant = self._checked.get(token)
        if grant is None:
            grant = self._verify(token)
            if len(self._checked) >= _CHECKED_KEPT:
                self._checked.clear()
            self._checked[token] = grant
        if grant.expires <= now:
            raise TokenError("token expired", expired=True)
        return grant

    def _verify(self, token: str) -> Grant:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != self.PREFIX:
            raise TokenError("malformed token")
        # Bytes: compare_digest refuses non-ASCII str, and a token is untrusted input.
        if not hmac.compare_digest(self._mac(parts[1]).encode(), parts[2].encode()):
            raise TokenError("invalid token signature")
        try:
            data = json.loads(_unb64(parts[1]))
            grant = Grant(
                str(data["c"]),
                str(data["u"]),
                str(data.get("n", "")),
                int(data["e"]),  # no expiry, no token
                stream=data.get("k") == "stream",
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenError("malformed token") from exc
        return grant
