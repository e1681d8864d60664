"""A Direct Line 3.0 client for tests: HTTP for commands, the WebSocket stream for activities."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp

from tests.support.waiting import wait_until


class DirectLineClient:
    """Plays the visitor's widget against ``base`` (``http://host:port/v3/directline``)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, origin: str) -> None:
        self.session = session
        self.base = base
        self.origin = origin
        self.token = ""
        self.conversation_id = ""
        self.stream_url = ""
        self.activities: list[dict[str, Any]] = []
        self.watermark = ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def start(self, name: str = "") -> None:
        async with self.session.post(
            f"{self.base}/tokens/generate",
            headers={"Origin": self.origin},
            json={"user": {"name": name}} if name else None,
        ) as r:
            assert r.status == 200, await r.text()
            self.token = (await r.json())["token"]
        async with self.session.post(f"{self.base}/conversations", headers=self._auth) as r:
            assert r.status in (200, 201), await r.text()
            body = await r.json()
        self.conversation_id = body["conversationId"]
        self.stream_url = body["streamUrl"]
        await self.connect()

    async def connect(self, watermark: str = "") -> None:
        url = self.stream_url
        if watermark:
            async with self.session.get(
                f"{self.base}/conversations/{self.conversation_id}",
                params={"watermark": watermark},
                headers=self._auth,
            ) as r:
                assert r.status == 200, await r.text()
                url = (await r.json())["streamUrl"]
        self._ws = await self.session.ws_connect(url)
        self._reader = asyncio.create_task(self._read(self._ws))

    def follow(self, url: str) -> None:
        """The bot came back at ``url`` (restarted on another port): talk to it there."""
        old_host = self.base.split("//")[1].split("/")[0]
        self.base = f"{url}/v3/directline"
        self.stream_url = self.stream_url.replace(old_host, url.split("//")[1])

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT or not message.data:
                continue
            frame = json.loads(message.data)
            self.activities.extend(frame["activities"])
            self.watermark = frame.get("watermark", self.watermark)
            self._changed.set()

    async def disconnect(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def history(self) -> list[dict[str, Any]]:
        """The conversation's activities as the server keeps them (a GET, not the stream)."""
        async with self.session.get(
            f"{self.base}/conversations/{self.conversation_id}/activities", headers=self._auth
        ) as r:
            assert r.status == 200, await r.text()
            return list((await r.json())["activities"])

    async def post(self, activity: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        activity = {"from": {"id": "ignored-by-server"}, **activity}
        activity.setdefault("channelData", {}).setdefault("clientActivityID", uuid.uuid4().hex)
        async with self.session.post(
            f"{self.base}/conversations/{self.conversation_id}/activities",
            json=activity,
            headers=self._auth,
        ) as r:
            return r.status, await r.json()

    async def send(self, text: str, client_id: str = "") -> tuple[int, dict[str, Any], str]:
        """A visitor message as the widget posts it, answered however the bot answers:
        (status, body, Retry-After)."""
        async with self.session.post(
            f"{self.base}/conversations/{self.conversation_id}/activities",
            json={
                "type": "message",
                "text": text,
                "channelData": {"clientActivityID": client_id or uuid.uuid4().hex},
            },
            headers=self._auth,
        ) as r:
            return r.status, await r.json(), r.headers.get("Retry-After", "")

    async def say(self, text: str) -> str:
        status, body = await self.post({"type": "message", "text": text})
        assert status == 200, body
        return str(body["id"])

    async def event(self, name: str, value: Any = None) -> str:
        status, body = await self.post({"type": "event", "name": name, "value": value})
        assert status == 200, body
        return str(body["id"])

    def texts(self, role: str | None = None) -> list[str]:
        """Message texts not from the visitor, optionally only those of one sender role."""
        return [
            a["text"]
            for a in self.activities
            if a["type"] == "message"
            and a["from"].get("role") != "user"
            and (
                role is None
                or a.get("channelData", {}).get("handoff", {}).get("senderRole") == role
            )
        ]

    def statuses(self) -> list[str]:
        return [
            a["value"]["state"]
            for a in self.activities
            if a["type"] == "event" and a.get("name") == "handoff.status"
        ]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> Any:
        return await wait_until(self._changed, predicate, timeout)

    async def wait_type(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first activity of type ``kind`` (``messageUpdate``, ...), once there is one."""
        return await self.wait_for(
            lambda: next((a for a in self.activities if a["type"] == kind), None), timeout
        )

    async def wait_text(self, fragment: str, timeout: float = 10.0) -> dict[str, Any]:
        return await self.wait_for(
            lambda: next(
                (
                    a
                    for a in self.activities
                    if a["type"] == "message" and fragment in (a.get("text") or "")
                ),
                None,
            ),
            timeout,
        )
