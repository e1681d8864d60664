"""The app's own middleware, and the error shape every route answers in."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from adapters.runtime import jsonio
from adapters.runtime.failures import FAILURES, REFUSALS, bounded, clip
from adapters.storage.contract import Store
from bot.errors import StoreError

log = logging.getLogger(__name__)

RETRY_AFTER = "2"  # seconds, on a 503 for a storage fault


def service_error(status: int, code: str, message: str) -> web.Response:
    """The error shape of both channels (Direct Line's; the Bot Framework reads the status)."""
    headers = {"Retry-After": RETRY_AFTER} if status == 503 else None
    return jsonio.response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def guarded(store: Store) -> Middleware:
    """Answer only once the request's writes are committed. A storage fault answers 503 with
    Retry-After (nothing of the request was kept: retrying is safe); anything else unexpected
    is logged (its traceback once a minute) and answered 500, without internals."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            # Only this request's own writes: another's failed commit is not its failure.
            await store.flush(reads=False)
            return response
        except web.HTTPException:
            raise
        except ConnectionError as exc:  # the client went away: not our failure, and no one reads
            REFUSALS.log(
                log,
                logging.INFO,
                ("gone", type(exc).__name__),
                "%s %s: the client went away (%s)",
                request.method,
                clip(request.path),
                type(exc).__name__,
            )
            if response is not None and response.prepared:
                return response
            return service_error(400, "BadRequest", "the connection was lost")
        except StoreError as exc:
            log.warning("%s %s answered 503: %s", request.method, request.path, bounded(exc))
            if response is not None and response.prepared:
                return response  # a stream, already under way: it ends as it can
            return service_error(
                503, "ServiceUnavailable", "storage is unavailable; nothing was kept, try again"
            )
        except Exception as exc:
            FAILURES.failed(log, exc, "unhandled error on %s %s", request.method, request.path)
            if response is not None and response.prepared:
                return response
            return service_error(500, "ServiceError", "something went wrong; it has been logged")

    return guard


def bearer_only(
    token: str, local_mode: bool, what: str, variable: str
) -> Callable[[web.Request], web.Response | None]:
    """A check for an ops endpoint: with ``token`` set, a request must send it as
    ``Authorization: Bearer``; without one, the endpoint answers only in local mode (no Microsoft
    credentials, a developer's machine), else 404 saying what to set. The check returns the
    refusal, or None to go on."""

    def refused(request: web.Request) -> web.Response | None:
        if not token:
            if local_mode:
                return None
            return service_error(404, "NotFound", f"{what} are off: set {variable} to use them")
        sent = request.headers.get("Authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return None
        return service_error(401, "Unauthorized", f"send {variable} as Authorization: Bearer")

    return refused
