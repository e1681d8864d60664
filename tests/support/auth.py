"""Production mode for tests: a local OpenID provider whose RSA keys sign Bot Framework channel
tokens, an MSAL-like client for outbound tokens, and posting with an Authorization header.

botbuilder's own validation runs unchanged against these: signature, expiry, audience, issuer,
serviceurl, endorsements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import aiohttp
import jwt
from aiohttp import web
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from adapters.teams.auth import CHANNEL_TOKEN_ISSUER, BotCredentials
from tests.support.servers import serve

if TYPE_CHECKING:
    from tests.conftest import RunningBot

APP_ID = "3f6c2a4e-9b1d-4c7e-8a2f-5d0e1b9c7a61"
ORIGIN = "https://shop.example.com"


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One key per name for the whole run (generating RSA keys is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(name: str, kid: str, endorsements: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = RSAAlgorithm.to_jwk(rsa_key(name).public_key(), as_dict=True)
    return {**entry, "kid": kid, "use": "sig", "endorsements": endorsements}


@dataclass
class Issuer:
    """A local OpenID provider: metadata, a JWKS, and how often each was fetched."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    fetches: list[str] = field(default_factory=list)

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/v1/.well-known/openidconfiguration"


@asynccontextmanager
async def running_issuer() -> AsyncIterator[Issuer]:
    """The provider on loopback, publishing the channel's key and a Web Chat-only one."""
    state = Issuer(
        keys=[
            jwk("channel", "channel-key", ["msteams", "webchat"]),
            jwk("webchat", "webchat-key", ["webchat"]),
        ]
    )

    async def metadata(request: web.Request) -> web.Response:
        state.fetches.append("metadata")
        return web.json_response(
            {
                "issuer": CHANNEL_TOKEN_ISSUER,
                "jwks_uri": f"{state.url}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def keys(request: web.Request) -> web.Response:
        state.fetches.append("keys")
        return web.json_response({"keys": state.keys})

    app = web.Application()
    app.router.add_get("/v1/.well-known/openidconfiguration", metadata)
    app.router.add_get("/v1/.well-known/keys", keys)
    runner, state.url = await serve(app)
    # botbuilder caches keys per metadata URL in a class attribute: start and end clean, so a
    # port reused by a later test never sees this test's keys.
    JwtTokenExtractor.metadataCache.pop(state.metadata_url, None)
    try:
        yield state
    finally:
        JwtTokenExtractor.metadataCache.pop(state.metadata_url, None)
        await runner.cleanup()


def token(
    service_url: str,
    *,
    key: str = "channel",
    kid: str = "channel-key",
    algorithm: str = "RS256",
    without: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """A Bot Framework channel token as Teams sends it, changed by ``claims``, with the claims
    named in ``without`` left out."""
    now = int(time.time())
    payload = {
        "serviceurl": service_url,
        "nbf": now - 60,
        "exp": now + 3600,
        "iss": CHANNEL_TOKEN_ISSUER,
        "aud": APP_ID,
        **claims,
    }
    for name in without:
        del payload[name]
    if algorithm == "none":
        return jwt.encode(payload, None, algorithm="none", headers={"kid": kid})
    return jwt.encode(payload, rsa_key(key), algorithm=algorithm, headers={"kid": kid})


class FakeMsal:
    """An MSAL-like client: blocking, counts acquisitions and the thread each ran on."""

    def __init__(self, expires_in: int = 3600, delay: float = 0.0) -> None:
        self.expires_in = expires_in
        self.delay = delay
        self.threads: list[int] = []
        self.scopes: list[list[str]] = []
        self.fail_next = False

    def acquire_token_for_client(self, *, scopes: list[str]) -> dict[str, Any]:
        self.threads.append(threading.get_ident())
        self.scopes.append(scopes)
        if self.delay:
            time.sleep(self.delay)  # MSAL's HTTP is blocking
        if self.fail_next:
            self.fail_next = False
            return {"error": "invalid_client", "error_description": "AADSTS7000215"}
        return {"access_token": f"token-{len(self.threads)}", "expires_in": self.expires_in}


@dataclass
class ProductionBot:
    running: RunningBot
    msal: FakeMsal
    credentials: BotCredentials

    @property
    def url(self) -> str:
        return self.running.url


ProductionFactory = Callable[..., Awaitable[ProductionBot]]


async def post(
    http: aiohttp.ClientSession, bot_url: str, activity: dict[str, Any], authorization: str | None
) -> tuple[int, Any]:
    """Post an activity to /api/messages with this Authorization header (None: none at all)."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with http.post(f"{bot_url}/api/messages", json=activity, headers=headers) as response:
        body = await response.json(content_type=None) if await response.read() else None
        return response.status, body
