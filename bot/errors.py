"""One error tree for the project; adapters translate SDK and HTTP errors into it."""

from __future__ import annotations


class HandoffError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(HandoffError):
    """The configuration is invalid; ``problems`` holds ``file:line: key.path: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StoreError(HandoffError):
    """The store failed."""


class StaleWriteError(StoreError):
    """A compare-and-set write lost the race: someone saved a newer version first."""


class GatewayError(HandoffError):
    """An outbound call (the desk, the widget) failed."""


class RetryableGatewayError(GatewayError):
    """The far side asked us to come back later (429/5xx)."""

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status  # the far side's answer (None: none came)
        # The request may have reached the far side (a lost answer): repeating it can duplicate.
        self.ambiguous = False


class ThreadGoneError(GatewayError):
    """The desk thread or its channel is gone, or the bot was removed: do not retry."""


class UnknownConversationError(HandoffError):
    """No such widget conversation."""
