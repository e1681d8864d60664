"""Who is asking: the client's address and the URL it used, believing ``X-Forwarded-*`` only
from the reverse proxies ops name (``server.trusted_proxies``); from anyone else those headers
are whatever the client wants them to be."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CLIENT = web.RequestKey("client", str)  # the client's address, worked out once


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Proxies:
    """Reads the trusted networks from the live settings (a reload applies at once)."""

    def __init__(self, trusted: Callable[[], Sequence[Network]]) -> None:
        self._trusted = trusted

    def trusted(self, address: str) -> bool:
        networks = self._trusted()
        if not networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    def _via_proxy(self, request: web.Request) -> bool:
        return self.trusted(request.remote or "")

    def client(self, request: web.Request) -> str:
        """The client's address: the peer, or, when the peer is a trusted proxy, the last
        address in X-Forwarded-For that is not one (the one our own proxies saw)."""
        known: str | None = request.get(_CLIENT)
        if known is not None:
            return known
        address = request.remote or ""
        if self._via_proxy(request):
            hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
            for hop in reversed([h for h in hops if h]):
                address = hop
                if not self.trusted(hop):
                    break
        request[_CLIENT] = address
        return address

    def scheme(self, request: web.Request) -> str:
        """``https`` or ``http``, as the client used it."""
        if self._via_proxy(request):
            forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            if forwarded in ("http", "https"):
                return forwarded
        return "https" if request.secure else "http"

    def host(self, request: web.Request) -> str:
        """The host (and port) the client used."""
        if self._via_proxy(request):
            forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
            if forwarded:
                return forwarded
        return request.host
