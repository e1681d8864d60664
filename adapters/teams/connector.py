"""Outbound Bot Connector calls over one pooled HTTP client.

botbuilder builds a new msrest client per turn and sends through ``requests``; this keeps one
connection pool for the process (``adapters.httpclient``) and sends JSON directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, Unpack
from urllib.parse import quote

from adapters.runtime import jsonio
from adapters.runtime.httpclient import ConnectFailed, HttpClient, RequestFailed
from adapters.runtime.retry import backoff, retry_after
from adapters.teams.auth import ConnectorTokens
from adapters.teams.cards import Card
from bot.errors import GatewayError, RetryableGatewayError, ThreadGoneError
from bot.ports import ThreadRef

log = logging.getLogger(__name__)

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
# Teams asks for retries on 412/429/502/503/504; a bare 500 and a 408 are treated as passing.
RETRY_STATUSES = frozenset({408, 412, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 4


class Account(TypedDict):
    """Who an activity is from (the bot)."""

    id: str
    name: str


class Attachment(TypedDict):
    """An Adaptive Card on a message."""

    contentType: str
    content: Card


class MessageFields(TypedDict, total=False):
    """What a message from the bot may carry besides its sender."""

    text: str
    textFormat: Literal["markdown", "plain"]
    summary: str  # what notifications show for a card
    attachments: list[Attachment]
    id: str  # the message an update replaces


# The Bot Framework activity the bot sends ("from" is a keyword: the functional form).
MessageActivity = TypedDict(
    "MessageActivity",
    {
        "type": Literal["message"],
        "from": Account,
        "text": NotRequired[str],
        "textFormat": NotRequired[Literal["markdown", "plain"]],
        "summary": NotRequired[str],
        "attachments": NotRequired[list[Attachment]],
        "id": NotRequired[str],
    },
)


def card_attachment(card: Card) -> Attachment:
    return {"contentType": CARD_TYPE, "content": card}


class BotConnector:
    """Create threads, reply in them and update messages, with retries on 429/5xx."""

    def __init__(
        self,
        *,
        tokens: ConnectorTokens,
        service_url: str,
        tenant_id: str,
        bot_id: str,
        bot_name: str,
    ) -> None:
        self._client: HttpClient | None = None
        self._tokens = tokens
        self.service_url = service_url.rstrip("/")
        self.tenant_id = tenant_id
        self._learned: dict[str, str] = {}
        self._thread_urls: dict[tuple[str, str], str] = {}
        self._latest = ""  # the URL of the latest tenant Teams told us about
        self.bot_id = bot_id
        self.bot_name = bot_name

    def learn_service_url(self, tenant_id: str, service_url: str) -> None:
        """Teams told us (in an authenticated activity) where this tenant's connector is."""
        if service_url.startswith(("https://", "http://")):
            self._learned[tenant_id] = self._latest = service_url.rstrip("/")

    @property
    def base_url(self) -> str:
        """The learned URL for our tenant, else the configured one."""
        if not self.tenant_id:  # no tenant configured: the latest word from Teams
            return self._latest or self.service_url
        return self._learned.get(self.tenant_id) or self.service_url

    def configure(self, *, service_url: str, tenant_id: str) -> None:
        """Apply a reloaded config."""
        self.service_url = service_url.rstrip("/")
        self.tenant_id = tenant_id

    def use_client(self, client: HttpClient) -> None:
        """The app's pooled client, set once it is running."""
        self._client = client

    def _url(self, *parts: str) -> str:
        return "/".join([self.base_url, "v3", "conversations", *(quote(p, safe="") for p in parts)])

    async def prepare(self) -> None:
        """Have a token at hand (fetched off the loop if need be) before a send is paced."""
        await self._tokens.bearer()

    async def send_once(self, method: str, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One attempt, classified: ThreadGoneError (403/404), RetryableGatewayError (429, 412,
        5xx, network: ``ambiguous`` when the request may have arrived), GatewayError (other)."""
        if self._client is None:
            raise GatewayError("the connector is not started")
        headers = {"Content-Type": "application/json"}
        token = await self._tokens.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self._client.request(method, url, jsonio.dumpb(body), headers)
        except (ConnectFailed, ValueError) as exc:
            # Never reached the server (a bad URL may be fixed by a config reload: retried).
            raise RetryableGatewayError(f"{method} {url}: {exc}") from exc
        except (RequestFailed, TimeoutError) as exc:
            # Sent, but the answer was lost: the far side may have acted on it.
            error = RetryableGatewayError(f"{method} {url}: {type(exc).__name__} {exc}")
            error.ambiguous = True
            raise error from exc
        status = response.status
        text = response.text()
        if status < 300:
            try:
                answer = jsonio.loads(text) if text.strip() else {}
            except ValueError:
                answer = {}
            return answer if isinstance(answer, dict) else {}
        if status == 401:
            # An expired or revoked token: fetch a new one on the retry.
            self._tokens.invalidate()
            raise RetryableGatewayError(f"{method} {url}: 401 {text[:200]}", status=401)
        if status in (403, 404):
            raise ThreadGoneError(f"{method} {url}: {status} {text[:200]}")
        if status not in RETRY_STATUSES:
            raise GatewayError(f"{method} {url}: {status} {text[:200]}")
        header = response.headers.get("retry-after", "")
        raise RetryableGatewayError(
            f"{method} {url}: {status}",
            retry_after=retry_after(header) if header else None,
            status=status,
        )

    async def _call(self, method: str, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``send_once`` with retries; a POST whose fate is unknown is not repeated."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await self.send_once(method, url, body)
            except RetryableGatewayError as error:
                if attempt == MAX_ATTEMPTS or (error.ambiguous and method != "PUT"):
                    raise
                wait = error.retry_after
                if wait is None:
                    wait = backoff(attempt, cap=30.0)
                log.warning("connector call failed (%s), retry %d in %.1fs", error, attempt, wait)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _from(self) -> Account:
        return {"id": self.bot_id, "name": self.bot_name}

    def activity(self, **fields: Unpack[MessageFields]) -> MessageActivity:
        """A message activity from the bot."""
        return {"type": "message", "from": self._from(), **fields}

    def activity_url(self, thread_id: str, activity_id: str = "") -> str:
        """``.../v3/conversations/{thread}/activities[/{id}]``."""
        if activity_id:
            return self._url(thread_id, "activities", activity_id)
        # Every relayed message posts to its thread's URL: made once per thread and base URL.
        key = (self.base_url, thread_id)
        url = self._thread_urls.get(key)
        if url is None:
            if len(self._thread_urls) >= 10_000:
                self._thread_urls.clear()
            url = self._thread_urls[key] = self._url(thread_id, "activities")
        return url

    async def open_thread(self, *, channel_id: str, card: Card, text: str) -> ThreadRef:
        # Card only: a root with both text and a card can arrive as two messages.
        activity = self.activity(summary=text, attachments=[card_attachment(card)])
        body = {
            "isGroup": True,
            "bot": self._from(),
            "tenantId": self.tenant_id,
            "channelData": {"channel": {"id": channel_id}, "tenant": {"id": self.tenant_id}},
            "activity": activity,
        }
        data = await self._call("POST", f"{self.base_url}/v3/conversations", body)
        conversation_id = str(data.get("id") or "")
        root_id = str(data.get("activityId") or "")
        if not root_id and ";messageid=" in conversation_id:
            root_id = conversation_id.split(";messageid=", 1)[1]
        if not root_id:
            raise GatewayError(f"creating a thread in {channel_id} returned no message id: {data}")
        thread_id = (
            conversation_id
            if ";messageid=" in conversation_id
            else f"{channel_id};messageid={root_id}"
        )
        return ThreadRef(thread_id=thread_id, root_activity_id=root_id)
