"""Every botbuilder workaround in one place (botbuilder is quarantined here and in the endpoint):
its settings object, signing keys fetched without blocking the loop, clients reused across turns,
and the raw activity handed through its turn."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from botbuilder.core import TurnContext
from botbuilder.schema import (
    Activity,
    CallerIdConstants,
)
from botframework.connector.auth import AuthenticateRequestResult, AuthenticationConstants
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from jwt.algorithms import RSAAlgorithm

from adapters.teams.auth import BotCredentials
from adapters.teams.wire import string
from bot.errors import GatewayError

log = logging.getLogger(__name__)

MAX_CONNECTOR_CLIENTS = 64  # one per service URL and audience; Teams uses a handful


class SigningKeysUnavailableError(GatewayError):
    """The Bot Framework's OpenID metadata or signing keys could not be fetched."""


class SdkSettings:
    """The attribute names ``ConfigurationBotFrameworkAuthentication`` reads."""

    def __init__(self, credentials: BotCredentials) -> None:
        self.APP_ID = credentials.app_id
        self.APP_PASSWORD = credentials.password
        # botbuilder turns inbound auth off only for MultiTenant with no app id.
        self.APP_TYPE = "MultiTenant" if credentials.local_mode else credentials.app_type
        self.APP_TENANTID = credentials.tenant_id
        if credentials.local_mode:
            return
        # Setting any TO_BOT_FROM_CHANNEL_* key switches botbuilder to its "parameterized"
        # authentication, which reads every key below and has no defaults of its own: all are
        # given, as Microsoft's public-cloud values, so production and the tests run one path.
        self.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL = credentials.openid_metadata_url
        self.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER = credentials.token_issuer
        constants = AuthenticationConstants
        self.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL = (
            constants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
        )
        self.TO_CHANNEL_FROM_BOT_LOGIN_URL = constants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX
        self.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE = constants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
        self.OAUTH_URL = constants.OAUTH_URL
        self.CALLER_ID = CallerIdConstants.public_azure_channel
        self.VALIDATE_AUTHORITY = True


@dataclass(frozen=True)
class _SigningKey:
    """What botbuilder's ``JwtTokenExtractor`` reads from a key (``_OpenIdConfig``'s shape)."""

    public_key: Any
    endorsements: list[str]


class SigningKeys:
    """The Bot Framework's token signing keys, fetched without blocking the event loop.

    botbuilder's own key cache fetches with ``requests`` (no timeout) on the event loop, and a
    key id it does not know raises ``IndexError`` instead of refetching, so a key rotation goes
    unseen for up to a day. This object takes its place in ``JwtTokenExtractor``'s class-level
    cache for the channel metadata URL and answers the same ``get(key_id)``.
    """

    MAX_AGE = 24 * 3600.0
    # A token with an unknown key id refetches at most this often (keys rotate rarely).
    UNKNOWN_KEY_REFETCH = 3600.0
    TIMEOUT = aiohttp.ClientTimeout(total=10)

    def __init__(self, metadata_url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.metadata_url = metadata_url
        self._clock = clock
        self._keys: dict[str, _SigningKey] = {}
        self._fetched_at: float | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def install(self) -> None:
        """Be the key cache botbuilder uses for this metadata URL."""
        JwtTokenExtractor.metadataCache[self.metadata_url] = self

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self._clock() - self._fetched_at

    async def get(self, key_id: str | None) -> _SigningKey:
        if self._age() > self.MAX_AGE:
            await self._refresh()
        key = self._keys.get(key_id or "")
        if key is None and self._age() > self.UNKNOWN_KEY_REFETCH:
            await self._refresh()
            key = self._keys.get(key_id or "")
        if key is None:
            raise PermissionError(f"token signed with an unknown key {key_id!r}")
        return key

    async def _refresh(self) -> None:
        # Concurrent first requests share one fetch.
        task = self._refreshing
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._refreshing = asyncio.ensure_future(self._fetch())
        await asyncio.shield(task)

    async def _fetch(self) -> None:
        try:
            async with aiohttp.ClientSession(timeout=self.TIMEOUT) as session:
                async with session.get(self.metadata_url) as response:
                    response.raise_for_status()
                    jwks_uri = (await response.json(content_type=None))["jwks_uri"]
                async with session.get(jwks_uri) as response:
                    response.raise_for_status()
                    entries = (await response.json(content_type=None))["keys"]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            raise SigningKeysUnavailableError(
                f"signing keys from {self.metadata_url}: {type(exc).__name__} {exc}"
            ) from exc
        keys: dict[str, _SigningKey] = {}
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            try:
                public_key = RSAAlgorithm.from_jwk(json.dumps(entry))
            except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
                log.warning("signing key %r skipped: %s", entry.get("kid"), exc)
                continue
            keys[str(entry.get("kid", ""))] = _SigningKey(
                public_key, list(entry.get("endorsements") or [])
            )
        self._keys = keys
        self._fetched_at = self._clock()
        log.info("%d Bot Framework signing key(s) fetched from %s", len(keys), self.metadata_url)


RAW_ACTIVITY = "handoff.raw_activity"  # turn_state key: the activity's JSON as received


def raw_activity(turn_context: TurnContext) -> dict[str, Any]:
    raw = turn_context.turn_state.get(RAW_ACTIVITY)
    return raw if isinstance(raw, dict) else {}


class ReusedClients:
    """botbuilder's CloudAdapter builds a new ConnectorClient and a new UserTokenClient on every
    turn (about 4 ms of CPU each in msrest's retry-policy setup, measured with py-spy). Both are
    reusable for the same app, service URL and audience, so each is built once."""

    def __init__(self, auth: Any) -> None:
        self._auth = auth
        self._connectors: dict[tuple[str, str], Any] = {}
        self._token_clients: dict[str, Any] = {}
        self.built = 0  # clients actually constructed (for tests and diagnostics)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._auth, name)

    async def create_user_token_client(self, claims_identity: Any) -> Any:
        claims = getattr(claims_identity, "claims", None) or {}
        key = str(claims.get("aud") or claims.get("appid") or "")
        if key not in self._token_clients:
            self.built += 1
            self._token_clients[key] = await self._auth.create_user_token_client(claims_identity)
        return self._token_clients[key]

    def reuse(self, result: AuthenticateRequestResult) -> AuthenticateRequestResult:
        """Swap the result's per-turn connector factory for one that hands out cached clients."""
        if result.connector_factory is not None:
            result.connector_factory = CachedConnectorFactory(self, result.connector_factory)
        return result


class CachedConnectorFactory:
    def __init__(self, owner: ReusedClients, inner: Any) -> None:
        self._owner = owner
        self._inner = inner

    async def create(self, service_url: str, audience: str) -> Any:
        key = (service_url, audience or "")
        cache = self._owner._connectors
        if key not in cache:
            if len(cache) >= MAX_CONNECTOR_CLIENTS:
                cache.clear()  # local mode takes any serviceUrl: keep the cache bounded
            self._owner.built += 1
            cache[key] = await self._inner.create(service_url, audience)
        return cache[key]


def for_auth(body: dict[str, Any]) -> Activity:
    """What botbuilder's authentication reads of an activity (channel and service URL), without
    deserializing all of it."""
    return Activity(channel_id=string(body, "channelId"), service_url=string(body, "serviceUrl"))
