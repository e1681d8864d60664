"""Inbound JWT validation for real, and outbound Bot Connector tokens.

Tokens are signed with RSA keys made in ``tests/support/auth.py``; a local OpenID metadata/JWKS
server (the ``issuer`` fixture) publishes them
and the app is pointed at it (``ToBotFromChannelOpenIdMetadataUrl``). botbuilder's own
validation runs unchanged on top: signature, expiry, audience, issuer, serviceurl, endorsements.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import aiohttp
import jwt
import pytest
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor

from adapters.teams.auth import (
    CHANNEL_OPENID_METADATA_URL,
    CHANNEL_TOKEN_ISSUER,
    BotCredentials,
    ConnectorTokens,
)
from adapters.teams.sdk import SigningKeys
from bot.errors import GatewayError
from tests.conftest import RunningBot, VisitorFactory
from tests.support.auth import (
    APP_ID,
    ORIGIN,
    FakeMsal,
    Issuer,
    ProductionBot,
    ProductionFactory,
    jwk,
    post,
    token,
)
from tests.support.directline_client import DirectLineClient
from tests.support.scenarios import handed_off
from tests.support.standin import Standin
from tests.support.teams import ALEX, card_action, thread_message

OTHER_APP_ID = "0b7e4d2c-1a3f-4e5d-9c8b-7a6f5e4d3c2b"
OTHER_TENANT = "99999999-aaaa-bbbb-cccc-000000000000"


@pytest.fixture
async def production(start_production: ProductionFactory) -> ProductionBot:
    return await start_production()


@pytest.fixture
async def widget(production: ProductionBot, start_visitor: VisitorFactory) -> DirectLineClient:
    return await start_visitor(production, origin=ORIGIN)


# ---- inbound ------------------------------------------------------------------------------


@pytest.mark.parametrize("app_type", ["MultiTenant", "SingleTenant"])
async def test_valid_token_is_accepted_and_the_handoff_runs(
    http: aiohttp.ClientSession,
    start_production: ProductionFactory,
    standin: Standin,
    issuer: Issuer,
    app_type: str,
) -> None:
    production = await start_production(app_type)
    visitor = DirectLineClient(http, production.running.directline, origin=ORIGIN)
    await visitor.start()
    try:
        thread_id, root, handoff_id = await handed_off(visitor, standin)
        join = card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id)
        status, body = await post(http, production.url, join, f"Bearer {token(standin.url)}")
        assert status == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
        await visitor.wait_text("has joined")
        await standin.wait_for(lambda: standin.of("PUT", root))

        reply = thread_message(standin.url, thread_id, ALEX, "Hello from Teams")
        status, _ = await post(http, production.url, reply, f"Bearer {token(standin.url)}")
        assert status in (200, 201)
        await visitor.wait_text("Hello from Teams")
    finally:
        await visitor.disconnect()
    # The signing keys were fetched once and reused for every later request.
    assert issuer.fetches == ["metadata", "keys"]


def _hmac(url: str) -> str:
    """Algorithm confusion: HS256 with a shared secret, under the real key's id."""
    claims = {"iss": CHANNEL_TOKEN_ISSUER, "aud": APP_ID, "serviceurl": url}
    claims["exp"] = int(time.time()) + 600
    secret = "a shared secret that is long enough for HS256"
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "channel-key"})


EMULATOR_ISSUER = "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"
# name -> (the Authorization header for a bot at ``url`` (None: no header), why it is refused).
BAD_AUTHORIZATION: dict[str, tuple[Callable[[str], str | None], str]] = {
    "no-header": (lambda url: None, "no Bearer token"),
    "empty-header": (lambda url: "", "no Bearer token"),
    "basic-scheme": (lambda url: f"Basic {token(url)}", "no Bearer token"),
    "garbage": (lambda url: "Bearer not-a-jwt", "DecodeError"),
    "unsigned-alg-none": (
        lambda url: f"Bearer {token(url, algorithm='none')}",
        "algorithm not in allowed list",
    ),
    "other-key-same-kid": (
        lambda url: f"Bearer {token(url, key='attacker')}",
        "InvalidSignatureError",
    ),
    "other-key-unknown-kid": (
        lambda url: f"Bearer {token(url, key='attacker', kid='x-key')}",
        "unknown key 'x-key'",
    ),
    "hmac-with-known-kid": (lambda url: f"Bearer {_hmac(url)}", "algorithm not in allowed list"),
    "expired": (
        lambda url: f"Bearer {token(url, exp=int(time.time()) - 3600)}",
        "ExpiredSignatureError",
    ),
    # PyJWT checks exp only when present and botbuilder does not require it.
    "no-exp": (lambda url: f"Bearer {token(url, without=('exp',))}", "token has no exp claim"),
    "exp-not-a-number": (
        lambda url: f"Bearer {token(url, exp='never')}",
        "token has no exp claim",
    ),
    "not-yet-valid": (
        lambda url: f"Bearer {token(url, nbf=int(time.time()) + 3600)}",
        "ImmatureSignatureError",
    ),
    "wrong-audience": (
        lambda url: f"Bearer {token(url, aud=OTHER_APP_ID)}",
        f"Invalid AppId passed on token: {OTHER_APP_ID}",
    ),
    "wrong-issuer": (
        lambda url: f"Bearer {token(url, iss='https://login.example.com/')}",
        "token issuer 'https://login.example.com/'",
    ),
    "emulator-issuer": (
        lambda url: f"Bearer {token(url, iss=EMULATOR_ISSUER)}",
        f"token issuer '{EMULATOR_ISSUER}'",
    ),
    "wrong-serviceurl": (
        lambda url: f"Bearer {token(url, serviceurl='https://smba.example/')}",
        "Invalid 'serviceurl' claim",
    ),
    "key-not-endorsed-for-teams": (
        lambda url: f"Bearer {token(url, key='webchat', kid='webchat-key')}",
        "Could not validate endorsement key",
    ),
}


@pytest.mark.parametrize("case", list(BAD_AUTHORIZATION))
async def test_bad_tokens_are_refused_and_change_nothing(
    http: aiohttp.ClientSession,
    production: ProductionBot,
    widget: DirectLineClient,
    standin: Standin,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    authorization, reason = BAD_AUTHORIZATION[case]
    thread_id, _, handoff_id = await handed_off(widget, standin)
    calls_before = list(standin.calls)
    join = card_action(standin.url, thread_id, ALEX, "handoff.join", handoff_id)
    status, body = await post(http, production.url, join, authorization(standin.url))
    assert status == 401, body
    assert body == {"error": {"message": "unauthorized"}}
    # Refused for the reason the case is about, not by accident.
    [refusal] = [r.getMessage() for r in caplog.records if " refused: " in r.getMessage()]
    assert reason in refusal
    # Nothing happened: no card update, no post, nothing told to the visitor.
    assert standin.calls == calls_before
    assert not any("has joined" in t for t in widget.texts())
    # And the handoff is still there to be joined by a real Teams request.
    status, _ = await post(http, production.url, join, f"Bearer {token(standin.url)}")
    assert status == 200
    await widget.wait_text("has joined")


async def test_valid_token_from_another_tenant_is_forbidden(
    http: aiohttp.ClientSession,
    production: ProductionBot,
    widget: DirectLineClient,
    standin: Standin,
) -> None:
    thread_id, _, handoff_id = await handed_off(widget, standin)
    calls_before = list(standin.calls)
    join = card_action(
        standin.url, thread_id, ALEX, "handoff.join", handoff_id, tenant=OTHER_TENANT
    )
    status, _ = await post(http, production.url, join, f"Bearer {token(standin.url)}")
    assert status == 403
    assert standin.calls == calls_before
    assert not any("has joined" in t for t in widget.texts())


async def test_issuer_can_be_configured(
    http: aiohttp.ClientSession, start_production: ProductionFactory, standin: Standin
) -> None:
    production = await start_production(token_issuer="https://issuer.test/")
    thread = "19:support@thread.tacv2;messageid=1"
    chatter = thread_message(standin.url, thread, ALEX, "lunch?", mention=False)
    ours = token(standin.url, iss="https://issuer.test/")
    status, _ = await post(http, production.url, chatter, f"Bearer {ours}")
    assert status in (200, 201)
    # With another issuer configured, a token with the Bot Framework's own issuer is refused.
    status, _ = await post(http, production.url, chatter, f"Bearer {token(standin.url)}")
    assert status == 401


async def test_unreachable_signing_keys_answer_503(
    http: aiohttp.ClientSession, start_production: ProductionFactory, standin: Standin
) -> None:
    # A port nothing listens on: Teams retries a 5xx, so the activity is not lost.
    dead = "http://127.0.0.1:9/v1/.well-known/openidconfiguration"
    production = await start_production(openid_metadata_url=dead)
    thread = "19:support@thread.tacv2;messageid=1"
    try:
        status, _ = await post(
            http,
            production.url,
            thread_message(standin.url, thread, ALEX, "hello?"),
            f"Bearer {token(standin.url)}",
        )
    finally:
        JwtTokenExtractor.metadataCache.pop(dead, None)
    assert status == 503
    assert standin.calls == []


async def test_signing_keys_refetch_for_a_new_key_at_most_hourly(issuer: Issuer) -> None:
    now = [1000.0]
    keys = SigningKeys(issuer.metadata_url, clock=lambda: now[0])
    assert (await keys.get("channel-key")).endorsements == ["msteams", "webchat"]
    # Microsoft rotates its keys: a token with a new key id arrives.
    issuer.keys.append(jwk("rotated", "rotated-key", ["msteams"]))
    with pytest.raises(PermissionError):
        await keys.get("rotated-key")  # just fetched: not refetched for every unknown key id
    assert issuer.fetches == ["metadata", "keys"]
    now[0] += SigningKeys.UNKNOWN_KEY_REFETCH + 1
    assert (await keys.get("rotated-key")).endorsements == ["msteams"]
    assert issuer.fetches == ["metadata", "keys"] * 2
    # Known keys are reused for a day, then fetched again.
    now[0] += SigningKeys.MAX_AGE - 10
    await keys.get("channel-key")
    assert len(issuer.fetches) == 4
    now[0] += 20
    await keys.get("channel-key")
    assert len(issuer.fetches) == 6


async def test_concurrent_first_requests_share_one_fetch(issuer: Issuer) -> None:
    keys = SigningKeys(issuer.metadata_url)
    found = await asyncio.gather(*(keys.get("channel-key") for _ in range(10)))
    assert len({id(k) for k in found}) == 1
    assert issuer.fetches == ["metadata", "keys"]


def test_auth_settings_from_the_environment() -> None:
    base = {
        "MicrosoftAppId": APP_ID,
        "MicrosoftAppPassword": "x",
        "MicrosoftAppType": "MultiTenant",
    }
    defaults = BotCredentials.from_env(base)
    assert defaults.openid_metadata_url == CHANNEL_OPENID_METADATA_URL
    assert defaults.token_issuer == CHANNEL_TOKEN_ISSUER == "https://api.botframework.com"
    assert not defaults.custom_issuer
    custom = BotCredentials.from_env(
        {
            **base,
            "ToBotFromChannelOpenIdMetadataUrl": "http://127.0.0.1:8080/openid",
            "ToBotFromChannelTokenIssuer": "https://issuer.test/",
        }
    )
    assert custom.openid_metadata_url == "http://127.0.0.1:8080/openid"
    assert custom.token_issuer == "https://issuer.test/"
    assert custom.custom_issuer
    with pytest.raises(ValueError, match="ToBotFromChannelOpenIdMetadataUrl"):
        BotCredentials.from_env({**base, "ToBotFromChannelOpenIdMetadataUrl": "login.example"})


# ---- outbound -----------------------------------------------------------------------------


async def test_outbound_calls_carry_the_bearer_token(
    production: ProductionBot, widget: DirectLineClient, standin: Standin
) -> None:
    thread_id, _, _ = await handed_off(widget, standin)
    assert standin.calls
    for call in standin.calls:
        assert call.headers.get("Authorization") == "Bearer token-1", call.path
    assert production.msal.scopes == [["https://api.botframework.com/.default"]]


async def test_local_mode_sends_no_token(
    bot: RunningBot, visitor: DirectLineClient, standin: Standin
) -> None:
    await handed_off(visitor, standin)
    assert standin.calls
    assert all("Authorization" not in call.headers for call in standin.calls)


def _credentials() -> BotCredentials:
    return BotCredentials(app_id=APP_ID, password="x", app_type="MultiTenant")


async def test_tokens_are_acquired_off_the_event_loop() -> None:
    msal = FakeMsal(delay=0.2)
    tokens = ConnectorTokens(_credentials(), client=msal)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        assert await tokens.bearer() == "token-1"
    finally:
        ticker.cancel()
    assert msal.threads and msal.threads[0] != threading.get_ident()
    # The loop kept running while MSAL blocked for 0.2 s.
    assert ticks >= 5


async def test_tokens_are_cached_and_fetched_once_under_concurrency() -> None:
    msal = FakeMsal(delay=0.05)
    tokens = ConnectorTokens(_credentials(), client=msal)
    results = await asyncio.gather(*(tokens.bearer() for _ in range(20)))
    assert set(results) == {"token-1"}
    assert await tokens.bearer() == "token-1"
    assert len(msal.threads) == 1


async def test_tokens_are_refreshed_before_they_expire() -> None:
    now = [5000.0]
    msal = FakeMsal(expires_in=3600)
    tokens = ConnectorTokens(_credentials(), client=msal, clock=lambda: now[0])
    assert await tokens.bearer() == "token-1"
    now[0] += 3600 - 300 - 1  # still more than five minutes left
    assert await tokens.bearer() == "token-1"
    now[0] += 2  # within five minutes of expiry: a fresh one, before the old one lapses
    assert await tokens.bearer() == "token-2"
    assert len(msal.threads) == 2


async def test_token_failure_is_a_gateway_error_and_the_next_call_retries() -> None:
    msal = FakeMsal()
    msal.fail_next = True
    tokens = ConnectorTokens(_credentials(), client=msal)
    with pytest.raises(GatewayError, match="AADSTS7000215"):
        await tokens.bearer()
    assert await tokens.bearer() == "token-2"


async def test_local_mode_has_no_token() -> None:
    msal = FakeMsal()
    assert await ConnectorTokens(BotCredentials(), client=msal).bearer() is None
    assert msal.threads == []
