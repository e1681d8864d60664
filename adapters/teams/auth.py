"""Bot credentials from the environment, and outbound Bot Connector tokens via MSAL.

MSAL does blocking HTTP, so tokens are fetched in a worker thread, cached until shortly before
they expire, and fetched by one caller at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msal

from bot.errors import RetryableGatewayError

log = logging.getLogger(__name__)

BOT_SCOPE = "https://api.botframework.com/.default"
APP_TYPES = ("SingleTenant", "UserAssignedMSI", "MultiTenant")
# Where inbound Bot Framework channel tokens are checked (Microsoft's public cloud). The names of
# the environment settings are botbuilder's own configuration keys (ToBotFromChannel...).
CHANNEL_OPENID_METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
CHANNEL_TOKEN_ISSUER = "https://api.botframework.com"


@dataclass(frozen=True)
class BotCredentials:
    """``MicrosoftAppId`` & co.; an empty app id means local mode (no auth either way).

    ``openid_metadata_url`` and ``token_issuer`` say whose tokens ``/api/messages`` accepts;
    they default to the Bot Framework's and are changed only to test against a local issuer.
    """

    app_id: str = ""
    password: str = ""
    app_type: str = "SingleTenant"
    tenant_id: str = ""
    openid_metadata_url: str = CHANNEL_OPENID_METADATA_URL
    token_issuer: str = CHANNEL_TOKEN_ISSUER

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BotCredentials:
        app_type = env.get("MicrosoftAppType", "") or "SingleTenant"
        if app_type not in APP_TYPES:
            raise ValueError(
                f"MicrosoftAppType must be one of {', '.join(APP_TYPES)}, not {app_type!r}"
            )
        credentials = cls(
            app_id=env.get("MicrosoftAppId", ""),
            password=env.get("MicrosoftAppPassword", ""),
            app_type=app_type,
            tenant_id=env.get("MicrosoftAppTenantId", ""),
            openid_metadata_url=env.get("ToBotFromChannelOpenIdMetadataUrl", "")
            or CHANNEL_OPENID_METADATA_URL,
            token_issuer=env.get("ToBotFromChannelTokenIssuer", "") or CHANNEL_TOKEN_ISSUER,
        )
        if not credentials.openid_metadata_url.startswith(("https://", "http://")):
            raise ValueError("ToBotFromChannelOpenIdMetadataUrl must be an http(s) URL")
        if credentials.local_mode:
            return credentials
        missing = [
            name
            for name, value in (
                (
                    "MicrosoftAppPassword",
                    credentials.password if app_type != "UserAssignedMSI" else "x",
                ),
                (
                    "MicrosoftAppTenantId",
                    credentials.tenant_id if app_type != "MultiTenant" else "x",
                ),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"MicrosoftAppType {app_type} also needs {' and '.join(missing)}")
        return credentials

    @property
    def local_mode(self) -> bool:
        return not self.app_id

    @property
    def custom_issuer(self) -> bool:
        """Inbound tokens are checked against someone other than the Bot Framework."""
        return (self.openid_metadata_url, self.token_issuer) != (
            CHANNEL_OPENID_METADATA_URL,
            CHANNEL_TOKEN_ISSUER,
        )

    def __repr__(self) -> str:  # never print the password
        return (
            f"BotCredentials(app_id={self.app_id!r}, app_type={self.app_type!r}, "
            f"tenant_id={self.tenant_id!r})"
        )


class TokenClient(Protocol):
    """What ``ConnectorTokens`` needs from an MSAL client (blocking)."""

    def acquire_token_for_client(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...


class ConnectorTokens:
    """Bearer tokens for calls to the Bot Connector; None in local mode.

    ``client`` replaces the MSAL client built from the credentials and ``clock`` the monotonic
    clock (tests pass small fakes).
    """

    def __init__(
        self,
        credentials: BotCredentials,
        *,
        client: TokenClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials = credentials
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._client: Any = client
        self._clock = clock

    def _build(self) -> Any:
        c = self._credentials
        if c.app_type == "UserAssignedMSI":
            return msal.ManagedIdentityClient(
                msal.UserAssignedManagedIdentity(client_id=c.app_id), http_client=None
            )
        authority_tenant = c.tenant_id if c.app_type == "SingleTenant" else "botframework.com"
        return msal.ConfidentialClientApplication(
            c.app_id,
            client_credential=c.password,
            authority=f"https://login.microsoftonline.com/{authority_tenant}",
        )

    def _fetch(self) -> dict[str, Any]:
        if self._client is None:
            self._client = self._build()
        if isinstance(self._client, msal.ManagedIdentityClient):
            result: dict[str, Any] = self._client.acquire_token_for_client(
                resource="https://api.botframework.com"
            )
        else:
            result = self._client.acquire_token_for_client(scopes=[BOT_SCOPE])
        return result

    def invalidate(self) -> None:
        """Forget the cached token (the connector answered 401)."""
        self._token = ""
        self._expires_at = 0.0

    async def bearer(self) -> str | None:
        if self._credentials.local_mode:
            return None
        if self._token and self._clock() < self._expires_at:
            return self._token
        async with self._lock:
            if self._token and self._clock() < self._expires_at:
                return self._token
            try:
                result = await asyncio.to_thread(self._fetch)
            except Exception as exc:  # MSAL lets network errors through as they come
                raise RetryableGatewayError(f"could not get a Bot Connector token: {exc}") from exc
            if "access_token" not in result:
                reason = result.get("error_description") or result.get("error") or "unknown error"
                # An identity-platform hiccup must not cost queued messages: callers retry.
                raise RetryableGatewayError(f"could not get a Bot Connector token: {reason}")
            self._token = str(result["access_token"])
            # Refresh five minutes early so a call never carries a token about to lapse.
            self._expires_at = self._clock() + max(60, int(result.get("expires_in", 3600)) - 300)
            log.info("Bot Connector token refreshed")
            return self._token
